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
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
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
  }
  return "?";
}

// Whether numpy dtype `dt` stores `d`: float32, float16, or uint16 holding bfloat16 bits; native
// byte order only.
bool stores(const py::dtype& dt, DType d) {
  const char bo = dt.byteorder();  // numpy reports native order as '=' ('|' for single bytes)
  if (bo != '=' && bo != '|') return false;
  switch (d) {
    case DType::F32: return dt.kind() == 'f' && dt.itemsize() == 4;
    case DType::F16: return dt.kind() == 'f' && dt.itemsize() == 2;
    case DType::BF16: return dt.kind() == 'u' && dt.itemsize() == 2;
  }
  return false;
}

std::string expected_numpy(DType d) {
  switch (d) {
    case DType::F32: return "numpy float32";
    case DType::F16: return "numpy float16";
    case DType::BF16: return "numpy uint16 holding bfloat16 bits";
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
  if (rotary_dim < 0 || rotary_dim % 2 != 0 || rotary_dim > head_dim) {
    invalid("rope: rotary_dim must be even and in [0, head_dim = " + std::to_string(head_dim) + "], got " +
            std::to_string(rotary_dim));
  }
  if (c.shape(0) != rotary_dim / 2 || s.shape(0) != rotary_dim / 2) {
    invalid("rope: cos and sin need shape (" + std::to_string(rotary_dim / 2) + ",), got " + shape_str(c) + " and " +
            shape_str(s));
  }
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
                    double scale, int64_t kv_begin, int64_t kv_end, double softcap) {
  const auto& k = table(isa);
  const F32Array q = f32(q_obj, 1, "attention q [head_dim]");
  DType d;
  if (stores(kc.dtype(), DType::F32)) {
    d = DType::F32;
  } else if (stores(kc.dtype(), DType::F16)) {
    d = DType::F16;
  } else {
    invalid("attention: k must be a numpy float32 or float16 array, got " + std::string(py::str(kc.dtype())));
  }
  if (!stores(vc.dtype(), d)) {
    invalid("attention: v must have k's dtype " + std::string(dtype_name(d)) + ", got " + std::string(py::str(vc.dtype())));
  }
  const int64_t ks = check_matrix(kc, d, "attention k [n_pos, head_dim]");
  const int64_t vs = check_matrix(vc, d, "attention v [n_pos, head_dim]");
  const int64_t head_dim = q.shape(0), n_pos = kc.shape(0);
  if (head_dim == 0) invalid("attention: q is empty");
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
  F32Array out({head_dim});
  std::vector<float> scores(static_cast<size_t>(kv_end - kv_begin));
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
  args.scores = scores.data();
  args.out = out.mutable_data();
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
         py::arg("kv_begin") = 0, py::arg("kv_end") = -1, py::arg("softcap") = 0.0);
  km.def("swiglu", &swiglu, py::arg("isa"), py::arg("gate"), py::arg("up"));
  km.def("geglu", &geglu, py::arg("isa"), py::arg("gate"), py::arg("up"));
  km.def("to_f32", &to_f32, py::arg("isa"), py::arg("src"), py::arg("dtype"));
  km.def("f32_to_f16", &f32_to_f16, py::arg("isa"), py::arg("x"));
}

}  // namespace slm::bindings
