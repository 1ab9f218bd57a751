// int4 GEMV for decode (see kernels/include/slm/kernels/cuda.h for the GPU layout).
//
// Nibbles become fp16 with the magic-exponent trick: (w & 0x000F000F) | 0x64006400 is the half2 (1024+a, 1024+b),
// and (w & 0x00F000F0) | 0x64006400 is (1024+16a, 1024+16b); subtracting 1032 (or 1152) leaves
// exactly q-8 (or 16(q-8)), whose products with x (or x/16) accumulate in a half2 over the chunk.
#include <cuda_fp16.h>
#include <cuda_runtime.h>


#include "block_reduce.cuh"
#include "slm/kernels/cuda.h"

namespace slm::kernels::cuda {
namespace {

// Tuning knobs (macros so that a sweep can rebuild with -D; the defaults are the measured best).
#ifndef SLM_GEMV_ROWS
#define SLM_GEMV_ROWS 2
#endif
#ifndef SLM_GEMV_UNROLL
#define SLM_GEMV_UNROLL 2
#endif
#ifndef SLM_GEMV_THREADS
#define SLM_GEMV_THREADS 512
#endif
constexpr int kRows = SLM_GEMV_ROWS;       // rows per warp step
constexpr int kUnroll = SLM_GEMV_UNROLL;   // chunks per row loaded ahead
constexpr int kThreads = SLM_GEMV_THREADS; // threads per block
constexpr int kChunk = 32;           // elements per 16-byte chunk

__device__ __forceinline__ uint32_t to_gpu_word(uint32_t c) {
  // canonical: element e at bits 4e; GPU: element order 0 2 4 6 1 3 5 7 in nibble positions 0..7
  uint32_t g = 0;
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const int pos = (e & 1) ? 4 + (e >> 1) : (e >> 1);
    g |= ((c >> (4 * e)) & 0xFu) << (4 * pos);
  }
  return g;
}

__global__ void to_gpu_layout_kernel(const uint32_t* in, uint32_t* out, int64_t words) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < words; i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = to_gpu_word(in[i]);
  }
}

__device__ __forceinline__ __half2 as_half2(uint32_t u) {
  __half2 h;
  *reinterpret_cast<uint32_t*>(&h) = u;
  return h;
}

// sum over one word's 8 elements of (q-8) * x, into a half2 accumulator. xl0/xl1 are the pairs
// (x0,x1), (x4,x5); xh0/xh1 are (x2,x3)/16, (x6,x7)/16.
__device__ __forceinline__ __half2 word_dot(uint32_t w, __half2 xl0, __half2 xh0, __half2 xl1, __half2 xh1, __half2 acc) {
  const __half2 lo_bias = as_half2(0x64086408u);  // 1032
  const __half2 hi_bias = as_half2(0x64806480u);  // 1152
  const uint32_t w8 = w >> 8;
  acc = __hfma2(__hsub2(as_half2((w & 0x000F000Fu) | 0x64006400u), lo_bias), xl0, acc);
  acc = __hfma2(__hsub2(as_half2((w & 0x00F000F0u) | 0x64006400u), hi_bias), xh0, acc);
  acc = __hfma2(__hsub2(as_half2((w8 & 0x000F000Fu) | 0x64006400u), lo_bias), xl1, acc);
  acc = __hfma2(__hsub2(as_half2((w8 & 0x00F000F0u) | 0x64006400u), hi_bias), xh1, acc);
  return acc;
}

__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

// griddepcontrol (sm_90+): wait for the grids this one depends on; let dependents launch early.
// Both are no-ops when the kernel was not launched with programmatic stream serialization.
__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// sum over one 32-element chunk of (q-8) * x for one row, as float32; xl/xh from prepare_x.
__device__ __forceinline__ float chunk_dot(const uint4& wv, const __half2 (&xl)[8], const __half2 (&xh)[8]) {
  __half2 h = __float2half2_rn(0.f);
  h = word_dot(wv.x, xl[0], xh[0], xl[1], xh[1], h);
  h = word_dot(wv.y, xl[2], xh[2], xl[3], xh[3], h);
  h = word_dot(wv.z, xl[4], xh[4], xl[5], xh[5], h);
  h = word_dot(wv.w, xl[6], xh[6], xl[7], xh[7], h);
  const float2 f = __half22float2(h);
  return f.x + f.y;
}

// x pairs for word_dot: (x0,x1) and (x4,x5) as they are, (x2,x3) and (x6,x7) divided by 16; and,
// for asymmetric weights, the chunk's sum of x in float32.
template <bool kAsym>
__device__ __forceinline__ float prepare_x(const uint4 (&xv)[4], __half2 (&xl)[8], __half2 (&xh)[8]) {
  const __half2 sixteenth = __float2half2_rn(0.0625f);
  float xsum = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    xl[2 * i] = as_half2(xv[i].x);
    xh[2 * i] = __hmul2(as_half2(xv[i].y), sixteenth);
    xl[2 * i + 1] = as_half2(xv[i].z);
    xh[2 * i + 1] = __hmul2(as_half2(xv[i].w), sixteenth);
    if (kAsym) {
      const float2 a = __half22float2(as_half2(xv[i].x)), b = __half22float2(as_half2(xv[i].y));
      const float2 c = __half22float2(as_half2(xv[i].z)), d = __half22float2(as_half2(xv[i].w));
      xsum += (a.x + a.y) + (b.x + b.y) + (c.x + c.y) + (d.x + d.y);
    }
  }
  return xsum;
}

// A persistent grid: each block stages x in shared memory once, then its warps take groups of
// kRows rows in turn (warp-strided over the whole grid). Lane l reads chunks l, l+32, ... of each
// row (512 contiguous bytes per row per warp step), kUnroll chunks of every row of the group
// loaded into registers before any arithmetic, and the x of a chunk is read once for all rows.
template <bool kAsym>
__global__ void __launch_bounds__(kThreads) int4_gemv_kernel(
    const uint4* __restrict__ w, const __half* __restrict__ scales, const __half* __restrict__ mins,
    const uint4* __restrict__ x, float* __restrict__ y, int64_t rows, int64_t chunks, int64_t groups,
    int chunks_per_group) {
  extern __shared__ uint4 xs[];  // x: 4 * chunks uint4
  const int lane = threadIdx.x & 31;
  const int64_t warp = (int64_t(blockIdx.x) * kThreads + threadIdx.x) >> 5;
  const int64_t n_warps = int64_t(gridDim.x) * (kThreads / 32);
  const int64_t row_groups = (rows + kRows - 1) / kRows;

  // Programmatic dependent launch: the weights never depend on the previous kernel, so pull this
  // warp's first row group into L2 before waiting for it; x and y are touched after the wait.
  if (warp < row_groups) {
    for (int r = 0; r < kRows; ++r) {
      const int64_t row = warp * kRows + r;
      for (int64_t c = lane; row < rows && c < chunks && c < 32 * kUnroll; c += 32) prefetch_l2(w + row * chunks + c);
    }
  }
  grid_dependency_wait();
  allow_dependent_launch();
  // xs[j][chunk]: a warp's reads of one j (consecutive chunks) hit consecutive 16-byte words.
  for (int64_t i = threadIdx.x; i < chunks * 4; i += kThreads) xs[(i & 3) * chunks + (i >> 2)] = x[i];
  __syncthreads();

  for (int64_t rg = warp; rg < row_groups; rg += n_warps) {
    const int64_t row0 = rg * kRows;
    const int n_rows = int(rows - row0 < kRows ? rows - row0 : kRows);
    float acc[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] = 0.f;
    for (int64_t c0 = lane; c0 < chunks; c0 += 32 * kUnroll) {
      uint4 wv[kUnroll][kRows];
      float sc[kUnroll][kRows], mn[kUnroll][kRows];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t c = c0 + 32 * u;
        const bool ok = c < chunks;
        const int64_t g = (ok ? c : 0) / chunks_per_group;
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const int64_t row = row0 + (r < n_rows ? r : 0);
          wv[u][r] = ok ? __ldg(w + row * chunks + c) : make_uint4(0, 0, 0, 0);
          sc[u][r] = ok ? __half2float(scales[row * groups + g]) : 0.f;
          mn[u][r] = kAsym && ok ? __half2float(mins[row * groups + g]) : 0.f;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t c = c0 + 32 * u;
        if (c >= chunks) break;
        const uint4 xv[4] = {xs[c], xs[chunks + c], xs[2 * chunks + c], xs[3 * chunks + c]};
        __half2 xl[8], xh[8];
        const float xsum = prepare_x<kAsym>(xv, xl, xh);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          acc[r] = fmaf(sc[u][r], chunk_dot(wv[u][r], xl, xh), acc[r]);
          if (kAsym) acc[r] = fmaf(8.f * sc[u][r] + mn[u][r], xsum, acc[r]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] = warp_sum(acc[r]);
    if (lane < n_rows) {
      float v = acc[0];
#pragma unroll
      for (int r = 1; r < kRows; ++r) v = lane == r ? acc[r] : v;
      y[row0 + lane] = v;
    }
  }
}

// Blocks of the persistent grid: as many as fit on the device at once (host queries only; a
// captured graph pays them once).
int gemv_blocks(int64_t row_groups, size_t smem, bool asym) {
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) return 0;
  int per_sm = 0;
  const cudaError_t e = asym ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, int4_gemv_kernel<true>, kThreads, smem)
                             : cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, int4_gemv_kernel<false>, kThreads, smem);
  if (e != cudaSuccess || per_sm <= 0) return 0;
  const int64_t warps_needed = row_groups;
  const int64_t blocks_needed = (warps_needed + kThreads / 32 - 1) / (kThreads / 32);
  const int64_t full = int64_t(sms) * per_sm;
  return int(blocks_needed < full ? blocks_needed : full);
}

}  // namespace

int int4_to_gpu_layout(const uint8_t* canonical, uint8_t* gpu, int64_t bytes, void* stream) {
  if (bytes % 4 != 0) return int(cudaErrorInvalidValue);
  const int64_t words = bytes / 4;
  if (words == 0) return 0;
  const int threads = 256;
  const int64_t blocks = (words + threads - 1) / threads;
  to_gpu_layout_kernel<<<int(blocks < 65536 ? blocks : 65536), threads, 0, static_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const uint32_t*>(canonical), reinterpret_cast<uint32_t*>(gpu), words);
  return int(cudaGetLastError());
}

int int4_gemv(const Int4Matrix& m, const uint16_t* x, float* y, void* stream, bool pdl) {
  if (m.rows <= 0 || m.cols_padded <= 0 || m.cols_padded % m.group_size != 0 || m.group_size % kChunk != 0) {
    return int(cudaErrorInvalidValue);
  }
  cudaLaunchConfig_t cfg{};
  cfg.stream = static_cast<cudaStream_t>(stream);
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  const auto* xv = reinterpret_cast<const uint4*>(x);

  cudaError_t e = cudaSuccess;
  const int64_t chunks = m.cols_padded / kChunk;
  const int64_t groups = m.cols_padded / m.group_size;
  const size_t smem = size_t(m.cols_padded) * 2;
  if (smem > 48 * 1024) {
    e = m.mins ? cudaFuncSetAttribute(int4_gemv_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem))
               : cudaFuncSetAttribute(int4_gemv_kernel<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) return int(e);
  }
  const int blocks = gemv_blocks((m.rows + kRows - 1) / kRows, smem, m.mins != nullptr);
  if (blocks <= 0) return int(cudaErrorInvalidConfiguration);
  cfg.gridDim = dim3(unsigned(blocks));
  cfg.blockDim = dim3(unsigned(kThreads));
  cfg.dynamicSmemBytes = smem;
  const auto* w = reinterpret_cast<const uint4*>(m.packed);
  const auto* sc = reinterpret_cast<const __half*>(m.scales);
  const auto* mn = reinterpret_cast<const __half*>(m.mins);
  const int cpg = m.group_size / kChunk;
  e = m.mins ? cudaLaunchKernelEx(&cfg, int4_gemv_kernel<true>, w, sc, mn, xv, y, m.rows, chunks, groups, cpg)
             : cudaLaunchKernelEx(&cfg, int4_gemv_kernel<false>, w, sc, mn, xv, y, m.rows, chunks, groups, cpg);
  return e != cudaSuccess ? int(e) : int(cudaGetLastError());
}

}  // namespace slm::kernels::cuda
