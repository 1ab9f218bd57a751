// The generic kernel table.
#include "kernels.h"

namespace slm::kernels::generic {

const CpuKernels& cpu_kernels() {
  static const CpuKernels table = {
      "generic", &matmul, &rmsnorm, &rope, &attention, &swiglu, &to_f32, &f32_to_f16,
      &quantize_acts, &int4_packed_size, &int4_pack, &int4_matmul, &int8_matmul,
  };
  return table;
}

}  // namespace slm::kernels::generic
