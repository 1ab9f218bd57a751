// Scalar attention of one query head over cached positions [kv_begin, kv_end).
#include <cmath>
#include <cstdint>

#include "common.h"
#include "kernels.h"

namespace slm::kernels::generic {

namespace {

template <DType D>
float load_kv(const unsigned char* p) {
  if constexpr (D == DType::F32) return load_f32(p);
  if constexpr (D == DType::F16) return half_to_f32(load_u16(p));
  if constexpr (D == DType::BF16) return bf16_to_f32(load_u16(p));
}

template <DType D>
void attention_impl(const AttentionArgs& a) {
  constexpr int64_t es = D == DType::F32 ? 4 : 2;
  const auto* k = static_cast<const unsigned char*>(a.k);
  const auto* v = static_cast<const unsigned char*>(a.v);
  const int64_t n = a.kv_end - a.kv_begin, hd = a.head_dim;
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const unsigned char* kr = k + (a.kv_begin + j) * a.kv_stride * es;
    float s[4] = {0.f, 0.f, 0.f, 0.f};
    int64_t d = 0;
    for (; d + 4 <= hd; d += 4) {
      for (int u = 0; u < 4; ++u) s[u] += a.q[d + u] * load_kv<D>(kr + (d + u) * es);
    }
    for (int u = 0; d < hd; ++d, ++u) s[u] += a.q[d] * load_kv<D>(kr + d * es);
    float score = a.scale * ((s[0] + s[1]) + (s[2] + s[3]));
    if (a.softcap > 0.f) score = a.softcap * std::tanh(score / a.softcap);
    if (a.alibi_slope != 0.f) score += a.alibi_slope * static_cast<float>(j - (n - 1));
    a.scores[j] = score;
    mx = score > mx ? score : mx;
  }
  float sum = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    const float p = std::exp(a.scores[j] - mx);
    a.scores[j] = p;
    sum += p;
  }
  for (int64_t d = 0; d < hd; ++d) a.out[d] = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    const unsigned char* vr = v + (a.kv_begin + j) * a.kv_stride * es;
    const float p = a.scores[j];
    for (int64_t d = 0; d < hd; ++d) a.out[d] += p * load_kv<D>(vr + d * es);
  }
  for (int64_t d = 0; d < hd; ++d) a.out[d] /= sum;
}

}  // namespace

void attention(const AttentionArgs& a) {
  switch (a.kv_dtype) {
    case DType::F32: return attention_impl<DType::F32>(a);
    case DType::F16: return attention_impl<DType::F16>(a);
    case DType::BF16: return attention_impl<DType::BF16>(a);
  }
}

}  // namespace slm::kernels::generic
