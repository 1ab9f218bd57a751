// AVX-512 attention of the query heads that share one K/V head over cached positions
// [kv_begin, kv_end), K/V in f32, f16, bf16 or int8 (the int8 KV cache: a float32 scale per row).
//
// 1. Scores, per query, 16 keys at a time: 16 accumulators, one per key, gather q[c] * K[j, c]
//    over the head's 16-lane chunks c in order (K widened in registers); one transposing
//    reduction (reduce16) then leaves key j's dot product in lane j, each key's 16 lanes summed in
//    the same tree, so there is no horizontal sum per key. s_j = scale * dot (times the row's
//    scale for int8).
// 2. p_j = e^(s_j - max) per query, and their sum.
// 3. out = (sum_j w_j V[j]) / sum (one division at the end), w_j = p_j, or p_j * v_scale[j] for
//    int8 rows: per pass over V, up to 4 queries at once (each V row widened once for all of them)
//    and 4 output vectors (64 dims), or 8 for a single query.
// A query's arithmetic does not depend on the others in the call, so batching changes no bit.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx512 {

namespace {

constexpr int kKeys = 16;       // keys per block

template <DType D>
constexpr int64_t elem_size() {
  return D == DType::F32 ? 4 : D == DType::I8 ? 1 : 2;
}

// Key k of a block accumulates in slot (k % 4) * 4 + k / 4: reduce16's transposes then leave its
// sum in lane k.
constexpr int slot_of(int k) { return (k % 4) * 4 + k / 4; }

// Lane s of the result = the sum of the 16 lanes of acc[slot_of(s)]: lanes l and l + 8 first, then
// quarters, then pairs; the same tree for every key.
__attribute__((always_inline)) inline __m512 reduce16(const __m512* acc) {
  __m512 h[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    const __m512 x = acc[2 * i], y = acc[2 * i + 1];
    h[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  __m512 g[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    const __m512 u = h[2 * i], v = h[2 * i + 1];
    g[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u, v, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u, v, _MM_SHUFFLE(3, 1, 3, 1)));
  }
  __m512 f[2];
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {
    f[i] = _mm512_add_ps(_mm512_unpacklo_ps(g[2 * i], g[2 * i + 1]), _mm512_unpackhi_ps(g[2 * i], g[2 * i + 1]));
  }
  return _mm512_add_ps(_mm512_shuffle_ps(f[0], f[1], _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm512_shuffle_ps(f[0], f[1], _MM_SHUFFLE(3, 2, 3, 2)));
}

// The 16 dot products of one query with cache rows [j0, j0 + 16) (stored type D, row stride in
// elements); rows at or past nk read nothing and give 0.
template <DType D>
__attribute__((always_inline)) inline __m512 block_dots(const float* q, const AttentionArgs& a, int64_t j0, int nk) {
  constexpr int64_t es = elem_size<D>();
  const int64_t hd = a.head_dim, n_full = hd / kLanes, row_bytes = a.kv_stride * es;
  const auto* base = static_cast<const unsigned char*>(a.k) + j0 * row_bytes;
  const __mmask16 tail = first_lanes(hd % kLanes);
  __m512 acc[kKeys];
#pragma GCC unroll 16
  for (int s = 0; s < kKeys; ++s) acc[s] = _mm512_setzero_ps();
  if (nk == kKeys) {
    for (int64_t c = 0; c < n_full; ++c) {
      const __m512 qv = _mm512_loadu_ps(q + c * kLanes);
#pragma GCC unroll 16
      for (int k = 0; k < kKeys; ++k) {
        acc[slot_of(k)] = _mm512_fmadd_ps(qv, load_widen<D>(base + k * row_bytes + c * kLanes * es), acc[slot_of(k)]);
      }
    }
  } else {
    for (int64_t c = 0; c < n_full; ++c) {
      const __m512 qv = _mm512_loadu_ps(q + c * kLanes);
#pragma GCC unroll 16
      for (int k = 0; k < kKeys; ++k) {
        const __mmask16 m = k < nk ? __mmask16(0xFFFF) : __mmask16(0);
        acc[slot_of(k)] = _mm512_fmadd_ps(qv, load_widen<D>(base + k * row_bytes + c * kLanes * es, m), acc[slot_of(k)]);
      }
    }
  }
  if (tail) {
    const __m512 qv = _mm512_maskz_loadu_ps(tail, q + n_full * kLanes);
#pragma GCC unroll 16
    for (int k = 0; k < kKeys; ++k) {
      const __mmask16 m = k < nk ? tail : __mmask16(0);
      acc[slot_of(k)] = _mm512_fmadd_ps(qv, load_widen<D>(base + k * row_bytes + n_full * kLanes * es, m), acc[slot_of(k)]);
    }
  }
  return reduce16(acc);
}

// The weights of V rows j .. j + 15 (those in m) in the output sum, from their softmax numerators
// p: p itself, times each row's scale for the int8 cache (the sum that divides the output is the
// p alone).
template <DType D>
__m512 v_weights(const AttentionArgs& a, int64_t j, __m512 p, __mmask16 m) {
  if constexpr (D == DType::I8) return _mm512_mul_ps(p, _mm512_maskz_loadu_ps(m, a.v_scale + a.kv_begin + j));
  return p;
}

// Pass 1 and the softmax: query r's weights w_j into scores + r * stride, and its sum of p_j.
template <DType D>
void softmax_weights(const AttentionArgs& a, float* scores, int64_t stride, float* sums) {
  const int64_t n = a.kv_end - a.kv_begin;
  for (int64_t j0 = 0; j0 < n; j0 += kKeys) {
    const int nk = static_cast<int>(std::min<int64_t>(kKeys, n - j0));
    const __mmask16 m = first_lanes(nk);
    __m512 scale = _mm512_set1_ps(a.scale);
    if constexpr (D == DType::I8) scale = _mm512_mul_ps(scale, _mm512_maskz_loadu_ps(m, a.k_scale + a.kv_begin + j0));
    for (int64_t r = 0; r < a.n_queries; ++r) {
      const __m512 dots = block_dots<D>(a.q + r * a.q_stride, a, a.kv_begin + j0, nk);
      _mm512_mask_storeu_ps(scores + r * stride + j0, m, _mm512_mul_ps(scale, dots));
    }
  }
  for (int64_t r = 0; r < a.n_queries; ++r) {
    float* s = scores + r * stride;
    if (a.softcap > 0.f) {  // Gemma 2's soft-capping: rare, so scalar
      for (int64_t j = 0; j < n; ++j) s[j] = a.softcap * std::tanh(s[j] / a.softcap);
    }
    if (a.alibi_slope != 0.f) {  // ALiBi: one multiply-add per key, scalar
      for (int64_t j = 0; j < n; ++j) s[j] += a.alibi_slope * static_cast<float>(j - (n - 1));
    }
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += kLanes) {
      const __mmask16 m = first_lanes(n - j < kLanes ? n - j : kLanes);
      mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, s + j));
    }
    const __m512 vmx = _mm512_set1_ps(hmax(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += kLanes) {
      const __mmask16 m = first_lanes(n - j < kLanes ? n - j : kLanes);
      const __m512 p = _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), vmx)));
      _mm512_mask_storeu_ps(s + j, m, v_weights<D>(a, j, p, m));
      sum = _mm512_add_ps(sum, p);
    }
    sums[r] = hsum(sum);
  }
}

// Output vectors [c0, c0 + NV) (the last masked by last) of RB queries: acc_r = sum_j w_r[j] V[j]
// over all n keys in order (an fma chain from 0, per lane), each V row widened once for the RB
// queries, then divided by the query's sum and stored.
template <DType D, int NV, int RB>
void pv_pass(const AttentionArgs& a, int64_t r0, const float* weights, int64_t stride, const float* sums, int64_t c0,
             __mmask16 last) {
  constexpr int64_t es = elem_size<D>();
  const int64_t n = a.kv_end - a.kv_begin, row_bytes = a.kv_stride * es;
  const auto* v = static_cast<const unsigned char*>(a.v) + a.kv_begin * row_bytes + c0 * kLanes * es;
  __m512 acc[RB][NV];
#pragma GCC unroll 8
  for (int r = 0; r < RB; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  const float* w = weights + r0 * stride;
  for (int64_t j = 0; j < n; ++j) {
    const unsigned char* row = v + j * row_bytes;
    __m512 p[RB];  // RB broadcasts and one V vector at a time live, besides the accumulators
#pragma GCC unroll 4
    for (int r = 0; r < RB; ++r) p[r] = _mm512_set1_ps(w[r * stride + j]);
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) {
      const __m512 x = c + 1 < NV ? load_widen<D>(row + c * kLanes * es) : load_widen<D>(row + c * kLanes * es, last);
#pragma GCC unroll 4
      for (int r = 0; r < RB; ++r) acc[r][c] = _mm512_fmadd_ps(p[r], x, acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < RB; ++r) {
    float* out = a.out + (r0 + r) * a.out_stride + c0 * kLanes;
    const __m512 vs = _mm512_set1_ps(sums[r0 + r]);
#pragma GCC unroll 8
    for (int c = 0; c + 1 < NV; ++c) _mm512_storeu_ps(out + c * kLanes, _mm512_div_ps(acc[r][c], vs));
    _mm512_mask_storeu_ps(out + (NV - 1) * kLanes, last, _mm512_div_ps(acc[r][NV - 1], vs));
  }
}

// The passes over V of RB queries: NV output vectors per pass, NV = 8 for one query and 4 for
// more, so that at least 8 independent FMA chains hide the FMA latency; the last pass narrower.
template <DType D, int RB, int NV>
void pv_group(const AttentionArgs& a, int64_t r0, const float* weights, int64_t stride, const float* sums) {
  const int64_t hd = a.head_dim, n_vec = (hd + kLanes - 1) / kLanes;
  for (int64_t c0 = 0; c0 < n_vec; c0 += NV) {
    const int64_t nv = std::min<int64_t>(NV, n_vec - c0);
    const int64_t d_last = (c0 + nv - 1) * kLanes;  // first dim of the pass's last vector
    const __mmask16 last = first_lanes(hd - d_last < kLanes ? hd - d_last : kLanes);
    switch (nv) {
      case 1: pv_pass<D, 1, RB>(a, r0, weights, stride, sums, c0, last); break;
      case 2: pv_pass<D, 2, RB>(a, r0, weights, stride, sums, c0, last); break;
      case 3: pv_pass<D, 3, RB>(a, r0, weights, stride, sums, c0, last); break;
      case 4: pv_pass<D, 4, RB>(a, r0, weights, stride, sums, c0, last); break;
      case 5: pv_pass<D, 5 <= NV ? 5 : 1, RB>(a, r0, weights, stride, sums, c0, last); break;
      case 6: pv_pass<D, 6 <= NV ? 6 : 1, RB>(a, r0, weights, stride, sums, c0, last); break;
      case 7: pv_pass<D, 7 <= NV ? 7 : 1, RB>(a, r0, weights, stride, sums, c0, last); break;
      default: pv_pass<D, 8 <= NV ? 8 : 1, RB>(a, r0, weights, stride, sums, c0, last); break;
    }
  }
}

template <DType D>
void attention_impl(const AttentionArgs& a) {
  const int64_t n = a.kv_end - a.kv_begin;
  // Scratch (attention_scratch_floats): weights [n_queries][stride], then the sums [n_queries].
  const int64_t stride = (n + kLanes - 1) / kLanes * kLanes;
  float* weights = a.scores;
  float* sums = weights + a.n_queries * stride;
  softmax_weights<D>(a, weights, stride, sums);
  // P x V for groups of up to 4 queries (RB x NV accumulators and NV rows fit the 32 registers).
  int64_t r = 0;
  for (; r + 4 <= a.n_queries; r += 4) pv_group<D, 4, 4>(a, r, weights, stride, sums);
  switch (a.n_queries - r) {
    case 3: pv_group<D, 3, 4>(a, r, weights, stride, sums); break;
    case 2: pv_group<D, 2, 4>(a, r, weights, stride, sums); break;
    case 1: pv_group<D, 1, 8>(a, r, weights, stride, sums); break;
    default: break;
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
