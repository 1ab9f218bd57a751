// The llama graph on CUDA, one token at a time (decode; a prompt runs as consecutive steps).
//
// Per token: the embedding row is looked up on the GPU (int8 rows), or on the host when the model
// has an embedding LayerNorm, learned positions or a 16-bit embedding (the CPU's own code) and
// uploaded. With the GPU lookup the whole step is one CUDA graph, captured once and replayed per
// token: its kernels read the position from device memory (SLM_CUDA_GRAPHS=0 launches them one by
// one instead). Every layer then runs on
// the GPU: norm -> fp16 -> int4 GEMVs -> q/k head norms -> rope -> fp16 KV cache -> flash-decoding
// attention -> fp16 -> o_proj -> residual; norm -> gate/up GEMVs -> activation -> fp16 -> down_proj
// -> residual; the final norm and the int8-row lm_head give float32 logits, copied back when asked.
// Results match the CPU engine up to the activations' precision: fp16 here, int8 blocks there.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "runtime/cpu_dispatch.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/engine.h"
#include "runtime/error.h"
#include "runtime/linear.h"
#include "slm/kernels/cuda.h"
#include "slm/kernels/quant.h"

namespace slm {
namespace {

namespace kc = slm::kernels::cuda;
using cuda::check;
using cuda::DeviceBuffer;

struct GpuInt4 {
  DeviceBuffer packed, scales, mins;
  kc::Int4Matrix m;
};

struct GpuLayer {
  GpuInt4 q, k, v, o, gate, up, down;
  DeviceBuffer input_norm, input_norm_bias, post_norm, post_norm_bias;
  DeviceBuffer q_bias, k_bias, v_bias, o_bias, gate_bias, up_bias, down_bias;
  DeviceBuffer q_norm, k_norm, attn_output_norm, mlp_output_norm;
};

const float* ptr(const DeviceBuffer& b) { return b.size() ? b.as<float>() : nullptr; }

class CudaLlamaEngine final : public Engine {
 public:
  CudaLlamaEngine(EngineConfig c, ModelWeights w, int device) : cfg_(std::move(c)), w_(std::move(w)), device_(device) {
    validate();
    cuda::set_device(device_);
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    host_ = &cpu_kernels_for("auto");
    const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, hd = cfg_.head_dim;
    q_dim_ = cfg_.n_heads * hd;
    kv_dim_ = cfg_.n_kv_heads * hd;
    for (const LayerWeights& L : w_.layers) layers_.push_back(upload_layer(L));
    final_norm_ = upload_vector(w_.norm, H);
    final_norm_bias_ = upload_vector(w_.norm_bias, H);
    lm_head_q_ = DeviceBuffer{size_t(cfg_.vocab_size * H)};
    lm_head_q_.upload(w_.lm_head.data, lm_head_q_.size());
    lm_head_s_ = DeviceBuffer{size_t(cfg_.vocab_size * 2)};
    lm_head_s_.upload(w_.lm_head.row_scales, lm_head_s_.size());
    lm_head_bias_ = upload_vector(w_.lm_head_bias, cfg_.vocab_size);
    if (!cfg_.alibi_slopes.empty()) {
      alibi_ = DeviceBuffer{cfg_.alibi_slopes.size() * 4};
      alibi_.upload(cfg_.alibi_slopes.data(), alibi_.size());
    }
    {  // the bias of a LayerNorm that has none
      std::vector<float> zeros(size_t(std::max(H, hd)), 0.f);
      zeros_ = upload_vector(zeros.data(), int64_t(zeros.size()));
    }
    // Rope tables: the host computed [max_seq_len, rotary_dim/2] per table.
    for (size_t t = 0; t < cfg_.rope_cos.size(); ++t) {
      rope_cos_.push_back(upload_vector(cfg_.rope_cos[t].data(), int64_t(cfg_.rope_cos[t].size())));
      rope_sin_.push_back(upload_vector(cfg_.rope_sin[t].data(), int64_t(cfg_.rope_sin[t].size())));
    }
    x_ = DeviceBuffer{size_t(H * 4)};
    block_input_ = DeviceBuffer{size_t(H * 4)};
    // fp16 GEMV inputs, one per width, zeroed once: the int4 GEMV reads up to the padded width,
    // and the tail past the real width must stay zero.
    for (DeviceBuffer* b : {&h16_, &a16_, &o16_}) {
      *b = DeviceBuffer{size_t((std::max({H, I, q_dim_}) + 128) * 2)};
      check(cudaMemset(b->data(), 0, b->size()), "cudaMemset");
    }
    q_ = DeviceBuffer{size_t(q_dim_ * 4)};
    k_ = DeviceBuffer{size_t(kv_dim_ * 4)};
    v_ = DeviceBuffer{size_t(kv_dim_ * 4)};
    attn_ = DeviceBuffer{size_t(q_dim_ * 4)};
    proj_ = DeviceBuffer{size_t(std::max(H, q_dim_) * 4)};
    gate_ = DeviceBuffer{size_t(I * 4)};
    up_ = DeviceBuffer{size_t(I * 4)};
    logits_ = DeviceBuffer{size_t(cfg_.vocab_size * 4)};
    const size_t cache = size_t(cfg_.n_kv_heads * cfg_.max_seq_len * hd);
    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      k_cache_.emplace_back(cache * 2);
      v_cache_.emplace_back(cache * 2);
    }
    scratch_ = DeviceBuffer{size_t(kc::attention_scratch_floats(cfg_.n_heads, hd, 0, cfg_.max_seq_len) * 4)};
    host_row_.resize(size_t(H));
    host_tmp_.resize(size_t(H));
    const char* graphs = std::getenv("SLM_CUDA_GRAPHS");
    use_graphs_ = w_.embed_tokens.format == WeightFormat::Int8Rows && w_.embed_norm == nullptr &&
                  w_.position_embeddings.data == nullptr && !(graphs && std::strcmp(graphs, "0") == 0);
    if (use_graphs_) {
      tokens_dev_ = DeviceBuffer{size_t(cfg_.max_seq_len) * 4};
      pos_dev_ = DeviceBuffer{4};
      if (w_.embed_tokens.data == w_.lm_head.data) {  // tied: the lm_head's copy serves
        embed_q_ = DeviceBuffer{};
      } else {
        embed_q_ = DeviceBuffer{size_t(cfg_.vocab_size * H)};
        embed_q_.upload(w_.embed_tokens.data, embed_q_.size());
        embed_s_ = DeviceBuffer{size_t(cfg_.vocab_size * 2)};
        embed_s_.upload(w_.embed_tokens.row_scales, embed_s_.size());
      }
    }
    // The zeroing cudaMemsets ran on the legacy default stream, which our non-blocking stream does
    // not wait for: wait for the whole device once, before the first step.
    check(cudaDeviceSynchronize(), "CUDA engine upload");
  }

  ~CudaLlamaEngine() override {
    for (cudaGraphExec_t g : graph_) {
      if (g) cudaGraphExecDestroy(g);
    }
    if (stream_) cudaStreamDestroy(stream_);
  }

  void forward(const int32_t* tokens, int64_t n, LogitsMode mode, float* logits_out) override {
    check_forward_input(tokens, n, cfg_, n_past_);
    cuda::set_device(device_);
    if (use_graphs_) {  // the tokens and the first position go to the device; each replay advances it
      const int32_t pos = int32_t(n_past_);
      check(cudaMemcpyAsync(tokens_dev_.as<int32_t>() + n_past_, tokens, size_t(n) * 4, cudaMemcpyHostToDevice, stream_),
            "tokens H2D");
      check(cudaMemcpyAsync(pos_dev_.data(), &pos, 4, cudaMemcpyHostToDevice, stream_), "position H2D");
    }
    for (int64_t t = 0; t < n; ++t) {
      const bool want = mode == LogitsMode::All || (mode == LogitsMode::Last && t == n - 1);
      if (use_graphs_) {
        check(cudaGraphLaunch(graph(want), stream_), "cudaGraphLaunch");
      } else {
        step(tokens[t], n_past_ + t, want);
      }
      if (want) {
        float* dst = logits_out + (mode == LogitsMode::All ? t * cfg_.vocab_size : 0);
        check(cudaMemcpyAsync(dst, logits_.data(), size_t(cfg_.vocab_size) * 4, cudaMemcpyDeviceToHost, stream_),
              "logits D2H");
      }
    }
    check(cudaStreamSynchronize(stream_), "CUDA forward");
    n_past_ += n;
  }

  void reset() override { n_past_ = 0; }
  void truncate(int64_t n) override {
    if (n < 0 || n > n_past_) {
      throw InvalidArgumentError("truncate(" + std::to_string(n) + "): the sequence has " + std::to_string(n_past_) +
                                 " positions");
    }
    n_past_ = n;
  }
  int64_t n_past() const override { return n_past_; }
  const EngineConfig& config() const override { return cfg_; }
  void set_isa(const std::string& isa) override { host_ = &cpu_kernels_for(isa); }
  std::string isa() const override { return "cuda"; }
  void set_threads(int) override {}
  int threads() const override { return 1; }
  int64_t kv_cache_bytes() const override {
    return int64_t(2 * cfg_.n_layers * cfg_.n_kv_heads * cfg_.max_seq_len * cfg_.head_dim * 2);
  }

 private:
  // The decode step captured once per logits flavour; its kernels read the position from pos_dev_.
  cudaGraphExec_t graph(bool logits) {
    cudaGraphExec_t& exec = graph_[logits ? 1 : 0];
    if (exec) return exec;
    cudaGraph_t g = nullptr;
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    try {
      step(0, 0, logits);
    } catch (...) {
      cudaStreamEndCapture(stream_, &g);
      if (g) cudaGraphDestroy(g);
      throw;
    }
    check(cudaStreamEndCapture(stream_, &g), "cudaStreamEndCapture");
    const cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    check(e, "cudaGraphInstantiate");
    return exec;
  }

  void validate() const {
    if (cfg_.kv_dtype != DType::F16) throw ConfigError("the CUDA engine keeps a float16 KV cache: use kv_dtype='float16'");
    if (w_.lm_head.format != WeightFormat::Int8Rows) {
      throw ConfigError("the CUDA engine needs the int8-row lm_head of quant='int4'");
    }
    if (w_.embed_tokens.data == nullptr) throw ModelFormatError("missing weight embed_tokens");
    if (cfg_.head_dim > kc::kMaxAttentionHeadDim) {
      throw ConfigError("the CUDA engine supports head_dim up to " + std::to_string(kc::kMaxAttentionHeadDim));
    }
    if (static_cast<int64_t>(w_.layers.size()) != cfg_.n_layers) throw ModelFormatError("layer count does not match");
  }

  DeviceBuffer upload_vector(const float* host, int64_t n) {
    if (host == nullptr) return DeviceBuffer{};
    DeviceBuffer d{size_t(n * 4)};
    d.upload(host, d.size());
    return d;
  }

  GpuInt4 upload_int4(const Matrix& W, const char* name) {
    if (W.format != WeightFormat::Int4) {
      throw ConfigError(std::string("the CUDA engine runs int4 layer matrices (load with quant='int4'); ") + name +
                        " is not int4");
    }
    const int64_t G = W.group_size, padded = (W.cols + G - 1) / G * G, groups = padded / G;
    std::vector<uint8_t> qweight(size_t(W.rows * padded / 2));
    std::vector<uint16_t> scales(size_t(W.rows * groups)), mins(W.sym ? 0 : size_t(W.rows * groups));
    kernels::int4_unpack({W.data, W.rows, W.cols, G, W.sym, qweight.data(), scales.data(), W.sym ? nullptr : mins.data()});
    const int64_t alloc = kc::int4_rows_allocated(W.rows);
    GpuInt4 g;
    g.packed = DeviceBuffer{size_t(alloc * padded / 2)};
    g.scales = DeviceBuffer{size_t(alloc * groups * 2)};
    check(cudaMemset(g.packed.data(), 0, g.packed.size()), "cudaMemset");
    check(cudaMemset(g.scales.data(), 0, g.scales.size()), "cudaMemset");
    g.packed.upload(qweight.data(), qweight.size());
    g.scales.upload(scales.data(), scales.size() * 2);
    if (!W.sym) {
      g.mins = DeviceBuffer{size_t(alloc * groups * 2)};
      check(cudaMemset(g.mins.data(), 0, g.mins.size()), "cudaMemset");
      g.mins.upload(mins.data(), mins.size() * 2);
    }
    check(kc::int4_to_gpu_layout(g.packed.as<uint8_t>(), g.packed.as<uint8_t>(), int64_t(qweight.size()), stream_),
          "int4_to_gpu_layout");
    g.m = kc::Int4Matrix{g.packed.as<uint8_t>(), g.scales.as<uint16_t>(), W.sym ? nullptr : g.mins.as<uint16_t>(),
                         W.rows, padded, int(G)};
    return g;
  }

  GpuLayer upload_layer(const LayerWeights& L) {
    const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, hd = cfg_.head_dim;
    const int64_t qn = cfg_.head_norm_per_head ? q_dim_ : hd, kn = cfg_.head_norm_per_head ? kv_dim_ : hd;
    GpuLayer g;
    g.q = upload_int4(L.q_proj, "q_proj");
    g.k = upload_int4(L.k_proj, "k_proj");
    g.v = upload_int4(L.v_proj, "v_proj");
    g.o = upload_int4(L.o_proj, "o_proj");
    if (cfg_.mlp_type == MlpType::Gated) g.gate = upload_int4(L.gate_proj, "gate_proj");
    g.up = upload_int4(L.up_proj, "up_proj");
    g.down = upload_int4(L.down_proj, "down_proj");
    g.input_norm = upload_vector(L.input_layernorm, H);
    g.input_norm_bias = upload_vector(L.input_layernorm_bias, H);
    g.post_norm = upload_vector(L.post_attention_layernorm, H);
    g.post_norm_bias = upload_vector(L.post_attention_layernorm_bias, H);
    g.q_bias = upload_vector(L.q_bias, q_dim_);
    g.k_bias = upload_vector(L.k_bias, kv_dim_);
    g.v_bias = upload_vector(L.v_bias, kv_dim_);
    g.o_bias = upload_vector(L.o_bias, H);
    g.gate_bias = upload_vector(L.gate_bias, I);
    g.up_bias = upload_vector(L.up_bias, I);
    g.down_bias = upload_vector(L.down_bias, H);
    g.q_norm = upload_vector(L.q_norm, qn);
    g.k_norm = upload_vector(L.k_norm, kn);
    g.attn_output_norm = upload_vector(L.attn_output_norm, H);
    g.mlp_output_norm = upload_vector(L.mlp_output_norm, H);
    return g;
  }

  // x (float32) -> normalised -> fp16 in h16_.
  void norm_to_half(const float* x, const DeviceBuffer& w, const DeviceBuffer& b) {
    const int64_t H = cfg_.hidden_size;
    if (cfg_.norm_type == NormType::RMS) {
      check(kc::rms_norm(x, ptr(w), nullptr, h16_.as<uint16_t>(), 1, H, cfg_.rms_norm_eps, stream_), "rms_norm");
    } else {
      const float* bias = b.size() ? ptr(b) : ptr(zeros_);
      check(kc::layer_norm(x, ptr(w), bias, nullptr, h16_.as<uint16_t>(), 1, H, cfg_.rms_norm_eps, stream_),
            "layer_norm");
    }
  }

  void gemv(const GpuInt4& W, const DeviceBuffer& x16, float* y, const DeviceBuffer& bias) {
    check(kc::int4_gemv(W.m, x16.as<uint16_t>(), y, stream_, false), "int4_gemv");
    if (bias.size()) check(kc::add_into(y, nullptr, ptr(bias), W.m.rows, stream_), "bias");
  }

  // In place on rows [n_heads][head_dim] of `x`: one shared weight, or one per head.
  void head_norm(float* x, int64_t heads, const DeviceBuffer& w) {
    if (!w.size()) return;
    const int64_t hd = cfg_.head_dim;
    if (!cfg_.head_norm_per_head && cfg_.head_norm_type == NormType::RMS) {
      check(kc::rms_norm(x, ptr(w), x, nullptr, heads, hd, cfg_.rms_norm_eps, stream_), "head rms_norm");
      return;
    }
    for (int64_t h = 0; h < heads; ++h) {
      const float* wh = ptr(w) + (cfg_.head_norm_per_head ? h * hd : 0);
      if (cfg_.head_norm_type == NormType::RMS) {
        check(kc::rms_norm(x + h * hd, wh, x + h * hd, nullptr, 1, hd, cfg_.rms_norm_eps, stream_), "head rms_norm");
      } else {
        check(kc::layer_norm(x + h * hd, wh, ptr(zeros_), x + h * hd, nullptr, 1, hd, cfg_.rms_norm_eps, stream_),
              "head layer_norm");
      }
    }
  }

  // x += proj (+ bias), or x += rmsnorm(proj + bias) with an output norm.
  void residual(float* proj, const DeviceBuffer& bias, const DeviceBuffer& output_norm) {
    const int64_t H = cfg_.hidden_size;
    if (!output_norm.size()) {
      check(kc::add_into(x_.as<float>(), proj, ptr(bias), H, stream_), "residual");
      return;
    }
    if (bias.size()) check(kc::add_into(proj, nullptr, ptr(bias), H, stream_), "bias");
    check(kc::rms_norm(proj, ptr(output_norm), proj, nullptr, 1, H, cfg_.rms_norm_eps, stream_), "output norm");
    check(kc::add_into(x_.as<float>(), proj, nullptr, H, stream_), "residual");
  }

  void embed(int32_t token, int64_t pos) {
    const int64_t H = cfg_.hidden_size;
    float* x = host_row_.data();
    embedding_row(*host_, w_.embed_tokens, token, x);
    if (cfg_.embed_scale != 1.f) {
      for (int64_t i = 0; i < H; ++i) x[i] *= cfg_.embed_scale;
    }
    if (w_.embed_norm != nullptr) host_->layernorm(x, w_.embed_norm, w_.embed_norm_bias, x, H, cfg_.rms_norm_eps);
    if (w_.position_embeddings.data != nullptr) {
      embedding_row(*host_, w_.position_embeddings, pos, host_tmp_.data());
      for (int64_t i = 0; i < H; ++i) x[i] += host_tmp_[size_t(i)];
    }
    // From pageable memory the copy has consumed host_row_ when the call returns: safe to reuse.
    check(cudaMemcpyAsync(x_.data(), x, size_t(H) * 4, cudaMemcpyHostToDevice, stream_), "embedding H2D");
  }

  void step(int32_t token, int64_t pos, bool logits) {
    const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, hd = cfg_.head_dim;
    float* x = x_.as<float>();
    const int32_t* pos_dev = use_graphs_ ? pos_dev_.as<int32_t>() : nullptr;  // then `token`, `pos` are unused
    if (use_graphs_) {
      const bool tied = !embed_q_.size();
      check(kc::embed_int8_row(tied ? lm_head_q_.as<int8_t>() : embed_q_.as<int8_t>(),
                               tied ? lm_head_s_.as<uint16_t>() : embed_s_.as<uint16_t>(), tokens_dev_.as<int32_t>(),
                               pos_dev, H, cfg_.embed_scale, x, stream_),
            "embedding");
    } else {
      embed(token, pos);
    }
    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      const GpuLayer& L = layers_[size_t(l)];
      const float* block_in = x;
      if (cfg_.parallel_residual) {
        check(cudaMemcpyAsync(block_input_.data(), x, size_t(H) * 4, cudaMemcpyDeviceToDevice, stream_), "copy");
        block_in = block_input_.as<float>();
      }
      norm_to_half(x, L.input_norm, L.input_norm_bias);
      gemv(L.q, h16_, q_.as<float>(), L.q_bias);
      gemv(L.k, h16_, k_.as<float>(), L.k_bias);
      gemv(L.v, h16_, v_.as<float>(), L.v_bias);
      head_norm(q_.as<float>(), cfg_.n_heads, L.q_norm);
      head_norm(k_.as<float>(), cfg_.n_kv_heads, L.k_norm);
      if (cfg_.rotary_dim > 0) {
        const size_t table = size_t(cfg_.layer_rope[size_t(l)]);
        const int64_t half = cfg_.rotary_dim / 2;
        const int64_t row = pos_dev ? 0 : pos * half;
        check(kc::rope(q_.as<float>(), cfg_.n_heads, k_.as<float>(), cfg_.n_kv_heads, hd, cfg_.rotary_dim,
                       ptr(rope_cos_[table]) + row, ptr(rope_sin_[table]) + row, cfg_.rope_style, stream_, pos_dev),
              "rope");
      }
      uint16_t* kc_l = k_cache_[size_t(l)].as<uint16_t>();
      uint16_t* vc_l = v_cache_[size_t(l)].as<uint16_t>();
      check(kc::kv_append(k_.as<float>(), v_.as<float>(), kc_l, vc_l, cfg_.n_kv_heads, hd, cfg_.max_seq_len, pos,
                          stream_, pos_dev),
            "kv_append");
      const int64_t window = cfg_.layer_windows[size_t(l)];
      kc::DecodeAttention a;
      a.q = q_.as<float>();
      a.k_cache = kc_l;
      a.v_cache = vc_l;
      a.alibi_slopes = alibi_.size() ? alibi_.as<float>() : nullptr;
      a.out = attn_.as<float>();
      a.scratch = scratch_.as<float>();
      a.n_heads = cfg_.n_heads;
      a.n_kv_heads = cfg_.n_kv_heads;
      a.head_dim = hd;
      a.max_seq_len = cfg_.max_seq_len;
      a.kv_begin = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
      a.kv_end = pos + 1;
      a.scale = cfg_.attention_scale;
      a.softcap = cfg_.attn_softcap;
      a.position = pos_dev;
      a.window = window;
      check(kc::attention_decode(a, stream_), "attention_decode");
      check(kc::to_half(attn_.as<float>(), o16_.as<uint16_t>(), q_dim_, stream_), "to_half");
      check(kc::int4_gemv(L.o.m, o16_.as<uint16_t>(), proj_.as<float>(), stream_, false), "int4_gemv o_proj");
      residual(proj_.as<float>(), L.o_bias, L.attn_output_norm);

      norm_to_half(block_in, L.post_norm, L.post_norm_bias);
      const bool gated = cfg_.mlp_type == MlpType::Gated;
      if (gated) gemv(L.gate, h16_, gate_.as<float>(), L.gate_bias);
      gemv(L.up, h16_, up_.as<float>(), L.up_bias);
      const kc::Activation act = gated ? (cfg_.activation == Activation::SiLU ? kc::Activation::SwiGlu : kc::Activation::GeGlu)
                                       : (cfg_.activation == Activation::GeluErf ? kc::Activation::GeluErf : kc::Activation::GeluTanh);
      check(kc::activation(act, gated ? gate_.as<float>() : up_.as<float>(), gated ? up_.as<float>() : nullptr,
                           a16_.as<uint16_t>(), nullptr, I, stream_),
            "activation");
      check(kc::int4_gemv(L.down.m, a16_.as<uint16_t>(), proj_.as<float>(), stream_, false), "int4_gemv down_proj");
      residual(proj_.as<float>(), L.down_bias, L.mlp_output_norm);
    }
    if (pos_dev) check(kc::advance_position(pos_dev_.as<int32_t>(), stream_), "advance_position");
    if (!logits) return;
    norm_to_half(x, final_norm_, final_norm_bias_);
    check(kc::int8_rows_gemv(lm_head_q_.as<int8_t>(), lm_head_s_.as<uint16_t>(), h16_.as<uint16_t>(), logits_.as<float>(),
                             cfg_.vocab_size, H, stream_),
          "lm_head");
    if (lm_head_bias_.size()) {
      check(kc::add_into(logits_.as<float>(), nullptr, ptr(lm_head_bias_), cfg_.vocab_size, stream_), "lm_head bias");
    }
    if (cfg_.final_softcap > 0.f) check(kc::soft_cap(logits_.as<float>(), cfg_.vocab_size, cfg_.final_softcap, stream_), "softcap");
  }

  EngineConfig cfg_;
  ModelWeights w_;
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  const kernels::CpuKernels* host_ = nullptr;
  int64_t q_dim_ = 0, kv_dim_ = 0, n_past_ = 0;
  std::vector<GpuLayer> layers_;
  DeviceBuffer final_norm_, final_norm_bias_, lm_head_q_, lm_head_s_, lm_head_bias_, alibi_, zeros_;
  std::vector<DeviceBuffer> rope_cos_, rope_sin_, k_cache_, v_cache_;
  DeviceBuffer x_, block_input_, h16_, a16_, o16_, q_, k_, v_, attn_, proj_, gate_, up_, logits_, scratch_;
  std::vector<float> host_row_, host_tmp_;
  // The captured decode step (with and without logits), when the embedding can be looked up on
  // the GPU: it reads the token at tokens_dev_[*pos_dev_] and ends with ++*pos_dev_.
  bool use_graphs_ = false;
  DeviceBuffer tokens_dev_, pos_dev_, embed_q_, embed_s_;
  cudaGraphExec_t graph_[2] = {nullptr, nullptr};
};

}  // namespace

std::unique_ptr<Engine> make_cuda_engine(const std::string& graph, EngineConfig config, ModelWeights weights,
                                         int device) {
  if (graph != "llama") throw ConfigError("graph '" + graph + "' does not run on CUDA yet; use device='cpu'");
  return std::make_unique<CudaLlamaEngine>(std::move(config), std::move(weights), device);
}

}  // namespace slm
