// Scaled dot-product attention of query heads that share one K/V head over a contiguous range of
// cached positions, and the int8 KV cache's quantization of one cached row.
#pragma once
#include <cstdint>
#include "slm/kernels/types.h"

namespace slm::kernels {

// out[d] = sum_j p_j * V[j, d]  with  p = softmax_j(s_j), s_j = scale * dot(q, K[j, :])  for j in [kv_begin, kv_end),
// and with softcap > 0 (Gemma 2) s_j = softcap * tanh(s_j / softcap) before the softmax.
// With alibi_slope != 0 (ALiBi, Press et al. 2021: BLOOM, Falcon-RW) s_j += alibi_slope * (j - i) after the
// softcap (a bias, like the mask), where i = kv_end - 1 is the query's own position: shifting by the query
// position changes nothing after the softmax and keeps the bias small next to the scores.
// K and V have element type kv_dtype (F32, F16 or I8); row j starts at k + j*kv_stride elements.
// I8 (the int8 KV cache): K[j, d] = k_scale[j] * k_int8[j, d] and V[j, d] = v_scale[j] * v_int8[j, d],
// the scales float32, one per row, indexed like the rows (k_scale[j] for j in [kv_begin, kv_end));
// they are read only for I8. The values are widened to float32 in registers: q stays float32.
// The caller applies the causal mask and sliding window by choosing [kv_begin, kv_end), which
// must be non-empty.
// n_queries queries (grouped-query attention: the heads that read the same K/V head) run in one
// call over the same positions, with the same scale, softcap and alibi_slope: query r at
// q + r * q_stride, its output at out + r * out_stride. Each query's output is the same, bit for
// bit, whether it runs alone or with others. scores is caller-owned scratch of at least
// attention_scratch_floats(n_queries, kv_end - kv_begin, head_dim) floats.
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
  float alibi_slope = 0.f;         // 0: none
  const float* k_scale = nullptr;  // I8 only
  const float* v_scale = nullptr;  // I8 only
  int64_t n_queries = 1;
  int64_t q_stride = 0;    // floats between queries (n_queries > 1)
  int64_t out_stride = 0;  // floats between outputs (n_queries > 1)
};

// The scratch one call needs: n_queries * round_up(n_keys, 16) + round_up(n_queries, 16) floats
// (head_dim: for kernels that may need more; compiled without ISA flags).
int64_t attention_scratch_floats(int64_t n_queries, int64_t n_keys, int64_t head_dim);
// Runs `one` (an attention of a single query) for each of a's queries in turn, with a's scratch
// (for kernels without a batched form).
void attention_each_query(const AttentionArgs& a, void (*one)(const AttentionArgs&));

using AttentionFn = void (*)(const AttentionArgs& args);

// The int8 KV cache's rule for one cached row (one layer, KV head and position: head_dim values),
// the activation rule of DESIGN.md section 4 over the whole row instead of blocks of 32:
//   scale = amax / 127.0f (float32 division), q_i = clamp(round_half_even(x_i / scale), -127, 127)
// (float32 division, correctly rounded), q_i = 0 when scale is 0 (an all-zero row). The scale stays float32 (exact
// for the rule, 4 bytes per row: 6% of a 64-dim int8 row; an fp16 scale would save 2 bytes and
// add a rounding that the reference would have to mirror). A row with a non-finite value gets
// scale NaN and q = 0, so that the NaN reaches the logits (NumericalError) instead of a garbage
// value. Every ISA gives the reference's bits (slmcore/reference/quant.py quantize_kv).
// Compiled without ISA flags: it runs once per cached row, next to a whole attention pass per
// query, so every ISA's table points to the one scalar implementation (kernels/cpu/kv_quant.cpp).
void quantize_kv(const float* x, int64_t n, int8_t* q, float* scale);

using QuantizeKvFn = void (*)(const float* x, int64_t n, int8_t* q, float* scale);

}  // namespace slm::kernels
