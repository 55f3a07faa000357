#pragma once
/// \file KL divergence: Diff-Instruct (arXiv 2305.18455), DMD/DMD2, DI++.

#include <diffinstruct/divergences/divergence.hpp>

namespace diffinstruct {

struct KLOptions {
  /// DMD2's gradient exactly (arXiv 2405.14867, its distribution-matching loss): the push on each
  /// sample x0 is (D_fake − D_real) / mean|x0 − D_real|, with D the x0-estimates of the assistant
  /// (fake) and the target (real), detached. Under this option the schedule's w(t) is not applied:
  /// DMD2's normaliser is its own time weighting, so the gradient is DMD2's under any schedule.
  TORCH_ARG(bool, dmd_normalizer) = false;
  /// Floor of the normaliser, so that a perfect target does not divide by zero.
  TORCH_ARG(double, normalizer_eps) = 1e-6;
};

/// KL(p_θ,t ‖ q_t) integrated over t: surrogate L = w ⟨sg[y], x_t⟩, y = (b − a)/σ (docs/math.md §2.2).
/// Its gradient on a sample x0 is w α y = w α (s_ψ − s_tgt): with w = σ²/α² (Weighting::kInverseSnr)
/// that is D_ψ − D_tgt, DMD's unnormalised gradient; with the default w = σ² it is ᾱ_t times that.
/// With `dmd_normalizer` the surrogate is DMD2's, L = ⟨sg[(D_ψ − D_tgt)/mean|x0 − D_tgt|], x0⟩,
/// whatever w. Both networks may run without gradient (needs_input_grad = false): the trainer builds
/// no graph through them.
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
    if (!options_.dmd_normalizer()) {
      const auto push = ((in.target_eps - in.assistant_eps) / s).detach();
      return in.w * sum_per_sample(push * in.x_t);
    }
    TORCH_CHECK(in.x0.defined(), "diffinstruct::KL: dmd_normalizer needs `x0` in DivergenceInputs, got none");
    torch::Tensor push;
    {
      torch::NoGradGuard no_grad;  // everything but x0 is a constant of the surrogate
      const auto a = per_sample(in.alpha, in.x_t);
      const auto x_t = in.x_t.detach();
      const auto d_fake = (x_t - s * in.assistant_eps.detach()) / a;
      const auto d_real = (x_t - s * in.target_eps.detach()) / a;
      const auto norm = (in.x0.detach() - d_real).abs().reshape({in.x0.size(0), -1}).mean(1).clamp_min(options_.normalizer_eps());
      push = (d_fake - d_real) / per_sample(norm, d_real);
    }
    return sum_per_sample(push * in.x0);
  }

  std::string describe() const {
    return options_.dmd_normalizer() ? "kl(dmd2, normalizer_eps=" + detail::exact_number(options_.normalizer_eps()) + ")" : "kl";
  }
  const KLOptions& options() const { return options_; }

 private:
  KLOptions options_;
};

} // namespace diffinstruct
