// Scalar reference matmul: y[t, o] (+)= dot(x[t, :], W[o, :]) + bias[o].
//
// Every output is one call of dot<D>() below: 8 partial sums (element i goes to sum i % 8),
// reduced by a fixed tree, then the bias is added, then the result is accumulated into y. The
// order depends only on in_features, never on n_tokens or the row range.
#include <cstdint>

#include "common.h"
#include "kernels.h"

#if defined(__GNUC__)
#define SLM_NOINLINE __attribute__((noinline))
#else
#define SLM_NOINLINE
#endif

namespace slm::kernels::generic {

namespace {

template <DType D>
float load_w(const unsigned char* p) {
  if constexpr (D == DType::F32) return load_f32(p);
  if constexpr (D == DType::F16) return half_to_f32(load_u16(p));
  if constexpr (D == DType::BF16) return bf16_to_f32(load_u16(p));
}

// One compiled copy per dtype (noinline), so that every output goes through the same instructions
// even where a compiler would contract a*b+c differently in different inlined contexts.
// x and w may be misaligned: both are read through byte pointers.
template <DType D>
SLM_NOINLINE float dot(const unsigned char* x, const unsigned char* w, int64_t n) {
  constexpr int64_t es = D == DType::F32 ? 4 : 2;
  float s[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) s[k] += load_f32(x + (i + k) * 4) * load_w<D>(w + (i + k) * es);
  }
  for (int k = 0; i < n; ++i, ++k) s[k] += load_f32(x + i * 4) * load_w<D>(w + i * es);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <DType D>
void matmul_impl(const MatmulArgs& a) {
  constexpr int64_t es = D == DType::F32 ? 4 : 2;
  const auto* w = static_cast<const unsigned char*>(a.w);
  for (int64_t o = a.row_begin; o < a.row_end; ++o) {
    const unsigned char* wr = w + o * a.w_stride * es;
    const float b = a.bias ? a.bias[o] : 0.f;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const auto* xt = reinterpret_cast<const unsigned char*>(a.x) + t * a.x_stride * 4;
      float s = dot<D>(xt, wr, a.in_features);
      if (a.bias) s += b;
      float* yp = a.y + t * a.y_stride + o;
      *yp = a.accumulate ? *yp + s : s;
    }
  }
}

}  // namespace

void matmul(const MatmulArgs& a) {
  switch (a.w_dtype) {
    case DType::F32: return matmul_impl<DType::F32>(a);
    case DType::F16: return matmul_impl<DType::F16>(a);
    case DType::BF16: return matmul_impl<DType::BF16>(a);
  }
}

}  // namespace slm::kernels::generic
