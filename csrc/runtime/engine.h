// The engine: one loaded model with its weights, KV cache, thread pool and scratch buffers.
// Weights are borrowed (memory-mapped or converted by the Python loader, which keeps them alive);
// everything else is owned here.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "slm/kernels/cpu.h"

namespace slm {

using kernels::DType;

// How a weight matrix is stored.
//   Dense:   data = W[rows, cols] in dtype, row-major, rows contiguous (used as stored).
//   Int4:    data = the packed tile layout of slm/kernels/quant.h (int4_pack of the canonical
//            format), group_size and sym as packed; activations are quantized to int8 per call.
//   Int8Rows: data = int8 [rows, cols], row_scales = fp16 [rows]: w = row_scales[r] * data[r, c].
enum class WeightFormat { Dense, Int4, Int8Rows };

struct Matrix {
  const void* data = nullptr;
  DType dtype = DType::F32;  // Dense only
  int64_t rows = 0;
  int64_t cols = 0;
  WeightFormat format = WeightFormat::Dense;
  int64_t group_size = 0;               // Int4
  bool sym = true;                      // Int4
  const uint16_t* row_scales = nullptr;  // Int8Rows

  bool quantized() const { return format != WeightFormat::Dense; }
};

struct LayerWeights {
  const float* input_layernorm = nullptr;
  const float* input_layernorm_bias = nullptr;          // LayerNorm models
  const float* post_attention_layernorm_bias = nullptr;  // LayerNorm models
  Matrix q_proj, k_proj, v_proj, o_proj;
  const float* q_bias = nullptr;  // nullable, as are all biases
  const float* k_bias = nullptr;
  const float* v_bias = nullptr;
  const float* o_bias = nullptr;
  const float* post_attention_layernorm = nullptr;
  Matrix gate_proj, up_proj, down_proj;
  const float* gate_bias = nullptr;
  const float* up_bias = nullptr;
  const float* down_bias = nullptr;
  // Optional (Qwen3, Gemma 3): RMSNorm of each q / k head [head_dim] before rope. With
  // EngineConfig::head_norm_per_head (StableLM 2 12B) one weight per head: [n_heads or n_kv_heads, head_dim].
  const float* q_norm = nullptr;
  const float* k_norm = nullptr;
  // Optional (Gemma 2/3 "sandwich" norms): RMSNorm [hidden] of the attention and MLP outputs
  // before they are added to the residual stream.
  const float* attn_output_norm = nullptr;
  const float* mlp_output_norm = nullptr;
};

// One RWKV-4 block (graph "rwkv", models/rwkv.cpp). Vectors are float32; time_decay is stored
// as w (the decay per token is exp(-exp(w))), time_first is the current token's bonus u.
struct RwkvLayerWeights {
  const float* ln1 = nullptr;
  const float* ln1_bias = nullptr;
  const float* time_decay = nullptr;           // [attention_hidden_size]
  const float* time_first = nullptr;           // [attention_hidden_size]
  const float* time_mix_key = nullptr;         // [hidden]: interpolation with the previous token
  const float* time_mix_value = nullptr;       // [hidden]
  const float* time_mix_receptance = nullptr;  // [hidden]
  Matrix key, value, receptance;               // [attention_hidden_size, hidden]
  Matrix output;                               // [hidden, attention_hidden_size]
  const float* ln2 = nullptr;
  const float* ln2_bias = nullptr;
  const float* ffn_time_mix_key = nullptr;         // [hidden]
  const float* ffn_time_mix_receptance = nullptr;  // [hidden]
  Matrix ffn_key;         // [intermediate, hidden]
  Matrix ffn_receptance;  // [hidden, hidden]
  Matrix ffn_value;       // [hidden, intermediate]
};

struct ModelWeights {
  Matrix embed_tokens;
  const float* embed_norm = nullptr;       // LayerNorm of the embeddings (BLOOM's word_embeddings_layernorm); nullable
  const float* embed_norm_bias = nullptr;
  Matrix position_embeddings;  // learned absolute positions [max_positions, hidden] (GPT-2); data null if none
  const float* norm = nullptr;
  const float* norm_bias = nullptr;  // LayerNorm models
  Matrix lm_head;
  const float* lm_head_bias = nullptr;  // Phi-2
  std::vector<LayerWeights> layers;
  // RWKV (graph "rwkv") instead of `layers`: the LayerNorm of the embeddings (block 0's pre_ln)
  // and the blocks.
  const float* pre_ln = nullptr;
  const float* pre_ln_bias = nullptr;
  std::vector<RwkvLayerWeights> rwkv_layers;
};

// The MLP's activation: silu or gelu with the tanh approximation; gated (act(x Wgate) * x Wup,
// SwiGLU / GeGLU) or plain (act(x Wup + b), GPT-2).
enum class Activation { SiLU, GeluTanh, GeluErf };
enum class MlpType { Gated, Plain };
// RMSNorm (Llama) or LayerNorm with a bias (GPT-2).
enum class NormType { RMS, Layer };

struct EngineConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t rotary_dim = 0;  // 0: no rotary embedding (models with learned positions)
  kernels::RopeStyle rope_style = kernels::RopeStyle::Neox;
  float rms_norm_eps = 1e-5f;
  float attention_scale = 0.f;        // usually 1/sqrt(head_dim)
  float embed_scale = 1.f;            // token embeddings are multiplied by this (Gemma: sqrt(hidden))
  float attn_softcap = 0.f;           // Gemma 2: scores -> cap * tanh(scores / cap); 0 = none
  float final_softcap = 0.f;          // Gemma 2: logits -> cap * tanh(logits / cap); 0 = none
  Activation activation = Activation::SiLU;
  MlpType mlp_type = MlpType::Gated;
  NormType norm_type = NormType::RMS;
  // Parallel attention and MLP (Phi-2, Falcon): x += attn(norm1(x)) + mlp(norm2(x)), both norms
  // of the block's input; norm2 uses post_attention_layernorm's weights.
  bool parallel_residual = false;
  // The q / k head norms: RMSNorm with one weight shared by the heads (Qwen3, Gemma 3), or LayerNorm
  // without bias with a weight per head (StableLM's qk_layernorm).
  NormType head_norm_type = NormType::RMS;
  bool head_norm_per_head = false;
  // ALiBi (BLOOM, Falcon-RW): per query head, the slope of the score bias slope * (j - i); empty = none.
  std::vector<float> alibi_slopes;
  int64_t max_seq_len = 0;
  DType kv_dtype = DType::F32;        // F32, F16 or I8 (int8 with a float32 scale per cached row)
  std::vector<int64_t> layer_windows;  // per layer; 0 = full causal attention
  // Rotary tables, each [max_seq_len, rotary_dim / 2]; layer l uses table layer_rope[l] (Gemma 3
  // has one for global and one for sliding-window layers).
  std::vector<std::vector<float>> rope_cos;
  std::vector<std::vector<float>> rope_sin;
  std::vector<int64_t> layer_rope;
  int n_threads = 1;
  std::string isa = "auto";
  // RWKV only (its LayerNorms use rms_norm_eps, except the final one).
  int64_t attention_hidden_size = 0;  // width of the time mix's key / value / receptance
  int64_t rescale_every = 0;          // > 0: transformers' inference rescaling (models/rwkv.cpp)
  float final_norm_eps = 1e-5f;       // ln_out's eps
};

enum class LogitsMode { None, Last, All };

class Engine {
 public:
  virtual ~Engine() = default;

  // Appends `tokens` to the current sequence and runs them through the model. Writes logits to
  // `logits_out`: nothing (None), [vocab] for the last token (Last) or [n, vocab] (All).
  // Throws InvalidTokenError or ContextLengthError before any compute.
  virtual void forward(const int32_t* tokens, int64_t n, LogitsMode mode, float* logits_out) = 0;

  // Forgets the sequence (the KV cache contents become unused).
  virtual void reset() = 0;
  // Keeps the first n positions of the sequence and drops the rest. A recurrent model (RWKV) has
  // no per-position cache to cut: it supports only n == n_past() and n == 0.
  virtual void truncate(int64_t n) = 0;
  virtual int64_t n_past() const = 0;

  virtual const EngineConfig& config() const = 0;
  // Switches the kernel table: "auto", "generic", "avx2", "avx512". For tests and benchmarks.
  virtual void set_isa(const std::string& isa) = 0;
  virtual std::string isa() const = 0;
  virtual void set_threads(int n_threads) = 0;
  virtual int threads() const = 0;
  // Bytes held by the KV cache (values and, for int8, their scales); 0 for a graph without one (RWKV).
  virtual int64_t kv_cache_bytes() const { return 0; }
};

// What every graph's forward() does first and around its passes. check_forward_input throws
// InvalidArgumentError (no tokens), InvalidTokenError or ContextLengthError (n_past + n beyond
// max_seq_len). forward_in_chunks calls run_chunk(tokens, len, mode, logits) on consecutive runs
// of at most `chunk` tokens, asking for logits only where `mode` wants them.
using ChunkFn = std::function<void(const int32_t* tokens, int64_t n, LogitsMode mode, float* logits_out)>;
void check_forward_input(const int32_t* tokens, int64_t n, const EngineConfig& config, int64_t n_past);
void forward_in_chunks(const int32_t* tokens, int64_t n, int64_t chunk, LogitsMode mode, float* logits_out,
                       int64_t vocab_size, const ChunkFn& run_chunk);

// Builds the engine for a graph family ("llama" covers Llama, Mistral and Qwen2). Validates the
// config and weight shapes (ConfigError / ModelFormatError) and allocates the KV cache.
std::unique_ptr<Engine> make_engine(const std::string& graph, EngineConfig config, ModelWeights weights);

}  // namespace slm
