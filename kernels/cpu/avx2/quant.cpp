#include "kernels.h"
namespace slm::kernels::avx2 {
void quantize_acts(const float*, int64_t, int64_t, int64_t, int64_t, int8_t*, float*, int32_t*) {}
void int4_matmul(const Int4MatmulArgs&) {}
void int8_matmul(const Int8MatmulArgs&) {}
}
