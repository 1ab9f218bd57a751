// The avx512 kernel table.
#include "kernels.h"

namespace slm::kernels::avx512 {

const CpuKernels& cpu_kernels() {
  static const CpuKernels table = {
      "avx512", &matmul, &rmsnorm, &layernorm, &rope, &attention, &swiglu, &geglu, &gelu_tanh, &gelu_erf, &to_f32, &f32_to_f16,
      &quantize_acts, &int4_packed_size, &int4_pack, &int4_matmul, &int8_matmul, &quantize_kv,
      &int4_quantize_sym,
  };
  return table;
}

}  // namespace slm::kernels::avx512
