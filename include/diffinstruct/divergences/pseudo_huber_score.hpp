#pragma once
/// \file Pseudo-Huber score divergence: DI*'s regulariser (arXiv 2410.20898; SIM, arXiv 2410.16794).

#include <diffinstruct/divergences/divergence.hpp>
#include <diffinstruct/kernels/score_loss.hpp>

namespace diffinstruct {

struct PseudoHuberScoreOptions {
  /* implicit */ PseudoHuberScoreOptions(double c = 1.0) : c_(c) {}
  /// The pseudo-Huber scale c > 0: d(y) = √(‖y‖² + c²) − c. Mostly a strength knob: for ‖y‖ ≪ c,
  /// d'(y) ≈ y/c, so larger c means a weaker pull (docs/findings.md §6).
  TORCH_ARG(double, c);
  /// Which implementation computes the surrogate (kReference forces the ATen oracle).
  TORCH_ARG(KernelBackend, backend) = KernelBackend::kAuto;
};

/// DI*'s divergence: ∫ w E_π[√(‖s_θ − s_ref‖² + c²) − c] dt, with surrogate
///   L = w ⟨y, g⟩ / √(‖y‖² + c²),   y = (b − a)/σ, g = (a − e)/σ   (docs/math.md §2.1).
/// ‖d'(y)‖ < 1, so each sample's push is bounded: a bounded reward is needed to avoid runaway.
///
/// Example:
///   PseudoHuberScore div(PseudoHuberScoreOptions(0.5));
///   torch::Tensor per_sample = div.loss(inputs);
class PseudoHuberScore {
 public:
  static constexpr bool needs_input_grad = true;
  static constexpr const char* name = "pseudo_huber_score";

  explicit PseudoHuberScore(PseudoHuberScoreOptions options = {}) : options_(std::move(options)) {
    detail::check_positive(options_.c(), "PseudoHuberScore", "c");
  }

  torch::Tensor loss(const DivergenceInputs& in) const {
    detail::check_divergence_inputs(in, "PseudoHuberScore");
    return score_loss(ScoreDistanceKind::kPseudoHuber, in.assistant_eps, in.target_eps, in.noise, in.sigma, in.w,
                      options_.c(), options_.backend());
  }

  std::string describe() const { return "pseudo_huber_score(c=" + detail::exact_number(options_.c()) + ")"; }
  const PseudoHuberScoreOptions& options() const { return options_; }

 private:
  PseudoHuberScoreOptions options_;
};

} // namespace diffinstruct
