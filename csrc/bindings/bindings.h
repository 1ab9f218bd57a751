// Registration functions of the _core extension module, one per binding file.
#pragma once
#include <pybind11/pybind11.h>

namespace slm::bindings {

void bind_errors(pybind11::module_& m);   // errors.cpp: slm::Error -> slmcore.errors.*
void bind_kernels(pybind11::module_& m);  // kernels.cpp: _core.kernels, for the kernel tests
void bind_engine(pybind11::module_& m);   // engine.cpp: _core.Engine
void bind_cuda(pybind11::module_& m);     // cuda.cpp: _core.cuda, devices and CUDA kernels

}  // namespace slm::bindings
