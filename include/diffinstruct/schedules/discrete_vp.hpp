#pragma once
/// \file Discrete variance-preserving schedule from a beta table (DDPM; Stable Diffusion, SDXL).

#include <diffinstruct/schedules/schedule_base.hpp>

#include <cmath>
#include <string>

namespace diffinstruct {

/// How the beta table is laid out between beta_start and beta_end.
enum class BetaSchedule {
  kLinear,        ///< β_i linear in i (DDPM, Ho et al. 2020: 1e-4 → 0.02)
  kScaledLinear,  ///< √β_i linear in i (Stable Diffusion / SDXL: 0.00085 → 0.012)
};

struct DiscreteVPOptions {
  DiscreteVPOptions() = default;
  /// The DDPM table: linear betas 1e-4 → 0.02 over 1000 steps.
  static DiscreteVPOptions linear() { return DiscreteVPOptions().beta_schedule(BetaSchedule::kLinear).beta_start(1e-4).beta_end(0.02); }
  /// SD/SDXL's table: scaled_linear betas 0.00085 → 0.012 over 1000 steps (ᾱ_399 ≈ 0.426).
  static DiscreteVPOptions scaled_linear() { return DiscreteVPOptions(); }

  TORCH_ARG(BetaSchedule, beta_schedule) = BetaSchedule::kScaledLinear;
  TORCH_ARG(double, beta_start) = 0.00085;
  TORCH_ARG(double, beta_end) = 0.012;
  TORCH_ARG(int64_t, num_train_timesteps) = 1000;
  /// Generator time range (DMD2: timesteps 20..980 of 1000).
  TORCH_ARG(TimeRange, generator_range) = TimeRange{20, 980};
  /// Assistant time range (the whole table).
  TORCH_ARG(TimeRange, assistant_range) = TimeRange{0, 999};
  TORCH_ARG(Weighting, generator_weighting) = Weighting::kSigmaSquared;
  TORCH_ARG(Weighting, assistant_weighting) = Weighting::kUnit;
  TORCH_ARG(double, sigma_data) = 0.5;
};

/// Discrete VP: ᾱ_i = Π_{j≤i} (1 − β_j), α = √ᾱ, σ = √(1 − ᾱ), for timesteps i ∈ [0, N − 1].
///
/// Fractional t interpolates log ᾱ linearly between neighbouring steps (exact at integers), so the
/// same schedule serves integer-timestep training and continuous-time samplers. Sampling of t draws
/// integers uniformly in the range (inclusive), as DDPM/DMD2 do.
///
/// Example:
///   DiscreteVPSchedule sched(DiscreteVPOptions::scaled_linear());
///   auto t = sched.sample_generator_t(8, torch::kFloat32);
///   auto x_t = per_sample(sched.alpha(t), x0) * x0 + per_sample(sched.sigma(t), x0) * eps;
class DiscreteVPSchedule : public ScheduleBase<DiscreteVPSchedule> {
 public:
  static constexpr bool is_variance_preserving = true;

  explicit DiscreteVPSchedule(DiscreteVPOptions options = {}) : options_(std::move(options)) {
    const auto& o = options_;
    TORCH_CHECK(o.num_train_timesteps() >= 2, "diffinstruct::DiscreteVPSchedule: expected num_train_timesteps >= 2, got ",
                o.num_train_timesteps());
    TORCH_CHECK(o.beta_start() > 0 && o.beta_end() < 1 && o.beta_start() <= o.beta_end(),
                "diffinstruct::DiscreteVPSchedule: expected 0 < beta_start <= beta_end < 1, got beta_start=",
                o.beta_start(), ", beta_end=", o.beta_end());
    const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
    torch::Tensor betas;
    if (o.beta_schedule() == BetaSchedule::kLinear) {
      betas = torch::linspace(o.beta_start(), o.beta_end(), o.num_train_timesteps(), opts);
    } else {
      betas = torch::linspace(std::sqrt(o.beta_start()), std::sqrt(o.beta_end()), o.num_train_timesteps(), opts).pow(2);
    }
    log_alpha_bar_ = torch::log1p(-betas).cumsum(0);
    validate_common("DiscreteVPSchedule");
  }

  const DiscreteVPOptions& options() const { return options_; }
  std::string describe() const {
    const auto& o = options_;
    return std::string("discrete_vp(") + (o.beta_schedule() == BetaSchedule::kLinear ? "linear" : "scaled_linear") +
           ", beta=[" + detail::exact_number(o.beta_start()) + ", " + detail::exact_number(o.beta_end()) + "], N=" +
           std::to_string(o.num_train_timesteps()) + ", " + describe_common() + ")";
  }
  TimeRange full_range() const { return {0.0, double(options_.num_train_timesteps() - 1)}; }

  /// ᾱ_t (float64 table values interpolated, returned in t's dtype and device).
  torch::Tensor alpha_bar(const torch::Tensor& t) const {
    detail::check_times(t, full_range(), "DiscreteVPSchedule");
    const auto table = log_alpha_bar_.to(t.device());
    const auto td = t.to(torch::kFloat64);
    const auto lo = td.floor().clamp(0, double(options_.num_train_timesteps() - 2));
    const auto frac = td - lo;
    const auto idx = lo.to(torch::kLong);
    const auto log_ab = table.index_select(0, idx.reshape(-1)).reshape(td.sizes()) * (1 - frac) +
                        table.index_select(0, (idx + 1).reshape(-1)).reshape(td.sizes()) * frac;
    return log_ab.exp().to(t.scalar_type());
  }
  torch::Tensor alpha(const torch::Tensor& t) const { return alpha_bar(t).sqrt(); }
  torch::Tensor sigma(const torch::Tensor& t) const { return (1 - alpha_bar(t)).sqrt(); }

  torch::Tensor sample_t(int64_t batch, TimeRange range, const torch::TensorOptions& options,
                         c10::optional<at::Generator> gen = c10::nullopt) const {
    check_batch_size(batch, "DiscreteVPSchedule");
    detail::check_range(range, full_range(), "DiscreteVPSchedule", "the sampling range");
    const auto lo = static_cast<int64_t>(std::ceil(range.lo));
    const auto hi = static_cast<int64_t>(std::floor(range.hi));
    TORCH_CHECK(lo <= hi, "diffinstruct::DiscreteVPSchedule: the sampling range [", range.lo, ", ", range.hi,
                "] contains no integer timestep");
    return torch::randint(lo, hi + 1, {batch}, std::move(gen), options.dtype(torch::kLong)).to(options.dtype());
  }

 private:
  DiscreteVPOptions options_;
  torch::Tensor log_alpha_bar_;  // float64 [N], log ᾱ_i
};

} // namespace diffinstruct
