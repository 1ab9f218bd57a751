// AVX2 rotary position embedding, in place.
#include <immintrin.h>

#include <cstdint>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx2 {

namespace {

__m256 rotate_a(__m256 a, __m256 b, __m256 c, __m256 s) { return _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)); }
__m256 rotate_b(__m256 a, __m256 b, __m256 c, __m256 s) { return _mm256_fmadd_ps(b, c, _mm256_mul_ps(a, s)); }

// Neox: dimension j pairs with j + half.
void rope_neox(float* xh, int64_t half, const float* cos, const float* sin) {
  int64_t j = 0;
  for (; j + kLanes <= half; j += kLanes) {
    const __m256 a = _mm256_loadu_ps(xh + j), b = _mm256_loadu_ps(xh + half + j);
    const __m256 c = _mm256_loadu_ps(cos + j), s = _mm256_loadu_ps(sin + j);
    _mm256_storeu_ps(xh + j, rotate_a(a, b, c, s));
    _mm256_storeu_ps(xh + half + j, rotate_b(a, b, c, s));
  }
  if (j < half) {
    const int64_t n = half - j;
    const __m256 a = load_partial(xh + j, n), b = load_partial(xh + half + j, n);
    const __m256 c = load_partial(cos + j, n), s = load_partial(sin + j, n);
    store_partial(xh + j, rotate_a(a, b, c, s), n);
    store_partial(xh + half + j, rotate_b(a, b, c, s), n);
  }
}

// Interleaved: dimension 2j pairs with 2j + 1. 4 pairs per vector; cos/sin are duplicated onto
// both lanes of a pair, and fmaddsub gives x*c - swap(x)*s on even lanes, x*c + swap(x)*s on odd.
__m256 rotate_pairs(__m256 v, __m128 c4, __m128 s4) {
  const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  const __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(c4), dup);
  const __m256 s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(s4), dup);
  const __m256 swapped = _mm256_permute_ps(v, 0xB1);  // [b0, a0, b1, a1, ...]
  return _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(swapped, s));
}

void rope_interleaved(float* xh, int64_t half, const float* cos, const float* sin) {
  int64_t j = 0;
  for (; j + kLanes / 2 <= half; j += kLanes / 2) {
    const __m256 v = _mm256_loadu_ps(xh + 2 * j);
    _mm256_storeu_ps(xh + 2 * j, rotate_pairs(v, _mm_loadu_ps(cos + j), _mm_loadu_ps(sin + j)));
  }
  if (j < half) {
    const int64_t pairs = half - j;
    const __m256 v = load_partial(xh + 2 * j, 2 * pairs);
    const __m128 c = _mm256_castps256_ps128(load_partial(cos + j, pairs));
    const __m128 s = _mm256_castps256_ps128(load_partial(sin + j, pairs));
    store_partial(xh + 2 * j, rotate_pairs(v, c, s), 2 * pairs);
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

}  // namespace slm::kernels::avx2
