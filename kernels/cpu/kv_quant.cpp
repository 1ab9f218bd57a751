// The int8 KV cache's row quantization (slm/kernels/attention.h). Compiled without ISA flags;
// every ISA's kernel table points here.
#include <cmath>
#include <cstdint>

#include "slm/kernels/attention.h"

namespace slm::kernels {

void quantize_kv(const float* x, int64_t n, int8_t* q, float* scale) {
  float amax = 0.f;
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    finite = finite && std::isfinite(a);
    amax = a > amax ? a : amax;
  }
  const float d = amax / 127.0f;  // 0 for an all-zero row (or one of tiny subnormals)
  if (!finite || d == 0.f) {
    for (int64_t i = 0; i < n; ++i) q[i] = 0;
    *scale = finite ? 0.f : NAN;
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    // nearbyint rounds half to even in the default rounding mode; |x / d| <= 127 up to one rounding.
    const float r = std::nearbyint(x[i] / d);
    q[i] = static_cast<int8_t>(r > 127.f ? 127.f : (r < -127.f ? -127.f : r));
  }
  *scale = d;
}

}  // namespace slm::kernels
