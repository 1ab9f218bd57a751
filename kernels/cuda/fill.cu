// Random fills for benchmarks and device-side test data.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "slm/kernels/cuda.h"

namespace slm::kernels::cuda {
namespace {

__device__ __forceinline__ uint32_t hash32(uint32_t seed, uint64_t i) {
  uint32_t h = seed ^ uint32_t(i) ^ (uint32_t(i >> 32) * 0x9E3779B9u);
  h ^= h >> 16;
  h *= 0x7FEB352Du;
  h ^= h >> 15;
  h *= 0x846CA68Bu;
  h ^= h >> 16;
  return h;
}

__global__ void fill_u32_kernel(uint32_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    p[i] = hash32(seed, uint64_t(i));
  }
}

__global__ void fill_f16_kernel(__half* p, int64_t n, float lo, float hi, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float u = float(hash32(seed, uint64_t(i)) >> 8) * (1.f / 16777216.f);
    p[i] = __float2half_rn(lo + (hi - lo) * u);
  }
}

unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + 255) / 256;
  return unsigned(blocks < 8192 ? (blocks > 0 ? blocks : 1) : 8192);
}

}  // namespace

int fill_random_u32(void* data, int64_t bytes, uint32_t seed, void* stream) {
  if (bytes % 4 != 0 || bytes < 0) return int(cudaErrorInvalidValue);
  fill_u32_kernel<<<grid_for(bytes / 4), 256, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<uint32_t*>(data),
                                                                                     bytes / 4, seed);
  return int(cudaGetLastError());
}

int fill_random_f16(uint16_t* data, int64_t n, float lo, float hi, uint32_t seed, void* stream) {
  if (n < 0) return int(cudaErrorInvalidValue);
  fill_f16_kernel<<<grid_for(n), 256, 0, static_cast<cudaStream_t>(stream)>>>(reinterpret_cast<__half*>(data), n, lo,
                                                                             hi, seed);
  return int(cudaGetLastError());
}

}  // namespace slm::kernels::cuda
