// _core.kernels: direct access to one ISA's CPU kernels, for the kernel tests and benchmarks.
//
// Every argument is validated here (kernels trust their callers); errors raise
// slmcore.errors.InvalidArgumentError. Outputs are fresh numpy arrays; the GIL is released around
// each kernel call. Weight-like arrays (w, k, v, src) are used in place, so views with any byte
// offset exercise the kernels' unaligned loads.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bindings/bindings.h"
#include "runtime/cpu_dispatch.h"
#include "runtime/error.h"
#include "slm/kernels/cpu.h"

namespace py = pybind11;

namespace slm::bindings {

namespace {

using kernels::DType;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

[[noreturn]] void invalid(const std::string& msg) { throw InvalidArgumentError(msg); }

const kernels::CpuKernels& table(const std::string& isa) { return cpu_kernels_for(isa); }

DType parse_dtype(const std::string& name, const char* what) {
  if (name == "float32") return DType::F32;
  if (name == "float16") return DType::F16;
  if (name == "bfloat16") return DType::BF16;
  invalid(std::string(what) + ": unknown dtype '" + name + "'; use 'float32', 'float16' or 'bfloat16'");
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    case DType::I8: return "int8";
  }
  return "?";
}

// Whether numpy dtype `dt` stores `d`: float32, float16, uint16 holding bfloat16 bits, or int8; native
// byte order only.
bool stores(const py::dtype& dt, DType d) {
  const char bo = dt.byteorder();  // numpy reports native order as '=' ('|' for single bytes)
  if (bo != '=' && bo != '|') return false;
  switch (d) {
    case DType::F32: return dt.kind() == 'f' && dt.itemsize() == 4;
    case DType::F16: return dt.kind() == 'f' && dt.itemsize() == 2;
    case DType::BF16: return dt.kind() == 'u' && dt.itemsize() == 2;
    case DType::I8: return dt.kind() == 'i' && dt.itemsize() == 1;
  }
  return false;
}

std::string expected_numpy(DType d) {
  switch (d) {
    case DType::F32: return "numpy float32";
    case DType::F16: return "numpy float16";
    case DType::BF16: return "numpy uint16 holding bfloat16 bits";
    case DType::I8: return "numpy int8";
  }
  return "?";
}

// A float32 array of exactly the given number of dimensions (converted and made contiguous if
// needed).
F32Array f32(const py::object& obj, py::ssize_t ndim, const char* what) {
  F32Array a = F32Array::ensure(obj);  // a null array when obj cannot be converted
  if (!a) invalid(std::string(what) + ": expected an array of float32 (or convertible), got " +
                  std::string(py::str(py::type::of(obj).attr("__name__"))));
  if (a.ndim() != ndim) {
    invalid(std::string(what) + ": expected " + std::to_string(ndim) + " dimension(s), got shape " + shape_str(a));
  }
  return a;
}

// A 2-D array of stored values of type d used in place: rows may be strided (row stride a
// multiple of the element size, at least the row length), elements contiguous within a row.
// Returns the row stride in elements.
int64_t check_matrix(const py::array& a, DType d, const char* what) {
  if (!stores(a.dtype(), d)) {
    invalid(std::string(what) + ": declared dtype " + dtype_name(d) + " needs a " + expected_numpy(d) +
            " array, got " + std::string(py::str(a.dtype())));
  }
  if (a.ndim() != 2) invalid(std::string(what) + ": expected 2 dimensions, got shape " + shape_str(a));
  const py::ssize_t es = a.itemsize();
  if (a.shape(1) > 1 && a.strides(1) != es) {
    invalid(std::string(what) + ": elements within a row must be contiguous");
  }
  if (a.shape(0) > 1 && (a.strides(0) % es != 0 || a.strides(0) < a.shape(1) * es)) {
    invalid(std::string(what) + ": rows must be stored in order, each at least a full row apart");
  }
  return a.shape(0) > 1 ? a.strides(0) / es : a.shape(1);
}

py::array matmul(const std::string& isa, const py::object& x_obj, const py::array& w, const std::string& w_dtype,
                 const std::optional<py::object>& bias_obj, const std::optional<py::object>& y_obj,
                 int64_t row_begin, int64_t row_end) {
  const auto& k = table(isa);
  const DType d = parse_dtype(w_dtype, "matmul w_dtype");
  const F32Array x = f32(x_obj, 2, "matmul x [n_tokens, in_features]");
  const int64_t w_stride = check_matrix(w, d, "matmul w [n_out, in_features]");
  const int64_t n_tokens = x.shape(0), in = x.shape(1), n_out = w.shape(0);
  if (w.shape(1) != in) {
    invalid("matmul: x has in_features " + std::to_string(in) + " but w has shape " + shape_str(w));
  }
  if (row_end == -1) row_end = n_out;
  if (row_begin < 0 || row_end < row_begin || row_end > n_out) {
    invalid("matmul: need 0 <= row_begin <= row_end <= n_out = " + std::to_string(n_out) + ", got row_begin " +
            std::to_string(row_begin) + ", row_end " + std::to_string(row_end));
  }
  F32Array bias;  // note: a default array_t is an empty array, not null; bias_ptr says if given
  const float* bias_ptr = nullptr;
  if (bias_obj && !bias_obj->is_none()) {
    bias = f32(*bias_obj, 1, "matmul bias [n_out]");
    bias_ptr = bias.data();
    if (bias.shape(0) != n_out) invalid("matmul: bias has shape " + shape_str(bias) + ", need (" + std::to_string(n_out) + ",)");
  }
  F32Array y({static_cast<py::ssize_t>(n_tokens), static_cast<py::ssize_t>(n_out)});
  const bool accumulate = y_obj && !y_obj->is_none();
  if (accumulate) {
    const F32Array y0 = f32(*y_obj, 2, "matmul y [n_tokens, n_out]");
    if (y0.shape(0) != n_tokens || y0.shape(1) != n_out) {
      invalid("matmul: y has shape " + shape_str(y0) + ", need (" + std::to_string(n_tokens) + ", " +
              std::to_string(n_out) + ")");
    }
    if (y0.size() > 0) std::memcpy(y.mutable_data(), y0.data(), static_cast<size_t>(y0.size()) * sizeof(float));
  } else if (y.size() > 0) {
    std::memset(y.mutable_data(), 0, static_cast<size_t>(y.size()) * sizeof(float));
  }
  kernels::MatmulArgs args{};
  args.x = x.data();
  args.x_stride = in;
  args.w = w.data();
  args.w_dtype = d;
  args.w_stride = w_stride;
  args.y = y.mutable_data();
  args.y_stride = n_out;
  args.n_tokens = n_tokens;
  args.in_features = in;
  args.row_begin = row_begin;
  args.row_end = row_end;
  args.bias = bias_ptr;
  args.accumulate = accumulate;
  {
    py::gil_scoped_release release;
    k.matmul(args);
  }
  return std::move(y);
}

py::array rmsnorm(const std::string& isa, const py::object& x_obj, const py::object& w_obj, double eps) {
  const auto& k = table(isa);
  const F32Array x = f32(x_obj, 1, "rmsnorm x [n]");
  const F32Array w = f32(w_obj, 1, "rmsnorm w [n]");
  if (x.shape(0) == 0) invalid("rmsnorm: x is empty");
  if (w.shape(0) != x.shape(0)) invalid("rmsnorm: x has shape " + shape_str(x) + " but w has shape " + shape_str(w));
  if (!(eps >= 0.0) || !std::isfinite(eps)) invalid("rmsnorm: eps must be finite and >= 0, got " + std::to_string(eps));
  F32Array y({x.shape(0)});
  const float* xp = x.data();
  const float* wp = w.data();
  float* yp = y.mutable_data();
  const int64_t n = x.shape(0);
  {
    py::gil_scoped_release release;
    k.rmsnorm(xp, wp, yp, n, static_cast<float>(eps));
  }
  return std::move(y);
}

py::array layernorm(const std::string& isa, const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                    double eps) {
  const auto& k = table(isa);
  const F32Array x = f32(x_obj, 1, "layernorm x [n]");
  const F32Array w = f32(w_obj, 1, "layernorm w [n]");
  const F32Array b = f32(b_obj, 1, "layernorm b [n]");
  if (x.shape(0) == 0) invalid("layernorm: x is empty");
  if (w.shape(0) != x.shape(0) || b.shape(0) != x.shape(0)) invalid("layernorm: x, w and b must have the same length");
  if (!(eps >= 0.0) || !std::isfinite(eps)) invalid("layernorm: eps must be finite and >= 0, got " + std::to_string(eps));
  F32Array y({x.shape(0)});
  const float* xp = x.data();
  const float* wp = w.data();
  const float* bp = b.data();
  float* yp = y.mutable_data();
  const int64_t n = x.shape(0);
  {
    py::gil_scoped_release release;
    k.layernorm(xp, wp, bp, yp, n, static_cast<float>(eps));
  }
  return std::move(y);
}

py::array plain_activation(const char* name, void (*fn)(const float*, float*, int64_t), const py::object& x_obj) {
  const F32Array x = F32Array::ensure(x_obj);
  if (!x) invalid(std::string(name) + ": x must be an array of float32 (or convertible)");
  F32Array out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const float* xp = x.data();
  float* op = out.mutable_data();
  const int64_t n = x.size();
  {
    py::gil_scoped_release release;
    fn(xp, op, n);
  }
  return std::move(out);
}

py::array gelu_tanh(const std::string& isa, const py::object& x) {
  return plain_activation("gelu_tanh", table(isa).gelu_tanh, x);
}

py::array gelu_erf(const std::string& isa, const py::object& x) {
  return plain_activation("gelu_erf", table(isa).gelu_erf, x);
}

py::array rope(const std::string& isa, const py::object& x_obj, const py::object& cos_obj, const py::object& sin_obj,
               int64_t rotary_dim, const std::string& style) {
  const auto& k = table(isa);
  kernels::RopeStyle st;
  if (style == "neox") {
    st = kernels::RopeStyle::Neox;
  } else if (style == "interleaved") {
    st = kernels::RopeStyle::Interleaved;
  } else {
    invalid("rope: unknown style '" + style + "'; use 'neox' or 'interleaved'");
  }
  const F32Array x = f32(x_obj, 2, "rope x [n_heads, head_dim]");
  const F32Array c = f32(cos_obj, 1, "rope cos [rotary_dim/2]");
  const F32Array s = f32(sin_obj, 1, "rope sin [rotary_dim/2]");
  const int64_t n_heads = x.shape(0), head_dim = x.shape(1);
  check_rope_shapes(rotary_dim, head_dim, c.shape(0), s.shape(0));
  F32Array out({n_heads, head_dim});
  if (out.size() > 0) std::memcpy(out.mutable_data(), x.data(), static_cast<size_t>(out.size()) * sizeof(float));
  float* op = out.mutable_data();
  const float* cp = c.data();
  const float* sp = s.data();
  {
    py::gil_scoped_release release;
    k.rope(op, n_heads, head_dim, rotary_dim, cp, sp, st);
  }
  return std::move(out);
}

py::array attention(const std::string& isa, const py::object& q_obj, const py::array& kc, const py::array& vc,
                    double scale, int64_t kv_begin, int64_t kv_end, double softcap, double alibi_slope,
                    const std::optional<py::object>& k_scale_obj, const std::optional<py::object>& v_scale_obj) {
  const auto& k = table(isa);
  // q [head_dim] (one query) or [n_queries, head_dim] (heads sharing the K/V head); out alike.
  F32Array q = F32Array::ensure(q_obj);
  if (!q || (q.ndim() != 1 && q.ndim() != 2)) invalid("attention: q must be float32 [head_dim] or [n_queries, head_dim]");
  DType d;
  if (stores(kc.dtype(), DType::F32)) {
    d = DType::F32;
  } else if (stores(kc.dtype(), DType::F16)) {
    d = DType::F16;
  } else if (stores(kc.dtype(), DType::I8)) {
    d = DType::I8;
  } else {
    invalid("attention: k must be a numpy float32, float16 or int8 array, got " + std::string(py::str(kc.dtype())));
  }
  if (!stores(vc.dtype(), d)) {
    invalid("attention: v must have k's dtype " + std::string(dtype_name(d)) + ", got " + std::string(py::str(vc.dtype())));
  }
  const int64_t ks = check_matrix(kc, d, "attention k [n_pos, head_dim]");
  const int64_t vs = check_matrix(vc, d, "attention v [n_pos, head_dim]");
  const int64_t n_queries = q.ndim() == 2 ? q.shape(0) : 1, head_dim = q.shape(q.ndim() - 1), n_pos = kc.shape(0);
  if (head_dim == 0 || n_queries == 0) invalid("attention: q is empty");
  if (kc.shape(1) != head_dim || vc.shape(0) != n_pos || vc.shape(1) != head_dim) {
    invalid("attention: k and v need shape (n_pos, " + std::to_string(head_dim) + "), got " + shape_str(kc) + " and " +
            shape_str(vc));
  }
  if (ks != vs) invalid("attention: k and v must have the same row stride");
  if (kv_end == -1) kv_end = n_pos;
  if (kv_begin < 0 || kv_end <= kv_begin || kv_end > n_pos) {
    invalid("attention: need 0 <= kv_begin < kv_end <= n_pos = " + std::to_string(n_pos) + ", got kv_begin " +
            std::to_string(kv_begin) + ", kv_end " + std::to_string(kv_end));
  }
  if (!std::isfinite(scale)) invalid("attention: scale must be finite");
  const bool has_scales = (k_scale_obj && !k_scale_obj->is_none()) || (v_scale_obj && !v_scale_obj->is_none());
  if (d != DType::I8 && has_scales) invalid("attention: k_scale and v_scale are for int8 k and v only");
  F32Array k_scale, v_scale;
  if (d == DType::I8) {  // one float32 scale per row of k and of v
    if (!k_scale_obj || k_scale_obj->is_none() || !v_scale_obj || v_scale_obj->is_none()) {
      invalid("attention: int8 k and v need k_scale and v_scale [n_pos]");
    }
    k_scale = f32(*k_scale_obj, 1, "attention k_scale [n_pos]");
    v_scale = f32(*v_scale_obj, 1, "attention v_scale [n_pos]");
    if (k_scale.shape(0) != n_pos || v_scale.shape(0) != n_pos) {
      invalid("attention: k_scale and v_scale need shape (" + std::to_string(n_pos) + ",), got " + shape_str(k_scale) +
              " and " + shape_str(v_scale));
    }
  }
  F32Array out(std::vector<py::ssize_t>(q.shape(), q.shape() + q.ndim()));
  std::vector<float> scores(static_cast<size_t>(kernels::attention_scratch_floats(n_queries, kv_end - kv_begin, head_dim)));
  kernels::AttentionArgs args{};
  args.q = q.data();
  args.k = kc.data();
  args.v = vc.data();
  args.kv_dtype = d;
  args.kv_stride = ks;
  args.kv_begin = kv_begin;
  args.kv_end = kv_end;
  args.head_dim = head_dim;
  args.scale = static_cast<float>(scale);
  if (!(softcap >= 0.0) || !std::isfinite(softcap)) invalid("attention: softcap must be finite and >= 0");
  args.softcap = static_cast<float>(softcap);
  if (!std::isfinite(alibi_slope)) invalid("attention: alibi_slope must be finite");
  args.alibi_slope = static_cast<float>(alibi_slope);
  args.k_scale = d == DType::I8 ? k_scale.data() : nullptr;
  args.v_scale = d == DType::I8 ? v_scale.data() : nullptr;
  args.scores = scores.data();
  args.out = out.mutable_data();
  args.n_queries = n_queries;
  args.q_stride = head_dim;
  args.out_stride = head_dim;
  {
    py::gil_scoped_release release;
    k.attention(args);
  }
  return std::move(out);
}

// A gated activation kernel (swiglu or geglu): out = act(gate) * up, elementwise.
py::array gated_activation(const char* name, void (*fn)(const float*, const float*, float*, int64_t),
                           const py::object& g_obj, const py::object& u_obj) {
  const F32Array g = F32Array::ensure(g_obj);
  const F32Array u = F32Array::ensure(u_obj);
  if (!g || !u) invalid(std::string(name) + ": gate and up must be arrays of float32 (or convertible)");
  if (g.ndim() != u.ndim() || !std::equal(g.shape(), g.shape() + g.ndim(), u.shape())) {
    invalid(std::string(name) + ": gate has shape " + shape_str(g) + " but up has shape " + shape_str(u));
  }
  F32Array out(std::vector<py::ssize_t>(g.shape(), g.shape() + g.ndim()));
  const float* gp = g.data();
  const float* up = u.data();
  float* op = out.mutable_data();
  const int64_t n = g.size();
  {
    py::gil_scoped_release release;
    fn(gp, up, op, n);
  }
  return std::move(out);
}

py::array swiglu(const std::string& isa, const py::object& g, const py::object& u) {
  return gated_activation("swiglu", table(isa).swiglu, g, u);
}

py::array geglu(const std::string& isa, const py::object& g, const py::object& u) {
  return gated_activation("geglu", table(isa).geglu, g, u);
}

py::array to_f32(const std::string& isa, const py::array& src, const std::string& dtype) {
  const auto& k = table(isa);
  const DType d = parse_dtype(dtype, "to_f32 dtype");
  if (!stores(src.dtype(), d)) {
    invalid("to_f32: declared dtype " + std::string(dtype_name(d)) + " needs a " + expected_numpy(d) + " array, got " +
            std::string(py::str(src.dtype())));
  }
  if (!(src.flags() & py::array::c_style)) invalid("to_f32: src must be C-contiguous");
  F32Array out(std::vector<py::ssize_t>(src.shape(), src.shape() + src.ndim()));
  const void* sp = src.data();
  float* op = out.mutable_data();
  const int64_t n = src.size();
  {
    py::gil_scoped_release release;
    k.to_f32(sp, d, op, n);
  }
  return std::move(out);
}

py::array f32_to_f16(const std::string& isa, const py::object& x_obj) {
  const auto& k = table(isa);
  const F32Array x = F32Array::ensure(x_obj);
  if (!x) invalid("f32_to_f16: x must be an array of float32 (or convertible)");
  py::array out(py::dtype("float16"), std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const float* xp = x.data();
  auto* op = static_cast<uint16_t*>(out.mutable_data());
  const int64_t n = x.size();
  {
    py::gil_scoped_release release;
    k.f32_to_f16(xp, op, n);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// quantized kernels

using I8Array = py::array_t<int8_t, py::array::c_style>;
using I32Array = py::array_t<int32_t, py::array::c_style>;
using U8Array = py::array_t<uint8_t, py::array::c_style>;

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

void check_group_size(int64_t g, const char* what) {
  if (g != 32 && g != 64 && g != 128) invalid(std::string(what) + ": group_size must be 32, 64 or 128, got " + std::to_string(g));
}

// Native-order numpy dtype check for the quantized formats.
bool is_dtype(const py::array& a, char kind, py::ssize_t size) {
  const py::dtype dt = a.dtype();
  const char bo = dt.byteorder();
  return (bo == '=' || bo == '|') && dt.kind() == kind && dt.itemsize() == size;
}

// Rows of a 2-D array with contiguous elements; returns the row stride in elements.
int64_t check_rows(const py::array& a, char kind, py::ssize_t size, const char* numpy_name, const char* what) {
  if (!is_dtype(a, kind, size)) invalid(std::string(what) + ": expected a numpy " + numpy_name + " array, got " + std::string(py::str(a.dtype())));
  if (a.ndim() != 2) invalid(std::string(what) + ": expected 2 dimensions, got shape " + shape_str(a));
  if (a.shape(1) > 1 && a.strides(1) != size) invalid(std::string(what) + ": elements within a row must be contiguous");
  if (a.shape(0) > 1 && (a.strides(0) % size != 0 || a.strides(0) < a.shape(1) * size)) {
    invalid(std::string(what) + ": rows must be stored in order, each at least a full row apart");
  }
  return a.shape(0) > 1 ? a.strides(0) / size : a.shape(1);
}

struct QuantBuffers {
  I8Array a;
  F32Array d;
  I32Array sums;
  kernels::QuantActs view() const { return {a.data(), d.data(), sums.data(), a.shape(1)}; }
};

QuantBuffers quantize(const kernels::CpuKernels& k, const F32Array& x, int64_t in_padded) {
  const int64_t n_tokens = x.shape(0), in = x.shape(1), nb = in_padded / kernels::kQuantBlock;
  QuantBuffers q{I8Array({n_tokens, in_padded}), F32Array({n_tokens, nb}), I32Array({n_tokens, nb})};
  const float* xp = x.data();
  int8_t* ap = q.a.mutable_data();
  float* dp = q.d.mutable_data();
  int32_t* sp = q.sums.mutable_data();
  {
    py::gil_scoped_release release;
    k.quantize_acts(xp, in, n_tokens, in, in_padded, ap, dp, sp);
  }
  return q;
}

py::tuple quantize_activations(const std::string& isa, const py::object& x_obj, const std::optional<int64_t>& in_padded_arg) {
  const auto& k = table(isa);
  const F32Array x = f32(x_obj, 2, "quantize_activations x [n_tokens, in_features]");
  const int64_t in = x.shape(1);
  const int64_t in_padded = in_padded_arg ? *in_padded_arg : round_up(in, kernels::kQuantBlock);
  if (in_padded % kernels::kQuantBlock != 0 || in_padded < in) {
    invalid("quantize_activations: in_padded must be a multiple of 32 and >= in_features = " + std::to_string(in) +
            ", got " + std::to_string(in_padded));
  }
  QuantBuffers q = quantize(k, x, in_padded);
  return py::make_tuple(q.a, q.d, q.sums);
}

// The int8 KV cache's quantization of rows x [n_rows, head_dim]: (q int8 [n_rows, head_dim], scale float32 [n_rows]).
py::tuple quantize_kv(const std::string& isa, const py::object& x_obj) {
  const auto& k = table(isa);
  const F32Array x = f32(x_obj, 2, "quantize_kv x [n_rows, head_dim]");
  const int64_t rows = x.shape(0), n = x.shape(1);
  I8Array q({rows, n});
  F32Array scale({rows});
  const float* xp = x.data();
  int8_t* qp = q.mutable_data();
  float* sp = scale.mutable_data();
  {
    py::gil_scoped_release release;
    for (int64_t r = 0; r < rows; ++r) k.quantize_kv(xp + r * n, n, qp + r * n, sp + r);
  }
  return py::make_tuple(q, scale);
}

// Output buffer for y: a copy of y0 (accumulate) or zeros.
F32Array output(const std::optional<py::object>& y_obj, int64_t n_tokens, int64_t n_out, const char* what, bool& accumulate) {
  F32Array y({static_cast<py::ssize_t>(n_tokens), static_cast<py::ssize_t>(n_out)});
  accumulate = y_obj && !y_obj->is_none();
  if (accumulate) {
    const F32Array y0 = f32(*y_obj, 2, what);
    if (y0.shape(0) != n_tokens || y0.shape(1) != n_out) {
      invalid(std::string(what) + ": y has shape " + shape_str(y0) + ", need (" + std::to_string(n_tokens) + ", " +
              std::to_string(n_out) + ")");
    }
    if (y0.size() > 0) std::memcpy(y.mutable_data(), y0.data(), static_cast<size_t>(y0.size()) * sizeof(float));
  } else if (y.size() > 0) {
    std::memset(y.mutable_data(), 0, static_cast<size_t>(y.size()) * sizeof(float));
  }
  return y;
}

const float* bias_of(const std::optional<py::object>& bias_obj, int64_t n_out, F32Array& keep, const char* what) {
  if (!bias_obj || bias_obj->is_none()) return nullptr;
  keep = f32(*bias_obj, 1, what);
  if (keep.shape(0) != n_out) invalid(std::string(what) + ": bias has shape " + shape_str(keep) + ", need (" + std::to_string(n_out) + ",)");
  return keep.data();
}

void check_rows_range(int64_t& row_begin, int64_t& row_end, int64_t n_out, const char* what) {
  if (row_end == -1) row_end = n_out;
  if (row_begin < 0 || row_end < row_begin || row_end > n_out) {
    invalid(std::string(what) + ": need 0 <= row_begin <= row_end <= n_out = " + std::to_string(n_out) + ", got row_begin " +
            std::to_string(row_begin) + ", row_end " + std::to_string(row_end));
  }
}

// Runs part(i) for i in [0, n) on n threads, the calling thread taking part 0 (load-time work
// split into n disjoint parts; the caller has released the GIL).
void run_parts(int n, const std::function<void(int)>& part) {
  std::vector<std::thread> helpers;
  for (int i = 1; i < n; ++i) helpers.emplace_back(part, i);
  part(0);
  for (auto& t : helpers) t.join();
}

py::array int4_pack(const std::string& isa, const py::array& qweight, const py::array& scales,
                    const std::optional<py::array>& mins, int64_t group_size, std::optional<int64_t> in_features_arg,
                    int threads) {
  const auto& k = table(isa);
  check_group_size(group_size, "int4_pack");
  const int64_t qs = check_rows(qweight, 'u', 1, "uint8", "int4_pack qweight [n_out, in_padded/2]");
  const int64_t ss = check_rows(scales, 'f', 2, "float16", "int4_pack scales [n_out, n_groups]");
  const int64_t n_out = qweight.shape(0), in_padded = 2 * qweight.shape(1), ng = scales.shape(1);
  if (scales.shape(0) != n_out || ng * group_size != in_padded) {
    invalid("int4_pack: qweight has shape " + shape_str(qweight) + " and scales " + shape_str(scales) + "; with group_size " +
            std::to_string(group_size) + " they need shapes (n_out, n_groups*" + std::to_string(group_size / 2) +
            ") and (n_out, n_groups)");
  }
  const int64_t in = in_features_arg ? *in_features_arg : in_padded;
  if (in <= in_padded - group_size || in > in_padded) {
    invalid("int4_pack: in_features " + std::to_string(in) + " does not round up to in_padded " + std::to_string(in_padded) +
            " with group_size " + std::to_string(group_size));
  }
  int64_t ms = 0;
  const uint16_t* mp = nullptr;
  if (mins) {
    ms = check_rows(*mins, 'f', 2, "float16", "int4_pack mins [n_out, n_groups]");
    if (mins->shape(0) != n_out || mins->shape(1) != ng) {
      invalid("int4_pack: mins has shape " + shape_str(*mins) + ", need the shape of scales " + shape_str(scales));
    }
    mp = static_cast<const uint16_t*>(mins->data());
  }
  const bool sym = mp == nullptr;
  U8Array out({k.int4_packed_size(n_out, in, group_size, sym)});
  kernels::Int4PackArgs a{};
  a.qweight = static_cast<const uint8_t*>(qweight.data());
  a.qweight_stride = qs;
  a.scales = static_cast<const uint16_t*>(scales.data());
  a.scales_stride = ss;
  a.mins = mp;
  a.mins_stride = ms;
  a.n_out = n_out;
  a.in_features = in;
  a.group_size = group_size;
  a.packed = out.mutable_data();
  if (threads < 1) invalid("int4_pack: threads must be >= 1");
  const int64_t n_tiles = (n_out + kernels::kInt4RowTile - 1) / kernels::kInt4RowTile;
  const int n = static_cast<int>(std::min<int64_t>(threads, n_tiles));
  {
    py::gil_scoped_release release;
    auto part = [&](int i) {  // threads pack disjoint runs of tiles
      kernels::Int4PackArgs mine = a;
      mine.tile_begin = n_tiles * i / n;
      mine.tile_end = n_tiles * (i + 1) / n;
      k.int4_pack(mine);
    };
    run_parts(n, part);
  }
  return std::move(out);
}

int64_t int4_packed_size(const std::string& isa, int64_t n_out, int64_t in_features, int64_t group_size, bool sym) {
  check_group_size(group_size, "int4_packed_size");
  if (n_out < 0 || in_features < 0) invalid("int4_packed_size: n_out and in_features must be >= 0");
  return table(isa).int4_packed_size(n_out, in_features, group_size, sym);
}

py::tuple int4_unpack(const py::array& packed, int64_t n_out, int64_t in_features, int64_t group_size, bool sym) {
  check_group_size(group_size, "int4_unpack");
  if (n_out <= 0 || in_features <= 0) invalid("int4_unpack: n_out and in_features must be positive");
  const int64_t want = kernels::int4_packed_size(n_out, in_features, group_size, sym);
  if (!is_packed_int4(packed, want)) {
    invalid("int4_unpack: packed must be a contiguous 1-D numpy uint8 array of " + std::to_string(want) + " bytes");
  }
  const int64_t ng = (in_features + group_size - 1) / group_size;
  U8Array qweight({n_out, ng * group_size / 2});
  py::array_t<uint16_t> scales({n_out, ng});
  py::array_t<uint16_t> mins(sym ? std::vector<int64_t>{0} : std::vector<int64_t>{n_out, ng});
  kernels::Int4UnpackArgs a{packed.data(), n_out, in_features, group_size, sym, qweight.mutable_data(),
                            scales.mutable_data(), sym ? nullptr : mins.mutable_data()};
  {
    py::gil_scoped_release release;
    kernels::int4_unpack(a);
  }
  py::object m = sym ? py::object(py::none()) : py::object(mins.view("float16"));
  return py::make_tuple(qweight, scales.view("float16"), m);
}

// Symmetric int4 quantization (the table's int4_quantize_sym) of rows stored as float32, float16
// or bfloat16 (uint16 bits with dtype="bfloat16"), split over `threads` threads by rows. Returns
// (qweight uint8 [rows, in_padded/2], scales float16 [rows, n_groups], stop_row, stop_col): see
// Int4QuantizeStop (stop_row -1: done).
py::tuple int4_quantize_sym(const std::string& isa, const py::array& w, int64_t group_size, bool search,
                            const std::vector<float>& factors, int refit_rounds, int threads,
                            const std::optional<std::string>& dtype) {
  const auto& k = table(isa);
  check_group_size(group_size, "int4_quantize_sym");
  kernels::DType w_dtype;
  if (dtype && *dtype == "bfloat16" && is_dtype(w, 'u', 2)) {
    w_dtype = kernels::DType::BF16;
  } else if (!dtype && is_dtype(w, 'f', 4)) {
    w_dtype = kernels::DType::F32;
  } else if (!dtype && is_dtype(w, 'f', 2)) {
    w_dtype = kernels::DType::F16;
  } else {
    invalid("int4_quantize_sym: w must be float32 or float16, or uint16 bits with dtype='bfloat16'");
  }
  if (w.ndim() != 2 || !(w.flags() & py::array::c_style) || w.shape(0) < 1 || w.shape(1) < 1) {
    invalid("int4_quantize_sym: w must be a non-empty C-contiguous array [rows, in_features]");
  }
  if (refit_rounds < 0 || threads < 1) invalid("int4_quantize_sym: refit_rounds must be >= 0 and threads >= 1");
  const int64_t rows = w.shape(0), in = w.shape(1), ng = (in + group_size - 1) / group_size;
  U8Array qweight({rows, ng * group_size / 2});
  py::array_t<uint16_t> scales({rows, ng});
  kernels::Int4QuantizeArgs a{};
  a.w = w.data();
  a.w_dtype = w_dtype;
  a.w_stride = in;
  a.in_features = in;
  a.group_size = group_size;
  a.search = search;
  a.factors = factors.data();
  a.n_factors = static_cast<int>(factors.size());
  a.refit_rounds = refit_rounds;
  a.qweight = qweight.mutable_data();
  a.qweight_stride = ng * group_size / 2;
  a.scales = scales.mutable_data();
  a.scales_stride = ng;
  const int n = static_cast<int>(std::min<int64_t>(threads, rows));
  std::vector<kernels::Int4QuantizeStop> stops(static_cast<size_t>(n));
  std::vector<std::vector<float>> buffers(static_cast<size_t>(n), std::vector<float>(static_cast<size_t>(in)));
  {
    py::gil_scoped_release release;
    auto part = [&](int i) {
      kernels::Int4QuantizeArgs mine = a;
      mine.row_begin = rows * i / n;
      mine.row_end = rows * (i + 1) / n;
      mine.row_buffer = buffers[static_cast<size_t>(i)].data();
      stops[static_cast<size_t>(i)] = k.int4_quantize_sym(mine);
    };
    run_parts(n, part);
  }
  kernels::Int4QuantizeStop first{-1, -1};
  for (const auto& stop : stops) {  // threads own increasing row ranges: the first stop is the first row
    if (stop.row >= 0) {
      first = stop;
      break;
    }
  }
  return py::make_tuple(qweight, scales.view("float16"), first.row, first.col);
}

py::array int4_matmul(const std::string& isa, const py::object& x_obj, const py::array& packed, int64_t n_out,
                      int64_t in_features, int64_t group_size, bool sym, const std::optional<py::object>& bias_obj,
                      const std::optional<py::object>& y_obj, int64_t row_begin, int64_t row_end,
                      std::optional<int64_t> in_padded) {
  const auto& k = table(isa);
  check_group_size(group_size, "int4_matmul");
  const F32Array x = f32(x_obj, 2, "int4_matmul x [n_tokens, in_features]");
  if (x.shape(1) != in_features) {
    invalid("int4_matmul: x has shape " + shape_str(x) + " but in_features is " + std::to_string(in_features));
  }
  if (n_out < 0) invalid("int4_matmul: n_out must be >= 0");
  if (!is_dtype(packed, 'u', 1) || packed.ndim() != 1 || !(packed.flags() & py::array::c_style)) {
    invalid("int4_matmul: packed must be a contiguous 1-D numpy uint8 array (from int4_pack)");
  }
  const int64_t want = k.int4_packed_size(n_out, in_features, group_size, sym);
  if (packed.shape(0) != want) {
    invalid("int4_matmul: packed has " + std::to_string(packed.shape(0)) + " bytes, but n_out " + std::to_string(n_out) +
            ", in_features " + std::to_string(in_features) + ", group_size " + std::to_string(group_size) +
            (sym ? ", sym" : ", asym") + " need " + std::to_string(want));
  }
  check_rows_range(row_begin, row_end, n_out, "int4_matmul");
  F32Array bias_keep;
  const float* bias = bias_of(bias_obj, n_out, bias_keep, "int4_matmul");
  bool accumulate = false;
  F32Array y = output(y_obj, x.shape(0), n_out, "int4_matmul", accumulate);
  const int64_t padded_min = round_up(std::max<int64_t>(in_features, 1), group_size);
  const int64_t padded = in_padded ? *in_padded : padded_min;
  if (padded < padded_min || padded % kernels::kQuantBlock != 0) {
    invalid("int4_matmul: in_padded must be a multiple of 32 and at least " + std::to_string(padded_min));
  }
  const QuantBuffers q = quantize(k, x, padded);
  kernels::Int4MatmulArgs a{};
  a.x = q.view();
  a.w = packed.data();
  a.in_features = in_features;
  a.group_size = group_size;
  a.sym = sym;
  a.y = y.mutable_data();
  a.y_stride = n_out;
  a.n_tokens = x.shape(0);
  a.row_begin = row_begin;
  a.row_end = row_end;
  a.bias = bias;
  a.accumulate = accumulate;
  {
    py::gil_scoped_release release;
    k.int4_matmul(a);
  }
  return std::move(y);
}

py::array int8_matmul(const std::string& isa, const py::object& x_obj, const py::array& qw, const py::array& scale,
                      const std::optional<py::object>& bias_obj, const std::optional<py::object>& y_obj, int64_t row_begin,
                      int64_t row_end) {
  const auto& k = table(isa);
  const F32Array x = f32(x_obj, 2, "int8_matmul x [n_tokens, in_features]");
  const int64_t qs = check_rows(qw, 'i', 1, "int8", "int8_matmul q [n_out, in_features]");
  const int64_t n_out = qw.shape(0), in = qw.shape(1);
  if (x.shape(1) != in) invalid("int8_matmul: x has shape " + shape_str(x) + " but q has shape " + shape_str(qw));
  if (!is_dtype(scale, 'f', 2) || scale.ndim() != 1 || scale.shape(0) != n_out || (n_out > 1 && scale.strides(0) != 2)) {
    invalid("int8_matmul: scale must be a contiguous numpy float16 array of shape (" + std::to_string(n_out) + ",), got " +
            std::string(py::str(scale.dtype())) + " " + shape_str(scale));
  }
  check_rows_range(row_begin, row_end, n_out, "int8_matmul");
  F32Array bias_keep;
  const float* bias = bias_of(bias_obj, n_out, bias_keep, "int8_matmul");
  bool accumulate = false;
  F32Array y = output(y_obj, x.shape(0), n_out, "int8_matmul", accumulate);
  const QuantBuffers q = quantize(k, x, round_up(std::max<int64_t>(in, 1), 64));
  kernels::Int8MatmulArgs a{};
  a.x = q.view();
  a.q = static_cast<const int8_t*>(qw.data());
  a.q_stride = qs;
  a.scale = static_cast<const uint16_t*>(scale.data());
  a.in_features = in;
  a.y = y.mutable_data();
  a.y_stride = n_out;
  a.n_tokens = x.shape(0);
  a.row_begin = row_begin;
  a.row_end = row_end;
  a.bias = bias;
  a.accumulate = accumulate;
  {
    py::gil_scoped_release release;
    k.int8_matmul(a);
  }
  return std::move(y);
}

// Benchmark helper: runs matrices back to back in C++ (no per-call Python overhead, which is as
// long as a small GEMV) and returns the best wall time of one sweep over all of them, in seconds.
// Activations are fixed pseudo-random values, quantized once per in_features before timing.
template <typename Run>
double best_sweep(int64_t repeats, Run&& run) {
  double best = 1e30;
  for (int64_t r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    best = std::min(best, dt.count());
  }
  return best;
}

struct BenchActs {
  std::vector<int8_t> a;
  std::vector<float> d;
  std::vector<int32_t> sums;
  int64_t in_padded = 0;
  kernels::QuantActs view() const { return {a.data(), d.data(), sums.data(), in_padded}; }
};

BenchActs bench_acts(const kernels::CpuKernels& k, int64_t n_tokens, int64_t in, int64_t in_padded) {
  std::vector<float> x(static_cast<size_t>(n_tokens * in));
  uint32_t state = 12345;
  for (float& v : x) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(static_cast<int32_t>(state >> 8) - (1 << 23)) / static_cast<float>(1 << 23);
  }
  BenchActs q;
  q.in_padded = in_padded;
  q.a.resize(static_cast<size_t>(n_tokens * in_padded));
  q.d.resize(static_cast<size_t>(n_tokens * in_padded / 32));
  q.sums.resize(q.d.size());
  k.quantize_acts(x.data(), in, n_tokens, in, in_padded, q.a.data(), q.d.data(), q.sums.data());
  return q;
}

double bench_int4(const std::string& isa, const std::vector<py::array>& packed, const std::vector<int64_t>& n_out,
                  const std::vector<int64_t>& in_features, int64_t group_size, bool sym, int64_t n_tokens, int64_t repeats) {
  const auto& k = table(isa);
  check_group_size(group_size, "bench_int4");
  if (packed.size() != n_out.size() || packed.size() != in_features.size()) invalid("bench_int4: lists of different lengths");
  if (n_tokens < 1 || repeats < 1) invalid("bench_int4: n_tokens and repeats must be >= 1");
  int64_t max_out = 1;
  std::vector<std::pair<int64_t, BenchActs>> acts;
  for (size_t i = 0; i < packed.size(); ++i) {
    if (!is_packed_int4(packed[i], k.int4_packed_size(n_out[i], in_features[i], group_size, sym))) {
      invalid("bench_int4: packed[" + std::to_string(i) + "] does not match its shape");
    }
    max_out = std::max(max_out, n_out[i]);
    bool have = false;
    for (auto& p : acts) have = have || p.first == in_features[i];
    if (!have) acts.emplace_back(in_features[i], bench_acts(k, n_tokens, in_features[i], round_up(in_features[i], 128)));
  }
  std::vector<float> y(static_cast<size_t>(n_tokens * max_out));
  std::vector<kernels::Int4MatmulArgs> calls;
  for (size_t i = 0; i < packed.size(); ++i) {
    kernels::Int4MatmulArgs a{};
    for (auto& p : acts) if (p.first == in_features[i]) a.x = p.second.view();
    a.w = packed[i].data();
    a.in_features = in_features[i];
    a.group_size = group_size;
    a.sym = sym;
    a.y = y.data();
    a.y_stride = max_out;
    a.n_tokens = n_tokens;
    a.row_begin = 0;
    a.row_end = n_out[i];
    calls.push_back(a);
  }
  py::gil_scoped_release release;
  return best_sweep(repeats, [&] {
    for (const auto& a : calls) k.int4_matmul(a);
  });
}

double bench_int8(const std::string& isa, const std::vector<py::array>& qs, const std::vector<py::array>& scales,
                  int64_t n_tokens, int64_t repeats) {
  const auto& k = table(isa);
  if (qs.size() != scales.size()) invalid("bench_int8: lists of different lengths");
  if (n_tokens < 1 || repeats < 1) invalid("bench_int8: n_tokens and repeats must be >= 1");
  int64_t max_out = 1;
  std::vector<std::pair<int64_t, BenchActs>> acts;
  std::vector<kernels::Int8MatmulArgs> calls;
  for (size_t i = 0; i < qs.size(); ++i) {
    const int64_t stride = check_rows(qs[i], 'i', 1, "int8", "bench_int8 q");
    if (!is_dtype(scales[i], 'f', 2) || scales[i].ndim() != 1 || scales[i].shape(0) != qs[i].shape(0)) {
      invalid("bench_int8: scale shapes");
    }
    const int64_t in = qs[i].shape(1);
    max_out = std::max<int64_t>(max_out, qs[i].shape(0));
    bool have = false;
    for (auto& p : acts) have = have || p.first == in;
    if (!have) acts.emplace_back(in, bench_acts(k, n_tokens, in, round_up(in, 128)));
    kernels::Int8MatmulArgs a{};
    a.q = static_cast<const int8_t*>(qs[i].data());
    a.q_stride = stride;
    a.scale = static_cast<const uint16_t*>(scales[i].data());
    a.in_features = in;
    a.n_tokens = n_tokens;
    a.row_begin = 0;
    a.row_end = qs[i].shape(0);
    calls.push_back(a);
  }
  std::vector<float> y(static_cast<size_t>(n_tokens * max_out));
  for (size_t i = 0; i < calls.size(); ++i) {
    for (auto& p : acts) if (p.first == calls[i].in_features) calls[i].x = p.second.view();
    calls[i].y = y.data();
    calls[i].y_stride = max_out;
  }
  py::gil_scoped_release release;
  return best_sweep(repeats, [&] {
    for (const auto& a : calls) k.int8_matmul(a);
  });
}

}  // namespace

void bind_kernels(py::module_& m) {
  py::module_ km = m.def_submodule("kernels", "CPU kernels of one ISA, called directly (for tests and benchmarks)");
  km.def("available_isas", &available_cpu_isas,
         "ISAs this build contains and this CPU can run, best last: generic, avx2, avx512");
  km.def("matmul", &matmul, py::arg("isa"), py::arg("x"), py::arg("w"), py::arg("w_dtype"),
         py::arg("bias") = py::none(), py::arg("y") = py::none(), py::arg("row_begin") = 0, py::arg("row_end") = -1,
         "y[t, o] = y0[t, o] + x[t] . w[o] + bias[o] for o in [row_begin, row_end); other rows keep y0 (zeros by "
         "default). w: float32, float16 or uint16 (bfloat16 bits), as declared by w_dtype.");
  km.def("rmsnorm", &rmsnorm, py::arg("isa"), py::arg("x"), py::arg("w"), py::arg("eps"));
  km.def("layernorm", &layernorm, py::arg("isa"), py::arg("x"), py::arg("w"), py::arg("b"), py::arg("eps"));
  km.def("gelu_tanh", &gelu_tanh, py::arg("isa"), py::arg("x"));
  km.def("gelu_erf", &gelu_erf, py::arg("isa"), py::arg("x"));
  km.def("rope", &rope, py::arg("isa"), py::arg("x"), py::arg("cos"), py::arg("sin"), py::arg("rotary_dim"),
         py::arg("style") = "neox", "A rotated copy of x [n_heads, head_dim].");
  km.def("attention", &attention, py::arg("isa"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("scale"),
         py::arg("kv_begin") = 0, py::arg("kv_end") = -1, py::arg("softcap") = 0.0, py::arg("alibi_slope") = 0.0,
         py::arg("k_scale") = py::none(), py::arg("v_scale") = py::none(),
         "One query head at position kv_end - 1 over K/V rows [kv_begin, kv_end); see attention.h. k and v: float32, "
         "float16, or int8 with float32 row scales k_scale, v_scale [n_pos].");
  km.def("quantize_kv", &quantize_kv, py::arg("isa"), py::arg("x"),
         "The int8 KV cache's rule per row: x float32 [n_rows, head_dim] -> (q int8 [n_rows, head_dim], scale float32 "
         "[n_rows]).");
  km.def("swiglu", &swiglu, py::arg("isa"), py::arg("gate"), py::arg("up"));
  km.def("geglu", &geglu, py::arg("isa"), py::arg("gate"), py::arg("up"));
  km.def("to_f32", &to_f32, py::arg("isa"), py::arg("src"), py::arg("dtype"));
  km.def("f32_to_f16", &f32_to_f16, py::arg("isa"), py::arg("x"));
  km.def("quantize_activations", &quantize_activations, py::arg("isa"), py::arg("x"), py::arg("in_padded") = py::none(),
         "x float32 [T, in] -> (a int8 [T, in_padded], d float32 [T, in_padded/32], sums int32 [T, in_padded/32]); "
         "in_padded defaults to in rounded up to 32.");
  km.def("int4_packed_size", &int4_packed_size, py::arg("isa"), py::arg("n_out"), py::arg("in_features"),
         py::arg("group_size"), py::arg("sym"));
  km.def("int4_pack", &int4_pack, py::arg("isa"), py::arg("qweight"), py::arg("scales"), py::arg("mins") = py::none(),
         py::arg("group_size") = 128, py::arg("in_features") = py::none(), py::arg("threads") = 1,
         "Canonical int4 (qweight uint8 [n_out, in_padded/2], scales/mins float16 [n_out, n_groups]) -> packed uint8 "
         "[int4_packed_size]. in_features defaults to in_padded.");
  km.def("int4_unpack", &int4_unpack, py::arg("packed"), py::arg("n_out"), py::arg("in_features"), py::arg("group_size"),
         py::arg("sym"), "Packed -> canonical int4: (qweight uint8 [n_out, in_padded/2], scales float16, mins float16 or None).");
  km.def("int4_quantize_sym", &int4_quantize_sym, py::arg("isa"), py::arg("w"), py::arg("group_size"), py::arg("search") = true,
         py::arg("factors") = std::vector<float>{}, py::arg("refit_rounds") = 2, py::arg("threads") = 1,
         py::arg("dtype") = py::none(),
         "Rows [rows, in] -> symmetric int4 (qweight uint8, scales float16, stop_row, stop_col) with the scale search.");
  km.def("int4_matmul", &int4_matmul, py::arg("isa"), py::arg("x"), py::arg("packed"), py::arg("n_out"),
         py::arg("in_features"), py::arg("group_size"), py::arg("sym"), py::arg("bias") = py::none(),
         py::arg("y") = py::none(), py::arg("row_begin") = 0, py::arg("row_end") = -1, py::arg("in_padded") = py::none(),
         "x float32 [T, in] is quantized (quantize_activations, in_padded = round_up(in, group_size)); returns "
         "y0 + x . W^T + bias over rows [row_begin, row_end), W the packed int4 matrix.");
  km.def("bench_int4", &bench_int4, py::arg("isa"), py::arg("packed"), py::arg("n_out"), py::arg("in_features"),
         py::arg("group_size"), py::arg("sym"), py::arg("n_tokens") = 1, py::arg("repeats") = 5,
         "Best wall time (s) of one sweep of int4 matmuls over the packed matrices, back to back in C++.");
  km.def("bench_int8", &bench_int8, py::arg("isa"), py::arg("q"), py::arg("scale"), py::arg("n_tokens") = 1,
         py::arg("repeats") = 5, "Best wall time (s) of one sweep of int8-row matmuls, back to back in C++.");
  km.def("int8_matmul", &int8_matmul, py::arg("isa"), py::arg("x"), py::arg("q"), py::arg("scale"),
         py::arg("bias") = py::none(), py::arg("y") = py::none(), py::arg("row_begin") = 0, py::arg("row_end") = -1,
         "int8 rows q [n_out, in] with float16 row scales; x float32 [T, in] quantized in blocks of 32.");
}

}  // namespace slm::bindings
