// AVX-512 gated activations: SwiGLU out = silu(gate) * up, GeGLU out = gelu_tanh(gate) * up.
#include <immintrin.h>

#include <cstdint>
#include <initializer_list>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx512 {

namespace {

// sigmoid(z) = 1/(1+e) for z >= 0 and e/(1+e) for z < 0 with e = exp(-|z|) <= 1, which never
// overflows: accurate down to gradual underflow for z << 0.
__m512 sigmoid16(__m512 z) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(z)));
  const __m512 num = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GE_OQ), e, one);
  return _mm512_div_ps(num, _mm512_add_ps(one, e));
}

__m512 swiglu16(__m512 g, __m512 u) { return _mm512_mul_ps(_mm512_mul_ps(g, sigmoid16(g)), u); }

// gelu_tanh(g) = g * sigmoid(2 sqrt(2/pi) (g + 0.044715 g^3)).
__m512 geglu16(__m512 g, __m512 u) {
  const __m512 g3 = _mm512_mul_ps(_mm512_mul_ps(g, g), g);
  const __m512 z = _mm512_mul_ps(_mm512_set1_ps(1.5957691216057308f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), g3, g));
  return _mm512_mul_ps(_mm512_mul_ps(g, sigmoid16(z)), u);
}

template <__m512 (*F)(__m512, __m512)>
void gated(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = first_lanes(n - i < kLanes ? n - i : kLanes);
    // out may alias gate or up: both loads come before the store.
    _mm512_mask_storeu_ps(out + i, m, F(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

}  // namespace

void swiglu(const float* gate, const float* up, float* out, int64_t n) { gated<swiglu16>(gate, up, out, n); }
void geglu(const float* gate, const float* up, float* out, int64_t n) { gated<geglu16>(gate, up, out, n); }

void gelu_tanh(const float* x, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = first_lanes(n - i < kLanes ? n - i : kLanes);
    _mm512_mask_storeu_ps(out + i, m, geglu16(_mm512_maskz_loadu_ps(m, x + i), one));
  }
}

namespace {

// erfc(z) for z >= 0 by the Chebyshev-fitted form t * exp(-z^2 + P(t)), t = 1 / (1 + z/2), with
// fractional error below 1.2e-7 everywhere (Numerical Recipes' erfcc coefficients). The exact
// GELU x * Phi(x) uses Phi(x) = erfc(|x|/sqrt 2)/2 for x < 0 (relative accuracy in the tail) and
// 1 - erfc(x/sqrt 2)/2 for x >= 0.
__m512 gelu_erf16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
  const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(half, z, one));
  __m512 p = _mm512_set1_ps(0.17087277f);
  for (const float c : {-0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f, -0.18628806f, 0.09678418f, 0.37409196f,
                        1.00002368f, -1.26551223f}) {
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c));
  }
  const __m512 erfc = _mm512_mul_ps(t, exp_ps(_mm512_fnmadd_ps(z, z, p)));  // erfc(|x|/sqrt 2)
  const __m512 tail = _mm512_mul_ps(half, erfc);                           // Phi(-|x|)
  const __m512 phi = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), tail,
                                          _mm512_sub_ps(one, tail));
  return _mm512_mul_ps(x, phi);
}

}  // namespace

void gelu_erf(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = first_lanes(n - i < kLanes ? n - i : kLanes);
    _mm512_mask_storeu_ps(out + i, m, gelu_erf16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace slm::kernels::avx512
