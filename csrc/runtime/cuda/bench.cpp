#include "runtime/cuda/bench.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "runtime/cuda/device.h"
#include "runtime/error.h"
#include "slm/kernels/cuda.h"

namespace slm::cuda {
namespace {

namespace kc = slm::kernels::cuda;

// RAII wrappers so that an exception thrown by check() frees what was created.
struct Stream {
  cudaStream_t s = nullptr;
  Stream() { check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate"); }
  ~Stream() { cudaStreamDestroy(s); }
};
struct Event {
  cudaEvent_t e = nullptr;
  Event() { check(cudaEventCreate(&e), "cudaEventCreate"); }
  ~Event() { cudaEventDestroy(e); }
};
struct Graph {
  cudaGraph_t g = nullptr;
  cudaGraphExec_t exec = nullptr;
  ~Graph() {
    if (exec) cudaGraphExecDestroy(exec);
    if (g) cudaGraphDestroy(g);
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double elapsed_s(const Event& a, const Event& b) {
  float ms = 0;
  check(cudaEventElapsedTime(&ms, a.e, b.e), "cudaEventElapsedTime");
  return double(ms) * 1e-3;
}

}  // namespace

double bench_copy(int64_t bytes, int repeats) {
  if (bytes <= 0 || bytes % 4 != 0 || repeats <= 0) throw InvalidArgumentError("bench_copy: bytes % 4 == 0, > 0");
  DeviceBuffer a{size_t(bytes)}, b{size_t(bytes)};
  Stream st;
  check(kc::fill_random_u32(a.data(), bytes, 1, st.s), "fill");
  Event e0, e1;
  std::vector<double> t;
  for (int i = 0; i < repeats + 2; ++i) {
    check(cudaEventRecord(e0.e, st.s), "cudaEventRecord");
    check(cudaMemcpyAsync(b.data(), a.data(), size_t(bytes), cudaMemcpyDeviceToDevice, st.s), "cudaMemcpyAsync");
    check(cudaEventRecord(e1.e, st.s), "cudaEventRecord");
    check(cudaEventSynchronize(e1.e), "cudaEventSynchronize");
    if (i >= 2) t.push_back(elapsed_s(e0, e1));
  }
  return median(t);
}

GemvTiming bench_int4_gemv(int64_t rows, int64_t cols, int group_size, bool asym, int64_t rotate_bytes, int launches,
                           int repeats, bool pdl) {
  if (rows <= 0 || cols <= 0 || cols % group_size != 0 || (group_size != 32 && group_size != 64 && group_size != 128) ||
      launches <= 0 || repeats <= 0) {
    throw InvalidArgumentError("bench_int4_gemv: rows, cols > 0, cols a multiple of group_size (32, 64 or 128)");
  }
  const int64_t alloc_rows = kc::int4_rows_allocated(rows);
  const int64_t w_bytes = alloc_rows * cols / 2;
  const int64_t s_elems = alloc_rows * (cols / group_size);
  const int64_t set_bytes = w_bytes + s_elems * 2 * (asym ? 2 : 1);
  const int64_t sets = std::max<int64_t>(1, (rotate_bytes + set_bytes - 1) / set_bytes);
  Stream st;
  std::vector<DeviceBuffer> w, s, m;
  for (int64_t i = 0; i < sets; ++i) {
    w.emplace_back(size_t(w_bytes));
    s.emplace_back(size_t(s_elems * 2));
    check(kc::fill_random_u32(w.back().data(), w_bytes, uint32_t(3 * i + 1), st.s), "fill");
    check(kc::fill_random_f16(s.back().as<uint16_t>(), s_elems, 0.001f, 0.02f, uint32_t(3 * i + 2), st.s), "fill");
    if (asym) {
      m.emplace_back(size_t(s_elems * 2));
      check(kc::fill_random_f16(m.back().as<uint16_t>(), s_elems, -0.1f, 0.f, uint32_t(3 * i + 3), st.s), "fill");
    }
  }
  DeviceBuffer x{size_t(cols * 2)}, y{size_t(rows * 4)};
  check(kc::fill_random_f16(x.as<uint16_t>(), cols, -1.f, 1.f, 99, st.s), "fill");

  Graph g;
  check(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  int err = 0;
  for (int i = 0; i < launches && err == 0; ++i) {
    const int64_t k = i % sets;
    kc::Int4Matrix mat{w[k].as<uint8_t>(), s[k].as<uint16_t>(), asym ? m[k].as<uint16_t>() : nullptr, rows, cols,
                       group_size};
    err = kc::int4_gemv(mat, x.as<uint16_t>(), y.as<float>(), st.s, pdl);
  }
  const cudaError_t end = cudaStreamEndCapture(st.s, &g.g);
  check(err, "int4_gemv during capture");
  check(end, "cudaStreamEndCapture");
  check(cudaGraphInstantiate(&g.exec, g.g, 0), "cudaGraphInstantiate");

  Event e0, e1;
  std::vector<double> t;
  for (int i = 0; i < repeats + 2; ++i) {
    check(cudaEventRecord(e0.e, st.s), "cudaEventRecord");
    check(cudaGraphLaunch(g.exec, st.s), "cudaGraphLaunch");
    check(cudaEventRecord(e1.e, st.s), "cudaEventRecord");
    check(cudaEventSynchronize(e1.e), "cudaEventSynchronize");
    if (i >= 2) t.push_back(elapsed_s(e0, e1) / launches);
  }
  const int64_t used = rows * cols / 2 + rows * (cols / group_size) * 2 * (asym ? 2 : 1);
  return GemvTiming{median(t), used + cols * 2 + rows * 4, sets};
}

}  // namespace slm::cuda
