#pragma once
/// \file Deterministic DDIM sampling (η = 0) from a teacher, with optional classifier-free guidance:
/// the multi-step baseline, and the source of (z, x0) "ODE pairs" for regressing a one-step
/// generator before distillation (DMD; docs/findings.md §3).

#include <diffinstruct/core/roles.hpp>
#include <diffinstruct/schedules/schedule_base.hpp>

namespace diffinstruct {

struct DdimOptions {
  /// Number of denoising steps.
  TORCH_ARG(int64_t, steps) = 50;
  /// diffusers' guidance scale s: ε̂ = ε̂_u + s (ε̂_c − ε̂_u), the same s as CfgOptions::guidance_scale
  /// (α_cfg = s − 1). 1 disables CFG (no unconditional pass).
  TORCH_ARG(double, guidance_scale) = 1.0;
};

/// x0 from x_T = `noise` by DDIM over the schedule's `range` (from range.hi down to range.lo):
///   x̂0 = (x_t − σ_t ε̂)/α_t,   x_s = α_s x̂0 + σ_s ε̂.
/// The last step returns x̂0 at range.lo. Runs without gradient, with the teacher's modules in
/// evaluation mode (their modes are restored after).
///
/// Example:
///   auto x0 = ddim_sample(teacher, schedule, torch::randn({64, 2}), NoCondition{}, {}, {0.02, 0.98});
template <class Model, class Param, class Schedule, class Cond>
torch::Tensor ddim_sample(Denoiser<Model, Param>& teacher, const Schedule& schedule, const torch::Tensor& noise, const Cond& cond,
                          const Cond& null_condition, TimeRange range, DdimOptions options = {}) {
  TORCH_CHECK(options.steps() >= 1, "diffinstruct::ddim_sample: expected steps >= 1, got ", options.steps());
  TORCH_CHECK(std::isfinite(options.guidance_scale()) && options.guidance_scale() >= 0,
              "diffinstruct::ddim_sample: expected a finite guidance_scale >= 0, got ", options.guidance_scale());
  detail::check_batch(noise, "ddim_sample", "noise");
  if constexpr (std::is_same_v<Cond, NoCondition>) {
    TORCH_CHECK(options.guidance_scale() == 1.0, "diffinstruct::ddim_sample: guidance_scale ", options.guidance_scale(),
                " needs conditions; with NoCondition there is no unconditional prediction to guide against (use 1)");
  }
  torch::NoGradGuard no_grad;
  detail::EvalModeScope eval(teacher.modules());
  const int64_t B = noise.size(0);
  const auto grid = torch::linspace(range.hi, range.lo, options.steps() + 1, noise.options().dtype(torch::kFloat64));
  const bool cfg = options.guidance_scale() != 1.0;
  // VP: x_T ~ N(0, I) at the top of the range; VE/EDM: x_T = σ_T ε.
  torch::Tensor x = noise;
  if constexpr (!Schedule::is_variance_preserving) {
    const torch::Tensor sigma_top = schedule.sigma(torch::full({}, range.hi, noise.options()));
    x = noise * sigma_top;
  }
  torch::Tensor x0;
  for (int64_t i = 0; i < options.steps(); ++i) {
    const auto t = torch::full({B}, grid[i].template item<double>(), noise.options());
    const torch::Tensor alpha = schedule.alpha(t), sigma = schedule.sigma(t);
    torch::Tensor eps;
    if constexpr (!std::is_same_v<Cond, NoCondition>) {
      if (cfg) {
        using Traits = ConditionTraits<Cond>;
        const torch::Tensor both = teacher.eps(torch::cat({x, x}), torch::cat({t, t}), torch::cat({alpha, alpha}),
                                               torch::cat({sigma, sigma}), Traits::concat(cond, Traits::broadcast(null_condition, B)));
        const auto eps_c = both.slice(0, 0, B), eps_u = both.slice(0, B);
        eps = eps_u + options.guidance_scale() * (eps_c - eps_u);
      } else {
        eps = teacher.eps(x, t, alpha, sigma, cond);
      }
    } else {
      (void)cfg;
      eps = teacher.eps(x, t, alpha, sigma, cond);
    }
    x0 = (x - per_sample(sigma, x) * eps) / per_sample(alpha, x);
    const auto s = torch::full({B}, grid[i + 1].template item<double>(), noise.options());
    x = diffuse(x0, schedule.alpha(s), schedule.sigma(s), eps);
  }
  return x0;
}

} // namespace diffinstruct
