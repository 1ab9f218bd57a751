// The int4 quantizer (kernels/cpu/int4_quantize.inc) compiled with avx512's flags.
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace slm::kernels::avx512 {

#include "../int4_quantize.inc"

Int4QuantizeStop int4_quantize_sym(const Int4QuantizeArgs& args) { return quantize_sym(args); }

}  // namespace slm::kernels::avx512
