// _core.cuda: whether the CUDA backend is built, the devices it sees, and the CUDA kernels for the
// tests and benchmarks (host arrays in, host arrays out, on device 0). Without the backend, every
// call that needs a GPU raises DeviceUnavailableError.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "runtime/error.h"
#include "slm/kernels/cuda.h"

#ifdef SLM_WITH_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda/bench.h"
#include "runtime/cuda/device.h"
#endif

namespace py = pybind11;

namespace slm::bindings {

namespace {

#ifdef SLM_WITH_CUDA
constexpr bool kBuilt = true;
#else
constexpr bool kBuilt = false;
#endif

void require_c_array(const py::array& a, char kind, int itemsize, int ndim, const char* what) {
  if (a.dtype().kind() != kind || a.itemsize() != itemsize || a.ndim() != ndim || !(a.flags() & py::array::c_style)) {
    throw InvalidArgumentError(std::string(what) + ": expected a C-contiguous " + std::to_string(ndim) + "-D " +
                               (kind == 'u' ? "uint" : "float") + std::to_string(itemsize * 8) + " array");
  }
}

[[noreturn]] void not_built() {
  throw DeviceUnavailableError("this build of slmcore has no CUDA backend (it was built with SLM_CUDA=OFF or without nvcc)");
}

int device_count() {
#ifdef SLM_WITH_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

std::string unavailable_reason() {
#ifdef SLM_WITH_CUDA
  return cuda::unavailable_reason();
#else
  return "slmcore was built without the CUDA backend";
#endif
}

py::dict device_info(int device) {
#ifdef SLM_WITH_CUDA
  const cuda::DeviceInfo i = cuda::device_info(device);
  py::dict d;
  d["name"] = i.name;
  d["capability"] = py::make_tuple(i.major, i.minor);
  d["multiprocessors"] = i.multiprocessors;
  d["memory_bytes"] = i.memory_bytes;
  d["l2_bytes"] = i.l2_bytes;
  return d;
#else
  (void)device;
  not_built();
#endif
}

py::array int4_to_gpu_layout(const py::array& canonical) {
  require_c_array(canonical, 'u', 1, 2, "int4_to_gpu_layout canonical [rows, cols_padded/2]");
  if (canonical.shape(1) % 16 != 0) throw InvalidArgumentError("int4_to_gpu_layout: cols_padded must be a multiple of 32");
#ifdef SLM_WITH_CUDA
  const size_t bytes = size_t(canonical.nbytes());
  py::array_t<uint8_t> out({canonical.shape(0), canonical.shape(1)});
  {
    py::gil_scoped_release release;
    cuda::set_device(0);
    cuda::DeviceBuffer d(bytes);
    d.upload(canonical.data(), bytes);
    cuda::check(kernels::cuda::int4_to_gpu_layout(d.as<uint8_t>(), d.as<uint8_t>(), int64_t(bytes), nullptr),
                "int4_to_gpu_layout");
    cuda::synchronize("int4_to_gpu_layout");
    d.download(out.mutable_data(), bytes);
  }
  return out;
#else
  not_built();
#endif
}

py::array int4_gemv(const py::array& qweight, const py::array& scales, const std::optional<py::array>& mins,
                    const py::array& x, int group_size) {
  require_c_array(qweight, 'u', 1, 2, "int4_gemv qweight [rows, cols_padded/2] (canonical)");
  require_c_array(scales, 'f', 2, 2, "int4_gemv scales [rows, n_groups]");
  require_c_array(x, 'f', 2, 1, "int4_gemv x [cols_padded]");
  if (group_size != 32 && group_size != 64 && group_size != 128) {
    throw InvalidArgumentError("int4_gemv: group_size must be 32, 64 or 128");
  }
  const int64_t rows = qweight.shape(0), cols = qweight.shape(1) * 2;
  if (rows == 0 || cols % group_size != 0 || scales.shape(0) != rows || scales.shape(1) != cols / group_size ||
      x.shape(0) != cols) {
    throw InvalidArgumentError("int4_gemv: shapes do not match: qweight [rows, cols_padded/2] with cols_padded a "
                               "multiple of group_size, scales [rows, cols_padded/group_size], x [cols_padded]");
  }
  if (mins) {
    require_c_array(*mins, 'f', 2, 2, "int4_gemv mins [rows, n_groups]");
    if (mins->shape(0) != rows || mins->shape(1) != scales.shape(1)) throw InvalidArgumentError("int4_gemv: mins must match scales");
  }
#ifdef SLM_WITH_CUDA
  py::array_t<float> y(rows);
  {
    py::gil_scoped_release release;
    cuda::set_device(0);
    // Buffers of int4_rows_allocated(rows) rows, as the kernel requires; the extra rows are random
    // so that a kernel that used them would be caught.
    const size_t alloc = size_t(kernels::cuda::int4_rows_allocated(rows));
    const size_t w_row = size_t(cols / 2), s_row = size_t(scales.shape(1)) * 2;
    cuda::DeviceBuffer w{alloc * w_row}, s{alloc * s_row}, xd{size_t(x.nbytes())}, yd{size_t(rows * 4)},
        m{mins ? alloc * s_row : 0};
    cuda::check(kernels::cuda::fill_random_u32(w.data(), int64_t(w.size()), 11, nullptr), "fill");
    cuda::check(kernels::cuda::fill_random_f16(s.as<uint16_t>(), int64_t(s.size() / 2), 1e3f, 2e3f, 12, nullptr), "fill");
    if (mins) cuda::check(kernels::cuda::fill_random_f16(m.as<uint16_t>(), int64_t(m.size() / 2), 1e3f, 2e3f, 13, nullptr), "fill");
    cuda::synchronize("fill");
    w.upload(qweight.data(), size_t(qweight.nbytes()));
    s.upload(scales.data(), size_t(scales.nbytes()));
    xd.upload(x.data(), xd.size());
    if (mins) m.upload(mins->data(), size_t(mins->nbytes()));
    cuda::check(kernels::cuda::int4_to_gpu_layout(w.as<uint8_t>(), w.as<uint8_t>(), int64_t(rows * w_row), nullptr),
                "int4_to_gpu_layout");
    const kernels::cuda::Int4Matrix mat{w.as<uint8_t>(), s.as<uint16_t>(), mins ? m.as<uint16_t>() : nullptr, rows, cols,
                                        group_size};
    cuda::check(kernels::cuda::int4_gemv(mat, xd.as<uint16_t>(), yd.as<float>(), nullptr), "int4_gemv");
    cuda::synchronize("int4_gemv");
    yd.download(y.mutable_data(), size_t(rows * 4));
  }
  return y;
#else
  (void)mins;
  not_built();
#endif
}

double bench_copy(int64_t bytes, int repeats) {
#ifdef SLM_WITH_CUDA
  py::gil_scoped_release release;
  cuda::set_device(0);
  return cuda::bench_copy(bytes, repeats);
#else
  (void)bytes, (void)repeats;
  not_built();
#endif
}

py::dict bench_int4_gemv(int64_t rows, int64_t cols, int group_size, bool asym, int64_t rotate_bytes, int launches,
                         int repeats, bool pdl) {
#ifdef SLM_WITH_CUDA
  cuda::GemvTiming t;
  {
    py::gil_scoped_release release;
    cuda::set_device(0);
    t = cuda::bench_int4_gemv(rows, cols, group_size, asym, rotate_bytes, launches, repeats, pdl);
  }
  py::dict d;
  d["seconds"] = t.seconds_per_launch;
  d["bytes"] = t.bytes_per_launch;
  d["sets"] = t.sets;
  return d;
#else
  (void)rows, (void)cols, (void)group_size, (void)asym, (void)rotate_bytes, (void)launches, (void)repeats, (void)pdl;
  not_built();
#endif
}

// ---- decode kernels (host arrays in and out; outputs are poisoned with NaN before the kernel
// runs, so a test sees any element it failed to write) -----------------------------------------

void require_f32(const py::array& a, int ndim, const char* what) { require_c_array(a, 'f', 4, ndim, what); }

[[noreturn]] void invalid(const std::string& what) { throw InvalidArgumentError(what); }

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

#ifdef SLM_WITH_CUDA
cuda::DeviceBuffer to_device(const py::array& a) {
  cuda::DeviceBuffer d(size_t(a.nbytes()));
  d.upload(a.data(), size_t(a.nbytes()));
  return d;
}

// A device buffer of `bytes` filled with `byte`; the default 0xFF is NaN as float32 and as fp16.
cuda::DeviceBuffer poisoned(size_t bytes, int byte = 0xFF) {
  cuda::DeviceBuffer d(bytes);
  if (bytes) cuda::check(cudaMemset(d.data(), byte, bytes), "cudaMemset");
  return d;
}

template <class T>
py::array_t<T> download(const cuda::DeviceBuffer& d, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  d.download(out.mutable_data(), size_t(out.nbytes()));
  return out;
}
#endif

py::tuple norm(const py::array& x, const py::array& w, const std::optional<py::array>& b, float eps) {
  const char* name = b ? "layer_norm" : "rms_norm";
  require_f32(x, 2, b ? "layer_norm x [rows, n]" : "rms_norm x [rows, n]");
  require_f32(w, 1, b ? "layer_norm w [n]" : "rms_norm w [n]");
  const int64_t rows = x.shape(0), n = x.shape(1);
  if (rows < 1 || n < 1 || w.shape(0) != n) {
    invalid(std::string(name) + ": need x [rows >= 1, n >= 1] and w [n], got x " + shape_of(x) + " and w " + shape_of(w));
  }
  if (b) {
    require_f32(*b, 1, "layer_norm b [n]");
    if (b->shape(0) != n) invalid("layer_norm: b must have shape (" + std::to_string(n) + ",), got " + shape_of(*b));
  }
  if (!(eps >= 0.f)) invalid(std::string(name) + ": eps must be >= 0");
#ifdef SLM_WITH_CUDA
  py::array_t<float> y32;
  py::array_t<uint16_t> y16;
  {
    py::gil_scoped_release release;
    cuda::set_device(0);
    const cuda::DeviceBuffer xd = to_device(x), wd = to_device(w), bd = b ? to_device(*b) : cuda::DeviceBuffer();
    const cuda::DeviceBuffer y32d = poisoned(size_t(rows * n * 4)), y16d = poisoned(size_t(rows * n * 2));
    const int err = b ? kernels::cuda::layer_norm(xd.as<float>(), wd.as<float>(), bd.as<float>(), y32d.as<float>(),
                                                  y16d.as<uint16_t>(), rows, n, eps, nullptr)
                      : kernels::cuda::rms_norm(xd.as<float>(), wd.as<float>(), y32d.as<float>(), y16d.as<uint16_t>(),
                                                rows, n, eps, nullptr);
    cuda::check(err, name);
    cuda::synchronize(name);
    py::gil_scoped_acquire acquire;
    y32 = download<float>(y32d, {rows, n});
    y16 = download<uint16_t>(y16d, {rows, n});
  }
  return py::make_tuple(y32, y16.view("float16"));
#else
  not_built();
#endif
}

py::tuple rms_norm(const py::array& x, const py::array& w, float eps) { return norm(x, w, std::nullopt, eps); }

py::tuple layer_norm(const py::array& x, const py::array& w, const py::array& b, float eps) { return norm(x, w, b, eps); }

py::tuple rope(const py::array& q, const py::array& k, const py::array& cos, const py::array& sin, int64_t rotary_dim,
               const std::string& style) {
  require_f32(q, 2, "rope q [n_heads, head_dim]");
  require_f32(k, 2, "rope k [n_kv_heads, head_dim]");
  require_f32(cos, 1, "rope cos [rotary_dim/2]");
  require_f32(sin, 1, "rope sin [rotary_dim/2]");
  if (style != "neox" && style != "interleaved") invalid("rope: unknown style '" + style + "'; use 'neox' or 'interleaved'");
  const int64_t head_dim = q.shape(1);
  if (k.shape(1) != head_dim) invalid("rope: q and k need the same head_dim, got " + shape_of(q) + " and " + shape_of(k));
  check_rope_shapes(rotary_dim, head_dim, cos.shape(0), sin.shape(0));
#ifdef SLM_WITH_CUDA
  const int64_t n_heads = q.shape(0), n_kv_heads = k.shape(0);
  py::array_t<float> q_out, k_out;
  {
    py::gil_scoped_release release;
    cuda::set_device(0);
    const cuda::DeviceBuffer qd = to_device(q), kd = to_device(k), cd = to_device(cos), sd = to_device(sin);
    const auto st = style == "neox" ? kernels::RopeStyle::Neox : kernels::RopeStyle::Interleaved;
    cuda::check(kernels::cuda::rope(qd.as<float>(), n_heads, kd.as<float>(), n_kv_heads, head_dim, rotary_dim,
                                    cd.as<float>(), sd.as<float>(), st, nullptr),
                "rope");
    cuda::synchronize("rope");
    py::gil_scoped_acquire acquire;
    q_out = download<float>(qd, {n_heads, head_dim});
    k_out = download<float>(kd, {n_kv_heads, head_dim});
  }
  return py::make_tuple(q_out, k_out);
#else
  not_built();
#endif
}

py::tuple activation(const std::string& kind, const py::array& gate, const std::optional<py::array>& up) {
  using kernels::cuda::Activation;
  Activation act;
  if (kind == "swiglu") {
    act = Activation::SwiGlu;
  } else if (kind == "geglu") {
    act = Activation::GeGlu;
  } else if (kind == "gelu_tanh") {
    act = Activation::GeluTanh;
  } else if (kind == "gelu_erf") {
    act = Activation::GeluErf;
  } else {
    invalid("activation: unknown kind '" + kind + "'; use 'swiglu', 'geglu', 'gelu_tanh' or 'gelu_erf'");
  }
  const bool gated = kernels::cuda::activation_is_gated(act);
  require_f32(gate, 1, "activation gate [n]");
  const int64_t n = gate.shape(0);
  if (gated != bool(up)) invalid("activation: '" + kind + (gated ? "' needs up" : "' takes no up"));
  if (up) {
    require_f32(*up, 1, "activation up [n]");
    if (up->shape(0) != n) invalid("activation: gate and up differ in shape: " + shape_of(gate) + " and " + shape_of(*up));
  }
#ifdef SLM_WITH_CUDA
  py::array_t<float> out32;
  py::array_t<uint16_t> out16;
  {
    py::gil_scoped_release release;
    cuda::set_device(0);
    const cuda::DeviceBuffer gd = to_device(gate), ud = up ? to_device(*up) : cuda::DeviceBuffer();
    const cuda::DeviceBuffer o32 = poisoned(size_t(n * 4)), o16 = poisoned(size_t(n * 2));
    cuda::check(kernels::cuda::activation(act, gd.as<float>(), ud.as<float>(), o16.as<uint16_t>(), o32.as<float>(), n,
                                          nullptr),
                "activation");
    cuda::synchronize("activation");
    py::gil_scoped_acquire acquire;
    out32 = download<float>(o32, {n});
    out16 = download<uint16_t>(o16, {n});
  }
  return py::make_tuple(out32, out16.view("float16"));
#else
  not_built();
#endif
}

void require_f16_cache(const py::array& a, const char* what) {
  if (a.dtype().kind() != 'f' || a.itemsize() != 2 || a.ndim() != 3 || !(a.flags() & py::array::c_style)) {
    invalid(std::string(what) + ": expected a C-contiguous 3-D float16 array [n_kv_heads, max_seq_len, head_dim]");
  }
}

py::array attention(const py::array& q, const py::array& k_cache, const py::array& v_cache, int64_t kv_begin,
                    int64_t kv_end, float scale, float softcap, const std::optional<py::array>& alibi_slopes) {
  require_f32(q, 2, "attention q [n_heads, head_dim]");
  require_f16_cache(k_cache, "attention k_cache");
  require_f16_cache(v_cache, "attention v_cache");
  const int64_t n_heads = q.shape(0), head_dim = q.shape(1);
  const int64_t n_kv_heads = k_cache.shape(0), max_seq_len = k_cache.shape(1);
  for (int i = 0; i < 3; ++i) {
    if (v_cache.shape(i) != k_cache.shape(i)) invalid("attention: k_cache " + shape_of(k_cache) + " and v_cache " + shape_of(v_cache) + " differ");
  }
  if (k_cache.shape(2) != head_dim) invalid("attention: q " + shape_of(q) + " and the cache " + shape_of(k_cache) + " differ in head_dim");
  if (n_heads < 1 || n_kv_heads < 1 || n_heads % n_kv_heads != 0 || n_heads > 65535) {
    invalid("attention: n_heads (" + std::to_string(n_heads) + ") must be a positive multiple of n_kv_heads (" +
            std::to_string(n_kv_heads) + ")");
  }
  if (head_dim < 1 || head_dim > kernels::cuda::kMaxAttentionHeadDim) {
    invalid("attention: head_dim must be in [1, 256], got " + std::to_string(head_dim));
  }
  if (kv_begin < 0 || kv_end <= kv_begin || kv_end > max_seq_len) {
    invalid("attention: need 0 <= kv_begin < kv_end <= max_seq_len (" + std::to_string(max_seq_len) + "), got [" +
            std::to_string(kv_begin) + ", " + std::to_string(kv_end) + ")");
  }
  if (!(softcap >= 0.f)) invalid("attention: softcap must be >= 0 (0: none)");
  if (alibi_slopes) {
    require_f32(*alibi_slopes, 1, "attention alibi_slopes [n_heads]");
    if (alibi_slopes->shape(0) != n_heads) invalid("attention: alibi_slopes must have shape (n_heads,), got " + shape_of(*alibi_slopes));
  }
#ifdef SLM_WITH_CUDA
  py::array_t<float> out;
  {
    py::gil_scoped_release release;
    cuda::set_device(0);
    const cuda::DeviceBuffer qd = to_device(q), kd = to_device(k_cache), vd = to_device(v_cache);
    const cuda::DeviceBuffer sd = alibi_slopes ? to_device(*alibi_slopes) : cuda::DeviceBuffer();
    const cuda::DeviceBuffer od = poisoned(size_t(n_heads * head_dim * 4));
    const cuda::DeviceBuffer scratch =
        poisoned(size_t(kernels::cuda::attention_scratch_floats(n_heads, head_dim, kv_begin, kv_end)) * 4);
    kernels::cuda::DecodeAttention a;
    a.q = qd.as<float>();
    a.k_cache = kd.as<uint16_t>();
    a.v_cache = vd.as<uint16_t>();
    a.alibi_slopes = alibi_slopes ? sd.as<float>() : nullptr;
    a.out = od.as<float>();
    a.scratch = scratch.as<float>();
    a.n_heads = n_heads, a.n_kv_heads = n_kv_heads, a.head_dim = head_dim, a.max_seq_len = max_seq_len;
    a.kv_begin = kv_begin, a.kv_end = kv_end, a.scale = scale, a.softcap = softcap;
    cuda::check(kernels::cuda::attention_decode(a, nullptr), "attention_decode");
    cuda::synchronize("attention_decode");
    py::gil_scoped_acquire acquire;
    out = download<float>(od, {n_heads, head_dim});
  }
  return out;
#else
  not_built();
#endif
}

py::tuple kv_append(const py::array& k, const py::array& v, const py::array& k_cache, const py::array& v_cache,
                    int64_t pos) {
  require_f32(k, 2, "kv_append k [n_kv_heads, head_dim]");
  require_f32(v, 2, "kv_append v [n_kv_heads, head_dim]");
  require_f16_cache(k_cache, "kv_append k_cache");
  require_f16_cache(v_cache, "kv_append v_cache");
  for (int i = 0; i < 3; ++i) {
    if (v_cache.shape(i) != k_cache.shape(i)) invalid("kv_append: k_cache " + shape_of(k_cache) + " and v_cache " + shape_of(v_cache) + " differ");
  }
  if (k.shape(0) != k_cache.shape(0) || k.shape(1) != k_cache.shape(2) || v.shape(0) != k.shape(0) || v.shape(1) != k.shape(1)) {
    invalid("kv_append: k " + shape_of(k) + " and v " + shape_of(v) + " must be [n_kv_heads, head_dim] of the cache " + shape_of(k_cache));
  }
  if (pos < 0 || pos >= k_cache.shape(1)) {
    invalid("kv_append: pos " + std::to_string(pos) + " outside the cache's " + std::to_string(k_cache.shape(1)) + " positions");
  }
#ifdef SLM_WITH_CUDA
  const int64_t n_kv_heads = k_cache.shape(0), max_seq_len = k_cache.shape(1), head_dim = k_cache.shape(2);
  py::array_t<uint16_t> k_out, v_out;
  {
    py::gil_scoped_release release;
    cuda::set_device(0);
    const cuda::DeviceBuffer kd = to_device(k), vd = to_device(v), kc = to_device(k_cache), vc = to_device(v_cache);
    cuda::check(kernels::cuda::kv_append(kd.as<float>(), vd.as<float>(), kc.as<uint16_t>(), vc.as<uint16_t>(), n_kv_heads,
                                         head_dim, max_seq_len, pos, nullptr),
                "kv_append");
    cuda::synchronize("kv_append");
    py::gil_scoped_acquire acquire;
    k_out = download<uint16_t>(kc, {n_kv_heads, max_seq_len, head_dim});
    v_out = download<uint16_t>(vc, {n_kv_heads, max_seq_len, head_dim});
  }
  return py::make_tuple(k_out.view("float16"), v_out.view("float16"));
#else
  (void)pos;
  not_built();
#endif
}

void require_logits(const py::array& logits, const char* what) {
  require_f32(logits, 1, what);
  if (logits.shape(0) < 1 || logits.shape(0) > kernels::cuda::kMaxSampleVocab) {
    invalid(std::string(what) + ": need 1 to " + std::to_string(kernels::cuda::kMaxSampleVocab) + " logits, got " +
            std::to_string(logits.shape(0)));
  }
}

#ifdef SLM_WITH_CUDA
// Runs `launch(logits, token)` on device 0 and returns the token; NumericalError for -1.
template <class Launch>
int run_sampler(const py::array& logits, const char* name, Launch launch) {
  int32_t token = -1;
  {
    py::gil_scoped_release release;
    cuda::set_device(0);
    // poisoned with 0x7F7F7F7F: no token, and not the kernel's -1 for non-finite logits
    const cuda::DeviceBuffer ld = to_device(logits), td = poisoned(4, 0x7F);
    cuda::check(launch(ld.as<float>(), td.as<int32_t>()), name);
    cuda::synchronize(name);
    td.download(&token, 4);
  }
  if (token == -1) throw NumericalError(std::string(name) + ": the logits contain NaN or Inf, or no finite value");
  if (token < 0 || token >= logits.shape(0)) throw Error(std::string(name) + ": the kernel returned no token");
  return token;
}
#endif

int sample_argmax(const py::array& logits) {
  require_logits(logits, "sample_argmax logits [vocab]");
#ifdef SLM_WITH_CUDA
  const int64_t vocab = logits.shape(0);
  return run_sampler(logits, "sample_argmax", [&](const float* l, int32_t* t) {
    return kernels::cuda::sample_argmax(l, vocab, t, nullptr);
  });
#else
  not_built();
#endif
}

int sample(const py::array& logits, double temperature, int64_t top_k, double top_p, double min_p, double u) {
  require_logits(logits, "sample logits [vocab]");
  const float inv_temperature = float(1.0 / temperature);
  if (!(temperature > 0.0) || !std::isfinite(inv_temperature) || !(inv_temperature > 0.f)) {
    invalid("sample: temperature must be positive and finite with a finite float32 inverse (use sample_argmax for greedy)");
  }
  if (!(top_p > 0.0 && top_p <= 1.0)) invalid("sample: top_p must be in (0, 1]");
  if (!(min_p >= 0.0 && min_p <= 1.0)) invalid("sample: min_p must be in [0, 1]");
  if (!(u >= 0.0 && float(u) < 1.f)) invalid("sample: u must be in [0, 1) (and below 1 as float32)");
#ifdef SLM_WITH_CUDA
  const int64_t vocab = logits.shape(0);
  return run_sampler(logits, "sample", [&](const float* l, int32_t* t) {
    return kernels::cuda::sample_top_k_top_p(l, vocab, inv_temperature, top_k, float(top_p), float(min_p), float(u), t,
                                             nullptr);
  });
#else
  (void)top_k;
  not_built();
#endif
}

}  // namespace

void bind_cuda(py::module_& m) {
  py::module_ c = m.def_submodule("cuda", "The CUDA backend: devices and kernels (tests and benchmarks)");
  c.attr("built") = kBuilt;
  c.def("device_count", &device_count, "Usable CUDA devices; 0 without the backend, a driver or a GPU.");
  c.def("unavailable_reason", &unavailable_reason, "Why there is no usable device ('' when there is one).");
  c.def("device_info", &device_info, py::arg("device") = 0);
  c.def("int4_to_gpu_layout", &int4_to_gpu_layout, py::arg("canonical"),
        "Canonical int4 bytes [rows, cols_padded/2] -> the GPU layout (nibbles reordered inside each 32-bit word).");
  c.def("int4_gemv", &int4_gemv, py::arg("qweight"), py::arg("scales"), py::arg("mins"), py::arg("x"),
        py::arg("group_size"),
        "Canonical int4 weights (qweight uint8, scales/mins float16) times x float16 [cols_padded] on device 0; "
        "returns float32 [rows].");
  c.def("rms_norm", &rms_norm, py::arg("x"), py::arg("w"), py::arg("eps"),
        "RMSNorm of float32 rows [rows, n] on device 0: (y float32, y float16), both [rows, n].");
  c.def("layer_norm", &layer_norm, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("eps"),
        "LayerNorm of float32 rows [rows, n] on device 0: (y float32, y float16).");
  c.def("rope", &rope, py::arg("q"), py::arg("k"), py::arg("cos"), py::arg("sin"), py::arg("rotary_dim"),
        py::arg("style") = "neox", "Rotary embedding of q [n_heads, head_dim] and k [n_kv_heads, head_dim]: (q, k).");
  c.def("activation", &activation, py::arg("kind"), py::arg("gate"), py::arg("up") = py::none(),
        "'swiglu' | 'geglu' (gate, up) or 'gelu_tanh' | 'gelu_erf' (gate) on device 0: (out float32, out float16).");
  c.def("attention", &attention, py::arg("q"), py::arg("k_cache"), py::arg("v_cache"), py::arg("kv_begin"),
        py::arg("kv_end"), py::arg("scale"), py::arg("softcap") = 0.f, py::arg("alibi_slopes") = py::none(),
        "Flash-decoding attention of q [n_heads, head_dim] over float16 caches [n_kv_heads, max_seq_len, "
        "head_dim], positions [kv_begin, kv_end): float32 [n_heads, head_dim].");
  c.def("kv_append", &kv_append, py::arg("k"), py::arg("v"), py::arg("k_cache"), py::arg("v_cache"), py::arg("pos"),
        "Copies of the float16 caches with k, v float32 [n_kv_heads, head_dim] stored at position pos.");
  c.def("sample_argmax", &sample_argmax, py::arg("logits"),
        "Greedy token of float32 logits [vocab] on device 0 (lowest index among ties); NumericalError for NaN/Inf.");
  c.def("sample", &sample, py::arg("logits"), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"),
        py::arg("min_p"), py::arg("u"),
        "Token drawn from float32 logits [vocab] with temperature, top-k (<= 0: none), top-p, min-p and the uniform "
        "number u in [0, 1), by the rule of slm/kernels/cuda.h sample_top_k_top_p.");
  c.def("bench_copy", &bench_copy, py::arg("bytes"), py::arg("repeats") = 20,
        "Median seconds of one device-to-device copy of `bytes` (moving 2 * bytes).");
  c.def("bench_int4_gemv", &bench_int4_gemv, py::arg("rows"), py::arg("cols"), py::arg("group_size") = 128,
        py::arg("asym") = false, py::arg("rotate_bytes") = int64_t(256) << 20, py::arg("launches") = 200,
        py::arg("repeats") = 20, py::arg("pdl") = true,
        "int4 GEMV timed inside a CUDA graph over weight sets rotated through rotate_bytes: "
        "{'seconds': per launch (median), 'bytes': read+written per launch, 'sets': n}.");
}

}  // namespace slm::bindings
