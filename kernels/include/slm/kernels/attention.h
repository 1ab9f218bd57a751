// Scaled dot-product attention of one query head over a contiguous range of cached positions.
#pragma once
#include <cstdint>
#include "slm/kernels/types.h"

namespace slm::kernels {

// out[d] = sum_j p_j * V[j, d]  with  p = softmax_j(s_j), s_j = scale * dot(q, K[j, :])  for j in [kv_begin, kv_end),
// and with softcap > 0 (Gemma 2) s_j = softcap * tanh(s_j / softcap) before the softmax.
// With alibi_slope != 0 (ALiBi, Press et al. 2021: BLOOM, Falcon-RW) s_j += alibi_slope * (j - i) after the
// softcap (a bias, like the mask), where i = kv_end - 1 is the query's own position: shifting by the query
// position changes nothing after the softmax and keeps the bias small next to the scores.
// K and V have element type kv_dtype (F32 or F16); row j starts at k + j*kv_stride elements.
// The caller applies the causal mask and sliding window by choosing [kv_begin, kv_end), which
// must be non-empty. scores is caller-owned scratch of at least kv_end - kv_begin floats.
struct AttentionArgs {
  const float* q;
  const void* k;
  const void* v;
  DType kv_dtype;
  int64_t kv_stride;
  int64_t kv_begin;
  int64_t kv_end;
  int64_t head_dim;
  float scale;
  float softcap;  // 0: none
  float* scores;
  float* out;
  float alibi_slope = 0.f;  // 0: none
};

using AttentionFn = void (*)(const AttentionArgs& args);

}  // namespace slm::kernels
