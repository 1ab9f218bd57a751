// AVX2 RMSNorm (y = x / sqrt(mean(x^2) + eps) * w) and LayerNorm, sums in float32.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx2 {

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + kLanes);
    const __m256 c = _mm256_loadu_ps(x + i + 2 * kLanes), d = _mm256_loadu_ps(x + i + 3 * kLanes);
    s0 = _mm256_fmadd_ps(a, a, s0);
    s1 = _mm256_fmadd_ps(b, b, s1);
    s2 = _mm256_fmadd_ps(c, c, s2);
    s3 = _mm256_fmadd_ps(d, d, s3);
  }
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 a = _mm256_loadu_ps(x + i);
    s0 = _mm256_fmadd_ps(a, a, s0);
  }
  if (i < n) {
    const __m256 a = load_partial(x + i, n - i);
    s1 = _mm256_fmadd_ps(a, a, s1);
  }
  const float ss = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  const __m256 inv = _mm256_set1_ps(1.0f / std::sqrt(ss / static_cast<float>(n) + eps));
  // Elementwise from here on, so y may alias x.
  for (i = 0; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), inv), _mm256_loadu_ps(w + i)));
  }
  if (i < n) {
    const __m256 v = _mm256_mul_ps(_mm256_mul_ps(load_partial(x + i, n - i), inv), load_partial(w + i, n - i));
    store_partial(y + i, v, n - i);
  }
}

namespace {

// Sum over x[0..n) of f(x[i]) with four ymm accumulators; the tail goes through a zero-padded
// copy, and f(0) must be 0.
template <typename F>
float sum_of(const float* x, int64_t n, F f) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    s0 = _mm256_add_ps(s0, f(_mm256_loadu_ps(x + i)));
    s1 = _mm256_add_ps(s1, f(_mm256_loadu_ps(x + i + kLanes)));
    s2 = _mm256_add_ps(s2, f(_mm256_loadu_ps(x + i + 2 * kLanes)));
    s3 = _mm256_add_ps(s3, f(_mm256_loadu_ps(x + i + 3 * kLanes)));
  }
  for (; i + kLanes <= n; i += kLanes) s0 = _mm256_add_ps(s0, f(_mm256_loadu_ps(x + i)));
  float tail = 0.f;
  for (; i < n; ++i) {  // scalar tail, so that padding needs no f(0) == 0 assumption
    alignas(32) float one[8];
    _mm256_store_ps(one, f(_mm256_set1_ps(x[i])));
    tail += one[0];
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) + tail;
}

}  // namespace

void layernorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  const float mean = sum_of(x, n, [](__m256 v) { return v; }) / static_cast<float>(n);
  const __m256 mv = _mm256_set1_ps(mean);
  const float var = sum_of(x, n, [mv](__m256 v) {
    const __m256 d = _mm256_sub_ps(v, mv);
    return _mm256_mul_ps(d, d);
  }) / static_cast<float>(n);
  const float inv = 1.0f / std::sqrt(var + eps);
  const __m256 iv = _mm256_set1_ps(inv);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {  // elementwise: y may alias x
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_mul_ps(d, iv), _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
  }
  for (; i < n; ++i) y[i] = std::fma((x[i] - mean) * inv, w[i], b[i]);
}

}  // namespace slm::kernels::avx2
