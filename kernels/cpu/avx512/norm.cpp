// AVX-512 RMSNorm (y = x / sqrt(mean(x^2) + eps) * w) and LayerNorm, sums in float32.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx512 {

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + kLanes);
    const __m512 c = _mm512_loadu_ps(x + i + 2 * kLanes), d = _mm512_loadu_ps(x + i + 3 * kLanes);
    s0 = _mm512_fmadd_ps(a, a, s0);
    s1 = _mm512_fmadd_ps(b, b, s1);
    s2 = _mm512_fmadd_ps(c, c, s2);
    s3 = _mm512_fmadd_ps(d, d, s3);
  }
  for (; i < n; i += kLanes) {
    const __mmask16 m = first_lanes(n - i < kLanes ? n - i : kLanes);
    const __m512 a = _mm512_maskz_loadu_ps(m, x + i);
    s0 = _mm512_fmadd_ps(a, a, s0);
  }
  const float ss = hsum(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(ss / static_cast<float>(n) + eps));
  // Elementwise from here on, so y may alias x.
  for (i = 0; i < n; i += kLanes) {
    const __mmask16 m = first_lanes(n - i < kLanes ? n - i : kLanes);
    const __m512 a = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 b = _mm512_maskz_loadu_ps(m, w + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_mul_ps(a, inv), b));
  }
}

namespace {

// Sum over x[0..n) of f(x[i]) with four zmm accumulators and a masked tail.
template <typename F>
float sum_of(const float* x, int64_t n, F f) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    s0 = _mm512_add_ps(s0, f(_mm512_loadu_ps(x + i)));
    s1 = _mm512_add_ps(s1, f(_mm512_loadu_ps(x + i + kLanes)));
    s2 = _mm512_add_ps(s2, f(_mm512_loadu_ps(x + i + 2 * kLanes)));
    s3 = _mm512_add_ps(s3, f(_mm512_loadu_ps(x + i + 3 * kLanes)));
  }
  for (; i < n; i += kLanes) {
    const __mmask16 m = first_lanes(n - i < kLanes ? n - i : kLanes);
    s0 = _mm512_add_ps(s0, _mm512_maskz_mov_ps(m, f(_mm512_maskz_loadu_ps(m, x + i))));
  }
  return hsum(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

}  // namespace

void layernorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  const float mean = sum_of(x, n, [](__m512 v) { return v; }) / static_cast<float>(n);
  const __m512 mv = _mm512_set1_ps(mean);
  const float var = sum_of(x, n, [mv](__m512 v) {
    const __m512 d = _mm512_sub_ps(v, mv);
    return _mm512_mul_ps(d, d);
  }) / static_cast<float>(n);
  const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(var + eps));
  for (int64_t i = 0; i < n; i += kLanes) {  // elementwise: y may alias x
    const __mmask16 m = first_lanes(n - i < kLanes ? n - i : kLanes);
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mv);
    const __m512 v = _mm512_fmadd_ps(_mm512_mul_ps(d, inv), _mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, b + i));
    _mm512_mask_storeu_ps(y + i, m, v);
  }
}

}  // namespace slm::kernels::avx512
