// Element type conversions used by the embedding lookup and the KV cache.
#pragma once
#include <cstdint>
#include "slm/kernels/types.h"

namespace slm::kernels {

// dst[i] = float(src[i]) for src of type src_dtype (exact for every DType). src needs no alignment.
// A signalling f16 NaN comes out quiet (as vcvtph2ps makes it; numpy keeps it signalling); every
// ISA gives the same bits.
using ToF32Fn = void (*)(const void* src, DType src_dtype, float* dst, int64_t n);

// dst[i] = IEEE half of src[i], round to nearest even (as numpy's astype(float16)), bit for bit,
// overflow to inf and subnormals included. NaNs keep sign and top payload bits and come out quiet
// (as vcvtps2ph; numpy differs only for signalling NaNs).
using F32ToF16Fn = void (*)(const float* src, uint16_t* dst, int64_t n);

}  // namespace slm::kernels
