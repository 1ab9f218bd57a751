// The table of CPU kernels, one instance per ISA. The runtime picks one at run time (CPUID or
// SLM_CPU_ISA); each ISA's implementation lives in kernels/cpu/<isa>/ in its own namespace and is
// the only code compiled with that ISA's flags.
#pragma once
#include "slm/kernels/activation.h"
#include "slm/kernels/attention.h"
#include "slm/kernels/convert.h"
#include "slm/kernels/matmul.h"
#include "slm/kernels/norm.h"
#include "slm/kernels/quant.h"
#include "slm/kernels/rope.h"

namespace slm::kernels {

struct CpuKernels {
  const char* name;  // "generic", "avx2", "avx512"
  MatmulFn matmul;
  RmsNormFn rmsnorm;
  LayerNormFn layernorm;
  RopeFn rope;
  AttentionFn attention;
  SwiGluFn swiglu;
  GeGluFn geglu;
  GeluFn gelu_tanh;
  GeluFn gelu_erf;
  ToF32Fn to_f32;
  F32ToF16Fn f32_to_f16;
  QuantizeActsFn quantize_acts;
  Int4PackedSizeFn int4_packed_size;  // the layout of quant.h, shared by every ISA
  Int4PackFn int4_pack;
  Int4MatmulFn int4_matmul;
  Int8MatmulFn int8_matmul;
  QuantizeKvFn quantize_kv;  // one scalar implementation shared by every ISA (attention.h)
  Int4QuantizeSymFn int4_quantize_sym;  // load time: weights -> canonical int4 (quant.h)
};

namespace generic { const CpuKernels& cpu_kernels(); }
namespace avx2 { const CpuKernels& cpu_kernels(); }    // x86-64 builds only
namespace avx512 { const CpuKernels& cpu_kernels(); }  // x86-64 builds only

// What this CPU and OS can run (CPUID plus XGETBV for the register state). Compiled without ISA flags.
bool cpu_supports_avx2();    // AVX2 + FMA + F16C
bool cpu_supports_avx512();  // AVX-512 F/BW/VL/DQ/VNNI

}  // namespace slm::kernels
