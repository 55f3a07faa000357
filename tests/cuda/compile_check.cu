// Compile-only check (no GPU needed): the library's host/device headers compile under nvcc, so CUDA
// syntax errors in shared kernel math are caught on machines that have only the toolkit.
#include <diffinstruct/config.hpp>
#include <diffinstruct/kernels/score_math.hpp>

namespace {
__global__ void pseudo_huber_coefficients_kernel(const float* yy, const float* yg, const float* sigma, const float* w,
                                                 float c, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const auto k = diffinstruct::kernels::pseudo_huber_coefficients(yy[i], yg[i], sigma[i], w[i], c);
  const auto l2 = diffinstruct::kernels::squared_l2_coefficients(yy[i], yg[i], sigma[i], w[i], 1.0f);
  out[i] = k.loss + k.ya + k.ga + k.yb + k.gb + l2.loss;
}
}  // namespace

void diffinstruct_cuda_compile_check_launch(const float* yy, const float* yg, const float* sigma, const float* w, float c,
                                            float* out, int n) {
  pseudo_huber_coefficients_kernel<<<(n + 255) / 256, 256>>>(yy, yg, sigma, w, c, out, n);
}
