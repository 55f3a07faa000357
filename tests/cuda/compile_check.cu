// Compile-only check (no GPU needed): the CUDA kernels and the host/device math compile under nvcc
// for every supported element type, so CUDA errors are caught on machines that have only the toolkit.
#include <diffinstruct/config.hpp>
#include <diffinstruct/kernels/cuda/score_loss_kernels.cuh>

namespace dk = diffinstruct::kernels::cuda;

template <class T>
cudaError_t instantiate(const T* a, const T* b, const T* e, const float* sigma, const float* w, float* partial, T* loss, float* stats,
                        const float* grad, T* ga, T* gb, cudaStream_t stream) {
  const int splits = dk::splits_for(4, 65536, 132);
  cudaError_t err = dk::launch_forward<T>(a, b, e, 4, 65536, sigma, w, 0, 1.0f, splits, partial, loss, stats, stream);
  if (err != cudaSuccess) return err;
  return dk::launch_backward<T>(a, b, e, 4, 65536, stats, sigma, w, grad, 1, 1.2f, ga, gb, 132, stream);
}

template cudaError_t instantiate<float>(const float*, const float*, const float*, const float*, const float*, float*, float*, float*,
                                        const float*, float*, float*, cudaStream_t);
template cudaError_t instantiate<__half>(const __half*, const __half*, const __half*, const float*, const float*, float*, __half*, float*,
                                         const float*, __half*, __half*, cudaStream_t);
template cudaError_t instantiate<__nv_bfloat16>(const __nv_bfloat16*, const __nv_bfloat16*, const __nv_bfloat16*, const float*,
                                                const float*, float*, __nv_bfloat16*, float*, const float*, __nv_bfloat16*,
                                                __nv_bfloat16*, cudaStream_t);
