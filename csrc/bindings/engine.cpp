// _core.Engine: the runtime engine, built from a config dict and a dict of weight arrays that the
// Python loader prepared (memory-mapped views or converted copies; see slmcore/llm.py).
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#ifdef SLM_WITH_CUDA
#include "runtime/cuda/engine.h"
#endif
#include "slm/kernels/quant.h"

namespace py = pybind11;

namespace slm::bindings {

namespace {

DType parse_dtype(const std::string& name) {
  if (name == "float32") return DType::F32;
  if (name == "float16") return DType::F16;
  if (name == "bfloat16") return DType::BF16;
  throw InvalidArgumentError("unknown dtype '" + name + "' (expected float32, float16 or bfloat16)");
}

// Holds the engine and every Python object whose memory it borrows.
struct PyEngine {
  std::unique_ptr<Engine> engine;
  std::vector<py::object> borrowed;

  Engine& get() {
    if (!engine) throw InvalidArgumentError("engine is closed");
    return *engine;
  }
};

class WeightReader {
 public:
  WeightReader(py::dict weights, std::vector<py::object>& keep) : weights_(std::move(weights)), keep_(keep) {}

  bool has(const std::string& name) const { return weights_.contains(name); }

  // A (array, dtype) entry whose element type matches the declared dtype, C-contiguous.
  py::array entry(const std::string& name, DType* dtype) {
    if (!has(name)) throw ModelFormatError("missing weight " + name);
    py::tuple pair = weights_[py::str(name)].cast<py::tuple>();
    if (pair.size() != 2) throw InvalidArgumentError("weight " + name + " must be an (array, dtype) pair");
    py::array arr = pair[0].cast<py::array>();
    *dtype = parse_dtype(pair[1].cast<std::string>());
    const char kind = arr.dtype().kind();
    const auto itemsize = arr.itemsize();
    const bool ok = (*dtype == DType::F32 && kind == 'f' && itemsize == 4) ||
                    (*dtype == DType::F16 && kind == 'f' && itemsize == 2) ||
                    (*dtype == DType::BF16 && kind == 'u' && itemsize == 2);
    if (!ok) throw InvalidArgumentError("weight " + name + ": array element type does not match dtype");
    if (!(arr.flags() & py::array::c_style)) throw InvalidArgumentError("weight " + name + " must be C-contiguous");
    keep_.push_back(arr);
    return arr;
  }

  // A matrix entry: (array, dtype) used as stored; ("int4", packed, rows, cols, group_size, sym)
  // with packed = kernels.int4_pack(...) of the canonical format; or ("int8", q [rows, cols] int8,
  // scales [rows] float16).
  Matrix matrix(const std::string& name) {
    if (!has(name)) throw ModelFormatError("missing weight " + name);
    py::tuple t = weights_[py::str(name)].cast<py::tuple>();
    if (t.size() > 0 && py::isinstance<py::str>(t[0])) {
      const std::string format = t[0].cast<std::string>();
      if (format == "int4") return int4(name, t);
      if (format == "int8") return int8_rows(name, t);
      if (t.size() != 2) throw InvalidArgumentError("weight " + name + ": unknown format '" + format + "'");
    }
    DType dtype;
    py::array arr = entry(name, &dtype);
    if (arr.ndim() != 2) throw ModelFormatError("weight " + name + " must be 2-D");
    return Matrix{arr.data(), dtype, static_cast<int64_t>(arr.shape(0)), static_cast<int64_t>(arr.shape(1))};
  }

  Matrix int4(const std::string& name, const py::tuple& t) {
    if (t.size() != 6) throw InvalidArgumentError("weight " + name + ": int4 entries are (\"int4\", packed, rows, cols, group_size, sym)");
    py::array packed = t[1].cast<py::array>();
    Matrix m;
    m.format = WeightFormat::Int4;
    m.rows = t[2].cast<int64_t>();
    m.cols = t[3].cast<int64_t>();
    m.group_size = t[4].cast<int64_t>();
    m.sym = t[5].cast<bool>();
    if (m.group_size != 32 && m.group_size != 64 && m.group_size != 128) {
      throw ModelFormatError("weight " + name + ": int4 group size must be 32, 64 or 128");
    }
    if (m.rows <= 0 || m.cols <= 0) throw ModelFormatError("weight " + name + ": int4 shape must be positive");
    const int64_t want = kernels::int4_packed_size(m.rows, m.cols, m.group_size, m.sym);
    if (!is_packed_int4(packed, want)) {
      throw ModelFormatError("weight " + name + ": packed int4 must be a contiguous uint8 array of " + std::to_string(want) +
                             " bytes");
    }
    keep_.push_back(packed);
    m.data = packed.data();
    return m;
  }

  Matrix int8_rows(const std::string& name, const py::tuple& t) {
    if (t.size() != 3) throw InvalidArgumentError("weight " + name + ": int8 entries are (\"int8\", q, scales)");
    py::array q = t[1].cast<py::array>(), scales = t[2].cast<py::array>();
    if (q.dtype().kind() != 'i' || q.itemsize() != 1 || q.ndim() != 2 || !(q.flags() & py::array::c_style)) {
      throw ModelFormatError("weight " + name + ": int8 rows must be a contiguous 2-D int8 array");
    }
    if (scales.dtype().kind() != 'f' || scales.itemsize() != 2 || scales.ndim() != 1 || scales.shape(0) != q.shape(0) ||
        !(scales.flags() & py::array::c_style)) {
      throw ModelFormatError("weight " + name + ": int8 row scales must be a contiguous float16 array of one value per row");
    }
    keep_.push_back(q);
    keep_.push_back(scales);
    Matrix m;
    m.format = WeightFormat::Int8Rows;
    m.data = q.data();
    m.rows = q.shape(0);
    m.cols = q.shape(1);
    m.row_scales = static_cast<const uint16_t*>(scales.data());
    return m;
  }

  // A float32 vector of `length` elements, or nullptr when absent and optional.
  const float* vector(const std::string& name, int64_t length, bool optional) {
    if (optional && !has(name)) return nullptr;
    DType dtype;
    py::array arr = entry(name, &dtype);
    if (dtype != DType::F32) throw InvalidArgumentError("weight " + name + " must be float32");
    if (arr.ndim() != 1 || arr.shape(0) != length) {
      throw ModelFormatError("weight " + name + " must have shape [" + std::to_string(length) + "]");
    }
    return static_cast<const float*>(arr.data());
  }

 private:
  py::dict weights_;
  std::vector<py::object>& keep_;
};

// config[key]: one float32 table or a list of them.
std::vector<std::vector<float>> float_tables(const py::dict& config, const char* key) {
  py::object value = config[key];
  std::vector<py::object> items;
  if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)) {
    for (py::handle h : value) items.push_back(py::reinterpret_borrow<py::object>(h));
  } else {
    items.push_back(value);
  }
  std::vector<std::vector<float>> tables;
  for (const auto& item : items) {
    auto arr = item.cast<py::array_t<float, py::array::c_style | py::array::forcecast>>();
    tables.emplace_back(arr.data(), arr.data() + arr.size());
  }
  return tables;
}

// The "rwkv" graph: its own config keys and weight names (slmcore/models/rwkv.py).
std::unique_ptr<PyEngine> build_rwkv(const py::dict& cfg, const py::dict& weights) {
  auto out = std::make_unique<PyEngine>();
  EngineConfig c;
  auto i64 = [&](const char* key) { return cfg[key].cast<int64_t>(); };
  c.vocab_size = i64("vocab_size");
  c.hidden_size = i64("hidden_size");
  c.attention_hidden_size = i64("attention_hidden_size");
  c.intermediate_size = i64("intermediate_size");
  c.n_layers = i64("num_hidden_layers");
  c.rms_norm_eps = cfg["layer_norm_epsilon"].cast<float>();
  c.final_norm_eps = cfg["final_norm_eps"].cast<float>();
  c.rescale_every = i64("rescale_every");
  c.norm_type = NormType::Layer;
  c.max_seq_len = i64("max_seq_len");
  c.n_threads = cfg["threads"].cast<int>();
  c.isa = cfg["isa"].cast<std::string>();

  WeightReader r(weights, out->borrowed);
  const int64_t H = c.hidden_size, A = c.attention_hidden_size;
  ModelWeights w;
  w.embed_tokens = r.matrix("embed_tokens");
  w.lm_head = r.matrix("lm_head");
  w.pre_ln = r.vector("pre_ln", H, false);
  w.pre_ln_bias = r.vector("pre_ln.bias", H, false);
  w.norm = r.vector("norm", H, false);
  w.norm_bias = r.vector("norm.bias", H, false);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    RwkvLayerWeights L;
    L.ln1 = r.vector(p + "ln1", H, false);
    L.ln1_bias = r.vector(p + "ln1.bias", H, false);
    L.time_decay = r.vector(p + "attention.time_decay", A, false);
    L.time_first = r.vector(p + "attention.time_first", A, false);
    L.time_mix_key = r.vector(p + "attention.time_mix_key", H, false);
    L.time_mix_value = r.vector(p + "attention.time_mix_value", H, false);
    L.time_mix_receptance = r.vector(p + "attention.time_mix_receptance", H, false);
    L.key = r.matrix(p + "attention.key");
    L.value = r.matrix(p + "attention.value");
    L.receptance = r.matrix(p + "attention.receptance");
    L.output = r.matrix(p + "attention.output");
    L.ln2 = r.vector(p + "ln2", H, false);
    L.ln2_bias = r.vector(p + "ln2.bias", H, false);
    L.ffn_time_mix_key = r.vector(p + "feed_forward.time_mix_key", H, false);
    L.ffn_time_mix_receptance = r.vector(p + "feed_forward.time_mix_receptance", H, false);
    L.ffn_key = r.matrix(p + "feed_forward.key");
    L.ffn_receptance = r.matrix(p + "feed_forward.receptance");
    L.ffn_value = r.matrix(p + "feed_forward.value");
    w.rwkv_layers.push_back(L);
  }
  out->engine = make_engine("rwkv", std::move(c), std::move(w));
  return out;
}

std::unique_ptr<Engine> make_on(int device, const std::string& graph, EngineConfig c, ModelWeights w) {
  if (device < 0) return make_engine(graph, std::move(c), std::move(w));
#ifdef SLM_WITH_CUDA
  return make_cuda_engine(graph, std::move(c), std::move(w), device);
#else
  throw DeviceUnavailableError("this build of slmcore has no CUDA backend");
#endif
}

std::unique_ptr<PyEngine> build(const std::string& graph, const py::dict& cfg, const py::dict& weights, int device) {
  if (graph == "rwkv") {
    if (device >= 0) throw ConfigError("RWKV does not run on CUDA yet; use device='cpu'");
    return build_rwkv(cfg, weights);
  }
  auto out = std::make_unique<PyEngine>();
  EngineConfig c;
  auto i64 = [&](const char* key) { return cfg[key].cast<int64_t>(); };
  c.vocab_size = i64("vocab_size");
  c.hidden_size = i64("hidden_size");
  c.intermediate_size = i64("intermediate_size");
  c.n_layers = i64("num_hidden_layers");
  c.n_heads = i64("num_attention_heads");
  c.n_kv_heads = i64("num_key_value_heads");
  c.head_dim = i64("head_dim");
  c.rotary_dim = i64("rotary_dim");
  const std::string style = cfg["rope_style"].cast<std::string>();
  if (style != "neox" && style != "interleaved") throw ConfigError("rope_style must be neox or interleaved");
  c.rope_style = style == "neox" ? kernels::RopeStyle::Neox : kernels::RopeStyle::Interleaved;
  c.rms_norm_eps = cfg["rms_norm_eps"].cast<float>();
  c.attention_scale = cfg["attention_scale"].cast<float>();
  c.max_seq_len = i64("max_seq_len");
  const std::string kv_dtype = cfg["kv_dtype"].cast<std::string>();
  c.kv_dtype = kv_dtype == "int8" ? DType::I8 : parse_dtype(kv_dtype);
  c.layer_windows = cfg["layer_windows"].cast<std::vector<int64_t>>();
  c.rope_cos = float_tables(cfg, "rope_cos");
  c.rope_sin = float_tables(cfg, "rope_sin");
  c.layer_rope = cfg.contains("layer_rope") ? cfg["layer_rope"].cast<std::vector<int64_t>>()
                                            : std::vector<int64_t>(static_cast<size_t>(c.n_layers), 0);
  c.embed_scale = cfg.contains("embed_scale") ? cfg["embed_scale"].cast<float>() : 1.f;
  c.attn_softcap = cfg.contains("attn_softcap") ? cfg["attn_softcap"].cast<float>() : 0.f;
  c.final_softcap = cfg.contains("final_softcap") ? cfg["final_softcap"].cast<float>() : 0.f;
  if (!(c.attn_softcap >= 0.f) || !(c.final_softcap >= 0.f)) throw ConfigError("soft-capping values must be >= 0");
  const std::string activation = cfg.contains("activation") ? cfg["activation"].cast<std::string>() : "silu";
  if (activation == "silu") {
    c.activation = Activation::SiLU;
  } else if (activation == "gelu_tanh") {
    c.activation = Activation::GeluTanh;
  } else if (activation == "gelu_erf") {
    c.activation = Activation::GeluErf;
  } else {
    throw ConfigError("activation must be silu, gelu_tanh or gelu_erf");
  }
  const std::string mlp = cfg.contains("mlp") ? cfg["mlp"].cast<std::string>() : "gated";
  if (mlp != "gated" && mlp != "plain") throw ConfigError("mlp must be gated or plain");
  c.mlp_type = mlp == "gated" ? MlpType::Gated : MlpType::Plain;
  const std::string norm = cfg.contains("norm") ? cfg["norm"].cast<std::string>() : "rms";
  if (norm != "rms" && norm != "layer") throw ConfigError("norm must be rms or layer");
  c.norm_type = norm == "rms" ? NormType::RMS : NormType::Layer;
  c.parallel_residual = cfg.contains("parallel_residual") && cfg["parallel_residual"].cast<bool>();
  const std::string head_norm = cfg.contains("head_norm") ? cfg["head_norm"].cast<std::string>() : "rms";
  if (head_norm != "rms" && head_norm != "layer") throw ConfigError("head_norm must be rms or layer");
  c.head_norm_type = head_norm == "rms" ? NormType::RMS : NormType::Layer;
  c.head_norm_per_head = cfg.contains("head_norm_per_head") && cfg["head_norm_per_head"].cast<bool>();
  if (cfg.contains("alibi_slopes")) c.alibi_slopes = cfg["alibi_slopes"].cast<std::vector<float>>();
  c.n_threads = cfg["threads"].cast<int>();
  c.isa = cfg["isa"].cast<std::string>();

  WeightReader r(weights, out->borrowed);
  ModelWeights w;
  w.embed_tokens = r.matrix("embed_tokens");
  w.lm_head = r.matrix("lm_head");
  w.norm = r.vector("norm", c.hidden_size, false);
  w.norm_bias = r.vector("norm.bias", c.hidden_size, true);
  w.embed_norm = r.vector("embed_norm", c.hidden_size, true);
  w.embed_norm_bias = r.vector("embed_norm.bias", c.hidden_size, true);
  w.lm_head_bias = r.vector("lm_head.bias", c.vocab_size, true);
  if (r.has("position_embeddings")) w.position_embeddings = r.matrix("position_embeddings");
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    const int64_t q_rows = c.n_heads * c.head_dim, kv_rows = c.n_kv_heads * c.head_dim;
    LayerWeights L;
    L.input_layernorm = r.vector(p + "input_layernorm", c.hidden_size, false);
    L.post_attention_layernorm = r.vector(p + "post_attention_layernorm", c.hidden_size, false);
    L.input_layernorm_bias = r.vector(p + "input_layernorm.bias", c.hidden_size, true);
    L.post_attention_layernorm_bias = r.vector(p + "post_attention_layernorm.bias", c.hidden_size, true);
    L.q_proj = r.matrix(p + "self_attn.q_proj");
    L.k_proj = r.matrix(p + "self_attn.k_proj");
    L.v_proj = r.matrix(p + "self_attn.v_proj");
    L.o_proj = r.matrix(p + "self_attn.o_proj");
    L.q_bias = r.vector(p + "self_attn.q_proj.bias", q_rows, true);
    L.k_bias = r.vector(p + "self_attn.k_proj.bias", kv_rows, true);
    L.v_bias = r.vector(p + "self_attn.v_proj.bias", kv_rows, true);
    L.o_bias = r.vector(p + "self_attn.o_proj.bias", c.hidden_size, true);
    if (r.has(p + "mlp.gate_proj")) L.gate_proj = r.matrix(p + "mlp.gate_proj");
    L.up_proj = r.matrix(p + "mlp.up_proj");
    L.down_proj = r.matrix(p + "mlp.down_proj");
    L.gate_bias = r.vector(p + "mlp.gate_proj.bias", c.intermediate_size, true);
    L.up_bias = r.vector(p + "mlp.up_proj.bias", c.intermediate_size, true);
    L.down_bias = r.vector(p + "mlp.down_proj.bias", c.hidden_size, true);
    L.q_norm = r.vector(p + "self_attn.q_norm", c.head_norm_per_head ? q_rows : c.head_dim, true);
    L.k_norm = r.vector(p + "self_attn.k_norm", c.head_norm_per_head ? kv_rows : c.head_dim, true);
    L.attn_output_norm = r.vector(p + "attn_output_norm", c.hidden_size, true);
    L.mlp_output_norm = r.vector(p + "mlp_output_norm", c.hidden_size, true);
    w.layers.push_back(L);
  }
  out->engine = make_on(device, graph, std::move(c), std::move(w));
  return out;
}

LogitsMode parse_mode(const std::string& s) {
  if (s == "none") return LogitsMode::None;
  if (s == "last") return LogitsMode::Last;
  if (s == "all") return LogitsMode::All;
  throw InvalidArgumentError("logits must be 'none', 'last' or 'all', got '" + s + "'");
}

py::object forward(PyEngine& self, const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& tokens,
                   const std::string& logits) {
  Engine& e = self.get();
  const LogitsMode mode = parse_mode(logits);
  if (tokens.ndim() != 1) throw InvalidArgumentError("tokens must be a 1-D sequence of ids");
  const int64_t n = tokens.shape(0);
  const int64_t vocab = e.config().vocab_size;
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = tokens.at(i);
    if (id < 0 || id >= vocab) {
      throw InvalidTokenError("token id " + std::to_string(id) + " at position " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
    ids[static_cast<size_t>(i)] = static_cast<int32_t>(id);
  }
  py::array_t<float> out;
  float* dst = nullptr;
  if (mode == LogitsMode::All) {
    out = py::array_t<float>({n, vocab});
    dst = out.mutable_data();
  } else if (mode == LogitsMode::Last) {
    out = py::array_t<float>({vocab});
    dst = out.mutable_data();
  }
  {
    py::gil_scoped_release release;
    e.forward(ids.data(), n, mode, dst);
  }
  if (mode == LogitsMode::None) return py::none();
  return std::move(out);
}

}  // namespace

void bind_engine(py::module_& m) {
  py::class_<PyEngine>(m, "Engine", "One loaded model: weights, KV cache, threads. Built by slmcore.LLM.")
      .def(py::init(&build), py::arg("graph"), py::arg("config"), py::arg("weights"), py::arg("device") = -1,
           "device: -1 for the CPU, else the CUDA device index (the llama graph with int4 weights).")
      .def("forward", &forward, py::arg("tokens"), py::arg("logits") = "last",
           "Append tokens to the sequence, run them, and return logits: 'last' [vocab], 'all' [n, vocab] or 'none'.")
      .def("reset", [](PyEngine& s) { s.get().reset(); }, "Start a fresh sequence.")
      .def("truncate", [](PyEngine& s, int64_t n) { s.get().truncate(n); }, py::arg("n"),
           "Keep the first n positions of the sequence.")
      .def_property_readonly("n_past", [](PyEngine& s) { return s.get().n_past(); })
      .def_property_readonly("max_seq_len", [](PyEngine& s) { return s.get().config().max_seq_len; })
      .def_property_readonly("kv_cache_bytes", [](PyEngine& s) { return s.get().kv_cache_bytes(); },
                             "Bytes held by the KV cache (0 for RWKV, which has none).")
      .def("set_isa", [](PyEngine& s, const std::string& isa) { s.get().set_isa(isa); }, py::arg("isa"),
           "Switch the kernel table ('auto', 'generic', 'avx2', 'avx512'); for tests and benchmarks.")
      .def_property_readonly("isa", [](PyEngine& s) { return s.get().isa(); })
      .def("set_threads", [](PyEngine& s, int n) { s.get().set_threads(n); }, py::arg("n"))
      .def_property_readonly("threads", [](PyEngine& s) { return s.get().threads(); })
      .def("close", [](PyEngine& s) {
        s.engine.reset();
        s.borrowed.clear();
      }, "Free the KV cache and release the weights.");
}

}  // namespace slm::bindings
