#pragma once
/// \file CUDA kernels of the fused score-divergence surrogate (raw pointers, no torch): the twins of
/// kernels/cpu/score_loss_cpu.hpp, sharing its per-sample math (kernels/score_math.hpp).
///
/// Forward, two launches: (1) grid (splits, B): each block reduces one slice of one sample's features
/// to partial Σ(b−a)² and Σ(b−a)(a−e) (float accumulation, warp shuffles, one shared-memory stage);
/// (2) one thread per sample adds its slices and evaluates the loss and the stats (yy, yg) the
/// backward needs. Backward, one launch: a grid-stride loop over all elements, each reading its
/// sample's four coefficients. Splitting a sample over several blocks keeps a GPU busy when the batch
/// is small and the samples are large (an SDXL latent has 65 536 features).
///
/// Inputs are contiguous [B, N] arrays of float, __half or __nv_bfloat16; statistics are float.
/// Every launch goes on the caller's stream; the host functions return cudaGetLastError().

#include <diffinstruct/kernels/score_math.hpp>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace diffinstruct {
namespace kernels {
namespace cuda {

inline constexpr int kThreads = 256;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

/// Partial sums of one slice of one sample: partial[(s * splits + k) * 2 + {0, 1}].
template <class T>
__global__ void reduce_partials_kernel(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ e, int64_t n,
                                       int splits, float* __restrict__ partial) {
  const int64_t sample = blockIdx.y;
  const int64_t slice = (n + splits - 1) / splits;
  const int64_t lo = sample * n + blockIdx.x * slice;
  const int64_t hi = sample * n + min(n, (static_cast<int64_t>(blockIdx.x) + 1) * slice);
  float dd = 0.f, dh = 0.f;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    const float av = to_float(a[i]);
    const float d = to_float(b[i]) - av, h = av - to_float(e[i]);
    dd += d * d;
    dh += d * h;
  }
  __shared__ float shared[2][kThreads / 32];
  dd = warp_sum(dd);
  dh = warp_sum(dh);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    shared[0][warp] = dd;
    shared[1][warp] = dh;
  }
  __syncthreads();
  if (warp == 0) {
    dd = lane < blockDim.x / 32 ? shared[0][lane] : 0.f;
    dh = lane < blockDim.x / 32 ? shared[1][lane] : 0.f;
    dd = warp_sum(dd);
    dh = warp_sum(dh);
    if (lane == 0) {
      partial[(sample * splits + blockIdx.x) * 2] = dd;
      partial[(sample * splits + blockIdx.x) * 2 + 1] = dh;
    }
  }
}

/// One thread per sample: loss [B] (in T) and stats (yy, yg) [B, 2] from the partials.
template <class T>
__global__ void finish_forward_kernel(const float* __restrict__ partial, int splits, const float* __restrict__ sigma,
                                      const float* __restrict__ w, int64_t batch, int distance, float param, T* __restrict__ loss,
                                      float* __restrict__ stats) {
  const int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (s >= batch) return;
  float dd = 0.f, dh = 0.f;
  for (int k = 0; k < splits; ++k) {
    dd += partial[(s * splits + k) * 2];
    dh += partial[(s * splits + k) * 2 + 1];
  }
  const float inv_s2 = 1.f / (sigma[s] * sigma[s]);
  const float yy = dd * inv_s2, yg = dh * inv_s2;
  const auto c = distance == 0 ? pseudo_huber_coefficients(yy, yg, sigma[s], w[s], param)
                               : squared_l2_coefficients(yy, yg, sigma[s], w[s], param);
  loss[s] = from_float<T>(c.loss);
  stats[2 * s] = yy;
  stats[2 * s + 1] = yg;
}

/// ∂L/∂a, ∂L/∂b for upstream gradients grad_loss [B] (float).
template <class T>
__global__ void backward_kernel(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ e, int64_t batch, int64_t n,
                                const float* __restrict__ stats, const float* __restrict__ sigma, const float* __restrict__ w,
                                const float* __restrict__ grad_loss, int distance, float param, T* __restrict__ ga, T* __restrict__ gb) {
  const int64_t total = batch * n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t s = i / n;
    const float sg = sigma[s];
    const auto c = distance == 0 ? pseudo_huber_coefficients(stats[2 * s], stats[2 * s + 1], sg, w[s], param)
                                 : squared_l2_coefficients(stats[2 * s], stats[2 * s + 1], sg, w[s], param);
    const float scale = grad_loss[s] / sg;  // y = (b − a)/σ, g = (a − e)/σ
    const float av = to_float(a[i]);
    const float d = to_float(b[i]) - av, h = av - to_float(e[i]);
    ga[i] = from_float<T>(scale * (c.ya * d + c.ga * h));
    gb[i] = from_float<T>(scale * (c.yb * d + c.gb * h));
  }
}

/// Slices per sample: enough blocks to fill the device when the batch is small, ≥ 4096 features each.
inline int splits_for(int64_t batch, int64_t n, int sm_count) {
  const int64_t want = (4LL * sm_count + batch - 1) / (batch > 0 ? batch : 1);
  const int64_t max_by_size = (n + 4095) / 4096;
  const int64_t s = want < max_by_size ? want : max_by_size;
  return static_cast<int>(s < 1 ? 1 : (s > 1024 ? 1024 : s));
}

/// Forward on `stream`. `partial` holds batch * splits * 2 floats.
template <class T>
cudaError_t launch_forward(const T* a, const T* b, const T* e, int64_t batch, int64_t n, const float* sigma, const float* w,
                           int distance, float param, int splits, float* partial, T* loss, float* stats, cudaStream_t stream) {
  if (batch == 0) return cudaSuccess;
  reduce_partials_kernel<T><<<dim3(splits, static_cast<unsigned>(batch)), kThreads, 0, stream>>>(a, b, e, n, splits, partial);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  finish_forward_kernel<T><<<static_cast<unsigned>((batch + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      partial, splits, sigma, w, batch, distance, param, loss, stats);
  return cudaGetLastError();
}

/// Backward on `stream`.
template <class T>
cudaError_t launch_backward(const T* a, const T* b, const T* e, int64_t batch, int64_t n, const float* stats, const float* sigma,
                            const float* w, const float* grad_loss, int distance, float param, T* ga, T* gb, int sm_count,
                            cudaStream_t stream) {
  const int64_t total = batch * n;
  if (total == 0) return cudaSuccess;
  const int64_t blocks_needed = (total + kThreads - 1) / kThreads;
  const int64_t cap = 32LL * (sm_count > 0 ? sm_count : 1);
  const unsigned blocks = static_cast<unsigned>(blocks_needed < cap ? blocks_needed : cap);
  backward_kernel<T><<<blocks, kThreads, 0, stream>>>(a, b, e, batch, n, stats, sigma, w, grad_loss, distance, param, ga, gb);
  return cudaGetLastError();
}

} // namespace cuda
} // namespace kernels
} // namespace diffinstruct
