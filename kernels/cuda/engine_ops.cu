// Small kernels of the CUDA decode step: the int8-row GEMV of the lm_head and element-wise ops.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "block_reduce.cuh"
#include "slm/kernels/cuda.h"

namespace slm::kernels::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return unsigned(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

// One warp per row; lanes stride the row four int8 at a time, the tail one at a time.
__global__ void int8_rows_gemv_kernel(const int8_t* __restrict__ q, const __half* __restrict__ scales,
                                      const __half* __restrict__ x, float* __restrict__ y, int64_t rows,
                                      int64_t cols) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
    const int8_t* row = q + r * cols;
    float acc = 0.f;
    const int64_t body = (reinterpret_cast<uintptr_t>(row) % 4 == 0) ? cols / 4 * 4 : 0;
    for (int64_t c = int64_t(lane) * 4; c < body; c += 128) {
      const char4 v = *reinterpret_cast<const char4*>(row + c);
      acc = fmaf(float(v.x), __half2float(x[c]), acc);
      acc = fmaf(float(v.y), __half2float(x[c + 1]), acc);
      acc = fmaf(float(v.z), __half2float(x[c + 2]), acc);
      acc = fmaf(float(v.w), __half2float(x[c + 3]), acc);
    }
    for (int64_t c = body + lane; c < cols; c += 32) acc = fmaf(float(row[c]), __half2float(x[c]), acc);
    acc = warp_sum(acc);
    if (lane == 0) y[r] = __half2float(scales[r]) * acc;
  }
}

__global__ void add_into_kernel(float* x, const float* y, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v = x[i];
    if (y) v += y[i];
    if (b) v += b[i];
    x[i] = v;
  }
}

__global__ void to_half_kernel(const float* x, __half* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = __float2half_rn(x[i]);
  }
}

__global__ void soft_cap_kernel(float* x, int64_t n, float cap) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    x[i] = cap * tanhf(x[i] / cap);
  }
}

__global__ void embed_int8_row_kernel(const int8_t* q, const __half* scales, const int32_t* tokens,
                                      const int32_t* position, int64_t cols, float mult, float* out) {
  const int64_t token = tokens[*position];
  const float s = __half2float(scales[token]);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < cols; i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = (s * float(q[token * cols + i])) * mult;  // the host lookup's order: bitwise the same
  }
}

__global__ void advance_kernel(int32_t* position) { *position += 1; }

}  // namespace

int embed_int8_row(const int8_t* q, const uint16_t* scales, const int32_t* tokens, const int32_t* position,
                   int64_t cols, float mult, float* out, void* stream) {
  if (!q || !scales || !tokens || !position || !out || cols <= 0) return int(cudaErrorInvalidValue);
  embed_int8_row_kernel<<<blocks_for(cols), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      q, reinterpret_cast<const __half*>(scales), tokens, position, cols, mult, out);
  return int(cudaGetLastError());
}

int advance_position(int32_t* position, void* stream) {
  if (!position) return int(cudaErrorInvalidValue);
  advance_kernel<<<1, 1, 0, static_cast<cudaStream_t>(stream)>>>(position);
  return int(cudaGetLastError());
}

int int8_rows_gemv(const int8_t* q, const uint16_t* scales, const uint16_t* x, float* y, int64_t rows, int64_t cols,
                   void* stream) {
  if (rows <= 0 || cols <= 0) return int(cudaErrorInvalidValue);
  const int64_t blocks = (rows + kThreads / 32 - 1) / (kThreads / 32);
  int8_rows_gemv_kernel<<<unsigned(blocks < 65535 ? blocks : 65535), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      q, reinterpret_cast<const __half*>(scales), reinterpret_cast<const __half*>(x), y, rows, cols);
  return int(cudaGetLastError());
}

int add_into(float* x, const float* y, const float* b, int64_t n, void* stream) {
  if (n < 0) return int(cudaErrorInvalidValue);
  if (n == 0 || (!y && !b)) return 0;
  add_into_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, y, b, n);
  return int(cudaGetLastError());
}

int to_half(const float* x, uint16_t* out, int64_t n, void* stream) {
  if (n < 0) return int(cudaErrorInvalidValue);
  if (n == 0) return 0;
  to_half_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, reinterpret_cast<__half*>(out), n);
  return int(cudaGetLastError());
}

int soft_cap(float* x, int64_t n, float cap, void* stream) {
  if (n < 0 || !(cap > 0.f)) return int(cudaErrorInvalidValue);
  if (n == 0) return 0;
  soft_cap_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, n, cap);
  return int(cudaGetLastError());
}

}  // namespace slm::kernels::cuda
