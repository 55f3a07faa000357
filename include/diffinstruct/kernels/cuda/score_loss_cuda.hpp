#pragma once
/// \file The fused CUDA score-loss kernels as ATen functions (declarations; definitions in
/// src/cuda/score_loss_cuda.cu, built into the optional `diffinstruct::cuda` library).
///
/// Library code never calls these directly: it goes through the dispatcher ops
/// `diffinstruct::score_loss_forward` / `diffinstruct::score_loss_backward` (kernels/fused_ops.hpp),
/// which exist only in a program linked with `diffinstruct::cuda`, so the header-only library
/// compiles and runs without CUDA and picks the GPU kernels up when they are there.
///
/// Contract (both): a, b, e are CUDA tensors [B, ...] of one dtype (float32, float16, bfloat16),
/// contiguous or not; sigma and w are scalars or hold B values; distance 0 = pseudo-Huber (param = c),
/// 1 = squared L2 (param = SiD's α). The forward returns the per-sample loss [B] in the inputs' dtype
/// and the float32 statistics (‖y‖², ⟨y, g⟩) [B, 2] the backward needs.

#include <ATen/core/Tensor.h>

#include <tuple>

namespace diffinstruct {
namespace kernels {
namespace cuda {

std::tuple<at::Tensor, at::Tensor> score_loss_forward(const at::Tensor& a, const at::Tensor& b, const at::Tensor& e,
                                                      const at::Tensor& sigma, const at::Tensor& w, double param, int64_t distance);

std::tuple<at::Tensor, at::Tensor> score_loss_backward(const at::Tensor& grad_loss, const at::Tensor& a, const at::Tensor& b,
                                                       const at::Tensor& e, const at::Tensor& sigma, const at::Tensor& w,
                                                       const at::Tensor& stats, double param, int64_t distance);

}  // namespace cuda
}  // namespace kernels
}  // namespace diffinstruct
