// Elementwise activations of the MLP.
#pragma once
#include <cstdint>

namespace slm::kernels {

// out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x))  (SwiGLU, Shazeer 2020).
// out may alias gate or up.
using SwiGluFn = void (*)(const float* gate, const float* up, float* out, int64_t n);

}  // namespace slm::kernels
