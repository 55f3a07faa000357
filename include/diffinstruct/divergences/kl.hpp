#pragma once
/// \file KL divergence: Diff-Instruct (arXiv 2305.18455), DMD/DMD2, DI++.

#include <diffinstruct/divergences/divergence.hpp>

namespace diffinstruct {

struct KLOptions {
  /// DMD2's normaliser: divide each sample's push by mean |x0 − D_tgt(x_t)| (x0-space distance to
  /// the target's denoised estimate), detached.
  TORCH_ARG(bool, dmd_normalizer) = false;
  /// Floor of the normaliser, so that a perfect target does not divide by zero.
  TORCH_ARG(double, normalizer_eps) = 1e-6;
};

/// KL(p_θ,t ‖ q_t) integrated over t: surrogate L = w ⟨sg[y], x_t⟩, y = (b − a)/σ (MATH.md §2.2).
/// Both networks may run without gradient (needs_input_grad = false): the trainer builds no graph
/// through them.
class KL {
 public:
  static constexpr bool needs_input_grad = false;
  static constexpr const char* name = "kl";

  explicit KL(KLOptions options = {}) : options_(std::move(options)) {
    detail::check_positive(options_.normalizer_eps(), "KL", "normalizer_eps");
  }

  torch::Tensor loss(const DivergenceInputs& in) const {
    detail::check_divergence_inputs(in, "KL");
    const auto s = per_sample(in.sigma, in.x_t);
    auto push = ((in.target_eps - in.assistant_eps) / s).detach();
    if (options_.dmd_normalizer()) {
      TORCH_CHECK(in.x0.defined(), "diffinstruct::KL: dmd_normalizer needs `x0` in DivergenceInputs, got none");
      const auto d_tgt = (in.x_t - s * in.target_eps) / per_sample(in.alpha, in.x_t);
      const auto norm = (in.x0 - d_tgt).abs().reshape({in.x0.size(0), -1}).mean(1).clamp_min(options_.normalizer_eps());
      push = push / per_sample(norm.detach(), push);
    }
    return in.w * sum_per_sample(push * in.x_t);
  }

  const KLOptions& options() const { return options_; }

 private:
  KLOptions options_;
};

} // namespace diffinstruct
