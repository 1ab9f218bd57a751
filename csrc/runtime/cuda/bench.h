// Device-side micro-benchmarks behind benchmarks/bench_cuda.py: timed with CUDA events, median of
// repeats, inputs random and rotated through more memory than the L2 cache holds.
#pragma once
#include <cstdint>

namespace slm::cuda {

// Median seconds of one device-to-device cudaMemcpy of `bytes` (it moves 2 * bytes).
double bench_copy(int64_t bytes, int repeats);

struct GemvTiming {
  double seconds_per_launch = 0;  // median over repeats of (graph replay time / launches)
  int64_t bytes_per_launch = 0;   // weights + scales (+ mins) + x + y
  int64_t sets = 0;               // weight sets rotated through
};

// int4_gemv on rows x cols (group_size G, asymmetric when `asym`): `sets` random weight sets whose
// total is at least `rotate_bytes`, a CUDA graph of `launches` launches cycling through them
// (with programmatic dependent launch between them when `pdl`).
GemvTiming bench_int4_gemv(int64_t rows, int64_t cols, int group_size, bool asym, int64_t rotate_bytes, int launches,
                           int repeats, bool pdl);

}  // namespace slm::cuda
