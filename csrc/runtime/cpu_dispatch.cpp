#include "runtime/cpu_dispatch.h"

#include <cstdlib>

#include "runtime/error.h"

namespace slm {

std::vector<std::string> available_cpu_isas() {
  std::vector<std::string> isas = {"generic"};
#if defined(SLM_X86)
  if (kernels::cpu_supports_avx2()) isas.push_back("avx2");
  if (kernels::cpu_supports_avx512()) isas.push_back("avx512");
#endif
  return isas;
}

const kernels::CpuKernels& cpu_kernels_for(const std::string& isa) {
  std::string name = isa;
  if (name == "auto") {
    const char* forced = std::getenv("SLM_CPU_ISA");
    name = (forced && *forced) ? forced : available_cpu_isas().back();
  }
  const auto isas = available_cpu_isas();
  bool runnable = false;
  for (const auto& s : isas) runnable = runnable || s == name;
  if (!runnable) {
    std::string list;
    for (const auto& s : isas) list += (list.empty() ? "" : ", ") + s;
    throw InvalidArgumentError("CPU ISA '" + name + "' is not available here (SLM_CPU_ISA or isa=); choose one of: " + list);
  }
#if defined(SLM_X86)
  if (name == "avx512") return kernels::avx512::cpu_kernels();
  if (name == "avx2") return kernels::avx2::cpu_kernels();
#endif
  return kernels::generic::cpu_kernels();
}

}  // namespace slm
