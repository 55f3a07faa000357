#pragma once
/// \file Continuous variance-preserving cosine schedule (Nichol & Dhariwal 2021).

#include <diffinstruct/schedules/schedule_base.hpp>

#include <cmath>

namespace diffinstruct {

struct CosineVPOptions {
  /// Offset s of ᾱ(t) = f(t)/f(0), f(t) = cos²((t + s)/(1 + s) · π/2). s = 0 gives α = cos(πt/2),
  /// σ = sin(πt/2) exactly.
  TORCH_ARG(double, offset) = 0.008;
  TORCH_ARG(TimeRange, generator_range) = TimeRange{0.02, 0.98};
  TORCH_ARG(TimeRange, assistant_range) = TimeRange{0.02, 0.98};
  TORCH_ARG(Weighting, generator_weighting) = Weighting::kSigmaSquared;
  TORCH_ARG(Weighting, assistant_weighting) = Weighting::kUnit;
  TORCH_ARG(double, sigma_data) = 0.5;
};

/// Continuous VP cosine schedule on t ∈ [0, 1]: α_t = √ᾱ(t), σ_t = √(1 − ᾱ(t)). At t = 1, α = 0, so
/// the default ranges stop at 0.98 (losses divide by α in x0-space conversions).
class CosineVPSchedule : public ScheduleBase<CosineVPSchedule> {
 public:
  static constexpr bool is_variance_preserving = true;

  explicit CosineVPSchedule(CosineVPOptions options = {}) : options_(std::move(options)) {
    TORCH_CHECK(std::isfinite(options_.offset()) && options_.offset() >= 0 && options_.offset() < 1,
                "diffinstruct::CosineVPSchedule: expected 0 <= offset < 1, got ", options_.offset());
    validate_common("CosineVPSchedule");
  }

  const CosineVPOptions& options() const { return options_; }
  std::string describe() const { return "cosine_vp(offset=" + detail::exact_number(options_.offset()) + ", " + describe_common() + ")"; }
  TimeRange full_range() const { return {0.0, 1.0}; }

  torch::Tensor alpha_bar(const torch::Tensor& t) const {
    detail::check_times(t, full_range(), "CosineVPSchedule");
    const double s = options_.offset();
    const double f0 = std::pow(std::cos(s / (1 + s) * M_PI / 2), 2);
    const auto td = t.to(torch::kFloat64);
    return (torch::cos((td + s) / (1 + s) * (M_PI / 2)).pow(2) / f0).clamp(0.0, 1.0).to(t.scalar_type());
  }
  torch::Tensor alpha(const torch::Tensor& t) const { return alpha_bar(t).sqrt(); }
  torch::Tensor sigma(const torch::Tensor& t) const { return (1 - alpha_bar(t)).sqrt(); }

  torch::Tensor sample_t(int64_t batch, TimeRange range, const torch::TensorOptions& options,
                         c10::optional<at::Generator> gen = c10::nullopt) const {
    check_batch_size(batch, "CosineVPSchedule");
    detail::check_range(range, full_range(), "CosineVPSchedule", "the sampling range");
    return torch::rand({batch}, std::move(gen), options) * (range.hi - range.lo) + range.lo;
  }

 private:
  CosineVPOptions options_;
};

} // namespace diffinstruct
