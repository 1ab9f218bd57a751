// The slmcore._core extension module. Only csrc/bindings/ includes pybind11.
#include "bindings/bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "slmcore's C++ engine and kernels";
  slm::bindings::bind_errors(m);
  slm::bindings::bind_kernels(m);
  slm::bindings::bind_engine(m);
  slm::bindings::bind_cuda(m);
}
