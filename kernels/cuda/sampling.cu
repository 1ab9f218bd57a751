// Sampling of the next token from one row of logits, on the GPU (one block; see the rule in
// kernels/include/slm/kernels/cuda.h). Weights are float32; their sums are float64, so the draw
// and the top-p floor follow the rule to within the weights' own rounding (expf: 2 ulp). Thresholds are found by a bitwise search over the 32-bit
// patterns of the values (32 counting passes over the row): simple, exact, and fast enough next to
// a forward pass; a radix select would take 4 passes.
#include <cuda_runtime.h>

#include <cstdint>

#include "block_reduce.cuh"
#include "slm/kernels/cuda.h"

namespace slm::kernels::cuda {
namespace {

constexpr int kSampleThreads = 1024;

// Float -> uint32 with the same order for every non-NaN value (-inf < ... < -0 < +0 < ... < +inf).
__device__ __forceinline__ uint32_t order_key(float x) {
  const uint32_t b = __float_as_uint(x);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float from_order_key(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}

// (value, index) of the larger; ties and an empty side (index < 0) resolved to the lower index.
__device__ __forceinline__ void take_better(float& v, int& i, float v2, int i2) {
  if (i2 >= 0 && (i < 0 || v2 > v || (v2 == v && i2 < i))) {
    v = v2;
    i = i2;
  }
}

// The block's largest non-NaN value and its lowest index, and whether any value is NaN; returned
// to every thread.
struct RowMax {
  float value;
  int index;  // -1 if every value is NaN
  bool has_nan;
};

__device__ RowMax row_max(const float* x, int n) {
  __shared__ float values[kWarp];
  __shared__ int indices[kWarp];
  __shared__ int nans[kWarp];
  float v = -INFINITY;
  int i = -1, nan = 0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {  // increasing j: ties keep the first
    const float xj = x[j];
    if (isnan(xj)) {
      nan = 1;
    } else if (i < 0 || xj > v) {
      v = xj;
      i = j;
    }
  }
#pragma unroll
  for (int off = kWarp / 2; off > 0; off >>= 1) {
    const float v2 = __shfl_xor_sync(0xFFFFFFFFu, v, off);
    const int i2 = __shfl_xor_sync(0xFFFFFFFFu, i, off);
    take_better(v, i, v2, i2);
  }
  nan = warp_sum(nan);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, n_warps = blockDim.x / kWarp;
  if (lane == 0) {
    values[warp] = v;
    indices[warp] = i;
    nans[warp] = nan;
  }
  __syncthreads();
  RowMax r{values[0], indices[0], nans[0] != 0};
  for (int w = 1; w < n_warps; ++w) {
    take_better(r.value, r.index, values[w], indices[w]);
    r.has_nan = r.has_nan || nans[w] != 0;
  }
  __syncthreads();  // the shared arrays may be reused
  return r;
}

// The CPU sampler's NumericalError: a NaN anywhere, or a largest value that is not finite.
__device__ __forceinline__ bool bad_row(const RowMax& r) { return r.has_nan || r.index < 0 || isinf(r.value); }

__global__ void __launch_bounds__(kSampleThreads) argmax_kernel(const float* logits, int n, int32_t* token) {
  const RowMax r = row_max(logits, n);
  if (threadIdx.x == 0) *token = bad_row(r) ? -1 : r.index;
}

struct Filter {
  float max_logit, inv_temperature;
  bool top_k;      // keep only x >= kth
  float kth;       // the top_k-th largest logit
  float floor;     // top-p: keep only weights >= floor (0: keep all)
  float min_p;     // keep only weights >= min_p (0: keep all)
};

// The unnormalised probability of logit x after the filters (0 when filtered out).
__device__ __forceinline__ float weight_of(float x, const Filter& f) {
  if (f.top_k && !(x >= f.kth)) return 0.f;
  const float w = expf((x - f.max_logit) * f.inv_temperature);
  return (w >= f.floor && w >= f.min_p) ? w : 0.f;
}

__global__ void __launch_bounds__(kSampleThreads) sample_kernel(const float* logits, int n, float inv_temperature,
                                                                 int top_k, float top_p, float min_p, float u,
                                                                 int32_t* token) {
  __shared__ int iscratch[kWarp];
  __shared__ double dscratch[kWarp];
  __shared__ double segment_sum[kSampleThreads];
  __shared__ int chosen_segment;
  __shared__ double segment_target;

  const RowMax r = row_max(logits, n);
  if (bad_row(r)) {
    if (threadIdx.x == 0) *token = -1;
    return;  // uniform across the block
  }
  Filter f{r.value, inv_temperature, false, 0.f, 0.f, 0.f};

  // top-k: the k-th largest key t is the largest t with count(key >= t) >= k, built bit by bit.
  if (top_k > 0 && top_k < n) {
    uint32_t t = 0;
    for (int bit = 31; bit >= 0; --bit) {
      const uint32_t candidate = t | (1u << bit);
      int count = 0;
      for (int j = threadIdx.x; j < n; j += blockDim.x) count += order_key(logits[j]) >= candidate;
      if (block_sum(count, iscratch) >= top_k) t = candidate;
    }
    f.top_k = true;
    f.kth = from_order_key(t);
  }

  // top-p: the floor is the largest weight w* with sum(weights >= w*) >= top_p * total. Weights
  // are non-negative, so their bit patterns order like their values (bit 31 is always 0).
  if (top_p < 1.f) {
    double total = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) total += weight_of(logits[j], f);
    const double target = double(top_p) * block_sum(total, dscratch);
    uint32_t t = 0;
    for (int bit = 30; bit >= 0; --bit) {
      const uint32_t candidate = t | (1u << bit);
      double mass = 0.0;
      for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const float w = weight_of(logits[j], f);
        mass += __float_as_uint(w) >= candidate ? w : 0.f;
      }
      if (block_sum(mass, dscratch) >= target) t = candidate;
    }
    f.floor = __uint_as_float(t);
  }
  f.min_p = min_p;

  // Draw: the first index (in index order) whose cumulative weight exceeds u * total. Thread i
  // owns the contiguous segment [i * seg, (i + 1) * seg); thread 0 finds the segment, its owner the index.
  const int seg = (n + blockDim.x - 1) / blockDim.x;
  const int begin = threadIdx.x * seg, end = begin + seg < n ? begin + seg : n;
  double s = 0.0;
  for (int j = begin; j < end; ++j) s += weight_of(logits[j], f);
  segment_sum[threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int i = 0; i < int(blockDim.x); ++i) total += segment_sum[i];
    const double target = double(u) * total;
    double before = 0.0;
    int chosen = -1, last_positive = -1;
    for (int i = 0; i < int(blockDim.x); ++i) {
      if (segment_sum[i] > 0.0) last_positive = i;
      const double after = before + segment_sum[i];
      if (chosen < 0 && after > target) {
        chosen = i;
        segment_target = target - before;
      }
      before = after;
    }
    if (chosen < 0) {  // rounding put the target at the end: the last positive weight
      chosen = last_positive;
      segment_target = INFINITY;
    }
    chosen_segment = chosen;
  }
  __syncthreads();
  if (int(threadIdx.x) == chosen_segment) {
    double acc = 0.0;
    int pick = -1, last_positive = -1;
    for (int j = begin; j < end; ++j) {
      const float w = weight_of(logits[j], f);
      if (w > 0.f) {
        last_positive = j;
        acc += w;
        if (acc > segment_target) {
          pick = j;
          break;
        }
      }
    }
    *token = pick >= 0 ? pick : last_positive;
  }
}

}  // namespace

int sample_argmax(const float* logits, int64_t vocab, int32_t* token, void* stream) {
  if (!logits || !token || vocab < 1 || vocab > kMaxSampleVocab) return int(cudaErrorInvalidValue);
  argmax_kernel<<<1, kSampleThreads, 0, static_cast<cudaStream_t>(stream)>>>(logits, int(vocab), token);
  return int(cudaGetLastError());
}

int sample_top_k_top_p(const float* logits, int64_t vocab, float inv_temperature, int64_t top_k, float top_p,
                       float min_p, float u, int32_t* token, void* stream) {
  if (!logits || !token || vocab < 1 || vocab > kMaxSampleVocab || !(inv_temperature > 0.f) ||
      !(inv_temperature < INFINITY) || !(top_p > 0.f && top_p <= 1.f) || !(min_p >= 0.f && min_p <= 1.f) ||
      !(u >= 0.f && u < 1.f)) {
    return int(cudaErrorInvalidValue);
  }
  const int k = top_k > 0 && top_k < vocab ? int(top_k) : 0;
  sample_kernel<<<1, kSampleThreads, 0, static_cast<cudaStream_t>(stream)>>>(logits, int(vocab), inv_temperature, k,
                                                                            top_p, min_p, u, token);
  return int(cudaGetLastError());
}

}  // namespace slm::kernels::cuda
