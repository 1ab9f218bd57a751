// AVX-512 rotary position embedding, in place.
#include <immintrin.h>

#include <cstdint>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx512 {

namespace {

// Neox: dimension j pairs with j + half.
void rope_neox(float* xh, int64_t half, const float* cos, const float* sin) {
  for (int64_t j = 0; j < half; j += kLanes) {
    const __mmask16 m = first_lanes(half - j < kLanes ? half - j : kLanes);
    const __m512 a = _mm512_maskz_loadu_ps(m, xh + j);
    const __m512 b = _mm512_maskz_loadu_ps(m, xh + half + j);
    const __m512 c = _mm512_maskz_loadu_ps(m, cos + j);
    const __m512 s = _mm512_maskz_loadu_ps(m, sin + j);
    _mm512_mask_storeu_ps(xh + j, m, _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));         // a c - b s
    _mm512_mask_storeu_ps(xh + half + j, m, _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s)));  // b c + a s
  }
}

// Interleaved: dimension 2j pairs with 2j + 1. 8 pairs per vector; cos/sin are duplicated onto
// both lanes of a pair, and fmaddsub gives x*c - swap(x)*s on even lanes, x*c + swap(x)*s on odd.
void rope_interleaved(float* xh, int64_t half, const float* cos, const float* sin) {
  const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  for (int64_t j = 0; j < half; j += kLanes / 2) {
    const int64_t pairs = half - j < kLanes / 2 ? half - j : kLanes / 2;
    const __mmask16 m = first_lanes(2 * pairs);
    const __mmask8 mh = static_cast<__mmask8>((1u << pairs) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, xh + 2 * j);
    const __m512 c = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(mh, cos + j)));
    const __m512 s = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(mh, sin + j)));
    const __m512 swapped = _mm512_permute_ps(v, 0xB1);  // [b0, a0, b1, a1, ...]
    _mm512_mask_storeu_ps(xh + 2 * j, m, _mm512_fmaddsub_ps(v, c, _mm512_mul_ps(swapped, s)));
  }
}

}  // namespace

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rotary_dim, const float* cos,
          const float* sin, RopeStyle style) {
  const int64_t half = rotary_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    if (style == RopeStyle::Neox) {
      rope_neox(x + h * head_dim, half, cos, sin);
    } else {
      rope_interleaved(x + h * head_dim, half, cos, sin);
    }
  }
}

}  // namespace slm::kernels::avx512
