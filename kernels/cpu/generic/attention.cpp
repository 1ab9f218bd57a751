// Scalar attention of one query head over cached positions [kv_begin, kv_end), K/V in f32, f16,
// bf16 or int8 with a float32 scale per row (the int8 KV cache); several queries run one by one.
#include <cmath>
#include <cstdint>

#include "common.h"
#include "kernels.h"

namespace slm::kernels::generic {

namespace {

template <DType D>
constexpr int64_t elem_size() {
  return D == DType::F32 ? 4 : D == DType::I8 ? 1 : 2;
}

template <DType D>
float load_kv(const unsigned char* p) {
  if constexpr (D == DType::F32) return load_f32(p);
  if constexpr (D == DType::F16) return half_to_f32(load_u16(p));
  if constexpr (D == DType::BF16) return bf16_to_f32(load_u16(p));
  if constexpr (D == DType::I8) return static_cast<float>(static_cast<signed char>(*p));
}

// What multiplies dot(q, stored row) to give the score: the attention scale, times the row's
// scale for the int8 cache (its rows store K / k_scale).
template <DType D>
float score_scale(const AttentionArgs& a, int64_t row) {
  if constexpr (D == DType::I8) return a.scale * a.k_scale[row];
  return a.scale;
}

template <DType D>
void attention_impl(const AttentionArgs& a) {
  constexpr int64_t es = elem_size<D>();
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
    float score = score_scale<D>(a, a.kv_begin + j) * ((s[0] + s[1]) + (s[2] + s[3]));
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
    float p = a.scores[j];
    if constexpr (D == DType::I8) p *= a.v_scale[a.kv_begin + j];  // the row's scale folded into its weight
    for (int64_t d = 0; d < hd; ++d) a.out[d] += p * load_kv<D>(vr + d * es);
  }
  for (int64_t d = 0; d < hd; ++d) a.out[d] /= sum;
}

void attention_one(const AttentionArgs& a) {
  switch (a.kv_dtype) {
    case DType::F32: return attention_impl<DType::F32>(a);
    case DType::F16: return attention_impl<DType::F16>(a);
    case DType::BF16: return attention_impl<DType::BF16>(a);
    case DType::I8: return attention_impl<DType::I8>(a);
  }
}

}  // namespace

void attention(const AttentionArgs& a) { attention_each_query(a, &attention_one); }

}  // namespace slm::kernels::generic
