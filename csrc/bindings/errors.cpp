#include <exception>

#include "bindings/bindings.h"
#include "runtime/error.h"

namespace py = pybind11;

namespace slm::bindings {

namespace {

// Raise slmcore.errors.<name>(message). Looked up at throw time so that importing _core never
// depends on the order in which the slmcore package initialises.
void raise_python(const char* name, const char* message) {
  py::object cls = py::module_::import("slmcore.errors").attr(name);
  PyErr_SetString(cls.ptr(), message);
}

}  // namespace

void bind_errors(py::module_& m) {
  (void)m;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ModelFormatError& e) {
      raise_python("ModelFormatError", e.what());
    } catch (const ConfigError& e) {
      raise_python("ConfigError", e.what());
    } catch (const InvalidArgumentError& e) {
      raise_python("InvalidArgumentError", e.what());
    } catch (const ContextLengthError& e) {
      raise_python("ContextLengthError", e.what());
    } catch (const InvalidTokenError& e) {
      raise_python("InvalidTokenError", e.what());
    } catch (const NumericalError& e) {
      raise_python("NumericalError", e.what());
    } catch (const OutOfMemoryError& e) {
      raise_python("OutOfMemoryError", e.what());
    } catch (const DeviceUnavailableError& e) {
      raise_python("DeviceUnavailableError", e.what());
    } catch (const Error& e) {
      raise_python("SlmError", e.what());
    } catch (const std::bad_alloc&) {
      raise_python("OutOfMemoryError", "out of memory");
    }
  });
}

}  // namespace slm::bindings
