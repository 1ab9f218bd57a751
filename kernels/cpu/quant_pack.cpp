// Canonical int4 -> the packed tile layout of slm/kernels/quant.h. Compiled without ISA flags
// (it runs once at load); every ISA's kernel table points here.
#include <cstdint>
#include <cstring>

#include "slm/kernels/quant.h"

namespace slm::kernels {

namespace {

constexpr int64_t kChunk = 64;                     // bytes per chunk: 16 rows x 4 bytes
constexpr int64_t kBlockBytes = 4 * kChunk;        // one block of 32 columns, 16 rows
constexpr int64_t kHeaderBytes = 64;               // per record
constexpr int64_t kScaleBytes = kInt4RowTile * 2;  // fp16 per row of a tile, one group

int64_t n_groups_of(int64_t in_features, int64_t group_size) { return (in_features + group_size - 1) / group_size; }

}  // namespace

int64_t int4_tile_bytes(int64_t in_features, int64_t group_size, bool sym) {
  const int64_t ng = n_groups_of(in_features, group_size);
  const int64_t per_record = sym ? 2 : 1;
  const int64_t n_records = (ng + per_record - 1) / per_record;
  return n_records * kHeaderBytes + ng * (group_size / kQuantBlock) * kBlockBytes;
}

int64_t int4_packed_size(int64_t n_out, int64_t in_features, int64_t group_size, bool sym) {
  const int64_t n_tiles = (n_out + kInt4RowTile - 1) / kInt4RowTile;
  return n_tiles * int4_tile_bytes(in_features, group_size, sym);
}

void int4_pack(const Int4PackArgs& a) {
  const bool sym = a.mins == nullptr;
  const int64_t ng = n_groups_of(a.in_features, a.group_size);
  const int64_t bpg = a.group_size / kQuantBlock;
  const int64_t per_record = sym ? 2 : 1;
  const int64_t record_bytes = kHeaderBytes + per_record * bpg * kBlockBytes;
  const int64_t tile_bytes = int4_tile_bytes(a.in_features, a.group_size, sym);
  for (int64_t tile = a.tile_begin; tile < a.tile_end; ++tile) {
    auto* out = static_cast<uint8_t*>(a.packed) + tile * tile_bytes;
    std::memset(out, 0, static_cast<size_t>(tile_bytes));
    for (int64_t r = 0; r < kInt4RowTile; ++r) {
      const int64_t o = tile * kInt4RowTile + r;
      if (o >= a.n_out) break;  // padding rows stay zero
      const uint8_t* row = a.qweight + o * a.qweight_stride;
      for (int64_t g = 0; g < ng; ++g) {
        uint8_t* rec = out + (g / per_record) * record_bytes;
        const int64_t slot = g % per_record;  // which group of the record
        std::memcpy(rec + slot * kScaleBytes + r * 2, a.scales + o * a.scales_stride + g, 2);
        if (!sym) std::memcpy(rec + kScaleBytes + r * 2, a.mins + o * a.mins_stride + g, 2);
        uint8_t* blocks = rec + kHeaderBytes + slot * bpg * kBlockBytes;
        for (int64_t bi = 0; bi < bpg; ++bi) {
          const int64_t b = g * bpg + bi;
          for (int64_t c = 0; c < 4; ++c) {
            // Canonical bytes p[0..3] hold columns 8c .. 8c+7 of the block (column 2j low, 2j+1 high).
            const uint8_t* p = row + b * 16 + c * 4;
            // Output byte i: low nibble = column 8c+i, high nibble = column 8c+4+i.
            uint8_t* q = blocks + bi * kBlockBytes + c * kChunk + r * 4;
            q[0] = static_cast<uint8_t>((p[0] & 0x0F) | ((p[2] & 0x0F) << 4));
            q[1] = static_cast<uint8_t>((p[0] >> 4) | (p[2] & 0xF0));
            q[2] = static_cast<uint8_t>((p[1] & 0x0F) | ((p[3] & 0x0F) << 4));
            q[3] = static_cast<uint8_t>((p[1] >> 4) | (p[3] & 0xF0));
          }
        }
      }
    }
  }
}

void int4_unpack(const Int4UnpackArgs& a) {
  const int64_t ng = n_groups_of(a.in_features, a.group_size);
  const int64_t bpg = a.group_size / kQuantBlock;
  const int64_t per_record = a.sym ? 2 : 1;
  const int64_t record_bytes = kHeaderBytes + per_record * bpg * kBlockBytes;
  const int64_t tile_bytes = int4_tile_bytes(a.in_features, a.group_size, a.sym);
  const int64_t row_bytes = ng * a.group_size / 2;
  for (int64_t o = 0; o < a.n_out; ++o) {
    const int64_t r = o % kInt4RowTile;
    const auto* tile = static_cast<const uint8_t*>(a.packed) + (o / kInt4RowTile) * tile_bytes;
    uint8_t* row = a.qweight + o * row_bytes;
    for (int64_t g = 0; g < ng; ++g) {
      const uint8_t* rec = tile + (g / per_record) * record_bytes;
      const int64_t slot = g % per_record;
      std::memcpy(a.scales + o * ng + g, rec + slot * kScaleBytes + r * 2, 2);
      if (!a.sym) std::memcpy(a.mins + o * ng + g, rec + kScaleBytes + r * 2, 2);
      const uint8_t* blocks = rec + kHeaderBytes + slot * bpg * kBlockBytes;
      for (int64_t bi = 0; bi < bpg; ++bi) {
        const int64_t b = g * bpg + bi;
        for (int64_t c = 0; c < 4; ++c) {
          const uint8_t* q = blocks + bi * kBlockBytes + c * kChunk + r * 4;
          uint8_t* p = row + b * 16 + c * 4;  // undoes int4_pack's shuffle
          p[0] = static_cast<uint8_t>((q[0] & 0x0F) | ((q[1] & 0x0F) << 4));
          p[1] = static_cast<uint8_t>((q[2] & 0x0F) | ((q[3] & 0x0F) << 4));
          p[2] = static_cast<uint8_t>((q[0] >> 4) | (q[1] & 0xF0));
          p[3] = static_cast<uint8_t>((q[2] >> 4) | (q[3] & 0xF0));
        }
      }
    }
  }
}

}  // namespace slm::kernels
