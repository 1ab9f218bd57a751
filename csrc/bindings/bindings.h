// Registration functions of the _core extension module, one per binding file.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

namespace slm::bindings {

void bind_errors(pybind11::module_& m);   // errors.cpp: slm::Error -> slmcore.errors.*
void bind_kernels(pybind11::module_& m);  // kernels.cpp: _core.kernels, for the kernel tests
void bind_engine(pybind11::module_& m);   // engine.cpp: _core.Engine
void bind_cuda(pybind11::module_& m);     // cuda.cpp: _core.cuda, devices and CUDA kernels

// Whether `packed` can be a packed int4 matrix of `bytes` bytes (kernels::int4_packed_size): a
// C-contiguous 1-D uint8 array of exactly that size. Callers raise their own error type.
inline bool is_packed_int4(const pybind11::array& packed, int64_t bytes) {
  return packed.dtype().kind() == 'u' && packed.itemsize() == 1 && packed.ndim() == 1 && packed.shape(0) == bytes &&
         (packed.flags() & pybind11::array::c_style);
}

}  // namespace slm::bindings
