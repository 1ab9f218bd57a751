// Declarations of the avx512 kernels (one .cpp per family in this folder). Declarations only.
#pragma once
#include <cstdint>

#include "slm/kernels/cpu.h"

namespace slm::kernels::avx512 {
#include "../kernel_declarations.inc"
}  // namespace slm::kernels::avx512
