// Normalisation of one activation row.
#pragma once
#include <cstdint>

namespace slm::kernels {

// y[i] = x[i] / sqrt(mean(x[0..n)^2) + eps) * w[i]   (RMSNorm, Zhang & Sennrich 2019).
// The mean is accumulated in float32. y may alias x.
using RmsNormFn = void (*)(const float* x, const float* w, float* y, int64_t n, float eps);

}  // namespace slm::kernels
