// Scalar RMSNorm and LayerNorm, the sums accumulated in float32 with a fixed 8-way split.
#include <cmath>
#include <cstdint>

#include "kernels.h"

namespace slm::kernels::generic {

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  float s[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) s[k] += x[i + k] * x[i + k];
  }
  for (int k = 0; i < n; ++i, ++k) s[k] += x[i] * x[i];
  const float ss = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (i = 0; i < n; ++i) y[i] = x[i] * inv * w[i];  // y may alias x: elementwise
}

void layernorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  float s[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) s[k] += x[i + k];
  }
  for (int k = 0; i < n; ++i, ++k) s[k] += x[i];
  const float mean = (((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))) / static_cast<float>(n);
  for (float& v : s) v = 0.f;
  for (i = 0; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) s[k] += (x[i + k] - mean) * (x[i + k] - mean);
  }
  for (int k = 0; i < n; ++i, ++k) s[k] += (x[i] - mean) * (x[i] - mean);
  const float var = (((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))) / static_cast<float>(n);
  const float inv = 1.0f / std::sqrt(var + eps);
  for (i = 0; i < n; ++i) y[i] = (x[i] - mean) * inv * w[i] + b[i];  // y may alias x: elementwise
}

}  // namespace slm::kernels::generic
