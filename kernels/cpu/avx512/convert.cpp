// AVX-512 element type conversions (F16C instructions for IEEE half).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx512 {

void to_f32(const void* src, DType src_dtype, float* dst, int64_t n) {
  const auto* p = static_cast<const unsigned char*>(src);
  if (src_dtype == DType::F32) {
    if (n > 0) std::memcpy(dst, p, static_cast<size_t>(n) * 4);
    return;
  }
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = first_lanes(n - i < kLanes ? n - i : kLanes);
    const __m512 v = src_dtype == DType::F16 ? load_widen<DType::F16>(p + 2 * i, m)
                                             : load_widen<DType::BF16>(p + 2 * i, m);
    _mm512_mask_storeu_ps(dst + i, m, v);
  }
}

void f32_to_f16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = first_lanes(n - i < kLanes ? n - i : kLanes);
    const __m512 v = _mm512_maskz_loadu_ps(m, src + i);
    const __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_mask_storeu_epi16(dst + i, m, h);
  }
}

}  // namespace slm::kernels::avx512
