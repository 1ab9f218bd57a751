#include "runtime/linear.h"

#include "runtime/error.h"

namespace slm {

size_t dtype_size(DType t) { return t == DType::F32 ? 4 : t == DType::I8 ? 1 : 2; }

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

void check_matrix(const Matrix& m, const std::string& name, int64_t rows, int64_t cols) {
  if (m.data == nullptr) throw ModelFormatError("missing weight " + name);
  if (m.rows != rows || m.cols != cols) {
    throw ModelFormatError("weight " + name + " has shape [" + std::to_string(m.rows) + ", " + std::to_string(m.cols) +
                           "], expected [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  }
}

void check_format(const Matrix& m, const std::string& name, bool int4_allowed) {
  if (m.format == WeightFormat::Int4) {
    if (!int4_allowed) throw ModelFormatError("weight " + name + " cannot be int4 (int8 rows or 16/32-bit)");
    if (m.group_size != 32 && m.group_size != 64 && m.group_size != 128) {
      throw ModelFormatError("weight " + name + ": int4 group size must be 32, 64 or 128");
    }
  }
  if (m.format == WeightFormat::Int8Rows && m.row_scales == nullptr) {
    throw ModelFormatError("weight " + name + ": int8 rows need their scales");
  }
}

void check_vector(const float* v, const std::string& name) {
  if (v == nullptr) throw ModelFormatError("missing weight " + name);
}

void embedding_row(const kernels::CpuKernels& k, const Matrix& E, int64_t token, float* out) {
  const size_t row = static_cast<size_t>(token) * static_cast<size_t>(E.cols);
  if (E.format == WeightFormat::Int8Rows) {
    const int8_t* q = static_cast<const int8_t*>(E.data) + row;
    float scale;
    k.to_f32(E.row_scales + token, DType::F16, &scale, 1);
    for (int64_t i = 0; i < E.cols; ++i) out[i] = scale * static_cast<float>(q[i]);
  } else {
    k.to_f32(static_cast<const uint8_t*>(E.data) + row * dtype_size(E.dtype), E.dtype, out, E.cols);
  }
}

void QuantScratch::resize(int64_t rows, int64_t padded) {
  in_padded = padded;
  a.resize(static_cast<size_t>(rows * padded));
  d.resize(static_cast<size_t>(rows * padded / kernels::kQuantBlock));
  sums.resize(static_cast<size_t>(rows * padded / kernels::kQuantBlock));
}

void linear(const kernels::CpuKernels& k, const LinearInput& in, int64_t n_tokens, const Matrix& W, int64_t row_begin,
            int64_t row_end, float* y, int64_t y_stride, const float* bias, bool accumulate) {
  if (row_begin >= row_end) return;
  switch (W.format) {
    case WeightFormat::Dense: {
      kernels::MatmulArgs a{in.x, in.stride, W.data, W.dtype, W.cols, y, y_stride, n_tokens, W.cols,
                            row_begin, row_end, bias, accumulate};
      k.matmul(a);
      return;
    }
    case WeightFormat::Int4: {
      kernels::Int4MatmulArgs a{in.q, W.data, W.cols, W.group_size, W.sym, y, y_stride, n_tokens,
                                row_begin, row_end, bias, accumulate};
      k.int4_matmul(a);
      return;
    }
    case WeightFormat::Int8Rows: {
      kernels::Int8MatmulArgs a{in.q, static_cast<const int8_t*>(W.data), W.cols, W.row_scales, W.cols, y, y_stride,
                                n_tokens, row_begin, row_end, bias, accumulate};
      k.int8_matmul(a);
      return;
    }
  }
}

void ActivationQuantizer::init(bool quantized, int64_t rows, int64_t max_in_features, int n_shared) {
  quantized_ = quantized;
  rows_ = rows;
  in_padded_ = round_up(max_in_features, 128);
  shared_.clear();
  shared_.resize(static_cast<size_t>(n_shared));
  if (!quantized_) return;
  for (QuantScratch& s : shared_) s.resize(rows_, in_padded_);
}

void ActivationQuantizer::set_threads(int n_threads) {
  thread_.clear();
  thread_.resize(static_cast<size_t>(n_threads));
  if (!quantized_) return;
  for (QuantScratch& s : thread_) s.resize(rows_, in_padded_);
}

LinearInput ActivationQuantizer::input(const kernels::CpuKernels& k, const float* x, int64_t stride, int64_t first,
                                       int64_t n, int64_t in_features, QuantScratch& scratch) const {
  LinearInput in{x, stride, scratch.acts()};
  if (quantized_ && n > 0) {
    const int64_t blocks = scratch.in_padded / kernels::kQuantBlock;
    k.quantize_acts(x + first * stride, stride, n, in_features, scratch.in_padded,
                    scratch.a.data() + first * scratch.in_padded, scratch.d.data() + first * blocks,
                    scratch.sums.data() + first * blocks);
  }
  return in;
}

void ActivationQuantizer::quantize_shared(const kernels::CpuKernels& k, ThreadPool& pool, const float* x,
                                          int64_t stride, int64_t n, int64_t in_features) {
  if (!quantized_ || n == 1) return;
  pool.run([&](int tid) {
    const Range r = split_range(n, tid, pool.size(), 1);
    input(k, x, stride, r.begin, r.end - r.begin, in_features, shared_[0]);
  });
}

LinearInput ActivationQuantizer::shared_or_own(const kernels::CpuKernels& k, const float* x, int64_t stride,
                                               int64_t n, int64_t in_features, int tid) {
  if (!quantized_ || n == 1) return own(k, x, stride, n, in_features, tid);
  return shared(0, x, stride);
}

}  // namespace slm
