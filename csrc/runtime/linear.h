// What every graph does with its weight matrices, whatever their WeightFormat: check them at load,
// read embedding rows, and run y = x W^T + b, quantizing the activations to int8 first for int4 and
// int8-row weights (DESIGN.md section 4; slm/kernels/quant.h).
//
// The int8 activations live in QuantScratch buffers that ActivationQuantizer owns: one per thread
// (inputs a thread computed for itself, such as its own copy of a norm's output) and a few shared
// ones (inputs that several threads wrote parts of, quantized once and then read by all).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/buffer.h"
#include "runtime/engine.h"
#include "runtime/thread_pool.h"
#include "slm/kernels/cpu.h"

namespace slm {

size_t dtype_size(DType t);
int64_t round_up(int64_t v, int64_t m);

// Load-time checks; `name` is the weight's canonical name. ModelFormatError when the matrix is
// missing, has another shape, or is stored in a format its place cannot take (int4 where the
// graph reads single rows, such as the embedding) or without the scales its format needs.
void check_matrix(const Matrix& m, const std::string& name, int64_t rows, int64_t cols);
void check_format(const Matrix& m, const std::string& name, bool int4_allowed);
void check_vector(const float* v, const std::string& name);

// Row `token` of an embedding matrix (16/32-bit or int8 rows) as float32 [E.cols].
void embedding_row(const kernels::CpuKernels& k, const Matrix& E, int64_t token, float* out);

// int8 activations of up to `rows` rows of in_padded values (slm/kernels/quant.h's QuantActs).
struct QuantScratch {
  Buffer<int8_t> a;
  Buffer<float> d;
  Buffer<int32_t> sums;
  int64_t in_padded = 0;

  void resize(int64_t rows, int64_t padded);
  kernels::QuantActs acts() const { return {a.data(), d.data(), sums.data(), in_padded}; }
};

// A matmul's input rows: float32 (read by dense weights), and their int8 form (read by quantized
// weights; valid only when the rows were quantized).
struct LinearInput {
  const float* x;
  int64_t stride;
  kernels::QuantActs q;
};

// y[t, row_begin:row_end] (+)= in[t] W^T + bias for t < n_tokens, in W's own format.
void linear(const kernels::CpuKernels& k, const LinearInput& in, int64_t n_tokens, const Matrix& W, int64_t row_begin,
            int64_t row_end, float* y, int64_t y_stride, const float* bias, bool accumulate);

// The scratch and the quantization steps of one engine. When no weight is quantized it allocates
// nothing and every input is the float32 rows alone.
class ActivationQuantizer {
 public:
  // quantized: whether any matrix needs int8 activations; rows: the most rows of one call (the
  // engine's chunk); max_in_features: the widest matmul input; n_shared: shared scratches.
  void init(bool quantized, int64_t rows, int64_t max_in_features, int n_shared);
  void set_threads(int n_threads);
  bool quantized() const { return quantized_; }

  // Rows [first, first + n) of x (in_features wide) quantized into `scratch` at the same row
  // offsets, as a matmul input of the whole x.
  LinearInput input(const kernels::CpuKernels& k, const float* x, int64_t stride, int64_t first, int64_t n,
                    int64_t in_features, QuantScratch& scratch) const;
  // All n rows of x, quantized by the calling thread into its own scratch.
  LinearInput own(const kernels::CpuKernels& k, const float* x, int64_t stride, int64_t n, int64_t in_features,
                  int tid) {
    return input(k, x, stride, 0, n, in_features, thread_[tid]);
  }
  // Rows [first, first + n) of x quantized into shared scratch `slot` (by the thread that owns
  // those rows), and the input all threads then read from that slot.
  void quantize_into(const kernels::CpuKernels& k, int slot, const float* x, int64_t stride, int64_t first, int64_t n,
                     int64_t in_features) {
    input(k, x, stride, first, n, in_features, shared_[slot]);
  }
  LinearInput shared(int slot, const float* x, int64_t stride) const { return {x, stride, shared_[slot].acts()}; }

  // For rows that every thread wrote a part of in the previous region: quantize_shared quantizes
  // them into shared slot 0 in a region of its own, split by rows, and shared_or_own gives the
  // input. A single row is instead quantized by each thread for itself, which saves that region
  // (a decode step's barrier) for a few microseconds of redundant work.
  void quantize_shared(const kernels::CpuKernels& k, ThreadPool& pool, const float* x, int64_t stride, int64_t n,
                       int64_t in_features);
  LinearInput shared_or_own(const kernels::CpuKernels& k, const float* x, int64_t stride, int64_t n,
                            int64_t in_features, int tid);

 private:
  bool quantized_ = false;
  int64_t rows_ = 0;
  int64_t in_padded_ = 0;  // every in_features rounded up to 128, which serves every format
  std::vector<QuantScratch> thread_;
  std::vector<QuantScratch> shared_;
};

}  // namespace slm
