// Element types shared by all kernels. Plain declarations only: this header is included by
// files compiled with different ISA flags, so it must not contain inline code.
#pragma once
#include <cstdint>

namespace slm::kernels {

// Storage type of a weight matrix or of the KV cache. Activations are always float32. I8 is the
// KV cache's only: int8 values with one float32 scale per cached row (slm/kernels/attention.h).
enum class DType : int32_t { F32 = 0, F16 = 1, BF16 = 2, I8 = 3 };

}  // namespace slm::kernels
