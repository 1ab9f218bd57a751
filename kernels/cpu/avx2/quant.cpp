// AVX2 quantized kernels: activation quantization, int4 matmul over the packed tile layout and
// int8-row matmul (slm/kernels/quant.h).
//
// int4: the packed 16-row tile is read as two halves of 8 rows (bytes 0-31 and 32-63 of every
// 64-byte chunk), each one ymm of outputs (lane = row). Per block of 32 columns and half, four
// 32-byte loads give eight unsigned byte vectors (nibbles); vpmaddubsw against 4 activation bytes
// broadcast to every lane gives, per 16-bit lane, the sum of two nibble * a products (|.| <= 3810,
// no saturation); the eight such vectors of a block are summed in int16 (|.| <= 30480, exact),
// then vpmaddwd with ones makes the int32 sum of each row's 32 products, plus -8 * sums_b for
// symmetric weights. The float sequence per lane is quant.h's (the same as every ISA's, so int4
// results are bitwise equal across ISAs): gacc = fma(float(isum), d_b, gacc) per block,
// acc = fma(s_g, gacc, acc) (+ fma(m_g, D_g, acc)) per group. int4_tile<Sym, BPG, H, T, Pf> is the
// only code that computes outputs (H halves x T tokens at once), so nothing depends on n_tokens or
// on the row range.
// - decode: both halves of a tile at once (one stream, every 64-byte line used at once), with
//   non-temporal prefetches ahead;
// - prefill: one half x 3 tokens per call (9 accumulators of 16 ymm registers).
//
// int8 rows: row-major in place; per block of 32 columns, vpmaddubsw(|q|, sign(a, q)) (|.| <=
// 2 * 128 * 127 = 32512, no saturation) and vpmaddwd with ones give the exact sum of 4 products
// per lane, scaled by d_b into one ymm per output, reduced by the fixed hsum() tree, then times
// the row scale.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx2 {

namespace {

constexpr int64_t kTile = kInt4RowTile;  // rows per packed tile (two halves of 8)
constexpr int64_t kBlockBytes = 256;     // one block of 32 columns of a tile
constexpr int kGemmTokens = 3;
constexpr int64_t kTokenBlockBytes = 512 * 1024;
constexpr int64_t kGemvPrefetchBytes = 8192;
constexpr int kInt8GemvRows = 8;
constexpr int kInt8GemmRows = 2;
constexpr int kInt8GemmTokens = 3;

#define SLM_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))

inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Lanes [lo, hi) of 8 as an all-ones 32-bit mask (for maskload / maskstore).
inline __m256i lane_mask(int64_t lo, int64_t hi) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i ge = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(static_cast<int32_t>(lo) - 1));
  const __m256i lt = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(hi)), idx);
  return _mm256_and_si256(ge, lt);
}

// ---------------------------------------------------------------------------------------------
// activations

void quantize_row(const float* x, int64_t in, int64_t in_padded, int8_t* a, float* d, int32_t* sums) {
  const int64_t nb = in_padded / kQuantBlock;
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t k = b * kQuantBlock;
    const int64_t n = std::clamp<int64_t>(in - k, 0, kQuantBlock);
    __m256 v[4];
    if (n == kQuantBlock) {
      for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + k + 8 * i);
    } else {
      for (int i = 0; i < 4; ++i) v[i] = load_partial(x + k + 8 * i, std::clamp<int64_t>(n - 8 * i, 0, 8));
    }
    const __m256 m01 = _mm256_max_ps(_mm256_and_ps(v[0], absmask), _mm256_and_ps(v[1], absmask));
    const __m256 m23 = _mm256_max_ps(_mm256_and_ps(v[2], absmask), _mm256_and_ps(v[3], absmask));
    const float amax = hmax(_mm256_max_ps(m01, m23));
    const float db = amax / 127.0f;
    __m256i q[4];
    for (int i = 0; i < 4; ++i) q[i] = _mm256_setzero_si256();
    if (db != 0.f) {
      const __m256 vd = _mm256_set1_ps(db);
      for (int i = 0; i < 4; ++i) {
        const __m256 r = _mm256_round_ps(_mm256_div_ps(v[i], vd), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q[i] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvttps_epi32(r), lo), hi);
      }
    }
    const __m256i p01 = _mm256_packs_epi32(q[0], q[1]);  // int16, 128-bit lanes interleaved
    const __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a + k), bytes);
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    d[b] = db;
    sums[b] = _mm_cvtsi128_si32(s4);
  }
}

// ---------------------------------------------------------------------------------------------
// int4

struct Int4Geo {
  const uint8_t* w;
  int64_t tile_bytes;
  int64_t n_groups;
  const int8_t* a;
  int64_t a_stride;  // bytes per token (in_padded)
  const float* d;
  const int32_t* sums;
  int64_t nb;  // blocks per token in d / sums
  float* y;
  int64_t y_stride;
  const float* bias;
  bool accumulate;
  int64_t row_begin;
  int64_t row_end;
};

// Outputs of halves [h0, h0 + H) of tile `tile` for tokens [t0, t0 + T). One loop iteration per
// record (two groups when symmetric). Pf: 0 none, 1 non-temporal prefetch of the stream ahead
// through *pf (GEMV), 2 prefetch of the same half of the next tile (first token tile, GEMM).
template <bool Sym, int BPG, int H, int T, int Pf>
void int4_tile(const Int4Geo& g, int64_t tile, int h0, int64_t t0, const uint8_t** pf = nullptr) {
  constexpr int kPerRecord = Sym ? 2 : 1;
  constexpr int64_t kRecordBytes = 64 + kPerRecord * BPG * kBlockBytes;
  const uint8_t* wt = g.w + tile * g.tile_bytes;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* a0 = g.a + t0 * g.a_stride;
  const float* d0 = g.d + t0 * g.nb;
  const int32_t* s0 = g.sums + t0 * g.nb;
  const int64_t as = g.a_stride, ds = g.nb;
  __m256 acc[H][T];
#pragma GCC unroll 16
  for (int h = 0; h < H; ++h) {
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[h][t] = _mm256_setzero_ps();
  }

  auto group = [&](const uint8_t* rec, int slot, int64_t grp) SLM_ALWAYS_INLINE_LAMBDA {
    const uint8_t* data = rec + 64 + slot * (BPG * kBlockBytes);
    __m256 gacc[H][T];
    float dsum[T];
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
#pragma GCC unroll 16
      for (int h = 0; h < H; ++h) gacc[h][t] = _mm256_setzero_ps();
      dsum[t] = 0.f;
    }
#pragma GCC unroll 4
    for (int bi = 0; bi < BPG; ++bi) {
      const int64_t b = grp * BPG + bi;
      const uint8_t* blk = data + bi * kBlockBytes;
      if constexpr (Pf == 1) {
        const uint8_t* until = blk + kBlockBytes + kGemvPrefetchBytes;
        for (const uint8_t* p = *pf; p < until; p += 64) _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_NTA);
        *pf = std::max(*pf, until);
      } else if constexpr (Pf == 2) {
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) _mm_prefetch(reinterpret_cast<const char*>(blk + g.tile_bytes + c * 64 + h0 * 32), _MM_HINT_T0);
      }
      __m256i s16[H][T];
#pragma GCC unroll 16
      for (int h = 0; h < H; ++h) {
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) s16[h][t] = _mm256_setzero_si256();
      }
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
#pragma GCC unroll 2
        for (int h = 0; h < H; ++h) {
          const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + c * 64 + (h0 + h) * 32));
          const __m256i lo = _mm256_and_si256(p, m4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), m4);
#pragma GCC unroll 16
          for (int t = 0; t < T; ++t) {
            const int8_t* ab = a0 + t * as + b * kQuantBlock + c * 8;
            const __m256i x = _mm256_maddubs_epi16(lo, _mm256_set1_epi32(load_i32(ab)));
            const __m256i y = _mm256_maddubs_epi16(hi, _mm256_set1_epi32(load_i32(ab + 4)));
            s16[h][t] = _mm256_add_epi16(s16[h][t], _mm256_add_epi16(x, y));
          }
        }
      }
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m256 dv = _mm256_set1_ps(d0[t * ds + b]);
        const __m256i corr = Sym ? _mm256_set1_epi32(-8 * s0[t * ds + b]) : _mm256_setzero_si256();
#pragma GCC unroll 16
        for (int h = 0; h < H; ++h) {
          const __m256i isum = _mm256_add_epi32(_mm256_madd_epi16(s16[h][t], ones), corr);
          gacc[h][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), dv, gacc[h][t]);
        }
        if constexpr (!Sym) dsum[t] = std::fma(d0[t * ds + b], static_cast<float>(s0[t * ds + b]), dsum[t]);
      }
    }
#pragma GCC unroll 2
    for (int h = 0; h < H; ++h) {
      const int hh = h0 + h;
      const __m256 sv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + slot * kTile * 2 + hh * 16)));
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) acc[h][t] = _mm256_fmadd_ps(sv, gacc[h][t], acc[h][t]);
      if constexpr (!Sym) {
        const __m256 mv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + kTile * 2 + hh * 16)));
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) acc[h][t] = _mm256_fmadd_ps(mv, _mm256_set1_ps(dsum[t]), acc[h][t]);
      }
    }
  };

  const int64_t full_records = g.n_groups / kPerRecord;
  const uint8_t* rec = wt;
  for (int64_t r = 0; r < full_records; ++r, rec += kRecordBytes) {
#pragma GCC unroll 2
    for (int slot = 0; slot < kPerRecord; ++slot) group(rec, slot, r * kPerRecord + slot);
  }
  if (full_records * kPerRecord < g.n_groups) group(rec, 0, full_records * kPerRecord);  // odd group count

  // Store the rows inside [row_begin, row_end): s, then s + bias, then y + s.
#pragma GCC unroll 2
  for (int h = 0; h < H; ++h) {
    const int64_t o0 = tile * kTile + (h0 + h) * 8;
    const int64_t lo_r = std::max<int64_t>(g.row_begin - o0, 0), hi_r = std::min<int64_t>(g.row_end - o0, 8);
    if (hi_r <= lo_r) continue;
    const __m256i m = lane_mask(lo_r, hi_r);
    const __m256 bv = g.bias ? _mm256_maskload_ps(g.bias + o0, m) : _mm256_setzero_ps();
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      float* yt = g.y + (t0 + t) * g.y_stride + o0;
      __m256 s = acc[h][t];
      if (g.bias) s = _mm256_add_ps(s, bv);
      if (g.accumulate) s = _mm256_add_ps(_mm256_maskload_ps(yt, m), s);
      _mm256_maskstore_ps(yt, m, s);
    }
  }
}

// One half of a tile against token tiles of kGemmTokens over [t0, t1), then a narrower tile.
template <bool Sym, int BPG>
void int4_half_tile(const Int4Geo& g, int64_t tile, int h, int64_t t0, int64_t t1) {
  int64_t t = t0;
  bool first = true;
  for (; t + kGemmTokens <= t1; t += kGemmTokens, first = false) {
    if (first) {
      int4_tile<Sym, BPG, 1, kGemmTokens, 2>(g, tile, h, t);
    } else {
      int4_tile<Sym, BPG, 1, kGemmTokens, 0>(g, tile, h, t);
    }
  }
  switch (t1 - t) {
    case 1: int4_tile<Sym, BPG, 1, 1, 0>(g, tile, h, t); break;
    case 2: int4_tile<Sym, BPG, 1, 2, 0>(g, tile, h, t); break;
    default: break;
  }
  static_assert(kGemmTokens == 3, "the switch above covers remainders 1..2");
}

int64_t token_block(int64_t in_padded, int tile_tokens) {
  const int64_t fit = (kTokenBlockBytes / std::max<int64_t>(in_padded, 1)) / tile_tokens * tile_tokens;
  return std::max<int64_t>(fit, tile_tokens);
}

template <bool Sym, int BPG>
void int4_matmul_impl(const Int4MatmulArgs& m) {
  Int4Geo g;
  g.w = static_cast<const uint8_t*>(m.w);
  g.n_groups = (m.in_features + m.group_size - 1) / m.group_size;
  g.tile_bytes = int4_tile_bytes(m.in_features, m.group_size, Sym);
  g.a = m.x.a;
  g.a_stride = m.x.in_padded;
  g.d = m.x.d;
  g.sums = m.x.sums;
  g.nb = m.x.in_padded / kQuantBlock;
  g.y = m.y;
  g.y_stride = m.y_stride;
  g.bias = m.bias;
  g.accumulate = m.accumulate;
  g.row_begin = m.row_begin;
  g.row_end = m.row_end;
  if (m.row_end <= m.row_begin) return;
  const int64_t tile0 = m.row_begin / kTile, tile1 = (m.row_end + kTile - 1) / kTile;
  if (m.n_tokens == 1) {
    const uint8_t* pf = g.w + tile0 * g.tile_bytes + kGemvPrefetchBytes;
    for (int64_t tile = tile0; tile < tile1; ++tile) int4_tile<Sym, BPG, 2, 1, 1>(g, tile, 0, 0, &pf);
    return;
  }
  const int64_t tb = token_block(m.x.in_padded, kGemmTokens);
  for (int64_t t0 = 0; t0 < m.n_tokens; t0 += tb) {
    const int64_t t1 = std::min(t0 + tb, m.n_tokens);
    for (int64_t tile = tile0; tile < tile1; ++tile) {
      // Skip a half with no row in range (its outputs would not be stored anyway).
      for (int h = 0; h < 2; ++h) {
        const int64_t o0 = tile * kTile + h * 8;
        if (o0 + 8 > m.row_begin && o0 < m.row_end) int4_half_tile<Sym, BPG>(g, tile, h, t0, t1);
      }
    }
  }
}

template <bool Sym>
void int4_dispatch(const Int4MatmulArgs& m) {
  switch (m.group_size) {
    case 32: return int4_matmul_impl<Sym, 1>(m);
    case 64: return int4_matmul_impl<Sym, 2>(m);
    default: return int4_matmul_impl<Sym, 4>(m);
  }
}

// ---------------------------------------------------------------------------------------------
// int8 rows

struct Int8Geo {
  const int8_t* q;
  int64_t q_stride;
  const uint16_t* scale;
  const int8_t* a;
  int64_t a_stride;
  const float* d;
  int64_t nb;
  float* y;
  int64_t y_stride;
  const float* bias;
  bool accumulate;
  int64_t n_full;  // in_features / 32
  int64_t rem;     // in_features % 32
  int64_t pf_off;  // GEMV: bytes ahead of each row's current block to prefetch
};

template <int R, int T>
void int8_tile(const Int8Geo& g, int64_t o, int64_t t0) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R][T];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 32
    for (int u = 0; u < T; ++u) acc[r][u] = _mm256_setzero_ps();
  }
  const int8_t* qr = g.q + o * g.q_stride;
  const int64_t n_blocks = g.n_full + (g.rem ? 1 : 0);
  for (int64_t k = 0; k < n_blocks; ++k) {
    if constexpr (T == 1 && R == kInt8GemvRows) {
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(qr + r * g.q_stride + k * 32 + g.pf_off), _MM_HINT_NTA);
    }
    __m256i qv[R], qa[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      const int8_t* p = qr + r * g.q_stride + k * 32;
      if (k < g.n_full) {
        qv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      } else {
        alignas(32) int8_t buf[32] = {};
        std::memcpy(buf, p, static_cast<size_t>(g.rem));
        qv[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
      }
      qa[r] = _mm256_abs_epi8(qv[r]);  // |q| as unsigned bytes (128 for -128)
    }
#pragma GCC unroll 32
    for (int u = 0; u < T; ++u) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.a + (t0 + u) * g.a_stride + k * 32));
      const __m256 dv = _mm256_set1_ps(g.d[(t0 + u) * g.nb + k]);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        const __m256i p16 = _mm256_maddubs_epi16(qa[r], _mm256_sign_epi8(av, qv[r]));
        const __m256i isum = _mm256_madd_epi16(p16, ones);
        acc[r][u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), dv, acc[r][u]);
      }
    }
  }
#pragma GCC unroll 32
  for (int u = 0; u < T; ++u) {
    float* yt = g.y + (t0 + u) * g.y_stride + o;
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      const __m128 sc = _mm_cvtph_ps(_mm_cvtsi32_si128(g.scale[o + r]));
      float s = _mm_cvtss_f32(_mm_mul_ss(_mm_set_ss(hsum(acc[r][u])), sc));  // a builtin: never fused
      if (g.bias) s += g.bias[o + r];
      yt[r] = g.accumulate ? yt[r] + s : s;
    }
  }
}

template <int R>
void int8_rows_by_tokens(const Int8Geo& g, int64_t o, int64_t t0, int64_t t1) {
  int64_t t = t0;
  for (; t + kInt8GemmTokens <= t1; t += kInt8GemmTokens) int8_tile<R, kInt8GemmTokens>(g, o, t);
  switch (t1 - t) {
    case 1: int8_tile<R, 1>(g, o, t); break;
    case 2: int8_tile<R, 2>(g, o, t); break;
    default: break;
  }
  static_assert(kInt8GemmTokens == 3, "the switch above covers remainders 1..2");
}

}  // namespace

void quantize_acts(const float* x, int64_t x_stride, int64_t n_tokens, int64_t in_features, int64_t in_padded,
                   int8_t* a, float* d, int32_t* sums) {
  const int64_t nb = in_padded / kQuantBlock;
  for (int64_t t = 0; t < n_tokens; ++t) {
    quantize_row(x + t * x_stride, in_features, in_padded, a + t * in_padded, d + t * nb, sums + t * nb);
  }
}

void int4_matmul(const Int4MatmulArgs& m) {
  if (m.sym) {
    int4_dispatch<true>(m);
  } else {
    int4_dispatch<false>(m);
  }
}

void int8_matmul(const Int8MatmulArgs& m) {
  Int8Geo g;
  g.q = m.q;
  g.q_stride = m.q_stride;
  g.scale = m.scale;
  g.a = m.x.a;
  g.a_stride = m.x.in_padded;
  g.d = m.x.d;
  g.nb = m.x.in_padded / kQuantBlock;
  g.y = m.y;
  g.y_stride = m.y_stride;
  g.bias = m.bias;
  g.accumulate = m.accumulate;
  g.n_full = m.in_features / 32;
  g.rem = m.in_features % 32;
  const int64_t tile_bytes = kInt8GemvRows * m.q_stride;
  g.pf_off = tile_bytes <= 24 * 1024 ? tile_bytes : 1024;
  if (m.n_tokens == 1) {
    int64_t o = m.row_begin;
    for (; o + kInt8GemvRows <= m.row_end; o += kInt8GemvRows) int8_tile<kInt8GemvRows, 1>(g, o, 0);
    for (; o < m.row_end; ++o) int8_tile<1, 1>(g, o, 0);
    return;
  }
  const int64_t tb = token_block(m.x.in_padded, kInt8GemmTokens);
  for (int64_t t0 = 0; t0 < m.n_tokens; t0 += tb) {
    const int64_t t1 = std::min(t0 + tb, m.n_tokens);
    int64_t o = m.row_begin;
    for (; o + kInt8GemmRows <= m.row_end; o += kInt8GemmRows) int8_rows_by_tokens<kInt8GemmRows>(g, o, t0, t1);
    for (; o < m.row_end; ++o) int8_rows_by_tokens<1>(g, o, t0, t1);
  }
}

}  // namespace slm::kernels::avx2
