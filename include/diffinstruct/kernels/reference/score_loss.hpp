#pragma once
/// \file Reference score-divergence surrogates in plain ATen ops: any device, any floating dtype,
/// autograd through `a` and `b`. These are the oracle every fused kernel is tested against.
///
/// In ε-space (docs/math.md §2.1), per sample, summed over the sample's dimensions:
///   y = (b − a)/σ   (score difference s_ψ − s_tgt)      g = (a − e)/σ
///   pseudo-Huber   L = w ⟨y, g⟩ / √(‖y‖² + c²)
///   squared L2     L = 2w ⟨y, g⟩ + (1 − α_SiD) w ‖y‖²
/// a = assistant ε̂, b = target ε̂ (guided when CFG is inside), e = the noise ε (no gradient).

#include <diffinstruct/core/checks.hpp>

namespace diffinstruct {
namespace reference {

/// Per-sample pseudo-Huber score surrogate [B].
inline torch::Tensor pseudo_huber_score_loss(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& e,
                                             const torch::Tensor& sigma, const torch::Tensor& w, double c) {
  const auto s = per_sample(sigma, a);
  const auto y = (b - a) / s;
  const auto g = (a - e) / s;
  const auto yg = sum_per_sample(y * g);
  const auto yy = sum_per_sample(y * y);
  return w * yg / torch::sqrt(yy + c * c);
}

/// Per-sample squared-L2 (Fisher) score surrogate [B], with SiD's α (α = 1: plain Fisher divergence).
inline torch::Tensor squared_l2_score_loss(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& e,
                                           const torch::Tensor& sigma, const torch::Tensor& w, double sid_alpha) {
  const auto s = per_sample(sigma, a);
  const auto y = (b - a) / s;
  const auto g = (a - e) / s;
  auto loss = 2 * w * sum_per_sample(y * g);
  if (sid_alpha != 1.0) loss = loss + (1 - sid_alpha) * w * sum_per_sample(y * y);
  return loss;
}

} // namespace reference
} // namespace diffinstruct
