#pragma once
/// \file EDM / variance-exploding schedule (Karras et al. 2022): α = 1, σ = t.

#include <diffinstruct/schedules/schedule_base.hpp>

#include <cmath>

namespace diffinstruct {

/// How EDM draws training noise levels inside a range.
enum class EdmSampling {
  kLogNormal,     ///< ln σ ~ N(P_mean, P_std²), redrawn until inside the range (EDM training)
  kKarrasUniform, ///< u ~ U[0, 1] mapped through the ρ-warped Karras grid (DMD2-style uniform over the grid)
};

struct EdmOptions {
  TORCH_ARG(double, sigma_min) = 0.002;
  TORCH_ARG(double, sigma_max) = 80.0;
  TORCH_ARG(double, rho) = 7.0;
  TORCH_ARG(double, p_mean) = -1.2;
  TORCH_ARG(double, p_std) = 1.2;
  TORCH_ARG(EdmSampling, sampling) = EdmSampling::kLogNormal;
  TORCH_ARG(TimeRange, generator_range) = TimeRange{0.002, 80.0};
  TORCH_ARG(TimeRange, assistant_range) = TimeRange{0.002, 80.0};
  TORCH_ARG(Weighting, generator_weighting) = Weighting::kSigmaSquared;
  TORCH_ARG(Weighting, assistant_weighting) = Weighting::kEdm;
  TORCH_ARG(double, sigma_data) = 0.5;
};

/// EDM/VE schedule: x_t = x0 + σ ε, the time variable is σ itself (t ∈ [σ_min, σ_max]).
class EdmSchedule : public ScheduleBase<EdmSchedule> {
 public:
  static constexpr bool is_variance_preserving = false;

  explicit EdmSchedule(EdmOptions options = {}) : options_(std::move(options)) {
    const auto& o = options_;
    TORCH_CHECK(o.sigma_min() > 0 && o.sigma_min() < o.sigma_max() && std::isfinite(o.sigma_max()),
                "diffinstruct::EdmSchedule: expected 0 < sigma_min < sigma_max < inf, got sigma_min=", o.sigma_min(),
                ", sigma_max=", o.sigma_max());
    detail::check_positive(o.rho(), "EdmSchedule", "rho");
    detail::check_positive(o.p_std(), "EdmSchedule", "p_std");
    validate_common("EdmSchedule");
  }

  const EdmOptions& options() const { return options_; }
  std::string describe() const {
    const auto& o = options_;
    return "edm(sigma=[" + detail::exact_number(o.sigma_min()) + ", " + detail::exact_number(o.sigma_max()) + "], rho=" +
           detail::exact_number(o.rho()) + ", p_mean=" + detail::exact_number(o.p_mean()) + ", p_std=" + detail::exact_number(o.p_std()) +
           ", sampling=" + (o.sampling() == EdmSampling::kLogNormal ? "log_normal" : "karras_uniform") + ", " + describe_common() + ")";
  }
  TimeRange full_range() const { return {options_.sigma_min(), options_.sigma_max()}; }

  torch::Tensor alpha(const torch::Tensor& t) const {
    detail::check_times(t, full_range(), "EdmSchedule");
    return torch::ones_like(t);
  }
  torch::Tensor sigma(const torch::Tensor& t) const {
    detail::check_times(t, full_range(), "EdmSchedule");
    return t;
  }

  /// The Karras ρ-grid of n noise levels from `hi` down to `lo` (sampler steps; float64).
  torch::Tensor karras_sigmas(int64_t n, TimeRange range) const {
    TORCH_CHECK(n >= 2, "diffinstruct::EdmSchedule: expected at least 2 grid points, got ", n);
    detail::check_range(range, full_range(), "EdmSchedule", "the grid range");
    return warp(torch::linspace(1.0, 0.0, n, torch::kFloat64), range);
  }

  torch::Tensor sample_t(int64_t batch, TimeRange range, const torch::TensorOptions& options,
                         c10::optional<at::Generator> gen = c10::nullopt) const {
    check_batch_size(batch, "EdmSchedule");
    detail::check_range(range, full_range(), "EdmSchedule", "the sampling range");
    const auto f64 = options.dtype(torch::kFloat64);
    if (options_.sampling() == EdmSampling::kKarrasUniform) {
      return warp(torch::rand({batch}, gen, f64), range).to(options.dtype());
    }
    // Truncated log-normal by inverse CDF: exact, and one draw per sample (no rejection loop).
    const double lo = (std::log(range.lo) - options_.p_mean()) / options_.p_std();
    const double hi = (std::log(range.hi) - options_.p_mean()) / options_.p_std();
    const double cdf_lo = 0.5 * std::erfc(-lo / std::sqrt(2.0));
    const double cdf_hi = 0.5 * std::erfc(-hi / std::sqrt(2.0));
    const auto u = torch::rand({batch}, gen, f64) * (cdf_hi - cdf_lo) + cdf_lo;
    const auto z = torch::erfinv(2 * u.clamp(1e-300, 1 - 1e-16) - 1) * std::sqrt(2.0);
    return torch::exp(z * options_.p_std() + options_.p_mean()).clamp(range.lo, range.hi).to(options.dtype());
  }

 private:
  // u = 1 → hi, u = 0 → lo, ρ-warped as in Karras et al. (eq. 5).
  torch::Tensor warp(const torch::Tensor& u, TimeRange range) const {
    const double inv_rho = 1.0 / options_.rho();
    const double a = std::pow(range.lo, inv_rho);
    const double b = std::pow(range.hi, inv_rho);
    return (a + u * (b - a)).pow(options_.rho());
  }

  EdmOptions options_;
};

} // namespace diffinstruct
