// Scalar gated activations: SwiGLU out = silu(gate) * up, GeGLU out = gelu_tanh(gate) * up.
#include <cmath>
#include <cstdint>

#include "kernels.h"

namespace slm::kernels::generic {

namespace {

// sigmoid(z) = 1/(1+e) for z >= 0 and e/(1+e) for z < 0, where e = exp(-|z|) <= 1 never
// overflows: accurate down to gradual underflow for z << 0.
float sigmoid(float z) {
  const float e = std::exp(-std::fabs(z));
  return (z >= 0.0f ? 1.0f : e) / (1.0f + e);
}

// 2 * sqrt(2/pi): gelu_tanh(x) = x * sigmoid(kGeluScale * (x + 0.044715 x^3)).
constexpr float kGeluScale = 1.5957691216057308f;
constexpr float kGeluCubic = 0.044715f;

}  // namespace

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g * sigmoid(g) * up[i];
  }
}

void geglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g * sigmoid(kGeluScale * (g + kGeluCubic * g * g * g)) * up[i];
  }
}

void gelu_tanh(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = x[i];
    out[i] = g * sigmoid(kGeluScale * (g + kGeluCubic * g * g * g));
  }
}

void gelu_erf(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = 0.5f * x[i] * std::erfc(-x[i] * 0.70710678118654752f);
}

}  // namespace slm::kernels::generic
