#pragma once
/// \file The fused score-divergence surrogate as one autograd function for every device: the
/// header-only CPU kernel on CPU tensors, the CUDA kernels (dispatcher ops from the optional
/// `diffinstruct::cuda` library, kernels/fused_ops.hpp) on GPU tensors. Gradients flow to the
/// assistant prediction `a` and the target prediction `b`; `e`, σ and w are constants here (the
/// dispatcher sends inputs that need their gradients to the reference path instead). First-order
/// gradients only.

#include <diffinstruct/kernels/cpu/score_loss_cpu.hpp>
#include <diffinstruct/kernels/fused_ops.hpp>

namespace diffinstruct {
namespace detail {

struct FusedScoreLoss : public torch::autograd::Function<FusedScoreLoss> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a, const torch::Tensor& b,
                               const torch::Tensor& e, const torch::Tensor& sigma, const torch::Tensor& w, double param,
                               int64_t distance) {
    auto [loss, stats] = a.is_cuda() ? score_loss_forward_op(a, b, e, sigma, w, param, distance)
                                     : kernels::cpu::score_loss_forward(static_cast<kernels::cpu::Distance>(distance), a, b, e, sigma,
                                                                        w, param);
    ctx->save_for_backward({a, b, e, sigma, w, stats});
    ctx->saved_data["param"] = param;
    ctx->saved_data["distance"] = distance;
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const int64_t distance = ctx->saved_data["distance"].toInt();
    const double param = ctx->saved_data["param"].toDouble();
    auto [ga, gb] = saved[0].is_cuda()
                        ? score_loss_backward_op(grads[0], saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], param, distance)
                        : kernels::cpu::score_loss_backward(static_cast<kernels::cpu::Distance>(distance), grads[0], saved[0], saved[1],
                                                            saved[2], saved[3], saved[4], saved[5], param);
    return {ga, gb, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

/// Why no fused kernel can compute this call with the reference's gradients; empty when one can.
inline std::string fused_unavailable_reason(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& e,
                                            const torch::Tensor& sigma, const torch::Tensor& w) {
  const auto st = a.scalar_type();
  if (a.dim() < 1 || a.size(0) == 0) return "an empty batch";
  if (b.scalar_type() != st || e.scalar_type() != st) return "a, b and e of different dtypes";
  if (b.device() != a.device() || e.device() != a.device()) return "a, b and e on different devices";
  // Gradients the fused kernels do not produce must not be needed.
  if (torch::GradMode::is_enabled() && (e.requires_grad() || sigma.requires_grad() || w.requires_grad()))
    return "e, sigma or w require gradients (the fused kernel treats them as constants)";
  if (a.device().is_cpu()) {
    if (st == torch::kFloat || st == torch::kDouble || st == torch::kBFloat16 || st == torch::kHalf) return "";
    return "dtype " + std::string(c10::toString(st)) + " on the CPU";
  }
  if (a.device().is_cuda()) {
    if (!fused_op_registered(c10::DeviceType::CUDA))
      return "CUDA tensors in a program not linked with diffinstruct::cuda (the fused CUDA kernels)";
    if (st == torch::kFloat || st == torch::kBFloat16 || st == torch::kHalf) return "";
    return "dtype " + std::string(c10::toString(st)) + " on CUDA (float32, float16 and bfloat16 have kernels)";
  }
  return "tensors on " + a.device().str();
}

}  // namespace detail
}  // namespace diffinstruct
