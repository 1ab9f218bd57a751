// AVX-512 RMSNorm: y = x / sqrt(mean(x^2) + eps) * w, the sum of squares in float32.
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

}  // namespace slm::kernels::avx512
