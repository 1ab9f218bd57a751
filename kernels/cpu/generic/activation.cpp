// Scalar SwiGLU: out = silu(gate) * up.
#include <cmath>
#include <cstdint>

#include "kernels.h"

namespace slm::kernels::generic {

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  // silu(g) = g * sigmoid(g) with sigmoid(g) = 1/(1+e) for g >= 0 and e/(1+e) for g < 0, where
  // e = exp(-|g|) <= 1 never overflows: accurate down to silu's gradual underflow for g << 0.
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float e = std::exp(-std::fabs(g));
    const float sig = (g >= 0.0f ? 1.0f : e) / (1.0f + e);
    out[i] = g * sig * up[i];
  }
}

}  // namespace slm::kernels::generic
