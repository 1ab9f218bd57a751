// The int4 quantizer (kernels/cpu/int4_quantize.inc) without ISA flags, and the fp16 conversions
// every ISA's copy calls.
#include <cstdint>
#include <cstring>

#include "common.h"
#include "kernels.h"

namespace slm::kernels {

uint16_t f32_to_fp16_bits(float f) { return generic::f32_to_half(f); }
float fp16_bits_to_f32(uint16_t h) { return generic::half_to_f32(h); }

namespace generic {

#include "../int4_quantize.inc"

Int4QuantizeStop int4_quantize_sym(const Int4QuantizeArgs& args) { return quantize_sym(args); }

}  // namespace generic
}  // namespace slm::kernels
