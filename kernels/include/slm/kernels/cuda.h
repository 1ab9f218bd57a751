// CUDA kernels (kernels/cuda/*.cu). Compiled only when the CUDA backend is built (SLM_CUDA).
//
// Every launcher is asynchronous on `stream` (a cudaStream_t passed as void*, so that this header
// needs no CUDA include), never synchronizes, never throws, and returns a cudaError_t as int:
// 0 on success, else the error of the launch. Pointers are device pointers.
#pragma once
#include <cstdint>

namespace slm::kernels::cuda {

// int4 weights in the GPU layout. The canonical format (DESIGN.md section 4) stores row-major
// bytes, element 2j in the low nibble of byte j. The GPU layout keeps rows and 16-byte chunks of
// 32 elements in place and only reorders the nibbles inside each 32-bit word, so that one AND
// with 0x000F000F (or 0x00F000F0) lifts two neighbouring elements into the two halves of a half2:
//   nibble position  0  1  2  3  4  5  6  7   (bits 4p..4p+3 of the little-endian word)
//   element          0  2  4  6  1  3  5  7   (of the word's 8 elements)
//
// The buffers hold round_up(rows, kInt4RowPad) rows, so that kernels may stream whole tiles of
// rows; the extra rows' contents never reach a result.
constexpr int64_t kInt4RowPad = 32;

struct Int4Matrix {
  const uint8_t* packed = nullptr;   // [rows][cols_padded / 2], GPU layout
  const uint16_t* scales = nullptr;  // fp16 [rows][cols_padded / group_size]
  const uint16_t* mins = nullptr;    // fp16 like scales when asymmetric, else nullptr
  int64_t rows = 0;
  int64_t cols_padded = 0;           // a multiple of group_size
  int group_size = 128;              // 32, 64 or 128
};

inline int64_t int4_rows_allocated(int64_t rows) { return (rows + kInt4RowPad - 1) / kInt4RowPad * kInt4RowPad; }

// Canonical -> GPU layout, one 32-bit word at a time (in place allowed). `bytes` % 4 == 0.
int int4_to_gpu_layout(const uint8_t* canonical, uint8_t* gpu, int64_t bytes, void* stream);

// y[r] = sum_k w[r, k] * x[k] for one token: x is fp16 [cols_padded] (zero past the real cols),
// y is float32 [rows]. Dequantizes in registers, multiplies in fp16 pairs over each 32-element
// chunk and accumulates chunks in float32. With `pdl` the launch allows programmatic dependent
// launch (sm_90+): it may start while the previous kernel on the stream finishes, prefetching its
// weights, and reads x only once that kernel is done.
int int4_gemv(const Int4Matrix& w, const uint16_t* x, float* y, void* stream, bool pdl = false);

}  // namespace slm::kernels::cuda

namespace slm::kernels::cuda {

// Fill `bytes` bytes (a multiple of 4) with a counter-based hash of (seed, index): cheap random
// data for benchmarks, which must never run on zeros.
int fill_random_u32(void* data, int64_t bytes, uint32_t seed, void* stream);

// fp16 values uniform in [lo, hi) from the same hash.
int fill_random_f16(uint16_t* data, int64_t n, float lo, float hi, uint32_t seed, void* stream);

}  // namespace slm::kernels::cuda
