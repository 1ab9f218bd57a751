// Elementwise activations of the MLP.
#pragma once
#include <cstdint>

namespace slm::kernels {

// out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x))  (SwiGLU, Shazeer 2020).
// out may alias gate or up.
using SwiGluFn = void (*)(const float* gate, const float* up, float* out, int64_t n);

// out[i] = gelu_tanh(gate[i]) * up[i] (GeGLU, Gemma's MLP), with the tanh approximation of GELU
// gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) = x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)).
// out may alias gate or up.
using GeGluFn = void (*)(const float* gate, const float* up, float* out, int64_t n);

// out[i] = gelu_tanh(x[i]) (the plain, ungated MLP of GPT-2 style models). out may alias x.
// gelu_erf is the exact GELU x * Phi(x) = x * erfc(-x / sqrt(2)) / 2 (Falcon).
using GeluFn = void (*)(const float* x, float* out, int64_t n);

}  // namespace slm::kernels
