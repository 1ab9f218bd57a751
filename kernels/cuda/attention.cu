// Flash-decoding attention of one query token over the fp16 KV cache, and the cache append.
//
// Pass 1 (grid: chunks x query heads): each block takes kAttentionChunk positions of one head and
// writes the partial softmax of its chunk: m = max_j s_j, l = sum_j exp(s_j - m) and
// o[d] = sum_j exp(s_j - m) V[j, d]. Pass 2 (grid: query heads) rescales the partials to the
// global maximum M and divides: out[d] = sum_c exp(m_c - M) o_c[d] / sum_c exp(m_c - M) l_c.
// Both passes accumulate in float32; K and V are widened from fp16 exactly.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "block_reduce.cuh"
#include "slm/kernels/cuda.h"

namespace slm::kernels::cuda {
namespace {

constexpr int kAttentionThreads = 256;

// A device position replaces kv_begin / kv_end (see DecodeAttention).
__device__ __forceinline__ void resolve_range(DecodeAttention& a) {
  if (!a.position) return;
  a.kv_end = int64_t(*a.position) + 1;
  a.kv_begin = a.window > 0 && a.kv_end > a.window ? a.kv_end - a.window : 0;
}

__global__ void __launch_bounds__(kAttentionThreads) attention_partial_kernel(DecodeAttention a, int64_t n_chunks) {
  __shared__ float q_s[kMaxAttentionHeadDim];
  __shared__ float p_s[kAttentionChunk];
  __shared__ float scratch[kWarp];
  const int64_t head_dim = a.head_dim;
  const int64_t chunk = blockIdx.x, head = blockIdx.y;
  const int64_t kv_head = head / (a.n_heads / a.n_kv_heads);
  resolve_range(a);
  const int64_t begin = a.kv_begin + chunk * kAttentionChunk;
  // With a device position the grid covers the largest range: chunks past its end are empty
  // (m = -inf, l = 0, o = 0) and add nothing in the combine.
  const int64_t n = (a.kv_end - begin < kAttentionChunk) ? a.kv_end - begin : kAttentionChunk;
  const __half* k = reinterpret_cast<const __half*>(a.k_cache) + (kv_head * a.max_seq_len + begin) * head_dim;
  const __half* v = reinterpret_cast<const __half*>(a.v_cache) + (kv_head * a.max_seq_len + begin) * head_dim;
  const float slope = a.alibi_slopes ? a.alibi_slopes[head] : 0.f;
  const int64_t query_pos = a.kv_end - 1;

  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) q_s[d] = a.q[head * head_dim + d];
  __syncthreads();

  // Scores: one warp per position, lanes across head_dim.
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, n_warps = blockDim.x / kWarp;
  for (int64_t j = warp; j < n; j += n_warps) {
    const __half* row = k + j * head_dim;
    float dot = 0.f;
    for (int64_t d = lane; d < head_dim; d += kWarp) dot = fmaf(q_s[d], __half2float(row[d]), dot);
    dot = warp_sum(dot);
    if (lane == 0) {
      float s = a.scale * dot;
      if (a.softcap > 0.f) s = a.softcap * tanhf(s / a.softcap);
      if (slope != 0.f) s += slope * float(begin + j - query_pos);
      p_s[j] = s;
    }
  }
  __syncthreads();

  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, p_s[j]);
  m = block_max(m, scratch);
  float l = 0.f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float e = expf(p_s[j] - m);
    p_s[j] = e;
    l += e;
  }
  l = block_sum(l, scratch);  // synchronizes: every p_s[j] is written before the loop below

  const int64_t part = head * n_chunks + chunk;
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.f;
    for (int64_t j = 0; j < n; ++j) acc = fmaf(p_s[j], __half2float(v[j * head_dim + d]), acc);
    a.scratch[2 * a.n_heads * n_chunks + part * head_dim + d] = acc;
  }
  if (threadIdx.x == 0) {
    a.scratch[part] = m;
    a.scratch[a.n_heads * n_chunks + part] = l;
  }
}

__global__ void __launch_bounds__(kAttentionThreads) attention_combine_kernel(DecodeAttention a, int64_t n_chunks) {
  const int64_t head = blockIdx.x, head_dim = a.head_dim;
  const float* part_max = a.scratch + head * n_chunks;
  const float* part_sum = a.scratch + a.n_heads * n_chunks + head * n_chunks;
  const float* part_out = a.scratch + 2 * a.n_heads * n_chunks + head * n_chunks * head_dim;
  float m = -INFINITY;
  for (int64_t c = 0; c < n_chunks; ++c) m = fmaxf(m, part_max[c]);
  float l = 0.f;
  for (int64_t c = 0; c < n_chunks; ++c) l = fmaf(expf(part_max[c] - m), part_sum[c], l);
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.f;
    for (int64_t c = 0; c < n_chunks; ++c) acc = fmaf(expf(part_max[c] - m), part_out[c * head_dim + d], acc);
    a.out[head * head_dim + d] = acc / l;
  }
}

__global__ void kv_append_kernel(const float* k, const float* v, __half* k_cache, __half* v_cache, int64_t n_kv_heads,
                                 int64_t head_dim, int64_t max_seq_len, int64_t pos, const int32_t* position) {
  if (position) pos = *position;
  if (pos < 0 || pos >= max_seq_len) return;
  const int64_t n = n_kv_heads * head_dim;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t head = i / head_dim, d = i % head_dim;
    const int64_t at = (head * max_seq_len + pos) * head_dim + d;
    k_cache[at] = __float2half_rn(k[i]);
    v_cache[at] = __float2half_rn(v[i]);
  }
}

int64_t chunks_of(int64_t kv_begin, int64_t kv_end) { return (kv_end - kv_begin + kAttentionChunk - 1) / kAttentionChunk; }

}  // namespace

int64_t attention_scratch_floats(int64_t n_heads, int64_t head_dim, int64_t kv_begin, int64_t kv_end) {
  return n_heads * chunks_of(kv_begin, kv_end) * (head_dim + 2);
}

int attention_decode(const DecodeAttention& a, void* stream) {
  const bool range_ok = a.position ? a.window >= 0 && a.max_seq_len >= 1
                                   : a.kv_begin >= 0 && a.kv_end > a.kv_begin && a.kv_end <= a.max_seq_len;
  if (!a.q || !a.k_cache || !a.v_cache || !a.out || !a.scratch || a.n_heads < 1 || a.n_heads > 65535 ||
      a.n_kv_heads < 1 || a.n_heads % a.n_kv_heads != 0 || a.head_dim < 1 || a.head_dim > kMaxAttentionHeadDim ||
      !range_ok || !(a.softcap >= 0.f)) {
    return int(cudaErrorInvalidValue);
  }
  const int64_t widest = a.window > 0 && a.window < a.max_seq_len ? a.window : a.max_seq_len;
  const int64_t n_chunks = a.position ? chunks_of(0, widest) : chunks_of(a.kv_begin, a.kv_end);
  if (n_chunks > 0x7FFFFFFF) return int(cudaErrorInvalidValue);
  const auto s = static_cast<cudaStream_t>(stream);
  attention_partial_kernel<<<dim3(unsigned(n_chunks), unsigned(a.n_heads)), kAttentionThreads, 0, s>>>(a, n_chunks);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return int(e);
  attention_combine_kernel<<<unsigned(a.n_heads), kAttentionThreads, 0, s>>>(a, n_chunks);
  return int(cudaGetLastError());
}

int kv_append(const float* k, const float* v, uint16_t* k_cache, uint16_t* v_cache, int64_t n_kv_heads,
              int64_t head_dim, int64_t max_seq_len, int64_t pos, void* stream, const int32_t* position) {
  if (!k || !v || !k_cache || !v_cache || n_kv_heads < 1 || head_dim < 1 ||
      (!position && (pos < 0 || pos >= max_seq_len))) {
    return int(cudaErrorInvalidValue);
  }
  const int threads = 256;
  const int64_t blocks = (n_kv_heads * head_dim + threads - 1) / threads;
  kv_append_kernel<<<unsigned(blocks < 65535 ? blocks : 65535), threads, 0, static_cast<cudaStream_t>(stream)>>>(
      k, v, reinterpret_cast<__half*>(k_cache), reinterpret_cast<__half*>(v_cache), n_kv_heads, head_dim,
      max_seq_len, pos, position);
  return int(cudaGetLastError());
}

}  // namespace slm::kernels::cuda
