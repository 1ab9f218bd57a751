// The MLP's elementwise activations for one token: float32 in, fp16 out (the input of the
// down_proj GEMV) and optionally float32 out. Same formulas as kernels/include/slm/kernels/activation.h.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "slm/kernels/cuda.h"

namespace slm::kernels::cuda {
namespace {

__device__ __forceinline__ float silu(float x) { return x / (1.f + expf(-x)); }

// x * sigmoid(2z), z = sqrt(2/pi) (x + 0.044715 x^3): 0.5 x (1 + tanh z) without the cancellation
// of 1 + tanh z for z << 0 (the same evaluation as the CPU kernels and the numpy reference).
__device__ __forceinline__ float gelu_tanh(float x) {
  const float z2 = 1.5957691216057308f * (x + 0.044715f * x * x * x);
  const float e = expf(-fabsf(z2));
  return x * (z2 >= 0.f ? 1.f : e) / (1.f + e);
}

__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * erfcf(-x * 0.70710678118654752f); }

template <Activation kKind>
__global__ void activation_kernel(const float* gate, const float* up, __half* out16, float* out32, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float y;
    if constexpr (kKind == Activation::SwiGlu) {
      y = silu(gate[i]) * up[i];
    } else if constexpr (kKind == Activation::GeGlu) {
      y = gelu_tanh(gate[i]) * up[i];
    } else if constexpr (kKind == Activation::GeluTanh) {
      y = gelu_tanh(gate[i]);
    } else {
      y = gelu_erf(gate[i]);
    }
    if (out16) out16[i] = __float2half_rn(y);
    if (out32) out32[i] = y;
  }
}

}  // namespace

int activation(Activation kind, const float* gate, const float* up, uint16_t* out16, float* out32, int64_t n,
               void* stream) {
  const bool gated = activation_is_gated(kind);
  if (n < 0 || !gate || (gated && !up) || (!out16 && !out32)) return int(cudaErrorInvalidValue);
  if (n == 0) return 0;
  const int threads = 256;
  const int64_t blocks64 = (n + threads - 1) / threads;
  const unsigned blocks = unsigned(blocks64 < 65535 ? blocks64 : 65535);
  const auto s = static_cast<cudaStream_t>(stream);
  auto* o16 = reinterpret_cast<__half*>(out16);
  switch (kind) {
    case Activation::SwiGlu:
      activation_kernel<Activation::SwiGlu><<<blocks, threads, 0, s>>>(gate, up, o16, out32, n);
      break;
    case Activation::GeGlu:
      activation_kernel<Activation::GeGlu><<<blocks, threads, 0, s>>>(gate, up, o16, out32, n);
      break;
    case Activation::GeluTanh:
      activation_kernel<Activation::GeluTanh><<<blocks, threads, 0, s>>>(gate, up, o16, out32, n);
      break;
    case Activation::GeluErf:
      activation_kernel<Activation::GeluErf><<<blocks, threads, 0, s>>>(gate, up, o16, out32, n);
      break;
    default:
      return int(cudaErrorInvalidValue);
  }
  return int(cudaGetLastError());
}

}  // namespace slm::kernels::cuda
