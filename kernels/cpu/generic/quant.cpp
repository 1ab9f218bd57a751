// Scalar quantized kernels: activation quantization, int4 matmul over the packed tile layout and
// int8-row matmul (slm/kernels/quant.h).
//
// Bitwise reproducibility: every output is computed by one noinline function per format
// (int4_tile for 16 rows of one token, int8_dot for one row of one token) with integer block sums
// (exact) and a fixed sequence of float operations per output, so the value never depends on
// n_tokens or on the row range. The int4 sequence is quant.h's, with std::fma (correctly rounded
// in software where the CPU has no FMA), so int4 results equal the SIMD ISAs' bit for bit.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common.h"
#include "kernels.h"

#if defined(__GNUC__)
#define SLM_NOINLINE __attribute__((noinline))
#else
#define SLM_NOINLINE
#endif

namespace slm::kernels::generic {

namespace {

constexpr int64_t kTile = kInt4RowTile;
constexpr int64_t kBlockBytes = 256;  // one block of 32 columns for the 16 rows of a tile

// acc[r] for the 16 rows of tile `w` (packed) against one token of activations.
SLM_NOINLINE void int4_tile(const uint8_t* w, int64_t n_groups, int64_t blocks_per_group, bool sym,
                            const int8_t* a, const float* d, const int32_t* sums, float* acc) {
  const int64_t per_record = sym ? 2 : 1;
  const int64_t record_bytes = 64 + per_record * blocks_per_group * kBlockBytes;
  for (int64_t r = 0; r < kTile; ++r) acc[r] = 0.f;
  for (int64_t g = 0; g < n_groups; ++g) {
    const uint8_t* rec = w + (g / per_record) * record_bytes;
    const int64_t slot = g % per_record;
    const uint8_t* scales = rec + slot * kTile * 2;
    const uint8_t* mins = rec + kTile * 2;
    const uint8_t* data = rec + 64 + slot * blocks_per_group * kBlockBytes;
    float gacc[kTile];
    for (int64_t r = 0; r < kTile; ++r) gacc[r] = 0.f;
    float dsum = 0.f;
    for (int64_t bi = 0; bi < blocks_per_group; ++bi) {
      const int64_t b = g * blocks_per_group + bi;
      const uint8_t* blk = data + bi * kBlockBytes;
      const int8_t* ab = a + b * kQuantBlock;
      int32_t isum[kTile];
      const int32_t corr = sym ? -8 * sums[b] : 0;
      for (int64_t r = 0; r < kTile; ++r) isum[r] = corr;
      for (int64_t c = 0; c < 4; ++c) {
        const uint8_t* chunk = blk + c * 64;
        const int8_t* ac = ab + c * 8;
        for (int64_t r = 0; r < kTile; ++r) {
          int32_t s = 0;
          for (int64_t i = 0; i < 4; ++i) {
            const uint8_t v = chunk[r * 4 + i];
            s += static_cast<int32_t>(v & 0x0F) * ac[i] + static_cast<int32_t>(v >> 4) * ac[4 + i];
          }
          isum[r] += s;
        }
      }
      for (int64_t r = 0; r < kTile; ++r) gacc[r] = std::fma(static_cast<float>(isum[r]), d[b], gacc[r]);
      dsum = std::fma(d[b], static_cast<float>(sums[b]), dsum);
    }
    for (int64_t r = 0; r < kTile; ++r) acc[r] = std::fma(half_to_f32(load_u16(scales + r * 2)), gacc[r], acc[r]);
    if (!sym) {
      for (int64_t r = 0; r < kTile; ++r) acc[r] = std::fma(half_to_f32(load_u16(mins + r * 2)), dsum, acc[r]);
    }
  }
}

// (sum_b d_b * (sum_i q_i a_i), blocks in order) * scale for one row. The scale is applied here,
// inside the noinline function, so that no caller can fuse it with the bias addition.
SLM_NOINLINE float int8_dot(const int8_t* q, int64_t in_features, const int8_t* a, const float* d, float scale) {
  float acc = 0.f;
  const int64_t n_blocks = (in_features + kQuantBlock - 1) / kQuantBlock;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t end = b * kQuantBlock + kQuantBlock < in_features ? b * kQuantBlock + kQuantBlock : in_features;
    int32_t s = 0;
    for (int64_t i = b * kQuantBlock; i < end; ++i) s += static_cast<int32_t>(q[i]) * a[i];
    acc = acc + static_cast<float>(s) * d[b];
  }
  return acc * scale;
}

inline void store(float* yp, float s, const float* bias, int64_t o, bool accumulate) {
  if (bias) s += bias[o];
  *yp = accumulate ? *yp + s : s;
}

}  // namespace

void quantize_acts(const float* x, int64_t x_stride, int64_t n_tokens, int64_t in_features, int64_t in_padded,
                   int8_t* a, float* d, int32_t* sums) {
  const int64_t n_blocks = in_padded / kQuantBlock;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * x_stride;
    int8_t* at = a + t * in_padded;
    for (int64_t b = 0; b < n_blocks; ++b) {
      float v[kQuantBlock];
      for (int64_t i = 0; i < kQuantBlock; ++i) {
        const int64_t k = b * kQuantBlock + i;
        v[i] = k < in_features ? xt[k] : 0.f;
      }
      float amax = 0.f;
      for (float e : v) amax = std::fabs(e) > amax ? std::fabs(e) : amax;
      const float db = amax / 127.0f;
      int32_t s = 0;
      for (int64_t i = 0; i < kQuantBlock; ++i) {
        int32_t q = 0;
        if (db != 0.f) {
          const float r = std::nearbyint(v[i] / db);  // the default rounding mode: half to even
          q = r > 127.f ? 127 : (r < -127.f ? -127 : static_cast<int32_t>(r));
        }
        at[b * kQuantBlock + i] = static_cast<int8_t>(q);
        s += q;
      }
      d[t * n_blocks + b] = db;
      sums[t * n_blocks + b] = s;
    }
  }
}

void int4_matmul(const Int4MatmulArgs& m) {
  const int64_t n_groups = (m.in_features + m.group_size - 1) / m.group_size;
  const int64_t bpg = m.group_size / kQuantBlock;
  const int64_t tile_bytes = int4_tile_bytes(m.in_features, m.group_size, m.sym);
  const int64_t nb = m.x.in_padded / kQuantBlock;
  const auto* w = static_cast<const uint8_t*>(m.w);
  for (int64_t tile = m.row_begin / kTile; tile * kTile < m.row_end; ++tile) {
    const int64_t o0 = tile * kTile;
    for (int64_t t = 0; t < m.n_tokens; ++t) {
      float acc[kTile];
      int4_tile(w + tile * tile_bytes, n_groups, bpg, m.sym, m.x.a + t * m.x.in_padded, m.x.d + t * nb,
                m.x.sums + t * nb, acc);
      for (int64_t r = 0; r < kTile; ++r) {
        const int64_t o = o0 + r;
        if (o >= m.row_begin && o < m.row_end) store(m.y + t * m.y_stride + o, acc[r], m.bias, o, m.accumulate);
      }
    }
  }
}

void int8_matmul(const Int8MatmulArgs& m) {
  const int64_t nb = m.x.in_padded / kQuantBlock;
  for (int64_t o = m.row_begin; o < m.row_end; ++o) {
    const float sc = half_to_f32(m.scale[o]);
    for (int64_t t = 0; t < m.n_tokens; ++t) {
      const float s = int8_dot(m.q + o * m.q_stride, m.in_features, m.x.a + t * m.x.in_padded, m.x.d + t * nb, sc);
      store(m.y + t * m.y_stride + o, s, m.bias, o, m.accumulate);
    }
  }
}

}  // namespace slm::kernels::generic
