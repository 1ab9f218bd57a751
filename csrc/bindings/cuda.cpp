// _core.cuda: whether the CUDA backend is built, the devices it sees, and the CUDA kernels for the
// tests and benchmarks (host arrays in, host arrays out, on device 0). Without the backend, every
// call that needs a GPU raises DeviceUnavailableError.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "bindings/bindings.h"
#include "runtime/error.h"

#ifdef SLM_WITH_CUDA
#include "runtime/cuda/bench.h"
#include "runtime/cuda/device.h"
#include "slm/kernels/cuda.h"
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
  c.def("bench_copy", &bench_copy, py::arg("bytes"), py::arg("repeats") = 20,
        "Median seconds of one device-to-device copy of `bytes` (moving 2 * bytes).");
  c.def("bench_int4_gemv", &bench_int4_gemv, py::arg("rows"), py::arg("cols"), py::arg("group_size") = 128,
        py::arg("asym") = false, py::arg("rotate_bytes") = int64_t(256) << 20, py::arg("launches") = 200,
        py::arg("repeats") = 20, py::arg("pdl") = true,
        "int4 GEMV timed inside a CUDA graph over weight sets rotated through rotate_bytes: "
        "{'seconds': per launch (median), 'bytes': read+written per launch, 'sets': n}.");
}

}  // namespace slm::bindings
