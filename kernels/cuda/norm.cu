// RMSNorm and LayerNorm of activation rows (decode: one block per row). The statistics are
// float32 block reductions; each thread then normalises the same elements it read, so y32 may
// alias x.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "block_reduce.cuh"
#include "slm/kernels/cuda.h"

namespace slm::kernels::cuda {
namespace {

constexpr int kNormThreads = 256;

__device__ __forceinline__ void store(float* y32, __half* y16, int64_t i, float v) {
  if (y32) y32[i] = v;
  if (y16) y16[i] = __float2half_rn(v);
}

__global__ void __launch_bounds__(kNormThreads) rms_norm_kernel(const float* x, const float* w, float* y32,
                                                                 __half* y16, int64_t n, float eps) {
  __shared__ float scratch[kWarp];
  const int64_t row = blockIdx.x;
  x += row * n;
  float sum_sq = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum_sq = fmaf(x[i], x[i], sum_sq);
  sum_sq = block_sum(sum_sq, scratch);
  const float inv_rms = 1.f / sqrtf(sum_sq / float(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    store(y32 ? y32 + row * n : nullptr, y16 ? y16 + row * n : nullptr, i, x[i] * inv_rms * w[i]);
  }
}

__global__ void __launch_bounds__(kNormThreads) layer_norm_kernel(const float* x, const float* w, const float* b,
                                                                   float* y32, __half* y16, int64_t n, float eps) {
  __shared__ float scratch[kWarp];
  const int64_t row = blockIdx.x;
  x += row * n;
  float sum = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += x[i];
  const float mean = block_sum(sum, scratch) / float(n);
  float sum_sq = 0.f;  // biased variance, second pass over the centred values
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float d = x[i] - mean;
    sum_sq = fmaf(d, d, sum_sq);
  }
  const float inv_std = 1.f / sqrtf(block_sum(sum_sq, scratch) / float(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    store(y32 ? y32 + row * n : nullptr, y16 ? y16 + row * n : nullptr, i, (x[i] - mean) * inv_std * w[i] + b[i]);
  }
}

bool bad_norm_args(const float* x, const float* w, const void* y32, const void* y16, int64_t rows, int64_t n) {
  return !x || !w || (!y32 && !y16) || rows < 1 || rows > 0x7FFFFFFF || n < 1;
}

}  // namespace

int rms_norm(const float* x, const float* w, float* y32, uint16_t* y16, int64_t rows, int64_t n, float eps,
             void* stream) {
  if (bad_norm_args(x, w, y32, y16, rows, n)) return int(cudaErrorInvalidValue);
  rms_norm_kernel<<<unsigned(rows), kNormThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, w, y32, reinterpret_cast<__half*>(y16), n, eps);
  return int(cudaGetLastError());
}

int layer_norm(const float* x, const float* w, const float* b, float* y32, uint16_t* y16, int64_t rows, int64_t n,
               float eps, void* stream) {
  if (bad_norm_args(x, w, y32, y16, rows, n) || !b) return int(cudaErrorInvalidValue);
  layer_norm_kernel<<<unsigned(rows), kNormThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, w, b, y32, reinterpret_cast<__half*>(y16), n, eps);
  return int(cudaGetLastError());
}

}  // namespace slm::kernels::cuda
