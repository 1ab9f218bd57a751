// AVX2/F16C element type conversions.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx2 {

namespace {

template <DType D>
void widen_all(const unsigned char* p, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) _mm256_storeu_ps(dst + i, load_widen<D>(p + 2 * i));
  if (i < n) store_partial(dst + i, load_widen_partial<D>(p + 2 * i, n - i), n - i);
}

}  // namespace

void to_f32(const void* src, DType src_dtype, float* dst, int64_t n) {
  const auto* p = static_cast<const unsigned char*>(src);
  switch (src_dtype) {
    case DType::F32:
      if (n > 0) std::memcpy(dst, p, static_cast<size_t>(n) * 4);
      return;
    case DType::F16: return widen_all<DType::F16>(p, dst, n);
    case DType::BF16: return widen_all<DType::BF16>(p, dst, n);
  }
}

void f32_to_f16(const float* src, uint16_t* dst, int64_t n) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), kRound));
  }
  if (i < n) {
    alignas(16) uint16_t buf[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(buf), _mm256_cvtps_ph(load_partial(src + i, n - i), kRound));
    std::memcpy(dst + i, buf, static_cast<size_t>(n - i) * sizeof(uint16_t));
  }
}

}  // namespace slm::kernels::avx2
