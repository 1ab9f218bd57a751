// Dense matrix products against a row-major weight matrix W[n_out, in_features].
#pragma once
#include <cstdint>
#include "slm/kernels/types.h"

namespace slm::kernels {

// For t in [0, n_tokens) and o in [row_begin, row_end):
//   y[t*y_stride + o] = (accumulate ? y[t*y_stride + o] : 0) + dot(x[t, :], W[o, :]) + (bias ? bias[o] : 0)
// x is float32 [n_tokens, x_stride]; W has element type w_dtype and row stride w_stride
// (elements, >= in_features); neither x nor W needs any alignment.
// Every output is reduced in an order that depends only on in_features and the ISA, never on
// n_tokens or on [row_begin, row_end): splitting rows across threads gives bitwise equal results.
// The CPU kernels compute s = dot(...) in that fixed order, then s + bias[o], then y + s.
struct MatmulArgs {
  const float* x;
  int64_t x_stride;
  const void* w;
  DType w_dtype;
  int64_t w_stride;
  float* y;
  int64_t y_stride;
  int64_t n_tokens;
  int64_t in_features;
  int64_t row_begin;
  int64_t row_end;
  const float* bias;  // nullable, float32 [n_out]
  bool accumulate;
};

using MatmulFn = void (*)(const MatmulArgs& args);

}  // namespace slm::kernels
