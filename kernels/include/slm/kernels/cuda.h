// CUDA kernels (kernels/cuda/*.cu). Compiled only when the CUDA backend is built (SLM_CUDA).
//
// Every launcher is asynchronous on `stream` (a cudaStream_t passed as void*, so that this header
// needs no CUDA include), never synchronizes, never throws, and returns a cudaError_t as int:
// 0 on success, else the error of the launch. Pointers are device pointers.
#pragma once
#include <cstdint>

#include "slm/kernels/rope.h"

namespace slm::kernels::cuda {

// int4 weights in the GPU layout. The canonical format (DESIGN.md section 4) stores row-major
// bytes, element 2j in the low nibble of byte j. The GPU layout keeps rows and 16-byte chunks of
// 32 elements in place and only reorders the nibbles inside each 32-bit word, so that one AND
// with 0x000F000F (or 0x00F000F0) lifts two neighbouring elements into the two halves of a half2:
//   nibble position  0  1  2  3  4  5  6  7   (bits 4p..4p+3 of the little-endian word)
//   element          0  2  4  6  1  3  5  7   (of the word's 8 elements)
//
// The buffers hold round_up(rows, kInt4RowPad) rows, so that kernels may stream whole tiles of
// rows; the extra rows' contents never reach a result.
constexpr int64_t kInt4RowPad = 32;

struct Int4Matrix {
  const uint8_t* packed = nullptr;   // [rows][cols_padded / 2], GPU layout
  const uint16_t* scales = nullptr;  // fp16 [rows][cols_padded / group_size]
  const uint16_t* mins = nullptr;    // fp16 like scales when asymmetric, else nullptr
  int64_t rows = 0;
  int64_t cols_padded = 0;           // a multiple of group_size
  int group_size = 128;              // 32, 64 or 128
};

inline int64_t int4_rows_allocated(int64_t rows) { return (rows + kInt4RowPad - 1) / kInt4RowPad * kInt4RowPad; }

// Canonical -> GPU layout, one 32-bit word at a time (in place allowed). `bytes` % 4 == 0.
int int4_to_gpu_layout(const uint8_t* canonical, uint8_t* gpu, int64_t bytes, void* stream);

// y[r] = sum_k w[r, k] * x[k] for one token: x is fp16 [cols_padded] (zero past the real cols),
// y is float32 [rows]. Dequantizes in registers, multiplies in fp16 pairs over each 32-element
// chunk and accumulates chunks in float32. With `pdl` the launch allows programmatic dependent
// launch (sm_90+): it may start while the previous kernel on the stream finishes, prefetching its
// weights, and reads x only once that kernel is done.
int int4_gemv(const Int4Matrix& w, const uint16_t* x, float* y, void* stream, bool pdl = false);

}  // namespace slm::kernels::cuda

namespace slm::kernels::cuda {

// Fill `bytes` bytes (a multiple of 4) with a counter-based hash of (seed, index): cheap random
// data for benchmarks, which must never run on zeros.
int fill_random_u32(void* data, int64_t bytes, uint32_t seed, void* stream);

// fp16 values uniform in [lo, hi) from the same hash.
int fill_random_f16(uint16_t* data, int64_t n, float lo, float hi, uint32_t seed, void* stream);

}  // namespace slm::kernels::cuda

namespace slm::kernels::cuda {

// ---- decode kernels: one token, float32 activations (the residual stream) ----------------------

// RMSNorm of `rows` rows of n (kernels/cuda/norm.cu): y = x / sqrt(mean(x^2) + eps) * w, with the
// mean a float32 block reduction. Writes the float32 result to y32 and its fp16 rounding (round to
// nearest even; the input of int4_gemv) to y16; either may be nullptr, not both. x, y32, y16 are
// [rows][n], w is [n]; y32 may alias x. Gemma's (1 + w) is the caller's: pass w + 1.
int rms_norm(const float* x, const float* w, float* y32, uint16_t* y16, int64_t rows, int64_t n, float eps,
             void* stream);

// LayerNorm likewise: y = (x - mean) / sqrt(var + eps) * w + b, mean and the biased variance in two
// float32 passes.
int layer_norm(const float* x, const float* w, const float* b, float* y32, uint16_t* y16, int64_t rows, int64_t n,
               float eps, void* stream);

// Rotary embedding in place on q [n_heads][head_dim] and k [n_kv_heads][head_dim] (either count may
// be 0) for one position: the rule of slm/kernels/rope.h, cos/sin float32 [rotary_dim/2] computed
// on the host. rotary_dim even and <= head_dim; the other dimensions are left alone.
//
// position (device, nullable): when given, cos and sin are tables [positions][rotary_dim/2] and the
// kernel reads the row at *position when it runs, so that one captured CUDA graph serves every
// decode step (the same holds for kv_append and DecodeAttention::position).
int rope(float* q, int64_t n_heads, float* k, int64_t n_kv_heads, int64_t head_dim, int64_t rotary_dim,
         const float* cos, const float* sin, RopeStyle style, void* stream, const int32_t* position = nullptr);

// The MLP activations of slm/kernels/activation.h. Gated kinds: out = act(gate) * up; plain kinds
// read only gate (up is ignored). out16 gets the fp16 rounding (the down_proj GEMV's input), out32
// the float32 value; either may be nullptr, not both. out32 may alias gate or up.
enum class Activation : int32_t {
  SwiGlu = 0,    // silu(gate) * up
  GeGlu = 1,     // gelu_tanh(gate) * up
  GeluTanh = 2,  // gelu_tanh(gate)
  GeluErf = 3,   // gelu_erf(gate), the exact GELU
};
constexpr bool activation_is_gated(Activation kind) { return kind == Activation::SwiGlu || kind == Activation::GeGlu; }
int activation(Activation kind, const float* gate, const float* up, uint16_t* out16, float* out32, int64_t n,
               void* stream);

// Attention of one query token (every query head) over one layer's fp16 KV cache, laid out like
// the CPU engine's: [n_kv_heads][max_seq_len][head_dim]. Query head h reads KV head
// h / (n_heads / n_kv_heads) (GQA). For positions j in [kv_begin, kv_end) (the caller's causal
// mask and sliding window; non-empty):
//   s_j = scale * dot(q_h, K[j]);  s_j = softcap * tanh(s_j / softcap) if softcap > 0;
//   s_j += alibi_slopes[h] * (j - (kv_end - 1)) if alibi_slopes;   out_h = softmax(s) @ V.
// Flash-decoding: blocks of kAttentionChunk positions write partial results to `scratch`
// (attention_scratch_floats floats), a second kernel combines them. head_dim <= 256.
constexpr int64_t kAttentionChunk = 256;
constexpr int64_t kMaxAttentionHeadDim = 256;

struct DecodeAttention {
  const float* q = nullptr;             // [n_heads][head_dim]
  const uint16_t* k_cache = nullptr;    // fp16 [n_kv_heads][max_seq_len][head_dim]
  const uint16_t* v_cache = nullptr;    // fp16, like k_cache
  const float* alibi_slopes = nullptr;  // [n_heads], or nullptr for no ALiBi
  float* out = nullptr;                 // [n_heads][head_dim]
  float* scratch = nullptr;             // attention_scratch_floats(n_heads, head_dim, kv_begin, kv_end)
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0, max_seq_len = 0;
  int64_t kv_begin = 0, kv_end = 0;
  float scale = 1.f;
  float softcap = 0.f;  // 0: none
  // Optional (device): the query's position, read when the kernels run; then kv_end = *position + 1
  // and kv_begin = window > 0 ? max(0, kv_end - window) : 0, and kv_begin / kv_end above are
  // ignored. The grid covers the largest range, so scratch needs attention_scratch_floats(n_heads,
  // head_dim, 0, window > 0 ? min(window, max_seq_len) : max_seq_len).
  const int32_t* position = nullptr;
  int64_t window = 0;
};

int64_t attention_scratch_floats(int64_t n_heads, int64_t head_dim, int64_t kv_begin, int64_t kv_end);
int attention_decode(const DecodeAttention& args, void* stream);

// Stores this token's k and v (float32 [n_kv_heads][head_dim]) at position `pos` of the fp16
// caches [n_kv_heads][max_seq_len][head_dim], rounding to nearest even (as the CPU f32_to_f16).
// With `position` (device) the position is *position, read when the kernel runs (pos is ignored).
int kv_append(const float* k, const float* v, uint16_t* k_cache, uint16_t* v_cache, int64_t n_kv_heads,
              int64_t head_dim, int64_t max_seq_len, int64_t pos, void* stream, const int32_t* position = nullptr);
// ---- small kernels of the decode step (kernels/cuda/engine_ops.cu) -----------------------------

// y[r] = scale[r] * sum_c q[r, c] * x[c]: int8 rows with an fp16 scale per row (the int8-row
// lm_head), x fp16 [cols], y float32 [rows]; products and sums in float32.
int int8_rows_gemv(const int8_t* q, const uint16_t* scales, const uint16_t* x, float* y, int64_t rows, int64_t cols,
                   void* stream);

// x[i] += y[i] (y may be null: nothing) and then + b[i] (b may be null), for i < n.
int add_into(float* x, const float* y, const float* b, int64_t n, void* stream);

// out[i] = fp16(x[i]) (round to nearest even), i < n.
int to_half(const float* x, uint16_t* out, int64_t n, void* stream);

// x[i] = cap * tanh(x[i] / cap), i < n (Gemma 2's final logit soft-capping).
int soft_cap(float* x, int64_t n, float cap, void* stream);

// The embedding of token tokens[*position] from int8 rows: out[i] = (scales[t] * q[t, i]) * mult
// (mult: Gemma's sqrt(hidden), else 1). tokens and position are device memory.
int embed_int8_row(const int8_t* q, const uint16_t* scales, const int32_t* tokens, const int32_t* position,
                   int64_t cols, float mult, float* out, void* stream);

// *position += 1 (the end of a captured decode step).
int advance_position(int32_t* position, void* stream);

}  // namespace slm::kernels::cuda

namespace slm::kernels::cuda {

// ---- sampling of one row of float32 logits [vocab] (kernels/cuda/sampling.cu) ----------------
// Both write one int32 token to device memory: the index, or -1 when the logits contain a NaN or
// their largest value is not finite (the CPU sampler's NumericalError). One block per row.
constexpr int64_t kMaxSampleVocab = int64_t(1) << 24;

// Greedy: the index of the largest logit, the lowest index among tied maxima (numpy's argmax).
int sample_argmax(const float* logits, int64_t vocab, int32_t* token, void* stream);

// The CPU sampler's rule (slmcore/sampling.py, Sampler._filtered_weights and _draw) with the
// uniform number u in [0, 1) supplied by the caller, so the result is deterministic:
//   1. m = max logit. top-k (0 < top_k < vocab): keep the logits x >= the top_k-th largest logit
//      (every logit tied with it stays in, so more than top_k may remain).
//   2. weights w = expf((x - m) * inv_temperature) for the kept logits, 0 for the others
//      (inv_temperature = float32(1 / temperature), as the CPU sampler multiplies; the largest w is 1).
//   3. top-p (top_p < 1): the floor is the smallest weight of the fewest largest weights whose sum
//      reaches top_p * sum(w), i.e. the largest f with sum(w_i : w_i >= f) >= top_p * sum(w);
//      keep the weights >= f (ties with it stay in).
//   4. min-p (min_p > 0): keep the weights >= min_p (the largest weight is 1).
//   5. the token is the first index, in index order, whose cumulative kept weight exceeds
//      u * sum(kept weights); if rounding leaves none, the last index with a positive weight.
// Weights are float32, their sums float64 (top_p and u are the float32 values passed), so the
// token differs from the CPU sampler's only where a cumulative sum lies within the weights' own
// rounding (a relative 2.4e-7: expf is good to 2 ulp) of a threshold. vocab <= kMaxSampleVocab.
int sample_top_k_top_p(const float* logits, int64_t vocab, float inv_temperature, int64_t top_k, float top_p,
                       float min_p, float u, int32_t* token, void* stream);

}  // namespace slm::kernels::cuda
