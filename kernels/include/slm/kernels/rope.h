// Rotary position embedding (Su et al. 2021) applied in place to the heads of one token.
#pragma once
#include <cstdint>

namespace slm::kernels {

enum class RopeStyle : int32_t {
  // HF `rotate_half` (GPT-NeoX, Llama): dimension i pairs with i + rotary_dim/2.
  Neox = 0,
  // GPT-J / Meta original: dimension 2i pairs with 2i+1.
  Interleaved = 1,
};

// x: float32 [n_heads, head_dim]; only the first rotary_dim (even, <= head_dim) dimensions of
// each head rotate. cos/sin: float32 [rotary_dim/2], the angles of this token's position.
// For pair (a, b) with angle index j:  a' = a*cos[j] - b*sin[j],  b' = b*cos[j] + a*sin[j].
using RopeFn = void (*)(float* x, int64_t n_heads, int64_t head_dim, int64_t rotary_dim,
                        const float* cos, const float* sin, RopeStyle style);

}  // namespace slm::kernels
