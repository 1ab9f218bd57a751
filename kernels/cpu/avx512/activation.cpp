// AVX-512 SwiGLU: out = silu(gate) * up, silu(g) = g * sigmoid(g).
#include <immintrin.h>

#include <cstdint>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx512 {

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = first_lanes(n - i < kLanes ? n - i : kLanes);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 u = _mm512_maskz_loadu_ps(m, up + i);
    // sigmoid(g) = 1/(1+e) for g >= 0 and e/(1+e) for g < 0 with e = exp(-|g|) <= 1, which never
    // overflows: accurate down to silu's gradual underflow for g << 0.
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(g)));
    const __m512 num = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_GE_OQ), e, one);
    const __m512 sig = _mm512_div_ps(num, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(g, sig), u));  // out may alias: loads came first
  }
}

}  // namespace slm::kernels::avx512
