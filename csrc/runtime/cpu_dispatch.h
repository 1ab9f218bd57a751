// Choosing the CPU kernel table at run time.
#pragma once
#include <string>
#include <vector>

#include "slm/kernels/cpu.h"

namespace slm {

// ISAs this build contains and this CPU can run, best last: {"generic", "avx2", "avx512"}.
std::vector<std::string> available_cpu_isas();

// The kernel table for `isa`: "generic", "avx2", "avx512", or "auto" (SLM_CPU_ISA if set, else
// the best available). Throws InvalidArgumentError for an unknown name or one this CPU cannot run.
const kernels::CpuKernels& cpu_kernels_for(const std::string& isa);

}  // namespace slm
