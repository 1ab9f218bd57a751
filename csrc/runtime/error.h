// Errors thrown by the runtime. The bindings map each class to the Python exception of the same
// name in slmcore.errors (DESIGN.md section 5). Kernels never throw.
#pragma once
#include <stdexcept>
#include <string>

namespace slm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

#define SLM_DEFINE_ERROR(Name)             \
  class Name : public Error {              \
   public:                                 \
    using Error::Error;                    \
  };

SLM_DEFINE_ERROR(ModelFormatError)
SLM_DEFINE_ERROR(ConfigError)
SLM_DEFINE_ERROR(InvalidArgumentError)
SLM_DEFINE_ERROR(ContextLengthError)
SLM_DEFINE_ERROR(InvalidTokenError)
SLM_DEFINE_ERROR(NumericalError)
SLM_DEFINE_ERROR(OutOfMemoryError)
SLM_DEFINE_ERROR(DeviceUnavailableError)

#undef SLM_DEFINE_ERROR

}  // namespace slm
