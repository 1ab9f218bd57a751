// Registration functions of the _core extension module, one per binding file.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "runtime/error.h"

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

// The rope bindings' shape rule (CPU and CUDA): rotary_dim even and in [0, head_dim], cos and sin
// of rotary_dim / 2 angles each. Raises InvalidArgumentError.
inline void check_rope_shapes(int64_t rotary_dim, int64_t head_dim, int64_t n_cos, int64_t n_sin) {
  if (rotary_dim < 0 || rotary_dim % 2 != 0 || rotary_dim > head_dim) {
    throw InvalidArgumentError("rope: rotary_dim must be even and in [0, head_dim = " + std::to_string(head_dim) +
                               "], got " + std::to_string(rotary_dim));
  }
  if (n_cos != rotary_dim / 2 || n_sin != rotary_dim / 2) {
    throw InvalidArgumentError("rope: cos and sin need shape (" + std::to_string(rotary_dim / 2) + ",), got (" +
                               std::to_string(n_cos) + ",) and (" + std::to_string(n_sin) + ",)");
  }
}

}  // namespace slm::bindings
