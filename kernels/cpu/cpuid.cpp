// CPU feature detection for the kernel dispatch table. Compiled without ISA flags: only CPUID and
// XGETBV are executed here, so this file runs on any x86-64 (and compiles on other architectures,
// where both queries answer false).
#include "slm/kernels/cpu.h"

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SLM_CPUID_X86 1
#endif

namespace slm::kernels {

#if defined(SLM_CPUID_X86)
namespace {

struct Regs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  bool ok = false;
};

Regs cpuid(unsigned leaf, unsigned subleaf) {
  Regs r;
  // __get_cpuid_count checks the maximum supported leaf of the leaf's range first.
  r.ok = __get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx) != 0;
  return r;
}

bool bit(unsigned reg, int b) { return ((reg >> b) & 1u) != 0; }

// XCR0: which register state the OS saves and restores. Only valid when CPUID.1:ECX.OSXSAVE is set.
uint64_t xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

// CPUID.1:ECX bits.
constexpr int kFma = 12, kOsxsave = 27, kAvx = 28, kF16c = 29;
// CPUID.(7,0):EBX / ECX bits.
constexpr int kAvx2 = 5, kAvx512F = 16, kAvx512DQ = 17, kAvx512BW = 30, kAvx512VL = 31;
constexpr int kAvx512Vnni = 11;  // ECX
// XCR0 bits: 1 SSE (XMM), 2 AVX (upper YMM), 5 opmask, 6 ZMM_Hi256, 7 Hi16_ZMM.
constexpr uint64_t kXcr0Ymm = (1u << 1) | (1u << 2);
constexpr uint64_t kXcr0Zmm = kXcr0Ymm | (1u << 5) | (1u << 6) | (1u << 7);

bool detect_avx2() {
  const Regs l1 = cpuid(1, 0);
  if (!l1.ok) return false;
  if (!bit(l1.ecx, kOsxsave) || !bit(l1.ecx, kAvx) || !bit(l1.ecx, kFma) || !bit(l1.ecx, kF16c)) return false;
  if ((xcr0() & kXcr0Ymm) != kXcr0Ymm) return false;
  const Regs l7 = cpuid(7, 0);
  return l7.ok && bit(l7.ebx, kAvx2);
}

bool detect_avx512() {
  // The AVX-512 kernels are also compiled with -mavx2 -mfma -mf16c.
  if (!detect_avx2()) return false;
  if ((xcr0() & kXcr0Zmm) != kXcr0Zmm) return false;
  const Regs l7 = cpuid(7, 0);
  return l7.ok && bit(l7.ebx, kAvx512F) && bit(l7.ebx, kAvx512DQ) && bit(l7.ebx, kAvx512BW) &&
         bit(l7.ebx, kAvx512VL) && bit(l7.ecx, kAvx512Vnni);
}

}  // namespace

bool cpu_supports_avx2() {
  static const bool supported = detect_avx2();
  return supported;
}

bool cpu_supports_avx512() {
  static const bool supported = detect_avx512();
  return supported;
}

#else  // not x86

bool cpu_supports_avx2() { return false; }
bool cpu_supports_avx512() { return false; }

#endif

}  // namespace slm::kernels
