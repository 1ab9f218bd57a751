// Block-wide reductions shared by the CUDA kernels (included by .cu files only).
#pragma once
#include <cuda_runtime.h>

namespace slm::kernels::cuda {

constexpr int kWarp = 32;

// The sum over the warp's 32 lanes (a butterfly: every lane gets it), for float, double or int.
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int off = kWarp / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = kWarp / 2; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
  return v;
}

// The sum (or max) over all threads of the block, returned to every thread. blockDim.x must be a
// multiple of 32 and at most 1024; `scratch` is __shared__ T[32]. Every thread of the block must
// call it (it synchronizes). The order of the additions depends only on blockDim.x, so results
// are reproducible run to run.
template <class T>
__device__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, n_warps = blockDim.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T total = scratch[0];
  for (int w = 1; w < n_warps; ++w) total += scratch[w];
  return total;
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, n_warps = blockDim.x / kWarp;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float m = scratch[0];
  for (int w = 1; w < n_warps; ++w) m = fmaxf(m, scratch[w]);
  return m;
}

}  // namespace slm::kernels::cuda
