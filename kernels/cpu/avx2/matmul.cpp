// AVX2/FMA matmul: y[t, o] (+)= dot(x[t, :], W[o, :]) + bias[o], W in f32, f16 (vcvtph2ps) or bf16
// (zero-extend and shift), widened in registers.
//
// Bitwise reproducibility: every output y[t, o] has exactly one ymm accumulator, which receives
// fma(w[k*8 .. k*8+7], x[...], acc) for k = 0, 1, ... in order, then one step for the
// in_features % 8 tail (both operands copied into zeroed stack buffers, so the padding adds 0),
// then hsum() (fixed tree), then + bias, then + y. tile<D, R, T> is the only code that computes
// outputs; every tile shape runs the same per-output sequence, so the value does not depend on
// n_tokens, on [row_begin, row_end), or on which tile covered the output.
//
// Regimes (16 ymm registers):
// - n_tokens == 1 (decode GEMV): 8 rows at a time share each x vector (8 accumulators).
// - n_tokens > 1 (prefill GEMM): 3 rows x 4 tokens = 12 accumulators + 3 weights + 1 x vector.
//   Tokens are processed in blocks sized so that the block of x stays in L2 while W streams past.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx2 {

namespace {

constexpr int kGemmRows = 3;
constexpr int kGemmTokens = 4;
constexpr int kGemvRows = 8;

struct Geometry {
  const float* x;
  int64_t x_stride;
  const unsigned char* w;
  int64_t w_row_bytes;
  float* y;
  int64_t y_stride;
  const float* bias;
  bool accumulate;
  int64_t n_full;  // in_features / 8
  int64_t rem;     // in_features % 8
  int64_t pf_off;  // GEMV: bytes ahead of each row's current vector to prefetch
};

template <DType D, int R, int T>
void tile(const Geometry& g, int64_t o, int64_t t, bool prefetch_next_rows = false) {
  constexpr int64_t vb = kLanes * elem_size<D>();  // bytes of W per vector
  __m256 acc[R][T];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 32
    for (int u = 0; u < T; ++u) acc[r][u] = _mm256_setzero_ps();
  }
  const unsigned char* wr = g.w + o * g.w_row_bytes;
  const float* xt = g.x + t * g.x_stride;
  const int64_t ws = g.w_row_bytes;
  const int64_t xs = g.x_stride;

  for (int64_t k = 0; k < g.n_full; ++k) {
    if constexpr (T == 1 && R == kGemvRows) {
      // GEMV: prefetch ahead of the weight stream (see gemv_prefetch_offset).
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(wr + r * ws + k * vb + g.pf_off), _MM_HINT_NTA);
    }
    if constexpr (T > 1) {
      // GEMM: the first token tile of a row tile prefetches the next row tile's weights, which the
      // later token tiles then find in cache.
      if (prefetch_next_rows) {
#pragma GCC unroll 32
        for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(wr + (R + r) * ws + k * vb), _MM_HINT_T0);
      }
    }
    __m256 wv[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) wv[r] = load_widen<D>(wr + r * ws + k * vb);
#pragma GCC unroll 32
    for (int u = 0; u < T; ++u) {
      const __m256 xv = _mm256_loadu_ps(xt + u * xs + k * kLanes);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) acc[r][u] = _mm256_fmadd_ps(wv[r], xv, acc[r][u]);
    }
  }
  if (g.rem) {
    const int64_t k = g.n_full;
    __m256 wv[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) wv[r] = load_widen_partial<D>(wr + r * ws + k * vb, g.rem);
#pragma GCC unroll 32
    for (int u = 0; u < T; ++u) {
      const __m256 xv = load_partial(xt + u * xs + k * kLanes, g.rem);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) acc[r][u] = _mm256_fmadd_ps(wv[r], xv, acc[r][u]);
    }
  }
#pragma GCC unroll 32
  for (int u = 0; u < T; ++u) {
    float* yt = g.y + (t + u) * g.y_stride + o;
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      float s = hsum(acc[r][u]);
      if (g.bias) s += g.bias[o + r];
      yt[r] = g.accumulate ? yt[r] + s : s;
    }
  }
}

// Rows [o, o + R) against tokens [t0, t1) in tiles of kGemmTokens, then one narrower tile.
template <DType D, int R>
void rows_by_tokens(const Geometry& g, int64_t o, int64_t t0, int64_t t1) {
  int64_t t = t0;
  for (; t + kGemmTokens <= t1; t += kGemmTokens) tile<D, R, kGemmTokens>(g, o, t, t == t0);
  switch (t1 - t) {
    case 1: tile<D, R, 1>(g, o, t); break;
    case 2: tile<D, R, 2>(g, o, t); break;
    case 3: tile<D, R, 3>(g, o, t); break;
    default: break;
  }
  static_assert(kGemmTokens == 4, "the switch above covers remainders 1..3");
}

// GEMV software prefetch, with the non-temporal hint: each weight is read once per token, so
// it should not push x, the KV cache and activations out of the caches (bf16 decode of a
// 135M model, 1 thread: ~110 -> ~130 tok/s against the T0 hint). Short rows give the hardware prefetchers little to lock onto, so while
// a tile of rows streams, each row prefetches the same offset in the row kGemvRows further down
// (the next tile), as long as two tiles fit in L1 (48 KiB); tiles of longer rows prefetch 1 KiB
// ahead in their own row.
int64_t gemv_prefetch_offset(int64_t w_row_bytes) {
  const int64_t tile_bytes = kGemvRows * w_row_bytes;
  return tile_bytes <= 24 * 1024 ? tile_bytes : 1024;
}

// Tokens per block of the GEMM: as many as keep x[block, in] within ~512 KiB of L2, a multiple of
// the tile width, at least one tile.
int64_t token_block(int64_t in_features) {
  const int64_t bytes_per_token = std::max<int64_t>(in_features, 1) * 4;
  const int64_t fit = (int64_t{512} * 1024 / bytes_per_token) / kGemmTokens * kGemmTokens;
  return std::max<int64_t>(fit, kGemmTokens);
}

template <DType D>
void matmul_impl(const MatmulArgs& a) {
  Geometry g;
  g.x = a.x;
  g.x_stride = a.x_stride;
  g.w = static_cast<const unsigned char*>(a.w);
  g.w_row_bytes = a.w_stride * elem_size<D>();
  g.y = a.y;
  g.y_stride = a.y_stride;
  g.bias = a.bias;
  g.accumulate = a.accumulate;
  g.n_full = a.in_features / kLanes;
  g.rem = a.in_features % kLanes;
  g.pf_off = gemv_prefetch_offset(g.w_row_bytes);

  if (a.n_tokens == 1) {
    int64_t o = a.row_begin;
    for (; o + kGemvRows <= a.row_end; o += kGemvRows) tile<D, kGemvRows, 1>(g, o, 0);
    for (; o < a.row_end; ++o) tile<D, 1, 1>(g, o, 0);
    return;
  }
  const int64_t tb = token_block(a.in_features);
  for (int64_t t0 = 0; t0 < a.n_tokens; t0 += tb) {
    const int64_t t1 = std::min(t0 + tb, a.n_tokens);
    int64_t o = a.row_begin;
    for (; o + kGemmRows <= a.row_end; o += kGemmRows) rows_by_tokens<D, kGemmRows>(g, o, t0, t1);
    for (; o < a.row_end; ++o) rows_by_tokens<D, 1>(g, o, t0, t1);
  }
}

}  // namespace

void matmul(const MatmulArgs& a) {
  switch (a.w_dtype) {
    case DType::F32: return matmul_impl<DType::F32>(a);
    case DType::F16: return matmul_impl<DType::F16>(a);
    case DType::BF16: return matmul_impl<DType::BF16>(a);
  }
}

}  // namespace slm::kernels::avx2
