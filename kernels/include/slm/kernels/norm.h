// Normalisation of one activation row.
#pragma once
#include <cstdint>

namespace slm::kernels {

// y[i] = x[i] / sqrt(mean(x[0..n)^2) + eps) * w[i]   (RMSNorm, Zhang & Sennrich 2019).
// The mean is accumulated in float32. y may alias x.
using RmsNormFn = void (*)(const float* x, const float* w, float* y, int64_t n, float eps);

// y[i] = (x[i] - mean) / sqrt(var + eps) * w[i] + b[i] over x[0..n) (LayerNorm, Ba et al. 2016),
// mean and the biased variance computed in float32 in two passes. y may alias x.
using LayerNormFn = void (*)(const float* x, const float* w, const float* b, float* y, int64_t n, float eps);

}  // namespace slm::kernels
