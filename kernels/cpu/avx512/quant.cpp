// AVX-512 (VNNI) quantized kernels: activation quantization, int4 matmul over the packed tile layout
// and int8-row matmul (slm/kernels/quant.h).
//
// int4: a tile of 16 rows is one zmm of outputs (lane = row). Per block of 32 columns, four 64-byte
// loads give eight unsigned byte vectors (chunk & 0x0F, (chunk >> 4) & 0x0F), each multiplied by
// 4 activation bytes broadcast to every lane with vpdpbusd: the exact int32 block sum of every row
// of the tile, started at -8 * sums_b for symmetric weights. Then quant.h's float sequence per lane:
// gacc = fma(float(isum), d_b, gacc) per block, acc = fma(s_g, gacc, acc) (+ fma(m_g, D_g, acc)) per
// group. int4_tile<Sym, BPG, RT, T, C, Pf> is the only code that computes outputs (RT row tiles x
// T tokens at once, C independent integer chains per token); every shape runs the same float
// operations per output, so nothing depends on n_tokens or on the row range, and the result
// equals the generic ISA's bit for bit.
// - decode (n_tokens == 1): one tile at a time streams the packed matrix front to back (records
//   of 64-byte header + blocks, strictly in address order), with non-temporal prefetches 8 KiB
//   ahead; ~50-55 GB/s on one stream, the speed of a plain AVX-512 read loop on this machine;
// - prefill: 2 row tiles x 4 tokens per call (24 accumulators), so each unpacked weight vector
//   feeds 4 tokens and each activation broadcast 2 tiles; tokens go in blocks whose activations
//   stay in L2, and each row tile's weights stay in L1 while the token tiles pass.
//
// int8 rows: row-major in place. Per 64 columns, weights q become unsigned q + 128 and
// vpdpbusd(-128 * sum a, q + 128, a) gives the exact sum of q * a per 4-column lane (the
// correction depends on the activations only, so it is shared by all rows); lanes 0-7 and 8-15
// are two blocks, scaled by their d and accumulated in one zmm per output, summed by the fixed
// hsum() tree at the end, then times the row scale.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels.h"
#include "simd.h"

namespace slm::kernels::avx512 {

namespace {

constexpr int64_t kTile = kInt4RowTile;  // rows per packed tile = zmm lanes
constexpr int64_t kBlockBytes = 256;     // one block of 32 columns of a tile
// Prefill: 2 row tiles x 4 tokens per tile call (24 accumulators); a single leftover row tile
// takes 8 tokens at once. Measured on 1536x576 and 5632x2048 (G 32 and 128, T 128 and 512):
// 2x4 and 3x3 ~700 GOP/s, 1x8 ~580, 1x4 ~560.
constexpr int kGemmRowTiles = 2;
constexpr int kGemmTokens = 4;
constexpr int kGemmTokensOneTile = 8;
// Tokens per GEMM block: their activations stay within this much of L2 (256 KiB to 1 MiB: same).
constexpr int64_t kTokenBlockBytes = 512 * 1024;
// Decode: non-temporal prefetch this far ahead of the stream. Over all matrices of a 135M model
// (60-76 MB): none ~30 GB/s, 2 KiB ~35, 4 KiB ~37, 8 KiB ~40-47, 16 KiB ~39 (numpy's read ~40).
constexpr int64_t kGemvPrefetchBytes = 8192;
constexpr int kInt8GemvRows = 4;  // rows read side by side: more streams (8) read slower
constexpr int kInt8GemmRows = 4;
constexpr int kInt8GemmTokens = 4;

#define SLM_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))

inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// ---------------------------------------------------------------------------------------------
// activations

void quantize_row(const float* x, int64_t in, int64_t in_padded, int8_t* a, float* d, int32_t* sums) {
  const int64_t nb = in_padded / kQuantBlock;
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t k = b * kQuantBlock;
    const int64_t n0 = std::clamp<int64_t>(in - k, 0, 16), n1 = std::clamp<int64_t>(in - k - 16, 0, 16);
    const __m512 x0 = n0 ? _mm512_maskz_loadu_ps(first_lanes(n0), x + k) : _mm512_setzero_ps();
    const __m512 x1 = n1 ? _mm512_maskz_loadu_ps(first_lanes(n1), x + k + 16) : _mm512_setzero_ps();
    const float amax = hmax(_mm512_max_ps(_mm512_and_ps(x0, absmask), _mm512_and_ps(x1, absmask)));
    const float db = amax / 127.0f;
    __m512i q0 = _mm512_setzero_si512(), q1 = _mm512_setzero_si512();
    if (db != 0.f) {
      const __m512 vd = _mm512_set1_ps(db);
      q0 = _mm512_cvt_roundps_epi32(_mm512_div_ps(x0, vd), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q1 = _mm512_cvt_roundps_epi32(_mm512_div_ps(x1, vd), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q0 = _mm512_min_epi32(_mm512_max_epi32(q0, lo), hi);
      q1 = _mm512_min_epi32(_mm512_max_epi32(q1, lo), hi);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a + k), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a + k + 16), _mm512_cvtepi32_epi8(q1));
    d[b] = db;
    sums[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
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
  int64_t pf_off;  // GEMV: bytes ahead to prefetch (non-temporal)
};

// Outputs of row tiles [tile, tile + RT) for tokens [t0, t0 + T), BPG blocks per group (G / 32).
// One loop iteration per record (two groups when symmetric). Pf: 0 none, 1 prefetch of the
// stream ahead through *pf (GEMV), 2 prefetch of the next tile into the caches (first token tile
// of a GEMM row tile).
template <bool Sym, int BPG, int RT, int T, int C, int Pf>
void int4_tile(const Int4Geo& g, int64_t tile, int64_t t0, const uint8_t** pf = nullptr) {
  static_assert(C == 1 || C == 2, "one or two integer chains per token");
  constexpr int kPerRecord = Sym ? 2 : 1;  // groups per record
  constexpr int64_t kRecordBytes = 64 + kPerRecord * BPG * kBlockBytes;
  const uint8_t* wt = g.w + tile * g.tile_bytes;
  const int64_t tb = g.tile_bytes;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const int8_t* a0 = g.a + t0 * g.a_stride;
  const float* d0 = g.d + t0 * g.nb;
  const int32_t* s0 = g.sums + t0 * g.nb;
  const int64_t as = g.a_stride, ds = g.nb;
  __m512 acc[RT][T];
#pragma GCC unroll 16
  for (int rt = 0; rt < RT; ++rt) {
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[rt][t] = _mm512_setzero_ps();
  }

  // One group: its blocks, then acc = fma(s, gacc, acc) (and fma(m, D, acc)).
  auto group = [&](const uint8_t* rec, int slot, int64_t grp) SLM_ALWAYS_INLINE_LAMBDA {
    const uint8_t* data = rec + 64 + slot * (BPG * kBlockBytes);
    __m512 sv[RT], mv[RT];
#pragma GCC unroll 16
    for (int rt = 0; rt < RT; ++rt) {
      sv[rt] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + rt * tb + slot * kTile * 2)));
      if constexpr (!Sym) mv[rt] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + rt * tb + kTile * 2)));
    }
    __m512 gacc[RT][T];
    float dsum[T];
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
#pragma GCC unroll 16
      for (int rt = 0; rt < RT; ++rt) gacc[rt][t] = _mm512_setzero_ps();
      dsum[t] = 0.f;
    }
#pragma GCC unroll 4
    for (int bi = 0; bi < BPG; ++bi) {
      const int64_t b = grp * BPG + bi;
      const uint8_t* blk = data + bi * kBlockBytes;
      if constexpr (Pf == 1) {
        // Every line of the stream once, a fixed distance ahead of the last row tile.
        const uint8_t* until = blk + (RT - 1) * tb + kBlockBytes + g.pf_off;
        for (const uint8_t* p = *pf; p < until; p += 64) _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_NTA);
        *pf = std::max(*pf, until);
      } else if constexpr (Pf == 2) {
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) _mm_prefetch(reinterpret_cast<const char*>(blk + RT * tb + c * 64), _MM_HINT_T0);
        if (bi == 0) _mm_prefetch(reinterpret_cast<const char*>(rec + RT * tb), _MM_HINT_T0);
      }
      __m512i isum[RT][T][C];
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m512i init = Sym ? _mm512_set1_epi32(-8 * s0[t * ds + b]) : _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int rt = 0; rt < RT; ++rt) {
          isum[rt][t][0] = init;
          if constexpr (C == 2) isum[rt][t][1] = _mm512_setzero_si512();
        }
      }
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        __m512i lo[RT], hi[RT];
#pragma GCC unroll 4
        for (int rt = 0; rt < RT; ++rt) {
          const __m512i p = _mm512_loadu_si512(blk + rt * tb + c * 64);
          lo[rt] = _mm512_and_si512(p, m4);
          hi[rt] = _mm512_and_si512(_mm512_srli_epi16(p, 4), m4);
        }
        // Each activation broadcast feeds every row tile.
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) {
          const int8_t* ab = a0 + t * as + b * kQuantBlock + c * 8;
          const __m512i alo = _mm512_set1_epi32(load_i32(ab)), ahi = _mm512_set1_epi32(load_i32(ab + 4));
#pragma GCC unroll 4
          for (int rt = 0; rt < RT; ++rt) {
            isum[rt][t][0] = _mm512_dpbusd_epi32(isum[rt][t][0], lo[rt], alo);
            isum[rt][t][C - 1] = _mm512_dpbusd_epi32(isum[rt][t][C - 1], hi[rt], ahi);
          }
        }
      }
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m512 dv = _mm512_set1_ps(d0[t * ds + b]);
#pragma GCC unroll 16
        for (int rt = 0; rt < RT; ++rt) {
          __m512i s = isum[rt][t][0];
          if constexpr (C == 2) s = _mm512_add_epi32(s, isum[rt][t][1]);
          gacc[rt][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), dv, gacc[rt][t]);
        }
        if constexpr (!Sym) dsum[t] = std::fma(d0[t * ds + b], static_cast<float>(s0[t * ds + b]), dsum[t]);
      }
    }
#pragma GCC unroll 16
    for (int rt = 0; rt < RT; ++rt) {
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) acc[rt][t] = _mm512_fmadd_ps(sv[rt], gacc[rt][t], acc[rt][t]);
      if constexpr (!Sym) {
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) acc[rt][t] = _mm512_fmadd_ps(mv[rt], _mm512_set1_ps(dsum[t]), acc[rt][t]);
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

  // Store the rows of these tiles inside [row_begin, row_end): s, then s + bias, then y + s.
#pragma GCC unroll 16
  for (int rt = 0; rt < RT; ++rt) {
    const int64_t o0 = (tile + rt) * kTile;
    const int64_t lo_r = std::max<int64_t>(g.row_begin - o0, 0), hi_r = std::min<int64_t>(g.row_end - o0, kTile);
    const __mmask16 m = static_cast<__mmask16>(first_lanes(hi_r) & ~first_lanes(lo_r));
    const __m512 bv = g.bias ? _mm512_maskz_loadu_ps(m, g.bias + o0) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      float* yt = g.y + (t0 + t) * g.y_stride + o0;
      __m512 s = acc[rt][t];
      if (g.bias) s = _mm512_add_ps(s, bv);
      if (g.accumulate) s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, yt), s);
      _mm512_mask_storeu_ps(yt, m, s);
    }
  }
}

// Row tiles [tile, tile + RT) against token tiles of kGemmTokens over [t0, t1), then narrower
// tiles for the rest.
template <bool Sym, int BPG, int RT>
void int4_row_tile(const Int4Geo& g, int64_t tile, int64_t t0, int64_t t1) {
  constexpr int TT = RT == 1 ? kGemmTokensOneTile : kGemmTokens;
  int64_t t = t0;
  bool first = true;
  for (; t + TT <= t1; t += TT, first = false) {
    if (first) {
      int4_tile<Sym, BPG, RT, TT, 1, 2>(g, tile, t);
    } else {
      int4_tile<Sym, BPG, RT, TT, 1, 0>(g, tile, t);
    }
  }
  if (t1 - t >= 4 && TT > 4) {
    int4_tile<Sym, BPG, RT, 4, 1, 0>(g, tile, t);
    t += 4;
  }
  switch (t1 - t) {
    case 1: int4_tile<Sym, BPG, RT, 1, 2, 0>(g, tile, t); break;
    case 2: int4_tile<Sym, BPG, RT, 2, 2, 0>(g, tile, t); break;
    case 3: int4_tile<Sym, BPG, RT, 3, 1, 0>(g, tile, t); break;
    default: break;
  }
  static_assert(kGemmTokens <= 8 && kGemmTokensOneTile <= 8, "4 + 3 covers the remainders");
}

// Tokens per GEMM block: activations of a block stay within kTokenBlockBytes of L2.
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
  g.pf_off = kGemvPrefetchBytes;
  if (m.row_end <= m.row_begin) return;
  const int64_t tile0 = m.row_begin / kTile, tile1 = (m.row_end + kTile - 1) / kTile;
  if (m.n_tokens == 1) {
    const uint8_t* pf = g.w + tile0 * g.tile_bytes + g.pf_off;
    for (int64_t tile = tile0; tile < tile1; ++tile) int4_tile<Sym, BPG, 1, 1, 2, 1>(g, tile, 0, &pf);
    return;
  }
  const int64_t tb = token_block(m.x.in_padded, kGemmTokensOneTile);
  for (int64_t t0 = 0; t0 < m.n_tokens; t0 += tb) {
    const int64_t t1 = std::min(t0 + tb, m.n_tokens);
    int64_t tile = tile0;
    for (; tile + kGemmRowTiles <= tile1; tile += kGemmRowTiles) int4_row_tile<Sym, BPG, kGemmRowTiles>(g, tile, t0, t1);
    for (; tile < tile1; ++tile) int4_row_tile<Sym, BPG, 1>(g, tile, t0, t1);
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
  int64_t n_full;     // in_features / 64
  __mmask64 tail;     // columns of the last partial chunk, 0 if none
  int64_t pf_off;     // GEMV: bytes ahead of each row's current chunk to prefetch
};

// d of blocks 2k (lanes 0-7) and 2k + 1 (lanes 8-15).
inline __m512 block_pair_scales(const float* d) {
  const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m128 two = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(d)));
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(two));
}

template <int R, int T>
void int8_tile(const Int8Geo& g, int64_t o, int64_t t0) {
  const __m512i bias128 = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[R][T];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 32
    for (int u = 0; u < T; ++u) acc[r][u] = _mm512_setzero_ps();
  }
  const int8_t* qr = g.q + o * g.q_stride;
  const int64_t n_chunks = g.n_full + (g.tail ? 1 : 0);
  for (int64_t k = 0; k < n_chunks; ++k) {
    const bool full = k < g.n_full;
    if constexpr (T == 1 && R == kInt8GemvRows) {
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(qr + r * g.q_stride + k * 64 + g.pf_off), _MM_HINT_NTA);
    }
    // q + 128 as unsigned bytes (masked-off tail columns become 128, against zero activations).
    __m512i qx[R];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      const int8_t* p = qr + r * g.q_stride + k * 64;
      qx[r] = _mm512_xor_si512(full ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(g.tail, p), bias128);
    }
#pragma GCC unroll 32
    for (int u = 0; u < T; ++u) {
      const __m512i av = _mm512_loadu_si512(g.a + (t0 + u) * g.a_stride + k * 64);
      // -128 * (sum of a) per 4-column lane: the offset that q + 128 adds; shared by all rows.
      const __m512i corr = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias128, av));
      const __m512 dv = block_pair_scales(g.d + (t0 + u) * g.nb + 2 * k);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        const __m512i isum = _mm512_dpbusd_epi32(corr, qx[r], av);
        acc[r][u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), dv, acc[r][u]);
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
    case 3: int8_tile<R, 3>(g, o, t); break;
    default: break;
  }
  static_assert(kInt8GemmTokens == 4, "the switch above covers remainders 1..3");
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
  g.n_full = m.in_features / 64;
  const int64_t rem = m.in_features % 64;
  g.tail = rem ? static_cast<__mmask64>((uint64_t{1} << rem) - 1) : 0;
  // Decode prefetch: 8 KiB ahead of each row's current chunk (for contiguous rows, the same
  // columns a few 4-row tiles further down). On 65-150 MB int8 matrices of 576, 896 and 2048
  // columns (runs alternated), 4 rows with 8 KiB read 3-25% faster than 8 rows with two tiles /
  // 2 KiB ahead, and than 1 or 2 rows.
  g.pf_off = kGemvPrefetchBytes;
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

}  // namespace slm::kernels::avx512
