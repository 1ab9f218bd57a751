// Element type conversions used by the embedding lookup and the KV cache.
#pragma once
#include <cstdint>
#include "slm/kernels/types.h"

namespace slm::kernels {

// dst[i] = float(src[i]) for src of type src_dtype (exact for every DType). src needs no alignment.
using ToF32Fn = void (*)(const void* src, DType src_dtype, float* dst, int64_t n);

// dst[i] = IEEE half of src[i], round to nearest even (as numpy's astype(float16)).
using F32ToF16Fn = void (*)(const float* src, uint16_t* dst, int64_t n);

}  // namespace slm::kernels
