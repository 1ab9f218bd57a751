// AVX2 RMSNorm: y = x / sqrt(mean(x^2) + eps) * w, the sum of squares in float32.
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

}  // namespace slm::kernels::avx2
