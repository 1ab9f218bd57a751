// AVX-512 attention of one query head over cached positions [kv_begin, kv_end), K/V in f32, f16 or int8
// (the int8 KV cache: a float32 scale per row).
//
// 1. scores[j] = scale * dot(q, K[j]), four keys at a time (four independent FMA chains);
// 2. p_j = e^(scores[j] - max), vectorised, and their sum;
// 3. out = (sum_j w_j V[j]) / sum (one division at the end), w_j = p_j, or p_j * v_scale[j] for
//    int8 rows, with the output held in registers: up to 8 vectors (128 dims) per pass over V.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx512 {

namespace {

constexpr int kOutVectors = 8;

template <DType D>
constexpr int64_t elem_size() {
  return D == DType::F32 ? 4 : D == DType::I8 ? 1 : 2;
}

// What multiplies dot(q, stored row) to give the score: the attention scale, times the row's
// scale for the int8 cache (its rows store K / k_scale).
template <DType D>
float score_scale(const AttentionArgs& a, int64_t row) {
  if constexpr (D == DType::I8) return a.scale * a.k_scale[row];
  return a.scale;
}

template <DType D>
void scores_pass(const AttentionArgs& a, int64_t n_full, __mmask16 tail, float* mx_out) {
  constexpr int64_t es = elem_size<D>();
  const auto* k = static_cast<const unsigned char*>(a.k);
  const int64_t row_bytes = a.kv_stride * es;
  const int64_t n = a.kv_end - a.kv_begin;
  __m512 mx = _mm512_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const unsigned char* k0 = k + (a.kv_begin + j) * row_bytes;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t c = 0; c < n_full; ++c) {
      const __m512 qv = _mm512_loadu_ps(a.q + c * kLanes);
      for (int r = 0; r < 4; ++r) {
        acc[r] = _mm512_fmadd_ps(qv, load_widen<D>(k0 + r * row_bytes + c * kLanes * es), acc[r]);
      }
    }
    if (tail) {
      const __m512 qv = _mm512_maskz_loadu_ps(tail, a.q + n_full * kLanes);
      for (int r = 0; r < 4; ++r) {
        acc[r] = _mm512_fmadd_ps(qv, load_widen<D>(k0 + r * row_bytes + n_full * kLanes * es, tail), acc[r]);
      }
    }
    for (int r = 0; r < 4; ++r) a.scores[j + r] = score_scale<D>(a, a.kv_begin + j + r) * hsum(acc[r]);
  }
  for (; j < n; ++j) {
    const unsigned char* k0 = k + (a.kv_begin + j) * row_bytes;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t c = 0; c < n_full; ++c) {
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(a.q + c * kLanes), load_widen<D>(k0 + c * kLanes * es), acc);
    }
    if (tail) {
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a.q + n_full * kLanes),
                            load_widen<D>(k0 + n_full * kLanes * es, tail), acc);
    }
    a.scores[j] = score_scale<D>(a, a.kv_begin + j) * hsum(acc);
  }
  if (a.softcap > 0.f) {  // Gemma 2's soft-capping: rare, so scalar
    for (j = 0; j < n; ++j) a.scores[j] = a.softcap * std::tanh(a.scores[j] / a.softcap);
  }
  if (a.alibi_slope != 0.f) {  // ALiBi: one multiply-add per key, scalar
    for (j = 0; j < n; ++j) a.scores[j] += a.alibi_slope * static_cast<float>(j - (n - 1));
  }
  for (j = 0; j < n; j += kLanes) {
    const __mmask16 m = first_lanes(n - j < kLanes ? n - j : kLanes);
    mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, a.scores + j));
  }
  *mx_out = hmax(mx);
}

// out[d0 .. d0 + NV*16) (the last vector masked by last) = (sum_j p_j V[j, ...]) / sum.
template <DType D, int NV>
void pv_block(const AttentionArgs& a, int64_t d0, __mmask16 last, float sum) {
  constexpr int64_t es = elem_size<D>();
  const auto* v = static_cast<const unsigned char*>(a.v) + d0 * es;
  const int64_t row_bytes = a.kv_stride * es;
  const int64_t n = a.kv_end - a.kv_begin;
  __m512 acc[NV];
  for (int c = 0; c < NV; ++c) acc[c] = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    const unsigned char* vr = v + (a.kv_begin + j) * row_bytes;
    const __m512 p = _mm512_set1_ps(a.scores[j]);
    for (int c = 0; c + 1 < NV; ++c) acc[c] = _mm512_fmadd_ps(p, load_widen<D>(vr + c * kLanes * es), acc[c]);
    acc[NV - 1] = _mm512_fmadd_ps(p, load_widen<D>(vr + (NV - 1) * kLanes * es, last), acc[NV - 1]);
  }
  const __m512 vs = _mm512_set1_ps(sum);
  for (int c = 0; c + 1 < NV; ++c) _mm512_storeu_ps(a.out + d0 + c * kLanes, _mm512_div_ps(acc[c], vs));
  _mm512_mask_storeu_ps(a.out + d0 + (NV - 1) * kLanes, last, _mm512_div_ps(acc[NV - 1], vs));
}

// The weights of V rows j .. j + 15 (those in m) in the output sum, from their softmax numerators
// p: p itself, times each row's scale for the int8 cache (the sum that divides the output is the
// p alone).
template <DType D>
__m512 v_weights(const AttentionArgs& a, int64_t j, __m512 p, __mmask16 m) {
  if constexpr (D == DType::I8) return _mm512_mul_ps(p, _mm512_maskz_loadu_ps(m, a.v_scale + a.kv_begin + j));
  return p;
}

template <DType D>
void attention_impl(const AttentionArgs& a) {
  const int64_t hd = a.head_dim, n = a.kv_end - a.kv_begin;
  const int64_t n_full = hd / kLanes;
  const __mmask16 tail = first_lanes(hd % kLanes);
  float mx;
  scores_pass<D>(a, n_full, tail, &mx);

  const __m512 vmx = _mm512_set1_ps(mx);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += kLanes) {
    const __mmask16 m = first_lanes(n - j < kLanes ? n - j : kLanes);
    const __m512 p = _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, a.scores + j), vmx)));
    _mm512_mask_storeu_ps(a.scores + j, m, v_weights<D>(a, j, p, m));
    sum = _mm512_add_ps(sum, p);
  }
  const float total = hsum(sum);

  const int64_t n_vec = (hd + kLanes - 1) / kLanes;
  for (int64_t c0 = 0; c0 < n_vec; c0 += kOutVectors) {
    const int64_t nv = std::min<int64_t>(kOutVectors, n_vec - c0);
    const int64_t d_last = (c0 + nv - 1) * kLanes;  // first dim of the block's last vector
    const __mmask16 last = first_lanes(hd - d_last < kLanes ? hd - d_last : kLanes);
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

}  // namespace

void attention(const AttentionArgs& a) {
  switch (a.kv_dtype) {
    case DType::F32: return attention_impl<DType::F32>(a);
    case DType::F16: return attention_impl<DType::F16>(a);
    case DType::BF16: return attention_impl<DType::BF16>(a);
    case DType::I8: return attention_impl<DType::I8>(a);
  }
}

}  // namespace slm::kernels::avx512
