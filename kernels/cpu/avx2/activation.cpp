// AVX2 SwiGLU: out = silu(gate) * up, silu(g) = g * sigmoid(g).
#include <immintrin.h>

#include <cstdint>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx2 {

namespace {

// sigmoid(g) = 1/(1+e) for g >= 0 and e/(1+e) for g < 0 with e = exp(-|g|) <= 1, which never
// overflows: accurate down to silu's gradual underflow for g << 0.
__m256 swiglu8(__m256 g, __m256 u) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), g);
  const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), abs));
  const __m256 num = _mm256_blendv_ps(e, one, _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_GE_OQ));
  const __m256 sig = _mm256_div_ps(num, _mm256_add_ps(one, e));
  return _mm256_mul_ps(_mm256_mul_ps(g, sig), u);
}

}  // namespace

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(out + i, swiglu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  }
  if (i < n) store_partial(out + i, swiglu8(load_partial(gate + i, n - i), load_partial(up + i, n - i)), n - i);
}

}  // namespace slm::kernels::avx2
