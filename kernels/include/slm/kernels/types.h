// Element types shared by all kernels. Plain declarations only: this header is included by
// files compiled with different ISA flags, so it must not contain inline code.
#pragma once
#include <cstdint>

namespace slm::kernels {

// Storage type of a weight matrix or of the KV cache. Activations are always float32.
enum class DType : int32_t { F32 = 0, F16 = 1, BF16 = 2 };

}  // namespace slm::kernels
