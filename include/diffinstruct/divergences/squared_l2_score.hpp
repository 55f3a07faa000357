#pragma once
/// \file Squared-L2 (Fisher) score divergence; SiD (arXiv 2404.04057) with its α.

#include <diffinstruct/divergences/divergence.hpp>
#include <diffinstruct/kernels/score_loss.hpp>

namespace diffinstruct {

struct SquaredL2ScoreOptions {
  /// SiD's α: the surrogate gains (1 − α)·w·‖y‖². α = 1 is the plain Fisher divergence (exact
  /// gradient); SiD uses α = 1.2.
  TORCH_ARG(double, sid_alpha) = 1.0;
  TORCH_ARG(KernelBackend, backend) = KernelBackend::kAuto;
};

/// ∫ w E_π[‖s_θ − s_ref‖²] dt with surrogate L = 2w ⟨y, g⟩ + (1 − α) w ‖y‖² (docs/math.md §2.1).
class SquaredL2Score {
 public:
  static constexpr bool needs_input_grad = true;
  static constexpr const char* name = "squared_l2_score";

  explicit SquaredL2Score(SquaredL2ScoreOptions options = {}) : options_(std::move(options)) {
    TORCH_CHECK(std::isfinite(options_.sid_alpha()), "diffinstruct::SquaredL2Score: expected a finite sid_alpha, got ",
                options_.sid_alpha());
  }

  torch::Tensor loss(const DivergenceInputs& in) const {
    detail::check_divergence_inputs(in, "SquaredL2Score");
    return score_loss(ScoreDistanceKind::kSquaredL2, in.assistant_eps, in.target_eps, in.noise, in.sigma, in.w,
                      options_.sid_alpha(), options_.backend());
  }

  std::string describe() const { return "squared_l2_score(sid_alpha=" + detail::exact_number(options_.sid_alpha()) + ")"; }
  const SquaredL2ScoreOptions& options() const { return options_; }

 private:
  SquaredL2ScoreOptions options_;
};

} // namespace diffinstruct
