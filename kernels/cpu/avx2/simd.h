// AVX2/FMA/F16C helpers shared by the files of kernels/cpu/avx2/ only (compiled with the AVX2
// flags; never include this from another folder).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "slm/kernels/types.h"

namespace slm::kernels::avx2 {

constexpr int64_t kLanes = 8;

// Sum of the 8 lanes in a fixed tree: halves, then quarters, then pairs. Every caller that needs
// bitwise reproducibility (matmul) reduces through this one function.
inline float hsum(__m256 v) {
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

inline float hmax(__m256 v) {
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  b = _mm_max_ps(b, _mm_movehl_ps(b, b));
  b = _mm_max_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

template <DType D>
constexpr int64_t elem_size() {
  return D == DType::F32 ? 4 : D == DType::I8 ? 1 : 2;
}

// 8 stored values of type D at p (no alignment) widened to float32 (int8: the integer values).
template <DType D>
inline __m256 load_widen(const void* p) {
  if constexpr (D == DType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(p));
  } else if constexpr (D == DType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p)));
  } else if constexpr (D == DType::I8) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(static_cast<const __m128i*>(p))));
  } else {
    const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(static_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
  }
}

// The first n (0..8) values at p, the other lanes zero; reads nothing past p + n elements. The
// values go through a zeroed stack buffer, then the same widening as load_widen.
template <DType D>
inline __m256 load_widen_partial(const void* p, int64_t n) {
  alignas(32) unsigned char buf[32] = {};
  if (n > 0) std::memcpy(buf, p, static_cast<size_t>(n * elem_size<D>()));
  return load_widen<D>(buf);
}

inline __m256 load_partial(const float* p, int64_t n) { return load_widen_partial<DType::F32>(p, n); }

// Stores the first n (0..8) lanes of v at p.
inline void store_partial(float* p, __m256 v, int64_t n) {
  alignas(32) float buf[8];
  _mm256_store_ps(buf, v);
  if (n > 0) std::memcpy(p, buf, static_cast<size_t>(n) * sizeof(float));
}

// e^x for each lane, relative error about 1 ulp: the same algorithm as the AVX-512 version
// (Cody-Waite reduction x = n*ln2 + r, Taylor polynomial of degree 7 for e^r, 2^n applied in two
// halves through the exponent field so subnormal results and overflow to inf are right; inputs
// clamped to [-104, 89]; NaN stays NaN).
inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);  // NaN in x: min/max return the second operand
  x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860682030941723e-6f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

}  // namespace slm::kernels::avx2
