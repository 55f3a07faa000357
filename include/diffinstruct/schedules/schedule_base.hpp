#pragma once
/// \file What every noise schedule provides, the weightings, and the shared time-sampling logic.
///
/// Requirements of a Schedule policy `S` (see docs/policies.md#schedules):
///   torch::Tensor alpha(const torch::Tensor& t) const;   // α_t for per-sample t [B] (or a scalar)
///   torch::Tensor sigma(const torch::Tensor& t) const;   // σ_t
///   TimeRange full_range() const;                        // the domain of t
///   torch::Tensor sample_t(int64_t batch, TimeRange range, const torch::TensorOptions& options,
///                          c10::optional<at::Generator> gen) const;  // t ~ π(t) restricted to range
///   torch::Tensor w(const torch::Tensor& t) const;       // generator weighting w(t)      (docs/math.md §2)
///   torch::Tensor lambda(const torch::Tensor& t) const;  // assistant DSM weighting λ(t)  (docs/math.md §3)
///   torch::Tensor sample_generator_t(int64_t, const torch::TensorOptions&, c10::optional<at::Generator>) const;
///   torch::Tensor sample_assistant_t(int64_t, const torch::TensorOptions&, c10::optional<at::Generator>) const;
/// Deriving from `ScheduleBase<S>` supplies the last four from the first four and the options'
/// ranges and weightings.

#include <diffinstruct/core/checks.hpp>
#include <diffinstruct/core/describe.hpp>

#include <string>
#include <type_traits>

namespace diffinstruct {

/// A closed interval [lo, hi] of the schedule's time variable.
struct TimeRange {
  double lo = 0.0;
  double hi = 1.0;
};

/// Weightings of the generator loss (w) and of the assistant's denoising loss (λ), as functions of
/// (α_t, σ_t). `kSigmaSquaredOverAlpha` is docs/math.md §4's choice that turns the pseudo-Huber loss into
/// an x0-space form; `kInverseSnr` (σ²/α²) turns the ε-space DSM loss into the x0-space MSE; `kEdm`
/// is Karras et al.'s λ(σ) = (σ² + σ_d²)/(σ σ_d)² applied to the x0 error, written in ε-space with
/// σ_VE = σ/α.
enum class Weighting { kUnit, kSigmaSquared, kSigmaSquaredOverAlpha, kInverseSnr, kEdm };

inline const char* weighting_name(Weighting w) {
  switch (w) {
    case Weighting::kUnit: return "unit";
    case Weighting::kSigmaSquared: return "sigma^2";
    case Weighting::kSigmaSquaredOverAlpha: return "sigma^2/alpha";
    case Weighting::kInverseSnr: return "sigma^2/alpha^2";
    case Weighting::kEdm: return "edm";
  }
  return "?";
}

/// Evaluates a weighting at (α, σ); `sigma_data` is used by kEdm only.
inline torch::Tensor weighting(Weighting kind, const torch::Tensor& alpha, const torch::Tensor& sigma,
                               double sigma_data = 0.5) {
  switch (kind) {
    case Weighting::kUnit: return torch::ones_like(sigma);
    case Weighting::kSigmaSquared: return sigma * sigma;
    case Weighting::kSigmaSquaredOverAlpha: return sigma * sigma / alpha;
    case Weighting::kInverseSnr: return (sigma * sigma) / (alpha * alpha);
    case Weighting::kEdm: {
      const auto s_ve = sigma / alpha;
      return (s_ve * s_ve + sigma_data * sigma_data) / (sigma_data * sigma_data);
    }
  }
  TORCH_INTERNAL_ASSERT(false, "unknown Weighting");
}

namespace detail {

inline void check_range(const TimeRange& r, const TimeRange& full, const char* component, const char* name) {
  TORCH_CHECK(std::isfinite(r.lo) && std::isfinite(r.hi) && r.lo <= r.hi && r.lo >= full.lo && r.hi <= full.hi,
              "diffinstruct::", component, ": expected ", name, " inside [", full.lo, ", ", full.hi,
              "] with lo <= hi, got [", r.lo, ", ", r.hi, "]");
}

inline void check_times(const torch::Tensor& t, const TimeRange& full, const char* component) {
  check_floating(t, component, "t");
  TORCH_CHECK(t.dim() <= 1, "diffinstruct::", component, ": expected t of shape [B] or a scalar, got ", t.sizes());
  if (t.numel() == 0) return;
  // One read-back for both bounds (this runs on every schedule call of a training step).
  const auto bounds = torch::stack({t.min(), t.max()}).to(torch::kCPU, torch::kFloat64);
  const double lo = bounds[0].item<double>();
  const double hi = bounds[1].item<double>();
  TORCH_CHECK(lo >= full.lo && hi <= full.hi, "diffinstruct::", component, ": expected t in [", full.lo, ", ",
              full.hi, "], got values in [", lo, ", ", hi, "]");
}

} // namespace detail

/// Shared part of the shipped schedules (CRTP): weightings and the generator's and assistant's time
/// sampling, read from the derived schedule's options (`generator_range`, `assistant_range`,
/// `generator_weighting`, `assistant_weighting`, `sigma_data`).
template <class Derived>
class ScheduleBase {
 public:
  torch::Tensor w(const torch::Tensor& t) const {
    const auto& o = self().options();
    return weighting(o.generator_weighting(), self().alpha(t), self().sigma(t), o.sigma_data());
  }
  /// w from already computed α_t and σ_t (saves recomputing them in a training step).
  torch::Tensor w(const torch::Tensor&, const torch::Tensor& alpha, const torch::Tensor& sigma) const {
    const auto& o = self().options();
    return weighting(o.generator_weighting(), alpha, sigma, o.sigma_data());
  }
  torch::Tensor lambda(const torch::Tensor& t) const {
    const auto& o = self().options();
    return weighting(o.assistant_weighting(), self().alpha(t), self().sigma(t), o.sigma_data());
  }
  /// λ from already computed α_t and σ_t.
  torch::Tensor lambda(const torch::Tensor&, const torch::Tensor& alpha, const torch::Tensor& sigma) const {
    const auto& o = self().options();
    return weighting(o.assistant_weighting(), alpha, sigma, o.sigma_data());
  }
  /// The settings every shipped schedule shares, as text (ranges, weightings, σ_d).
  std::string describe_common() const {
    const auto& o = self().options();
    auto range = [](const TimeRange& r) { return "[" + detail::exact_number(r.lo) + ", " + detail::exact_number(r.hi) + "]"; };
    return "generator_range=" + range(o.generator_range()) + ", assistant_range=" + range(o.assistant_range()) +
           ", w=" + weighting_name(o.generator_weighting()) + ", lambda=" + weighting_name(o.assistant_weighting()) +
           ", sigma_data=" + detail::exact_number(o.sigma_data());
  }
  torch::Tensor sample_generator_t(int64_t batch, const torch::TensorOptions& options,
                                   c10::optional<at::Generator> gen = c10::nullopt) const {
    return self().sample_t(batch, self().options().generator_range(), options, std::move(gen));
  }
  torch::Tensor sample_assistant_t(int64_t batch, const torch::TensorOptions& options,
                                   c10::optional<at::Generator> gen = c10::nullopt) const {
    return self().sample_t(batch, self().options().assistant_range(), options, std::move(gen));
  }

 protected:
  void validate_common(const char* component) const {
    const auto& o = self().options();
    detail::check_range(o.generator_range(), self().full_range(), component, "generator_range");
    detail::check_range(o.assistant_range(), self().full_range(), component, "assistant_range");
    detail::check_positive(o.sigma_data(), component, "sigma_data");
  }
  static void check_batch_size(int64_t batch, const char* component) {
    TORCH_CHECK(batch > 0, "diffinstruct::", component, ": expected a positive batch size for sample_t, got ", batch);
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

namespace detail {
template <class S, class = void>
struct is_schedule : std::false_type {};
template <class S>
struct is_schedule<S, std::void_t<decltype(std::declval<const S&>().alpha(std::declval<torch::Tensor>())),
                                  decltype(std::declval<const S&>().sigma(std::declval<torch::Tensor>())),
                                  decltype(std::declval<const S&>().w(std::declval<torch::Tensor>())),
                                  decltype(std::declval<const S&>().lambda(std::declval<torch::Tensor>())),
                                  decltype(std::declval<const S&>().full_range()),
                                  decltype(std::declval<const S&>().sample_generator_t(int64_t{}, torch::TensorOptions{},
                                                                                       c10::optional<at::Generator>{})),
                                  decltype(std::declval<const S&>().sample_assistant_t(int64_t{}, torch::TensorOptions{},
                                                                                       c10::optional<at::Generator>{}))>>
    : std::true_type {};

template <class S, class = void>
struct has_weights_from_alpha_sigma : std::false_type {};
template <class S>
struct has_weights_from_alpha_sigma<
    S, std::void_t<decltype(std::declval<const S&>().w(std::declval<torch::Tensor>(), std::declval<torch::Tensor>(), std::declval<torch::Tensor>())),
                   decltype(std::declval<const S&>().lambda(std::declval<torch::Tensor>(), std::declval<torch::Tensor>(),
                                                            std::declval<torch::Tensor>()))>> : std::true_type {};
} // namespace detail

/// w(t) given α_t and σ_t already computed: schedules deriving from ScheduleBase reuse them (a training
/// step computes α and σ once); other schedules recompute from t.
template <class S>
torch::Tensor generator_weight(const S& schedule, const torch::Tensor& t, const torch::Tensor& alpha, const torch::Tensor& sigma) {
  if constexpr (detail::has_weights_from_alpha_sigma<S>::value) return schedule.w(t, alpha, sigma);
  else return schedule.w(t);
}

/// λ(t) given α_t and σ_t already computed (see generator_weight).
template <class S>
torch::Tensor assistant_weight(const S& schedule, const torch::Tensor& t, const torch::Tensor& alpha, const torch::Tensor& sigma) {
  if constexpr (detail::has_weights_from_alpha_sigma<S>::value) return schedule.lambda(t, alpha, sigma);
  else return schedule.lambda(t);
}

/// True when `S` meets the Schedule contract.
template <class S>
inline constexpr bool is_schedule_v = detail::is_schedule<S>::value;

} // namespace diffinstruct
