// RWKV-4 (Peng et al. 2023, "RWKV: Reinventing RNNs for the Transformer Era"), as transformers'
// RwkvForCausalLM computes it in eval mode. A recurrent model: instead of a KV cache it keeps, per
// layer, the previous token's normalised input of each mixing step and the WKV numerator,
// denominator and running maximum exponent per channel, so a decode step costs the same at any
// position.
//
//   x = layernorm(embed[token]; pre_ln)                               (block 0 only)
//   per block:
//     h = layernorm(x; ln1);  s = h of the previous token (the state, zeros at the start)
//     k, v, r = (h*mix_k + s*(1-mix_k)) Wk, (.. mix_v ..) Wv, (.. mix_r ..) Wr
//     x += (sigmoid(r) * wkv(k, v)) Wout
//     h = layernorm(x; ln2);  s = h of the previous token
//     x += sigmoid((h*mix_r + s*(1-mix_r)) Wr) * (relu((h*mix_k + s*(1-mix_k)) Wk)^2 Wv)
//   logits = layernorm(x; ln_out) Whead
// wkv is, per channel, with u = time_first and decay exp(-exp(time_decay)), kept in the
// max-subtracted form of transformers' rwkv_linear_attention_cpu (aa, bb scaled by exp(-pp)):
//   wkv_t = (aa + exp(u + k_t) v_t) / (bb + exp(u + k_t));  aa <- decay*aa + exp(k_t) v_t,  bb likewise.
//
// rescale_every = R > 0 (transformers' RwkvModel._rescale_layers): block i's two output matrices
// act divided by 2^(i / R) and x is halved after every R-th block. A power-of-two scale is exact,
// so it is applied to the matrices' inputs instead of copying the weights.
//
// Per layer, four parallel regions: (1) the time mix's norm and token shift, split by tokens;
// (2) k, v, r and the WKV recurrence, split by channels (a thread runs the recurrence on the
// channels it projected); (3) x += ... Wout, split by output rows; then for the channel mix
// (1) again and (4) key and receptance, split by rows, and (5) the value and residual, split by
// rows. Nothing is split along a reduction: any thread count gives bitwise the same logits.
//
// Quantized weights (int4 layer matrices, int8-row embedding and head; runtime/linear.h) take int8
// activations: region (1) quantizes the token-shifted rows it wrote, and the inputs of Wout and of
// the channel mix's value, written split by channels, are quantized in one more region each (a
// single token instead by every thread for itself). Quantization is per token row, so it too is
// the same for any thread count and any chunking of the sequence.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>

#include "runtime/buffer.h"
#include "runtime/cpu_dispatch.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#include "runtime/linear.h"
#include "runtime/thread_pool.h"

namespace slm {

namespace {

constexpr int64_t kMaxChunk = 512;        // prompt tokens per pass: bounds scratch memory
constexpr int64_t kRowAlign = 16;         // thread split granularity for matrix rows
constexpr float kNoExponent = -1e38f;     // the running maximum exponent of an empty sum
constexpr int kMixSlot = 1;               // first shared activation slot of norm_shift's outputs
constexpr int kSharedSlots = kMixSlot + 3;

float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

// The recurrent state of one sequence, [layer][width] each.
struct RwkvState {
  Buffer<float> time_mix_previous;     // [L, hidden]: ln1 output of the previous token
  Buffer<float> channel_mix_previous;  // [L, hidden]: ln2 output of the previous token
  Buffer<float> numerator;             // [L, attention_hidden] (aa)
  Buffer<float> denominator;           // [L, attention_hidden] (bb)
  Buffer<float> max_exponent;          // [L, attention_hidden] (pp)
};

class RwkvEngine final : public Engine {
 public:
  RwkvEngine(EngineConfig config, ModelWeights weights) : cfg_(std::move(config)), w_(std::move(weights)) {
    validate();
    kernels_ = &cpu_kernels_for(cfg_.isa);
    const int64_t H = cfg_.hidden_size, A = cfg_.attention_hidden_size, I = cfg_.intermediate_size, L = cfg_.n_layers;
    chunk_ = std::min<int64_t>(kMaxChunk, cfg_.max_seq_len);
    state_.time_mix_previous.resize(L * H);
    state_.channel_mix_previous.resize(L * H);
    state_.numerator.resize(L * A);
    state_.denominator.resize(L * A);
    state_.max_exponent.resize(L * A);
    log_decay_.resize(L * A);
    for (int64_t l = 0; l < L; ++l) {
      for (int64_t c = 0; c < A; ++c) log_decay_.data()[l * A + c] = -std::exp(w_.rwkv_layers[l].time_decay[c]);
    }
    x_.resize(chunk_ * H);
    for (auto* b : {&mix_a_, &mix_b_, &mix_c_, &proj_}) b->resize(chunk_ * H);
    key_.resize(chunk_ * A);
    value_.resize(chunk_ * A);
    receptance_.resize(chunk_ * std::max(A, H));
    ffn_key_.resize(chunk_ * I);
    last_normed_.resize(H);
    bool any_quantized = w_.lm_head.quantized();
    for (const RwkvLayerWeights& layer : w_.rwkv_layers) {
      for (const Matrix* m : {&layer.key, &layer.value, &layer.receptance, &layer.output, &layer.ffn_key,
                              &layer.ffn_receptance, &layer.ffn_value}) {
        any_quantized = any_quantized || m->quantized();
      }
    }
    quant_.init(any_quantized, chunk_, std::max({H, A, I}), kSharedSlots);
    set_threads(cfg_.n_threads);
    reset();
  }

  void forward(const int32_t* tokens, int64_t n, LogitsMode mode, float* logits_out) override {
    // No cache bounds the sequence, but max_seq_len is the API's limit for every model.
    check_forward_input(tokens, n, cfg_, n_past_);
    forward_in_chunks(tokens, n, chunk_, mode, logits_out, cfg_.vocab_size,
                      [this](const int32_t* t, int64_t len, LogitsMode m, float* out) { run_chunk(t, len, m, out); });
  }

  void reset() override {
    const int64_t H = cfg_.hidden_size, A = cfg_.attention_hidden_size, L = cfg_.n_layers;
    std::fill_n(state_.time_mix_previous.data(), L * H, 0.f);
    std::fill_n(state_.channel_mix_previous.data(), L * H, 0.f);
    std::fill_n(state_.numerator.data(), L * A, 0.f);
    std::fill_n(state_.denominator.data(), L * A, 0.f);
    std::fill_n(state_.max_exponent.data(), L * A, kNoExponent);
    n_past_ = 0;
  }

  void truncate(int64_t n) override {
    if (n == n_past_) return;
    if (n == 0) return reset();
    throw InvalidArgumentError("cannot truncate an RWKV sequence of " + std::to_string(n_past_) + " tokens to " +
                               std::to_string(n) + ": a recurrent state keeps no earlier positions; truncate to 0 "
                               "(a fresh sequence) or run the kept tokens again");
  }

  int64_t n_past() const override { return n_past_; }
  const EngineConfig& config() const override { return cfg_; }
  void set_isa(const std::string& isa) override { kernels_ = &cpu_kernels_for(isa); }
  std::string isa() const override { return kernels_->name; }
  int threads() const override { return pool_->size(); }

  void set_threads(int n_threads) override {
    if (n_threads < 1) throw InvalidArgumentError("threads must be at least 1, got " + std::to_string(n_threads));
    pool_ = std::make_unique<ThreadPool>(n_threads);
    cfg_.n_threads = n_threads;
    normed_.clear();
    for (int i = 0; i < n_threads; ++i) normed_.emplace_back((chunk_ + 1) * cfg_.hidden_size);
    quant_.set_threads(n_threads);
  }

 private:
  void validate() const {
    const auto& c = cfg_;
    const std::pair<int64_t, const char*> sizes[] = {
        {c.vocab_size, "vocab_size"}, {c.hidden_size, "hidden_size"}, {c.attention_hidden_size, "attention_hidden_size"},
        {c.intermediate_size, "intermediate_size"}, {c.n_layers, "num_hidden_layers"}, {c.max_seq_len, "max_seq_len"}};
    for (const auto& [value, name] : sizes) {
      if (value <= 0) throw ConfigError(std::string(name) + " must be positive, got " + std::to_string(value));
    }
    if (c.rescale_every < 0) throw ConfigError("rescale_every must be >= 0");
    if (c.rescale_every > 0 && c.n_layers / c.rescale_every > 100) {
      throw ConfigError("rescale_every is too small for the layer count: 2^-(layers / rescale_every) underflows");
    }
    const int64_t H = c.hidden_size, A = c.attention_hidden_size, I = c.intermediate_size;
    check_matrix(w_.embed_tokens, "embed_tokens", c.vocab_size, H);
    check_matrix(w_.lm_head, "lm_head", c.vocab_size, H);
    check_format(w_.embed_tokens, "embed_tokens", false);
    check_format(w_.lm_head, "lm_head", true);
    for (const auto& [v, name] : {std::pair{w_.pre_ln, "pre_ln"}, {w_.pre_ln_bias, "pre_ln.bias"}, {w_.norm, "norm"},
                                  {w_.norm_bias, "norm.bias"}}) {
      check_vector(v, name);
    }
    if (static_cast<int64_t>(w_.rwkv_layers.size()) != c.n_layers) {
      throw ModelFormatError("expected weights for " + std::to_string(c.n_layers) + " RWKV blocks, got " +
                             std::to_string(w_.rwkv_layers.size()));
    }
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const RwkvLayerWeights& L = w_.rwkv_layers[l];
      const std::string p = "layers." + std::to_string(l) + ".";
      for (const auto& [v, name] :
           {std::pair{L.ln1, "ln1"}, {L.ln1_bias, "ln1.bias"}, {L.ln2, "ln2"}, {L.ln2_bias, "ln2.bias"},
            {L.time_decay, "attention.time_decay"}, {L.time_first, "attention.time_first"},
            {L.time_mix_key, "attention.time_mix_key"}, {L.time_mix_value, "attention.time_mix_value"},
            {L.time_mix_receptance, "attention.time_mix_receptance"},
            {L.ffn_time_mix_key, "feed_forward.time_mix_key"},
            {L.ffn_time_mix_receptance, "feed_forward.time_mix_receptance"}}) {
        check_vector(v, p + name);
      }
      const std::tuple<const Matrix*, const char*, int64_t, int64_t> matrices[] = {
          {&L.key, "attention.key", A, H}, {&L.value, "attention.value", A, H},
          {&L.receptance, "attention.receptance", A, H}, {&L.output, "attention.output", H, A},
          {&L.ffn_key, "feed_forward.key", I, H}, {&L.ffn_receptance, "feed_forward.receptance", H, H},
          {&L.ffn_value, "feed_forward.value", H, I}};
      for (const auto& [m, name, rows, cols] : matrices) {
        check_matrix(*m, p + name, rows, cols);
        check_format(*m, p + name, true);
      }
    }
  }

  void matmul(const LinearInput& in, int64_t n_tokens, const Matrix& W, Range rows, float* y, int64_t y_stride,
              bool accumulate) const {
    linear(*kernels_, in, n_tokens, W, rows.begin, rows.end, y, y_stride, nullptr, accumulate);
  }

  void layernorm(const float* weight, const float* bias, const float* src, float* dst, float eps) const {
    kernels_->layernorm(src, weight, bias, dst, cfg_.hidden_size, eps);
  }

  // Region "norm and token shift", for this thread's tokens: h_t = layernorm(x_t) and, for each
  // mix j, out_j[t] = h_t * mix_j + h_{t-1} * (1 - mix_j), with h_{-1} = `previous` (the state).
  // The thread computes h_{t-1} of its first token itself; whoever has the last token keeps its
  // h in last_normed_ (the next state, stored after the region: `previous` is still being read).
  // With quantized weights it also quantizes its rows of out[j] into shared slot kMixSlot + j.
  void norm_shift(int tid, int64_t n, const float* weight, const float* bias, const float* previous,
                  const float* const* mix, float* const* out, int n_mix) {
    const int64_t H = cfg_.hidden_size;
    const Range tokens = split_range(n, tid, pool_->size(), 1);
    if (tokens.begin >= tokens.end) return;
    float* h = normed_[tid].data();  // rows t - tokens.begin + 1; row 0 holds h_{tokens.begin - 1}
    if (tokens.begin == 0) {
      std::memcpy(h, previous, sizeof(float) * H);
    } else {
      layernorm(weight, bias, x_.data() + (tokens.begin - 1) * H, h, cfg_.rms_norm_eps);
    }
    for (int64_t t = tokens.begin; t < tokens.end; ++t) {
      const float* prev = h + (t - tokens.begin) * H;
      float* cur = h + (t - tokens.begin + 1) * H;
      layernorm(weight, bias, x_.data() + t * H, cur, cfg_.rms_norm_eps);
      for (int j = 0; j < n_mix; ++j) {
        float* o = out[j] + t * H;
        for (int64_t i = 0; i < H; ++i) o[i] = cur[i] * mix[j][i] + prev[i] * (1.f - mix[j][i]);
      }
      if (t == n - 1) std::memcpy(last_normed_.data(), cur, sizeof(float) * H);
    }
    for (int j = 0; j < n_mix; ++j) {
      quant_.quantize_into(*kernels_, kMixSlot + j, out[j], H, tokens.begin, tokens.end - tokens.begin, H);
    }
  }

  // The token-shifted input out[j] of norm_shift as a matmul input.
  LinearInput mixed(int j, const float* out) const { return quant_.shared(kMixSlot + j, out, cfg_.hidden_size); }

  // Region: k, v, r of this thread's channels, then the WKV recurrence over the chunk's tokens on
  // those channels; leaves sigmoid(r) * wkv * scale in receptance_.
  void time_mix_channels(int tid, int64_t layer, int64_t n, float scale) {
    const RwkvLayerWeights& L = w_.rwkv_layers[layer];
    const int64_t H = cfg_.hidden_size, A = cfg_.attention_hidden_size;
    const Range ch = split_range(A, tid, pool_->size(), kRowAlign);
    if (ch.begin >= ch.end) return;
    matmul(mixed(0, mix_a_.data()), n, L.key, ch, key_.data(), A, false);
    matmul(mixed(1, mix_b_.data()), n, L.value, ch, value_.data(), A, false);
    matmul(mixed(2, mix_c_.data()), n, L.receptance, ch, receptance_.data(), A, false);
    float* aa = state_.numerator.data() + layer * A;
    float* bb = state_.denominator.data() + layer * A;
    float* pp = state_.max_exponent.data() + layer * A;
    const float* log_decay = log_decay_.data() + layer * A;
    for (int64_t c = ch.begin; c < ch.end; ++c) {
      const float u = L.time_first[c];
      float num = aa[c], den = bb[c], max_exp = pp[c];
      for (int64_t t = 0; t < n; ++t) {
        const float k = key_.data()[t * A + c], v = value_.data()[t * A + c];
        // Output: the state plus the current token with its bonus u.
        float m = std::max(max_exp, k + u);
        float e1 = std::exp(max_exp - m), e2 = std::exp(k + u - m);
        const float wkv = (e1 * num + e2 * v) / (e1 * den + e2);
        float* r = receptance_.data() + t * A + c;
        *r = sigmoid(*r) * wkv * scale;
        // State: decay the sum, then add the current token.
        m = std::max(max_exp + log_decay[c], k);
        e1 = std::exp(max_exp + log_decay[c] - m);
        e2 = std::exp(k - m);
        num = e1 * num + e2 * v;
        den = e1 * den + e2;
        max_exp = m;
      }
      aa[c] = num;
      bb[c] = den;
      pp[c] = max_exp;
    }
  }

  void run_chunk(const int32_t* tokens, int64_t n, LogitsMode mode, float* logits_out) {
    const int64_t H = cfg_.hidden_size, A = cfg_.attention_hidden_size, I = cfg_.intermediate_size;
    const int T = pool_->size();
    for (int64_t t = 0; t < n; ++t) {
      float* x = x_.data() + t * H;
      embedding_row(*kernels_, w_.embed_tokens, tokens[t], x);
      layernorm(w_.pre_ln, w_.pre_ln_bias, x, x, cfg_.rms_norm_eps);
    }
    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      const RwkvLayerWeights& L = w_.rwkv_layers[l];
      const float scale = cfg_.rescale_every > 0 ? std::ldexp(1.f, -static_cast<int>(l / cfg_.rescale_every)) : 1.f;
      const bool halve = cfg_.rescale_every > 0 && (l + 1) % cfg_.rescale_every == 0;

      // Time mix.
      float* att_previous = state_.time_mix_previous.data() + l * H;
      const float* att_mix[] = {L.time_mix_key, L.time_mix_value, L.time_mix_receptance};
      float* att_out[] = {mix_a_.data(), mix_b_.data(), mix_c_.data()};
      pool_->run([&](int tid) { norm_shift(tid, n, L.ln1, L.ln1_bias, att_previous, att_mix, att_out, 3); });
      std::memcpy(att_previous, last_normed_.data(), sizeof(float) * H);
      pool_->run([&](int tid) { time_mix_channels(tid, l, n, scale); });
      quant_.quantize_shared(*kernels_, *pool_, receptance_.data(), A, n, A);
      pool_->run([&](int tid) {
        const LinearInput in = quant_.shared_or_own(*kernels_, receptance_.data(), A, n, A, tid);
        matmul(in, n, L.output, split_range(H, tid, T, kRowAlign), x_.data(), H, true);
      });

      // Channel mix.
      float* ffn_previous = state_.channel_mix_previous.data() + l * H;
      const float* ffn_mix[] = {L.ffn_time_mix_key, L.ffn_time_mix_receptance};
      float* ffn_out[] = {mix_a_.data(), mix_b_.data()};
      pool_->run([&](int tid) { norm_shift(tid, n, L.ln2, L.ln2_bias, ffn_previous, ffn_mix, ffn_out, 2); });
      std::memcpy(ffn_previous, last_normed_.data(), sizeof(float) * H);
      pool_->run([&](int tid) {
        const Range keys = split_range(I, tid, T, kRowAlign), rows = split_range(H, tid, T, kRowAlign);
        matmul(mixed(0, mix_a_.data()), n, L.ffn_key, keys, ffn_key_.data(), I, false);
        for (int64_t t = 0; t < n; ++t) {
          float* k = ffn_key_.data() + t * I;
          for (int64_t i = keys.begin; i < keys.end; ++i) {
            const float relu = std::max(k[i], 0.f);
            k[i] = relu * relu * scale;
          }
        }
        matmul(mixed(1, mix_b_.data()), n, L.ffn_receptance, rows, receptance_.data(), H, false);
      });
      quant_.quantize_shared(*kernels_, *pool_, ffn_key_.data(), I, n, I);
      pool_->run([&](int tid) {
        const Range rows = split_range(H, tid, T, kRowAlign);
        matmul(quant_.shared_or_own(*kernels_, ffn_key_.data(), I, n, I, tid), n, L.ffn_value, rows, proj_.data(), H,
               false);
        for (int64_t t = 0; t < n; ++t) {
          float* x = x_.data() + t * H;
          const float* r = receptance_.data() + t * H;
          const float* v = proj_.data() + t * H;
          for (int64_t o = rows.begin; o < rows.end; ++o) {
            x[o] += sigmoid(r[o]) * v[o];
            if (halve) x[o] *= 0.5f;
          }
        }
      });
    }
    n_past_ += n;
    if (mode == LogitsMode::None) return;
    const int64_t first = mode == LogitsMode::All ? 0 : n - 1;
    pool_->run([&](int tid) {
      float* h = normed_[tid].data();
      for (int64_t t = first; t < n; ++t) {
        layernorm(w_.norm, w_.norm_bias, x_.data() + t * H, h + (t - first) * H, cfg_.final_norm_eps);
      }
      matmul(quant_.own(*kernels_, h, H, n - first, H, tid), n - first, w_.lm_head,
             split_range(cfg_.vocab_size, tid, T, kRowAlign), logits_out, cfg_.vocab_size, false);
    });
  }

  EngineConfig cfg_;
  ModelWeights w_;
  const kernels::CpuKernels* kernels_ = nullptr;
  std::unique_ptr<ThreadPool> pool_;
  int64_t n_past_ = 0;
  int64_t chunk_ = 0;
  RwkvState state_;
  Buffer<float> log_decay_;  // [L, attention_hidden]: -exp(time_decay)
  Buffer<float> x_;          // [chunk, hidden]: the residual stream
  Buffer<float> mix_a_, mix_b_, mix_c_;  // [chunk, hidden]: token-shifted inputs of the projections
  Buffer<float> key_, value_;  // [chunk, attention_hidden]
  Buffer<float> receptance_;   // [chunk, max(attention_hidden, hidden)]: the time mix's, then the channel mix's
  Buffer<float> ffn_key_;    // [chunk, intermediate]: relu(k)^2
  Buffer<float> proj_;       // [chunk, hidden]: the channel mix's value
  Buffer<float> last_normed_;  // [hidden]: the chunk's last normalised row, the next token-shift state
  std::vector<Buffer<float>> normed_;  // per thread: [chunk + 1, hidden] normalised rows
  // int8 activations of quantized matmuls: slot 0 for rows several threads wrote (quantize_shared),
  // slots kMixSlot + j for norm_shift's outputs.
  ActivationQuantizer quant_;
};

}  // namespace

std::unique_ptr<Engine> make_rwkv_engine(EngineConfig config, ModelWeights weights) {
  return std::make_unique<RwkvEngine>(std::move(config), std::move(weights));
}

}  // namespace slm
