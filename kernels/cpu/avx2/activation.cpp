// AVX2 gated activations: SwiGLU out = silu(gate) * up, GeGLU out = gelu_tanh(gate) * up.
#include <immintrin.h>

#include <cstdint>
#include <initializer_list>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx2 {

namespace {

// sigmoid(z) = 1/(1+e) for z >= 0 and e/(1+e) for z < 0 with e = exp(-|z|) <= 1, which never
// overflows: accurate down to gradual underflow for z << 0.
__m256 sigmoid8(__m256 z) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z);
  const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), abs));
  const __m256 num = _mm256_blendv_ps(e, one, _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GE_OQ));
  return _mm256_div_ps(num, _mm256_add_ps(one, e));
}

__m256 swiglu8(__m256 g, __m256 u) { return _mm256_mul_ps(_mm256_mul_ps(g, sigmoid8(g)), u); }

// gelu_tanh(g) = g * sigmoid(2 sqrt(2/pi) (g + 0.044715 g^3)).
__m256 geglu8(__m256 g, __m256 u) {
  const __m256 g3 = _mm256_mul_ps(_mm256_mul_ps(g, g), g);
  const __m256 z = _mm256_mul_ps(_mm256_set1_ps(1.5957691216057308f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), g3, g));
  return _mm256_mul_ps(_mm256_mul_ps(g, sigmoid8(z)), u);
}

template <__m256 (*F)(__m256, __m256)>
void gated(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) _mm256_storeu_ps(out + i, F(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) store_partial(out + i, F(load_partial(gate + i, n - i), load_partial(up + i, n - i)), n - i);
}

}  // namespace

void swiglu(const float* gate, const float* up, float* out, int64_t n) { gated<swiglu8>(gate, up, out, n); }
void geglu(const float* gate, const float* up, float* out, int64_t n) { gated<geglu8>(gate, up, out, n); }

void gelu_tanh(const float* x, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) _mm256_storeu_ps(out + i, geglu8(_mm256_loadu_ps(x + i), one));
  if (i < n) store_partial(out + i, geglu8(load_partial(x + i, n - i), one), n - i);
}

namespace {

// erfc(z) for z >= 0 by the Chebyshev-fitted form t * exp(-z^2 + P(t)), t = 1 / (1 + z/2), with
// fractional error below 1.2e-7 everywhere (Numerical Recipes' erfcc coefficients). The exact
// GELU x * Phi(x) uses Phi(x) = erfc(|x|/sqrt 2)/2 for x < 0 (relative accuracy in the tail) and
// 1 - erfc(x/sqrt 2)/2 for x >= 0.
__m256 gelu_erf8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
  const __m256 abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 z = _mm256_mul_ps(abs, _mm256_set1_ps(0.70710678118654752f));
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(half, z, one));
  __m256 p = _mm256_set1_ps(0.17087277f);
  for (const float c : {-0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f, -0.18628806f, 0.09678418f, 0.37409196f,
                        1.00002368f, -1.26551223f}) {
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(c));
  }
  const __m256 erfc = _mm256_mul_ps(t, exp_ps(_mm256_fnmadd_ps(z, z, p)));  // erfc(|x|/sqrt 2)
  const __m256 tail = _mm256_mul_ps(half, erfc);                           // Phi(-|x|)
  const __m256 phi = _mm256_blendv_ps(tail, _mm256_sub_ps(one, tail), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
  return _mm256_mul_ps(x, phi);
}

}  // namespace

void gelu_erf(const float* x, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) _mm256_storeu_ps(out + i, gelu_erf8(_mm256_loadu_ps(x + i)));
  if (i < n) store_partial(out + i, gelu_erf8(load_partial(x + i, n - i)), n - i);
}

}  // namespace slm::kernels::avx2
