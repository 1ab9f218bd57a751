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
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "runtime/buffer.h"
#include "runtime/cpu_dispatch.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#include "runtime/thread_pool.h"

namespace slm {

namespace {

constexpr int64_t kMaxChunk = 512;        // prompt tokens per pass: bounds scratch memory
constexpr int64_t kRowAlign = 16;         // thread split granularity for matrix rows
constexpr float kNoExponent = -1e38f;     // the running maximum exponent of an empty sum

float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

// Shape checks of the borrowed weights; `name` is the canonical weight name.
void expect_matrix(const Matrix& m, const std::string& name, int64_t rows, int64_t cols) {
  if (m.data == nullptr) throw ModelFormatError("missing weight " + name);
  if (m.rows != rows || m.cols != cols) {
    throw ModelFormatError("weight " + name + " has shape [" + std::to_string(m.rows) + ", " + std::to_string(m.cols) +
                           "], expected [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  }
}

void expect_vector(const float* v, const std::string& name) {
  if (v == nullptr) throw ModelFormatError("missing weight " + name);
}

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
    expect_matrix(w_.embed_tokens, "embed_tokens", c.vocab_size, H);
    expect_matrix(w_.lm_head, "lm_head", c.vocab_size, H);
    for (const auto& [v, name] : {std::pair{w_.pre_ln, "pre_ln"}, {w_.pre_ln_bias, "pre_ln.bias"}, {w_.norm, "norm"},
                                  {w_.norm_bias, "norm.bias"}}) {
      expect_vector(v, name);
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
        expect_vector(v, p + name);
      }
      expect_matrix(L.key, p + "attention.key", A, H);
      expect_matrix(L.value, p + "attention.value", A, H);
      expect_matrix(L.receptance, p + "attention.receptance", A, H);
      expect_matrix(L.output, p + "attention.output", H, A);
      expect_matrix(L.ffn_key, p + "feed_forward.key", I, H);
      expect_matrix(L.ffn_receptance, p + "feed_forward.receptance", H, H);
      expect_matrix(L.ffn_value, p + "feed_forward.value", H, I);
    }
  }

  void matmul(const float* x, int64_t x_stride, int64_t n_tokens, const Matrix& W, Range rows, float* y,
              int64_t y_stride, bool accumulate) const {
    if (rows.begin >= rows.end) return;
    kernels::MatmulArgs a{x, x_stride, W.data, W.dtype, W.cols, y, y_stride, n_tokens, W.cols,
                          rows.begin, rows.end, nullptr, accumulate};
    kernels_->matmul(a);
  }

  void layernorm(const float* weight, const float* bias, const float* src, float* dst, float eps) const {
    kernels_->layernorm(src, weight, bias, dst, cfg_.hidden_size, eps);
  }

  // Region "norm and token shift", for this thread's tokens: h_t = layernorm(x_t) and, for each
  // mix j, out_j[t] = h_t * mix_j + h_{t-1} * (1 - mix_j), with h_{-1} = `previous` (the state).
  // The thread computes h_{t-1} of its first token itself; whoever has the last token keeps its
  // h in last_normed_ (the next state, stored after the region: `previous` is still being read).
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
  }

  // Region: k, v, r of this thread's channels, then the WKV recurrence over the chunk's tokens on
  // those channels; leaves sigmoid(r) * wkv * scale in receptance_.
  void time_mix_channels(int tid, int64_t layer, int64_t n, float scale) {
    const RwkvLayerWeights& L = w_.rwkv_layers[layer];
    const int64_t H = cfg_.hidden_size, A = cfg_.attention_hidden_size;
    const Range ch = split_range(A, tid, pool_->size(), kRowAlign);
    if (ch.begin >= ch.end) return;
    matmul(mix_a_.data(), H, n, L.key, ch, key_.data(), A, false);
    matmul(mix_b_.data(), H, n, L.value, ch, value_.data(), A, false);
    matmul(mix_c_.data(), H, n, L.receptance, ch, receptance_.data(), A, false);
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
    const Matrix& E = w_.embed_tokens;
    const size_t row_bytes = static_cast<size_t>(H) * (E.dtype == DType::F32 ? 4 : 2);
    for (int64_t t = 0; t < n; ++t) {
      float* x = x_.data() + t * H;
      kernels_->to_f32(static_cast<const uint8_t*>(E.data) + static_cast<size_t>(tokens[t]) * row_bytes, E.dtype, x, H);
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
      pool_->run([&](int tid) {
        matmul(receptance_.data(), A, n, L.output, split_range(H, tid, T, kRowAlign), x_.data(), H, true);
      });

      // Channel mix.
      float* ffn_previous = state_.channel_mix_previous.data() + l * H;
      const float* ffn_mix[] = {L.ffn_time_mix_key, L.ffn_time_mix_receptance};
      float* ffn_out[] = {mix_a_.data(), mix_b_.data()};
      pool_->run([&](int tid) { norm_shift(tid, n, L.ln2, L.ln2_bias, ffn_previous, ffn_mix, ffn_out, 2); });
      std::memcpy(ffn_previous, last_normed_.data(), sizeof(float) * H);
      pool_->run([&](int tid) {
        const Range keys = split_range(I, tid, T, kRowAlign), rows = split_range(H, tid, T, kRowAlign);
        matmul(mix_a_.data(), H, n, L.ffn_key, keys, ffn_key_.data(), I, false);
        for (int64_t t = 0; t < n; ++t) {
          float* k = ffn_key_.data() + t * I;
          for (int64_t i = keys.begin; i < keys.end; ++i) {
            const float relu = std::max(k[i], 0.f);
            k[i] = relu * relu * scale;
          }
        }
        matmul(mix_b_.data(), H, n, L.ffn_receptance, rows, receptance_.data(), H, false);
      });
      pool_->run([&](int tid) {
        const Range rows = split_range(H, tid, T, kRowAlign);
        matmul(ffn_key_.data(), I, n, L.ffn_value, rows, proj_.data(), H, false);
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
      matmul(h, H, n - first, w_.lm_head, split_range(cfg_.vocab_size, tid, T, kRowAlign), logits_out,
             cfg_.vocab_size, false);
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
};

}  // namespace

std::unique_ptr<Engine> make_rwkv_engine(EngineConfig config, ModelWeights weights) {
  return std::make_unique<RwkvEngine>(std::move(config), std::move(weights));
}

}  // namespace slm
