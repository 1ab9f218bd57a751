// AVX2 attention of one query head over cached positions [kv_begin, kv_end), K/V in f32, f16 or int8
// (the int8 KV cache: a float32 scale per row); several queries run one by one.
//
// 1. scores[j] = scale * dot(q, K[j]), four keys at a time (four independent FMA chains);
// 2. p_j = e^(scores[j] - max), vectorised, and their sum;
// 3. out = (sum_j w_j V[j]) / sum (one division at the end), w_j = p_j, or p_j * v_scale[j] for
//    int8 rows, with the output held in registers: up to 8 vectors (64 dims) per pass over V.
// head_dim % 8 != 0 is handled through zero-padded stack copies (real models use multiples of 8).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx2 {

namespace {

constexpr int kOutVectors = 8;

// What multiplies dot(q, stored row) to give the score: the attention scale, times the row's
// scale for the int8 cache (its rows store K / k_scale).
template <DType D>
float score_scale(const AttentionArgs& a, int64_t row) {
  if constexpr (D == DType::I8) return a.scale * a.k_scale[row];
  return a.scale;
}

template <DType D>
float scores_pass(const AttentionArgs& a) {
  constexpr int64_t es = elem_size<D>();
  const auto* k = static_cast<const unsigned char*>(a.k);
  const int64_t row_bytes = a.kv_stride * es;
  const int64_t n = a.kv_end - a.kv_begin, hd = a.head_dim;
  const int64_t n_full = hd / kLanes, rem = hd % kLanes;
  const __m256 q_tail = load_partial(a.q + n_full * kLanes, rem);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const unsigned char* k0 = k + (a.kv_begin + j) * row_bytes;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t c = 0; c < n_full; ++c) {
      const __m256 qv = _mm256_loadu_ps(a.q + c * kLanes);
      for (int r = 0; r < 4; ++r) {
        acc[r] = _mm256_fmadd_ps(qv, load_widen<D>(k0 + r * row_bytes + c * kLanes * es), acc[r]);
      }
    }
    if (rem) {
      for (int r = 0; r < 4; ++r) {
        acc[r] = _mm256_fmadd_ps(q_tail, load_widen_partial<D>(k0 + r * row_bytes + n_full * kLanes * es, rem), acc[r]);
      }
    }
    for (int r = 0; r < 4; ++r) a.scores[j + r] = score_scale<D>(a, a.kv_begin + j + r) * hsum(acc[r]);
  }
  for (; j < n; ++j) {
    const unsigned char* k0 = k + (a.kv_begin + j) * row_bytes;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t c = 0; c < n_full; ++c) {
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.q + c * kLanes), load_widen<D>(k0 + c * kLanes * es), acc);
    }
    if (rem) acc = _mm256_fmadd_ps(q_tail, load_widen_partial<D>(k0 + n_full * kLanes * es, rem), acc);
    a.scores[j] = score_scale<D>(a, a.kv_begin + j) * hsum(acc);
  }
  if (a.softcap > 0.f) {  // Gemma 2's soft-capping: rare, so scalar
    for (j = 0; j < n; ++j) a.scores[j] = a.softcap * std::tanh(a.scores[j] / a.softcap);
  }
  if (a.alibi_slope != 0.f) {  // ALiBi: one multiply-add per key, scalar
    for (j = 0; j < n; ++j) a.scores[j] += a.alibi_slope * static_cast<float>(j - (n - 1));
  }
  __m256 mx = _mm256_set1_ps(-INFINITY);
  for (j = 0; j + kLanes <= n; j += kLanes) mx = _mm256_max_ps(mx, _mm256_loadu_ps(a.scores + j));
  float m = hmax(mx);
  for (; j < n; ++j) m = a.scores[j] > m ? a.scores[j] : m;
  return m;
}

// out[d0 .. d0 + NV*8), the last vector holding only `last` (1..8) dims,
// = (sum_j p_j V[j, ...]) / sum.
template <DType D, int NV>
void pv_block(const AttentionArgs& a, int64_t d0, int64_t last, float sum) {
  constexpr int64_t es = elem_size<D>();
  const auto* v = static_cast<const unsigned char*>(a.v) + d0 * es;
  const int64_t row_bytes = a.kv_stride * es;
  const int64_t n = a.kv_end - a.kv_begin;
  __m256 acc[NV];
  for (int c = 0; c < NV; ++c) acc[c] = _mm256_setzero_ps();
  if (last == kLanes) {
    for (int64_t j = 0; j < n; ++j) {
      const unsigned char* vr = v + (a.kv_begin + j) * row_bytes;
      const __m256 p = _mm256_set1_ps(a.scores[j]);
      for (int c = 0; c < NV; ++c) acc[c] = _mm256_fmadd_ps(p, load_widen<D>(vr + c * kLanes * es), acc[c]);
    }
  } else {
    for (int64_t j = 0; j < n; ++j) {
      const unsigned char* vr = v + (a.kv_begin + j) * row_bytes;
      const __m256 p = _mm256_set1_ps(a.scores[j]);
      for (int c = 0; c + 1 < NV; ++c) acc[c] = _mm256_fmadd_ps(p, load_widen<D>(vr + c * kLanes * es), acc[c]);
      acc[NV - 1] = _mm256_fmadd_ps(p, load_widen_partial<D>(vr + (NV - 1) * kLanes * es, last), acc[NV - 1]);
    }
  }
  const __m256 vs = _mm256_set1_ps(sum);
  for (int c = 0; c + 1 < NV; ++c) _mm256_storeu_ps(a.out + d0 + c * kLanes, _mm256_div_ps(acc[c], vs));
  store_partial(a.out + d0 + (NV - 1) * kLanes, _mm256_div_ps(acc[NV - 1], vs), last);
}

// The weights of V rows j .. j + count - 1 (count <= 8) in the output sum, from their softmax
// numerators p: p itself, times each row's scale for the int8 cache (the sum that divides the
// output is the p alone).
template <DType D>
__m256 v_weights(const AttentionArgs& a, int64_t j, __m256 p, int64_t count) {
  if constexpr (D == DType::I8) {
    const float* s = a.v_scale + a.kv_begin + j;
    return _mm256_mul_ps(p, count == kLanes ? _mm256_loadu_ps(s) : load_partial(s, count));
  }
  return p;
}

template <DType D>
void attention_impl(const AttentionArgs& a) {
  const int64_t hd = a.head_dim, n = a.kv_end - a.kv_begin;
  const float mx = scores_pass<D>(a);

  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 sum = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const __m256 p = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(a.scores + j), vmx));
    _mm256_storeu_ps(a.scores + j, v_weights<D>(a, j, p, kLanes));
    sum = _mm256_add_ps(sum, p);
  }
  if (j < n) {
    // Lanes past n load 0 and give e^(0 - max); they are zeroed before summing.
    const int64_t r = n - j;
    const __m256 keep = _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
    const __m256 p = _mm256_and_ps(keep, exp_ps(_mm256_sub_ps(load_partial(a.scores + j, r), vmx)));
    store_partial(a.scores + j, v_weights<D>(a, j, p, r), r);
    sum = _mm256_add_ps(sum, p);
  }
  const float total = hsum(sum);

  const int64_t n_vec = (hd + kLanes - 1) / kLanes;
  for (int64_t c0 = 0; c0 < n_vec; c0 += kOutVectors) {
    const int64_t nv = std::min<int64_t>(kOutVectors, n_vec - c0);
    const int64_t last = std::min<int64_t>(kLanes, hd - (c0 + nv - 1) * kLanes);
    const int64_t d0 = c0 * kLanes;
    switch (nv) {
      case 1: pv_block<D, 1>(a, d0, last, total); break;
      case 2: pv_block<D, 2>(a, d0, last, total); break;
      case 3: pv_block<D, 3>(a, d0, last, total); break;
      case 4: pv_block<D, 4>(a, d0, last, total); break;
      case 5: pv_block<D, 5>(a, d0, last, total); break;
      case 6: pv_block<D, 6>(a, d0, last, total); break;
      case 7: pv_block<D, 7>(a, d0, last, total); break;
      default: pv_block<D, 8>(a, d0, last, total); break;
    }
  }
}

void attention_one(const AttentionArgs& a) {
  switch (a.kv_dtype) {
    case DType::F32: return attention_impl<DType::F32>(a);
    case DType::F16: return attention_impl<DType::F16>(a);
    case DType::BF16: return attention_impl<DType::BF16>(a);
    case DType::I8: return attention_impl<DType::I8>(a);
  }
}

}  // namespace

void attention(const AttentionArgs& a) { attention_each_query(a, &attention_one); }

}  // namespace slm::kernels::avx2
