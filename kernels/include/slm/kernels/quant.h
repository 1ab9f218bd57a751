// Quantized matrix products: int4 weights (DESIGN.md section 4) and int8 rows, against activations
// quantized to int8 in blocks of 32. Declarations and plain structs only: this header is included
// by files compiled with different ISA flags, so it must not contain inline code.
//
// Activations. Row t of x (float32, in_features values) becomes in_padded int8 values in blocks of
// 32 (x zero-padded to in_padded, a multiple of 32 >= in_features): per block b,
//   d = amax_b / 127.0f (float32 division), a_i = clamp(round_half_even(x_i / d), -127, 127)
// (float32 division, correctly rounded), and a_i = 0 for a block whose d is 0. sums[b] = sum of the
// 32 a_i (exact, |sums| <= 4064). Every ISA produces the same bits as the numpy reference
// (slmcore/reference/quant.py). Non-finite x gives unspecified values.
//
// The matmuls read whole blocks of activations: an int4 matmul reads round_up(in_features, G)
// values per token, an int8-row matmul round_up(in_features, 64); quantize with in_padded at least
// that (round_up(in_features, 128) serves every case).
#pragma once
#include <cstdint>

#include "slm/kernels/types.h"

namespace slm::kernels {

constexpr int64_t kQuantBlock = 32;  // activation block length along `in`

// Quantized activations of n_tokens rows, caller-owned.
//   a    int8    [n_tokens, in_padded]            (row stride in_padded)
//   d    float32 [n_tokens, in_padded / 32]
//   sums int32   [n_tokens, in_padded / 32]
struct QuantActs {
  const int8_t* a;
  const float* d;
  const int32_t* sums;
  int64_t in_padded;
};

// Quantizes rows x[t * x_stride : t * x_stride + in_features] for t in [0, n_tokens) into
// a/d/sums laid out as QuantActs with the given in_padded.
using QuantizeActsFn = void (*)(const float* x, int64_t x_stride, int64_t n_tokens, int64_t in_features,
                                int64_t in_padded, int8_t* a, float* d, int32_t* sums);

// ---------------------------------------------------------------------------------------------
// int4 weights, repacked once at load from the canonical format into a streaming layout.
//
// Packed layout (the same for every CPU ISA; kernels/cpu/quant_pack.cpp). Rows go in tiles of
// kInt4RowTile = 16 (the last tile zero-padded: nibbles 0, scales and mins 0). Each tile is one
// contiguous run of int4_tile_bytes(...) bytes, tiles in order. A tile is a sequence of records,
// each a 64-byte header followed by the blocks of the groups it covers, so that the kernels read
// the whole matrix strictly front to back (a stream the hardware prefetchers follow):
//   symmetric:  record r covers groups 2r and 2r + 1 (the last record only 2r when n_groups is
//               odd); header = scales fp16 [16 rows] of group 2r, then of group 2r + 1 (zeros if
//               absent);
//   asymmetric: record r covers group r; header = scales fp16 [16 rows], then mins fp16 [16 rows];
//   blocks:     for each block b of 32 columns, 256 bytes = 4 chunks of 64: chunk c, byte 4r + i
//               (row r of the tile, i in 0..3) holds in its low nibble the weight of column
//               32b + 8c + i and in its high nibble that of column 32b + 8c + 4 + i.
// Record r starts at r * (64 + groups_per_record * (G / 32) * 256) within its tile. Every 64-byte
// chunk stays 64-byte aligned relative to the tile, and the size is the canonical format's
// (0.5 + 2/G bytes per weight, +32 bytes per tile for an odd symmetric group count).
// So one 64-byte load feeds 16 rows: (chunk & 0x0F) and ((chunk >> 4) & 0x0F) are the unsigned
// byte operands of vpdpbusd whose 32-bit lane r is row r, against the 4 activation bytes
// a[32b + 8c .. +3] and a[32b + 8c + 4 .. +3] broadcast to every lane; outputs of a tile come out
// as one vector (lane = row) without any horizontal sum.
constexpr int64_t kInt4RowTile = 16;

struct Int4PackArgs {
  const uint8_t* qweight;    // [n_out, qweight_stride] bytes, in_padded / 2 used per row
  int64_t qweight_stride;    // bytes between rows
  const uint16_t* scales;    // fp16 bits [n_out, scales_stride], n_groups used per row
  int64_t scales_stride;     // elements between rows
  const uint16_t* mins;      // fp16 bits, same shape as scales; nullptr when symmetric
  int64_t mins_stride;
  int64_t n_out;
  int64_t in_features;       // in_padded = n_groups * group_size, n_groups = ceil(in_features / G)
  int64_t group_size;        // 32, 64 or 128
  int64_t tile_begin;        // pack tiles [tile_begin, tile_end) only (threads may split); the
  int64_t tile_end;          //   whole matrix is [0, ceil(n_out / 16))
  void* packed;              // start of the whole packed matrix (int4_packed_size bytes)
};

// Bytes of one packed tile and of the whole packed matrix. group_size must be 32, 64 or 128.
int64_t int4_tile_bytes(int64_t in_features, int64_t group_size, bool sym);
int64_t int4_packed_size(int64_t n_out, int64_t in_features, int64_t group_size, bool sym);
// Canonical -> packed (compiled without ISA flags; every ISA's table points here).
void int4_pack(const Int4PackArgs& args);

// Packed -> canonical (the inverse of int4_pack; for writing a quantized checkpoint from a loaded
// model). Writes qweight [n_out, in_padded / 2], scales and (asymmetric) mins [n_out, n_groups],
// rows contiguous; padding columns come back as the nibbles that were packed.
struct Int4UnpackArgs {
  const void* packed;
  int64_t n_out;
  int64_t in_features;
  int64_t group_size;
  bool sym;
  uint8_t* qweight;
  uint16_t* scales;
  uint16_t* mins;            // ignored when sym
};
void int4_unpack(const Int4UnpackArgs& args);

// Symmetric int4 quantization of rows stored as float32, float16 or bfloat16 (kernels/cpu/
// int4_quantize.inc; the numpy definition is slmcore/reference/quant.py's quantize_int4_sym, on
// the rows widened to float32). Per group of G elements (the last zero-padded): s0 =
// fp16(absmax / 7); with `search`, the candidates fp16(absmax / 7 * f) for each factor,
// fp16(extreme / -8) (extreme: the first element of largest magnitude, sign kept), then
// fp16(extreme / -8 * f) for each factor, then refit_rounds least-squares refits of the best
// scale so far; each candidate replaces the best only when its squared error is strictly
// smaller. Codes q = clamp(round_half_even(x / s), -8, 7) (0 where s is 0), stored as nibbles
// q + 8. Errors and dot products are sums of float64 squares and products in a fixed order (see
// the reference). Writes rows [row_begin, row_end) of qweight [rows, in_padded / 2] and scales
// [rows, n_groups] (fp16 bits).
struct Int4QuantizeArgs {
  const void* w;             // [rows, w_stride] in w_dtype, in_features used per row
  DType w_dtype;             // F32, F16 or BF16
  int64_t w_stride;          // elements between rows
  int64_t in_features;
  int64_t group_size;        // 32, 64 or 128
  int64_t row_begin;
  int64_t row_end;
  bool search;
  const float* factors;      // n_factors clipping factors (may be null when n_factors is 0)
  int n_factors;
  int refit_rounds;
  float* row_buffer;         // scratch of in_features floats, the caller's (one per thread)
  uint8_t* qweight;          // [rows, qweight_stride] bytes
  int64_t qweight_stride;
  uint16_t* scales;          // [rows, scales_stride] fp16 bits
  int64_t scales_stride;
};
// Where quantizing stopped: row < 0 when every row is done; else the first row that cannot be
// quantized (its output incomplete, later rows untouched): element `col` is NaN or infinite, or
// (col < 0) a group's absmax / 7 overflows float16.
struct Int4QuantizeStop {
  int64_t row;
  int64_t col;
};
using Int4QuantizeSymFn = Int4QuantizeStop (*)(const Int4QuantizeArgs& args);
// IEEE binary16 bits <-> float32 (round to nearest even; compiled without ISA flags), for the
// quantizer's per-group scales.
uint16_t f32_to_fp16_bits(float f);
float fp16_bits_to_f32(uint16_t h);

using Int4PackedSizeFn = int64_t (*)(int64_t n_out, int64_t in_features, int64_t group_size, bool sym);
using Int4PackFn = void (*)(const Int4PackArgs& args);

// For t in [0, n_tokens) and o in [row_begin, row_end):
//   y[t*y_stride + o] = (accumulate ? y[...] : 0) + s + (bias ? bias[o] : 0), where s is, per group
//   g in order and per block b of g in order, with the exact integer sums
//     isum_b = sum_i nibble_i * a_i - (sym ? 8 * sums_b : 0)
//   gacc = fma(float(isum_b), d_b, gacc) starting from 0 for each group, then
//   acc = fma(s_g, gacc, acc), then (asymmetric) acc = fma(m_g, D_g, acc) with
//   D_g = sum over the group's blocks in order of d_b * float(sums_b) (fma chain from 0); s = acc.
// Every ISA computes exactly this sequence (generic through std::fma), so int4 results are also
// bitwise equal across ISAs.
// Each output's value depends only on its own row, token and in_features: never on n_tokens or on
// the row range. Rows go in tiles of 16: a range not aligned to 16 computes its edge tiles whole
// and stores only its own rows, so threads should split at multiples of kInt4RowTile.
struct Int4MatmulArgs {
  QuantActs x;               // in_padded >= n_groups * G
  const void* w;             // packed (int4_pack); any alignment, 64 bytes is best
  int64_t in_features;
  int64_t group_size;
  bool sym;
  float* y;
  int64_t y_stride;
  int64_t n_tokens;
  int64_t row_begin;
  int64_t row_end;           // <= n_out of the packed matrix
  const float* bias;         // nullable, float32 [n_out]
  bool accumulate;
};

using Int4MatmulFn = void (*)(const Int4MatmulArgs& args);

// ---------------------------------------------------------------------------------------------
// int8 rows (embedding / lm_head), used in place: q int8 [n_out, q_stride] (in_features used per
// row, any alignment) and scale fp16 [n_out]; w[o, i] = scale[o] * q[o, i].
//   y[t*y_stride + o] = (accumulate ? y[...] : 0) + s + (bias ? bias[o] : 0),
//   s = (sum over blocks b of d_b * float(sum_i q_i * a_i), in the ISA's fixed order) * scale[o].
// Same invariance as the int4 matmul: nothing depends on n_tokens or on the row range.
struct Int8MatmulArgs {
  QuantActs x;               // in_padded >= round_up(in_features, 64)
  const int8_t* q;
  int64_t q_stride;          // bytes between rows
  const uint16_t* scale;     // fp16 bits [n_out]
  int64_t in_features;
  float* y;
  int64_t y_stride;
  int64_t n_tokens;
  int64_t row_begin;
  int64_t row_end;
  const float* bias;         // nullable, float32 [n_out]
  bool accumulate;
};

using Int8MatmulFn = void (*)(const Int8MatmulArgs& args);

}  // namespace slm::kernels
