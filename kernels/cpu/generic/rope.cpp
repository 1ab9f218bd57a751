// Scalar rotary position embedding, in place, both pairings.
#include <cstdint>

#include "kernels.h"

namespace slm::kernels::generic {

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rotary_dim, const float* cos,
          const float* sin, RopeStyle style) {
  const int64_t half = rotary_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    for (int64_t j = 0; j < half; ++j) {
      // Neox pairs (j, j + half); interleaved pairs (2j, 2j + 1).
      float* pa = style == RopeStyle::Neox ? xh + j : xh + 2 * j;
      float* pb = style == RopeStyle::Neox ? xh + j + half : xh + 2 * j + 1;
      const float a = *pa, b = *pb, c = cos[j], s = sin[j];
      *pa = a * c - b * s;
      *pb = b * c + a * s;
    }
  }
}

}  // namespace slm::kernels::generic
