// Scalar element type conversions.
#include <cstdint>
#include <cstring>

#include "common.h"
#include "kernels.h"

namespace slm::kernels::generic {

void to_f32(const void* src, DType src_dtype, float* dst, int64_t n) {
  const auto* p = static_cast<const unsigned char*>(src);
  switch (src_dtype) {
    case DType::F32:
      if (n > 0) std::memcpy(dst, p, static_cast<size_t>(n) * 4);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half_to_f32(load_u16(p + 2 * i));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load_u16(p + 2 * i));
      return;
  }
}

void f32_to_f16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_half(src[i]);
}

}  // namespace slm::kernels::generic
