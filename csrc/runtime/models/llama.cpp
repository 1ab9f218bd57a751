// The Llama-family decoder (Llama 2/3, Mistral, Qwen2, Qwen3, Gemma 3): pre-norm blocks of
// RMSNorm, rotary GQA attention with an optional sliding window, optional q/k/v/o biases and
// q/k head norms, and a gated MLP (SwiGLU or GeGLU); Gemma's norms of the attention and MLP
// outputs ("sandwich" norms) and its scaled embedding are switches of the same graph, as are
// BLOOM's LayerNorm of the embeddings, ALiBi score biases (BLOOM, Falcon-RW) and StableLM's per-head
// LayerNorm q/k norms.
//
// One forward pass over a chunk of tokens, per layer, as five parallel regions (a barrier after
// each); the RMSNorms are computed redundantly by every thread into its own buffer so that they
// need no barrier of their own:
//   1. h = rmsnorm(x); q, k, v = h Wq + bq, h Wk + bk, h Wv + bv; rope(q, k); cache k, v
//   2. a = softmax(q K^T * scale + causal/window mask [+ ALiBi bias]) V, per token and head
//   3. x += a Wo + bo                (with an output norm: p = a Wo; then x += rmsnorm(p), one more region)
//   4. h = rmsnorm(x); m = act(h Wgate) * (h Wup)
//   5. x += m Wdown                   (with an output norm: as in 3)
// then logits = rmsnorm(x) Wlm_head. Work is split by output rows (or heads, or token×head
// pairs), never along a reduction, so every value is the same for any number of threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "runtime/buffer.h"
#include "runtime/cpu_dispatch.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#include "runtime/linear.h"
#include "runtime/thread_pool.h"

namespace slm {

namespace {

constexpr int64_t kMaxChunk = 512;  // prompt tokens per pass: bounds scratch memory
constexpr int64_t kRowAlign = 16;   // thread split granularity for matrix rows

// llama's weight names: "layers.<layer>.<name>", or <name> for a model-level weight (layer < 0).
std::string weight_name(const char* name, int64_t layer) {
  return layer >= 0 ? "layers." + std::to_string(layer) + "." + name : name;
}

void check_positive(int64_t v, const char* name) {
  if (v <= 0) throw ConfigError(std::string(name) + " must be positive, got " + std::to_string(v));
}

class LlamaEngine final : public Engine {
 public:
  LlamaEngine(EngineConfig config, ModelWeights weights)
      : cfg_(std::move(config)), w_(std::move(weights)) {
    validate();
    kernels_ = &cpu_kernels_for(cfg_.isa);
    q_dim_ = cfg_.n_heads * cfg_.head_dim;
    kv_dim_ = cfg_.n_kv_heads * cfg_.head_dim;
    chunk_ = std::min<int64_t>(kMaxChunk, cfg_.max_seq_len);
    const size_t cache_elems = static_cast<size_t>(cfg_.n_layers * cfg_.n_kv_heads * cfg_.max_seq_len * cfg_.head_dim);
    k_cache_.resize(cache_elems * dtype_size(cfg_.kv_dtype));
    v_cache_.resize(cache_elems * dtype_size(cfg_.kv_dtype));
    if (cfg_.kv_dtype == DType::I8) {
      const size_t rows = static_cast<size_t>(cfg_.n_layers * cfg_.n_kv_heads * cfg_.max_seq_len);
      k_scale_.resize(rows);
      v_scale_.resize(rows);
    }
    x_.resize(chunk_ * cfg_.hidden_size);
    q_.resize(chunk_ * q_dim_);
    k_.resize(chunk_ * kv_dim_);
    v_.resize(chunk_ * kv_dim_);
    attn_.resize(chunk_ * q_dim_);
    gate_.resize(chunk_ * cfg_.intermediate_size);
    proj_.resize(chunk_ * cfg_.hidden_size);
    if (cfg_.parallel_residual) block_input_.resize(chunk_ * cfg_.hidden_size);
    zeros_.resize(cfg_.head_dim);
    std::fill(zeros_.data(), zeros_.data() + cfg_.head_dim, 0.f);
    up_.resize(chunk_ * cfg_.intermediate_size);
    bool any_quantized = w_.lm_head.quantized();
    for (const LayerWeights& L : w_.layers) {
      for (const Matrix* m : {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj}) {
        any_quantized = any_quantized || m->quantized();
      }
    }
    quant_.init(any_quantized, chunk_, std::max({cfg_.hidden_size, cfg_.intermediate_size, q_dim_}), 1);
    set_threads(cfg_.n_threads);
  }

  void forward(const int32_t* tokens, int64_t n, LogitsMode mode, float* logits_out) override {
    check_forward_input(tokens, n, cfg_, n_past_);
    forward_in_chunks(tokens, n, chunk_, mode, logits_out, cfg_.vocab_size,
                      [this](const int32_t* t, int64_t len, LogitsMode m, float* out) { run_chunk(t, len, m, out); });
  }

  void reset() override { n_past_ = 0; }
  void truncate(int64_t n) override {
    if (n < 0 || n > n_past_) {
      throw InvalidArgumentError("cannot truncate a sequence of " + std::to_string(n_past_) + " tokens to " +
                                 std::to_string(n));
    }
    n_past_ = n;
  }
  int64_t n_past() const override { return n_past_; }
  const EngineConfig& config() const override { return cfg_; }
  void set_isa(const std::string& isa) override { kernels_ = &cpu_kernels_for(isa); }
  std::string isa() const override { return kernels_->name; }
  int threads() const override { return pool_->size(); }
  int64_t kv_cache_bytes() const override {
    return static_cast<int64_t>(k_cache_.size() + v_cache_.size() + (k_scale_.size() + v_scale_.size()) * sizeof(float));
  }

  void set_threads(int n_threads) override {
    if (n_threads < 1) throw InvalidArgumentError("threads must be at least 1, got " + std::to_string(n_threads));
    pool_ = std::make_unique<ThreadPool>(n_threads);
    cfg_.n_threads = n_threads;
    normed_.clear();
    scores_.clear();
    quant_.set_threads(n_threads);
    for (int i = 0; i < n_threads; ++i) {
      normed_.emplace_back(chunk_ * cfg_.hidden_size);
      scores_.emplace_back(kernels::attention_scratch_floats(cfg_.n_heads / cfg_.n_kv_heads, cfg_.max_seq_len, cfg_.head_dim));
    }
  }

 private:
  void validate() const {
    const auto& c = cfg_;
    check_positive(c.vocab_size, "vocab_size");
    check_positive(c.hidden_size, "hidden_size");
    check_positive(c.intermediate_size, "intermediate_size");
    check_positive(c.n_layers, "num_hidden_layers");
    check_positive(c.n_heads, "num_attention_heads");
    check_positive(c.n_kv_heads, "num_key_value_heads");
    check_positive(c.head_dim, "head_dim");
    check_positive(c.max_seq_len, "max_seq_len");
    if (c.n_heads % c.n_kv_heads != 0) {
      throw ConfigError("num_attention_heads (" + std::to_string(c.n_heads) + ") must be a multiple of num_key_value_heads (" +
                        std::to_string(c.n_kv_heads) + ")");
    }
    if (c.activation == Activation::SiLU && c.mlp_type == MlpType::Plain) {
      throw ConfigError("a plain (ungated) MLP runs gelu_tanh or gelu_erf");
    }
    if (c.activation == Activation::GeluErf && c.mlp_type == MlpType::Gated) {
      throw ConfigError("a gated MLP runs silu or gelu_tanh");
    }
    if (c.rotary_dim < 0 || c.rotary_dim > c.head_dim || c.rotary_dim % 2 != 0) {
      throw ConfigError("rotary_dim must be even and at most head_dim, got " + std::to_string(c.rotary_dim));
    }
    const size_t table = static_cast<size_t>(c.max_seq_len * (c.rotary_dim / 2));
    if (c.rope_cos.empty() || c.rope_cos.size() != c.rope_sin.size()) throw ConfigError("rope tables: need cos and sin tables");
    for (size_t i = 0; i < c.rope_cos.size(); ++i) {
      if (c.rope_cos[i].size() != table || c.rope_sin[i].size() != table) throw ConfigError("rope tables must be [max_seq_len, rotary_dim/2]");
    }
    if (static_cast<int64_t>(c.layer_rope.size()) != c.n_layers) throw ConfigError("layer_rope needs one entry per layer");
    for (int64_t r : c.layer_rope) {
      if (r < 0 || r >= static_cast<int64_t>(c.rope_cos.size())) throw ConfigError("layer_rope names a rope table that does not exist");
    }
    if (static_cast<int64_t>(c.layer_windows.size()) != c.n_layers) throw ConfigError("layer_windows needs one entry per layer");
    for (int64_t wdw : c.layer_windows) {
      if (wdw < 0) throw ConfigError("sliding window sizes must be >= 0");
    }
    if (c.kv_dtype != DType::F32 && c.kv_dtype != DType::F16 && c.kv_dtype != DType::I8) {
      throw ConfigError("kv cache dtype must be float32, float16 or int8");
    }
    if (!c.alibi_slopes.empty() && static_cast<int64_t>(c.alibi_slopes.size()) != c.n_heads) {
      throw ConfigError("alibi_slopes needs one slope per attention head (" + std::to_string(c.n_heads) + "), got " +
                        std::to_string(c.alibi_slopes.size()));
    }
    for (float slope : c.alibi_slopes) {
      if (!std::isfinite(slope)) throw ConfigError("alibi_slopes must be finite");
    }

    const int64_t H = c.hidden_size, I = c.intermediate_size, Q = c.n_heads * c.head_dim, KV = c.n_kv_heads * c.head_dim;
    check_matrix(w_.embed_tokens, "embed_tokens", c.vocab_size, H);
    check_matrix(w_.lm_head, "lm_head", c.vocab_size, H);
    check_format(w_.embed_tokens, "embed_tokens", false);
    check_format(w_.lm_head, "lm_head", true);
    if (w_.position_embeddings.quantized()) throw ModelFormatError("position_embeddings must be 16- or 32-bit");
    check_vector(w_.norm, "norm");
    if (w_.embed_norm != nullptr) check_vector(w_.embed_norm_bias, "embed_norm.bias");
    const bool layer_norm = c.norm_type == NormType::Layer;
    if (layer_norm) check_vector(w_.norm_bias, "norm.bias");
    if (w_.position_embeddings.data != nullptr) {
      check_matrix(w_.position_embeddings, "position_embeddings", w_.position_embeddings.rows, H);
      if (w_.position_embeddings.rows < c.max_seq_len) {
        throw ConfigError("max_seq_len " + std::to_string(c.max_seq_len) + " exceeds the model's " +
                          std::to_string(w_.position_embeddings.rows) + " learned positions");
      }
    }
    if (static_cast<int64_t>(w_.layers.size()) != c.n_layers) {
      throw ModelFormatError("expected weights for " + std::to_string(c.n_layers) + " layers, got " +
                             std::to_string(w_.layers.size()));
    }
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const LayerWeights& L = w_.layers[l];
      check_vector(L.input_layernorm, weight_name("input_layernorm", l));
      check_vector(L.post_attention_layernorm, weight_name("post_attention_layernorm", l));
      if (layer_norm) {
        check_vector(L.input_layernorm_bias, weight_name("input_layernorm.bias", l));
        check_vector(L.post_attention_layernorm_bias, weight_name("post_attention_layernorm.bias", l));
      }
      check_matrix(L.q_proj, weight_name("self_attn.q_proj", l), Q, H);
      check_matrix(L.k_proj, weight_name("self_attn.k_proj", l), KV, H);
      check_matrix(L.v_proj, weight_name("self_attn.v_proj", l), KV, H);
      check_matrix(L.o_proj, weight_name("self_attn.o_proj", l), H, Q);
      if (c.mlp_type == MlpType::Gated) check_matrix(L.gate_proj, weight_name("mlp.gate_proj", l), I, H);
      check_matrix(L.up_proj, weight_name("mlp.up_proj", l), I, H);
      check_matrix(L.down_proj, weight_name("mlp.down_proj", l), H, I);
      const std::pair<const Matrix*, const char*> matrices[] = {
          {&L.q_proj, "self_attn.q_proj"}, {&L.k_proj, "self_attn.k_proj"}, {&L.v_proj, "self_attn.v_proj"},
          {&L.o_proj, "self_attn.o_proj"}, {&L.gate_proj, "mlp.gate_proj"}, {&L.up_proj, "mlp.up_proj"},
          {&L.down_proj, "mlp.down_proj"}};
      for (const auto& [m, name] : matrices) check_format(*m, weight_name(name, l), true);
    }
  }

  void matmul(const LinearInput& in, int64_t n_tokens, const Matrix& W, int64_t row_begin, int64_t row_end, float* y,
              int64_t y_stride, const float* bias, bool accumulate) const {
    linear(*kernels_, in, n_tokens, W, row_begin, row_end, y, y_stride, bias, accumulate);
  }

  // The block's pre-norm (RMSNorm, or LayerNorm with bias) of rows [first, first + n) of src
  // (default: the residual stream x).
  void norm_rows(const float* weight, const float* bias, int64_t first, int64_t n, float* dst,
                 const float* src = nullptr) const {
    const int64_t H = cfg_.hidden_size;
    if (src == nullptr) src = x_.data();
    for (int64_t t = first; t < first + n; ++t) {
      if (cfg_.norm_type == NormType::RMS) {
        kernels_->rmsnorm(src + t * H, weight, dst + t * H, H, cfg_.rms_norm_eps);
      } else {
        kernels_->layernorm(src + t * H, weight, bias, dst + t * H, H, cfg_.rms_norm_eps);
      }
    }
  }

  size_t cache_offset(int64_t layer, int64_t kv_head, int64_t pos) const {
    return static_cast<size_t>(((layer * cfg_.n_kv_heads + kv_head) * cfg_.max_seq_len + pos) * cfg_.head_dim);
  }

  // The int8 cache's row scales are [layer][kv_head][position], one per cached row.
  void store_kv(uint8_t* cache, float* scales, int64_t layer, int64_t kv_head, int64_t pos, const float* src) const {
    const size_t off = cache_offset(layer, kv_head, pos);
    switch (cfg_.kv_dtype) {
      case DType::F32:
        std::memcpy(reinterpret_cast<float*>(cache) + off, src, cfg_.head_dim * sizeof(float));
        return;
      case DType::I8:
        kernels_->quantize_kv(src, cfg_.head_dim, reinterpret_cast<int8_t*>(cache) + off, scales + off / cfg_.head_dim);
        return;
      default:
        kernels_->f32_to_f16(src, reinterpret_cast<uint16_t*>(cache) + off, cfg_.head_dim);
    }
  }

  const void* cache_row(const Buffer<uint8_t>& cache, int64_t layer, int64_t kv_head) const {
    return cache.data() + cache_offset(layer, kv_head, 0) * dtype_size(cfg_.kv_dtype);
  }
  const float* scale_row(const Buffer<float>& scales, int64_t layer, int64_t kv_head) const {
    return cfg_.kv_dtype == DType::I8 ? scales.data() + cache_offset(layer, kv_head, 0) / cfg_.head_dim : nullptr;
  }

  // Region 1: q, k, v projections of this thread's heads, rotary embedding, KV cache writes.
  // Heads are numbered q heads first, then k heads, then v heads; each thread owns a contiguous run.
  void qkv_rope_store(int tid, int64_t layer, int64_t n, int64_t pos0) {
    const LayerWeights& L = w_.layers[layer];
    const int64_t H = cfg_.hidden_size, hd = cfg_.head_dim, nq = cfg_.n_heads, nkv = cfg_.n_kv_heads;
    float* h = normed_[tid].data();
    norm_rows(L.input_layernorm, L.input_layernorm_bias, 0, n, h);
    const LinearInput in = quant_.own(*kernels_, h, H, n, H, tid);
    const Range mine = split_range(nq + 2 * nkv, tid, pool_->size(), 1);
    const int64_t half = cfg_.rotary_dim / 2;
    auto heads_in = [&](int64_t first) {  // this thread's heads among [first, first + count) as local indices
      return Range{std::max<int64_t>(mine.begin - first, 0), mine.end - first};
    };
    Range q = heads_in(0), k = heads_in(nq), v = heads_in(nq + nkv);
    q.end = std::min(q.end, nq);
    k.end = std::min(k.end, nkv);
    v.end = std::min(v.end, nkv);

    const float* cos = cfg_.rope_cos[cfg_.layer_rope[layer]].data();
    const float* sin = cfg_.rope_sin[cfg_.layer_rope[layer]].data();
    // Head norm (if any) then rope, on heads [first, last) of each token's row.
    auto norm_and_rotate = [&](float* rows, int64_t stride, int64_t first, int64_t last, const float* head_norm) {
      for (int64_t t = 0; t < n; ++t) {
        float* row = rows + t * stride;
        if (head_norm) {
          for (int64_t head = first; head < last; ++head) {
            const float* weight = cfg_.head_norm_per_head ? head_norm + head * hd : head_norm;
            if (cfg_.head_norm_type == NormType::RMS) {
              kernels_->rmsnorm(row + head * hd, weight, row + head * hd, hd, cfg_.rms_norm_eps);
            } else {
              kernels_->layernorm(row + head * hd, weight, zeros_.data(), row + head * hd, hd, cfg_.rms_norm_eps);
            }
          }
        }
        if (cfg_.rotary_dim > 0) {
          kernels_->rope(row + first * hd, last - first, hd, cfg_.rotary_dim, cos + (pos0 + t) * half,
                         sin + (pos0 + t) * half, cfg_.rope_style);
        }
      }
    };
    if (q.begin < q.end) {
      matmul(in, n, L.q_proj, q.begin * hd, q.end * hd, q_.data(), q_dim_, L.q_bias, false);
      norm_and_rotate(q_.data(), q_dim_, q.begin, q.end, L.q_norm);
    }
    if (k.begin < k.end) {
      matmul(in, n, L.k_proj, k.begin * hd, k.end * hd, k_.data(), kv_dim_, L.k_bias, false);
      norm_and_rotate(k_.data(), kv_dim_, k.begin, k.end, L.k_norm);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t g = k.begin; g < k.end; ++g) store_kv(k_cache_.data(), k_scale_.data(), layer, g, pos0 + t, k_.data() + t * kv_dim_ + g * hd);
      }
    }
    if (v.begin < v.end) {
      matmul(in, n, L.v_proj, v.begin * hd, v.end * hd, v_.data(), kv_dim_, L.v_bias, false);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t g = v.begin; g < v.end; ++g) store_kv(v_cache_.data(), v_scale_.data(), layer, g, pos0 + t, v_.data() + t * kv_dim_ + g * hd);
      }
    }
  }

  // Regions 3 and 5: x += src W^T + bias, or with an output norm x += rmsnorm(src W^T + bias),
  // which needs whole rows of the projection first and so one more region split by tokens.
  void project_into_residual(const Matrix& W, const float* src, int64_t src_stride, int64_t n, const float* bias,
                             const float* output_norm) {
    const int64_t H = cfg_.hidden_size;
    const int T = pool_->size();
    quant_.quantize_shared(*kernels_, *pool_, src, src_stride, n, W.cols);
    float* dst = output_norm == nullptr ? x_.data() : proj_.data();
    pool_->run([&](int tid) {
      const Range r = split_range(H, tid, T, kRowAlign);
      if (r.begin >= r.end) return;
      matmul(quant_.shared_or_own(*kernels_, src, src_stride, n, W.cols, tid), n, W, r.begin, r.end, dst, H, bias, output_norm == nullptr);
    });
    if (output_norm == nullptr) return;
    pool_->run([&](int tid) {
      float* normed = normed_[tid].data();
      const Range tokens = split_range(n, tid, T, 1);
      for (int64_t t = tokens.begin; t < tokens.end; ++t) {
        kernels_->rmsnorm(proj_.data() + t * H, output_norm, normed, H, cfg_.rms_norm_eps);
        float* x = x_.data() + t * H;
        for (int64_t i = 0; i < H; ++i) x[i] += normed[i];
      }
    });
  }

  // Thread tid's share of the n * nq (token, head) items of causal attention, items numbered
  // token-major: contiguous runs with about the same number of attended positions each (token t
  // attends to min(pos0 + t + 1, window) of them), so that a long prompt's late tokens do not all
  // land on the last thread.
  static Range attention_items(int64_t n, int64_t nq, int64_t pos0, int64_t window, int tid, int n_threads) {
    constexpr int64_t kItemCost = 16;  // fixed cost of one item, in attended positions
    auto cost = [&](int64_t t) {
      const int64_t len = pos0 + t + 1;
      return (window > 0 ? std::min(len, window) : len) + kItemCost;
    };
    int64_t total = 0;
    for (int64_t t = 0; t < n; ++t) total += cost(t);
    total *= nq;
    auto first_item = [&](int k) -> int64_t {  // the first item of thread k
      if (k >= n_threads) return n * nq;
      const int64_t target = total / n_threads * k + total % n_threads * k / n_threads;
      int64_t before = 0;
      for (int64_t t = 0; t < n; ++t) {
        const int64_t c = cost(t);
        if (before + nq * c > target) return t * nq + std::min<int64_t>(nq, (target - before + c - 1) / c);
        before += nq * c;
      }
      return n * nq;
    };
    return Range{first_item(tid), first_item(tid + 1)};
  }

  // Region 2: causal attention for this thread's (token, head) pairs.
  void attend(int tid, int64_t layer, int64_t n, int64_t pos0) {
    const int64_t nq = cfg_.n_heads, hd = cfg_.head_dim, group = cfg_.n_heads / cfg_.n_kv_heads;
    const int64_t window = cfg_.layer_windows[layer];
    const Range mine = attention_items(n, nq, pos0, window, tid, pool_->size());
    // One call per run of this thread's heads that share a token and a K/V head (ALiBi heads, each
    // with its own slope, one at a time).
    for (int64_t item = mine.begin; item < mine.end;) {
      const int64_t t = item / nq, head = item % nq, kv_head = head / group, pos = pos0 + t;
      const int64_t run = cfg_.alibi_slopes.empty() ? std::min(mine.end - item, (kv_head + 1) * group - head) : 1;
      kernels::AttentionArgs a;
      a.q = q_.data() + t * q_dim_ + head * hd;
      a.k = cache_row(k_cache_, layer, kv_head);
      a.v = cache_row(v_cache_, layer, kv_head);
      a.k_scale = scale_row(k_scale_, layer, kv_head);
      a.v_scale = scale_row(v_scale_, layer, kv_head);
      a.kv_dtype = cfg_.kv_dtype;
      a.kv_stride = hd;
      a.kv_begin = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
      a.kv_end = pos + 1;
      a.head_dim = hd;
      a.scale = cfg_.attention_scale;
      a.softcap = cfg_.attn_softcap;
      a.alibi_slope = cfg_.alibi_slopes.empty() ? 0.f : cfg_.alibi_slopes[head];
      a.scores = scores_[tid].data();
      a.out = attn_.data() + t * q_dim_ + head * hd;
      a.n_queries = run;
      a.q_stride = hd;
      a.out_stride = hd;
      item += run;
      kernels_->attention(a);
    }
  }

  void run_chunk(const int32_t* tokens, int64_t n, LogitsMode mode, float* logits_out) {
    const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, pos0 = n_past_;
    const int T = pool_->size();
    for (int64_t t = 0; t < n; ++t) {
      float* x = x_.data() + t * H;
      embedding_row(*kernels_, w_.embed_tokens, tokens[t], x);
      if (cfg_.embed_scale != 1.f) {
        for (int64_t i = 0; i < H; ++i) x[i] *= cfg_.embed_scale;
      }
      if (w_.embed_norm != nullptr) kernels_->layernorm(x, w_.embed_norm, w_.embed_norm_bias, x, H, cfg_.rms_norm_eps);
      const Matrix& P = w_.position_embeddings;
      if (P.data != nullptr) {  // learned absolute positions: x += P[pos]
        float* row = proj_.data();
        embedding_row(*kernels_, P, pos0 + t, row);
        for (int64_t i = 0; i < H; ++i) x[i] += row[i];
      }
    }
    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      const LayerWeights& L = w_.layers[l];
      // Parallel blocks feed the MLP from the block's input, which the attention output is about
      // to change: keep a copy.
      if (cfg_.parallel_residual) std::memcpy(block_input_.data(), x_.data(), sizeof(float) * n * H);
      const float* mlp_source = cfg_.parallel_residual ? block_input_.data() : nullptr;
      pool_->run([&](int tid) { qkv_rope_store(tid, l, n, pos0); });
      pool_->run([&](int tid) { attend(tid, l, n, pos0); });
      project_into_residual(L.o_proj, attn_.data(), q_dim_, n, L.o_bias, L.attn_output_norm);
      pool_->run([&](int tid) {
        float* h = normed_[tid].data();
        norm_rows(L.post_attention_layernorm, L.post_attention_layernorm_bias, 0, n, h, mlp_source);
        const Range r = split_range(I, tid, T, kRowAlign);
        if (r.begin >= r.end) return;
        const LinearInput in = quant_.own(*kernels_, h, H, n, H, tid);
        if (cfg_.mlp_type == MlpType::Plain) {  // gate_ holds act(h Wup + b)
          matmul(in, n, L.up_proj, r.begin, r.end, gate_.data(), I, L.up_bias, false);
          const auto gelu = cfg_.activation == Activation::GeluErf ? kernels_->gelu_erf : kernels_->gelu_tanh;
          for (int64_t t = 0; t < n; ++t) {
            float* g = gate_.data() + t * I + r.begin;
            gelu(g, g, r.end - r.begin);
          }
          return;
        }
        matmul(in, n, L.gate_proj, r.begin, r.end, gate_.data(), I, L.gate_bias, false);
        matmul(in, n, L.up_proj, r.begin, r.end, up_.data(), I, L.up_bias, false);
        const auto activation = cfg_.activation == Activation::SiLU ? kernels_->swiglu : kernels_->geglu;
        for (int64_t t = 0; t < n; ++t) {
          float* g = gate_.data() + t * I + r.begin;
          activation(g, up_.data() + t * I + r.begin, g, r.end - r.begin);
        }
      });
      project_into_residual(L.down_proj, gate_.data(), I, n, L.down_bias, L.mlp_output_norm);
    }
    n_past_ += n;
    if (mode == LogitsMode::None) return;
    const int64_t first = mode == LogitsMode::All ? 0 : n - 1;
    const int64_t count = n - first;
    pool_->run([&](int tid) {
      float* h = normed_[tid].data();
      norm_rows(w_.norm, w_.norm_bias, first, count, h);
      const Range r = split_range(cfg_.vocab_size, tid, T, kRowAlign);
      if (r.begin >= r.end) return;
      const LinearInput in = quant_.own(*kernels_, h + first * H, H, count, H, tid);
      matmul(in, count, w_.lm_head, r.begin, r.end, logits_out, cfg_.vocab_size, w_.lm_head_bias, false);
      if (cfg_.final_softcap > 0.f) {  // Gemma 2
        const float cap = cfg_.final_softcap;
        for (int64_t t = 0; t < count; ++t) {
          float* row = logits_out + t * cfg_.vocab_size;
          for (int64_t o = r.begin; o < r.end; ++o) row[o] = cap * std::tanh(row[o] / cap);
        }
      }
    });
  }

  EngineConfig cfg_;
  ModelWeights w_;
  const kernels::CpuKernels* kernels_ = nullptr;
  std::unique_ptr<ThreadPool> pool_;
  int64_t n_past_ = 0;
  int64_t chunk_ = 0;
  int64_t q_dim_ = 0;
  int64_t kv_dim_ = 0;
  Buffer<uint8_t> k_cache_, v_cache_;  // [layer][kv_head][position][head_dim] in kv_dtype
  Buffer<float> k_scale_, v_scale_;    // int8 cache only: [layer][kv_head][position], a scale per row
  Buffer<float> x_, q_, k_, v_, attn_, gate_, up_;
  Buffer<float> proj_;  // [chunk, hidden]: attention / MLP output before its output norm
  Buffer<float> block_input_;  // [chunk, hidden]: x at the start of a parallel block
  Buffer<float> zeros_;        // [head_dim]: the bias of bias-free LayerNorm head norms
  std::vector<Buffer<float>> normed_;  // per thread: rmsnorm output [chunk, hidden]
  std::vector<Buffer<float>> scores_;  // per thread: attention scores [max_seq_len]
  ActivationQuantizer quant_;          // int8 activations of quantized matmuls: per thread, and shared slot 0
};

}  // namespace

std::unique_ptr<Engine> make_llama_engine(EngineConfig config, ModelWeights weights) {
  return std::make_unique<LlamaEngine>(std::move(config), std::move(weights));
}

}  // namespace slm
