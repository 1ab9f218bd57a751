// The generic kernel table.
#include "kernels.h"

namespace slm::kernels::generic {

const CpuKernels& cpu_kernels() {
  static const CpuKernels table = {
      "generic", &matmul, &rmsnorm, &layernorm, &rope, &attention, &swiglu, &geglu, &gelu_tanh, &gelu_erf, &to_f32, &f32_to_f16,
  };
  return table;
}

}  // namespace slm::kernels::generic
