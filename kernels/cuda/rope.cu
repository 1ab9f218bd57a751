// Rotary position embedding of one token's q and k heads, in place: one thread per rotated pair.
#include <cuda_runtime.h>

#include "slm/kernels/cuda.h"

namespace slm::kernels::cuda {
namespace {

// Pair p of the rotated ones, over q's heads then k's: head p / half, angle index j = p % half.
__global__ void rope_kernel(float* q, int64_t n_heads, float* k, int64_t n_pairs, int64_t head_dim, int64_t half,
                            const float* cos, const float* sin, bool interleaved, const int32_t* position) {
  if (position) {
    cos += int64_t(*position) * half;
    sin += int64_t(*position) * half;
  }
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < n_pairs; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t head = p / half, j = p % half;
    float* x = head < n_heads ? q + head * head_dim : k + (head - n_heads) * head_dim;
    const int64_t ia = interleaved ? 2 * j : j;
    const int64_t ib = interleaved ? 2 * j + 1 : j + half;
    const float a = x[ia], b = x[ib], c = cos[j], s = sin[j];
    x[ia] = a * c - b * s;
    x[ib] = b * c + a * s;
  }
}

}  // namespace

int rope(float* q, int64_t n_heads, float* k, int64_t n_kv_heads, int64_t head_dim, int64_t rotary_dim,
         const float* cos, const float* sin, RopeStyle style, void* stream, const int32_t* position) {
  if (n_heads < 0 || n_kv_heads < 0 || (n_heads > 0 && !q) || (n_kv_heads > 0 && !k) || rotary_dim < 0 ||
      rotary_dim % 2 != 0 || rotary_dim > head_dim || (rotary_dim > 0 && (!cos || !sin)) ||
      (style != RopeStyle::Neox && style != RopeStyle::Interleaved)) {
    return int(cudaErrorInvalidValue);
  }
  const int64_t half = rotary_dim / 2, n_pairs = (n_heads + n_kv_heads) * half;
  if (n_pairs == 0) return 0;
  const int threads = 256;
  const int64_t blocks = (n_pairs + threads - 1) / threads;
  rope_kernel<<<unsigned(blocks < 65535 ? blocks : 65535), threads, 0, static_cast<cudaStream_t>(stream)>>>(
      q, n_heads, k, n_pairs, head_dim, half, cos, sin, style == RopeStyle::Interleaved, position);
  return int(cudaGetLastError());
}

}  // namespace slm::kernels::cuda
