#pragma once
/// \file The fused score-divergence surrogate as an autograd function (CPU today; the CUDA kernels
/// plug in through the same seam). Gradients flow to the assistant prediction `a` and the target
/// prediction `b`; `e`, σ and w are constants here (the dispatcher sends inputs that need their
/// gradients to the reference path instead). First-order gradients only.

#include <diffinstruct/kernels/cpu/score_loss_cpu.hpp>

namespace diffinstruct {
namespace detail {

struct FusedScoreLossCpu : public torch::autograd::Function<FusedScoreLossCpu> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a, const torch::Tensor& b,
                               const torch::Tensor& e, const torch::Tensor& sigma, const torch::Tensor& w, double param,
                               int64_t distance) {
    const auto d = static_cast<kernels::cpu::Distance>(distance);
    auto [loss, stats] = kernels::cpu::score_loss_forward(d, a, b, e, sigma, w, param);
    ctx->save_for_backward({a, b, e, sigma, w, stats});
    ctx->saved_data["param"] = param;
    ctx->saved_data["distance"] = distance;
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto d = static_cast<kernels::cpu::Distance>(ctx->saved_data["distance"].toInt());
    auto [ga, gb] = kernels::cpu::score_loss_backward(d, grads[0], saved[0], saved[1], saved[2], saved[3], saved[4], saved[5],
                                                      ctx->saved_data["param"].toDouble());
    return {ga, gb, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

/// Can the fused CPU kernel compute this call with the same gradients as the reference?
inline bool fused_cpu_applies(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& e, const torch::Tensor& sigma,
                              const torch::Tensor& w) {
  const auto st = a.scalar_type();
  const bool dtype_ok = st == torch::kFloat || st == torch::kDouble || st == torch::kBFloat16 || st == torch::kHalf;
  const bool same = b.scalar_type() == st && e.scalar_type() == st && b.device() == a.device() && e.device() == a.device();
  // Gradients the fused kernel does not produce must not be needed.
  const bool constants = !(torch::GradMode::is_enabled() && (e.requires_grad() || sigma.requires_grad() || w.requires_grad()));
  return a.device().is_cpu() && dtype_ok && same && constants && a.dim() >= 1 && a.size(0) > 0;
}

} // namespace detail
} // namespace diffinstruct
