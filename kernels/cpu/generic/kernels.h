// Declarations of the generic kernels (one .cpp per family in this folder). Declarations only.
#pragma once
#include <cstdint>

#include "slm/kernels/cpu.h"

namespace slm::kernels::generic {
#include "../kernel_declarations.inc"
}  // namespace slm::kernels::generic
