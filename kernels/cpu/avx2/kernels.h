// Declarations of the avx2 kernels (one .cpp per family in this folder). Declarations only.
#pragma once
#include <cstdint>

#include "slm/kernels/cpu.h"

namespace slm::kernels::avx2 {

void matmul(const MatmulArgs& args);
void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps);
void layernorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps);
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rotary_dim, const float* cos,
          const float* sin, RopeStyle style);
void attention(const AttentionArgs& args);
void swiglu(const float* gate, const float* up, float* out, int64_t n);
void geglu(const float* gate, const float* up, float* out, int64_t n);
void gelu_tanh(const float* x, float* out, int64_t n);
void gelu_erf(const float* x, float* out, int64_t n);
void to_f32(const void* src, DType src_dtype, float* dst, int64_t n);
void f32_to_f16(const float* src, uint16_t* dst, int64_t n);
void quantize_acts(const float* x, int64_t x_stride, int64_t n_tokens, int64_t in_features, int64_t in_padded,
                   int8_t* a, float* d, int32_t* sums);
void int4_matmul(const Int4MatmulArgs& args);
void int8_matmul(const Int8MatmulArgs& args);

}  // namespace slm::kernels::avx2
