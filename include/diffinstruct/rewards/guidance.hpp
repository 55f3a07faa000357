#pragma once
/// \file The Guidance policy family: classifier-free guidance as an implicit reward (docs/math.md §2.3).
///
/// CFG corresponds to the reward r_cfg = log p_ref(c | x_t), whose gradient is
/// s_ref(x_t | c) − s_ref(x_t | ∅) = −(ε̂_c − ε̂_u)/σ.
///
/// Requirements of a Guidance policy `G` (see docs/policies.md#guidance):
///   static constexpr bool needs_unconditional;  // does it need the teacher's ε̂_u(x_t, ∅)?
///   static constexpr const char* name;
///   torch::Tensor target(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond) const;  // b
///   torch::Tensor loss(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond, const torch::Tensor& x_t,
///                      const torch::Tensor& sigma, const torch::Tensor& w) const;  // per-sample [B]
/// Optional:
///   static constexpr bool differentiates_unconditional;  // must gradients flow through ε̂_u? (default true)
/// When `needs_unconditional` is false, `eps_uncond` is an undefined tensor. When
/// `differentiates_unconditional` is false (CFG outside: ε̂_u enters only detached), a trainer whose
/// divergence differentiates through the networks runs the teacher's unconditional pass without
/// building a graph for it.
///
/// Guidance strength comes in two conventions, and the options never take a bare number, so that
/// neither can be mistaken for the other:
///   α_cfg (the paper's, 7.5 there):  ε̂ = ε̂_c + α_cfg (ε̂_c − ε̂_u)
///   guidance scale s (diffusers'):   ε̂ = ε̂_u + s (ε̂_c − ε̂_u),   s = 1 + α_cfg
/// `CfgInside(AlphaCfg(7.5))` and `CfgInside(GuidanceScale(8.5))` are the same policy;
/// `DdimOptions::guidance_scale` is the same s.

#include <diffinstruct/core/checks.hpp>
#include <diffinstruct/core/describe.hpp>

#include <type_traits>

namespace diffinstruct {

/// The paper's α_cfg: guided ε̂ = ε̂_c + α_cfg (ε̂_c − ε̂_u).
struct AlphaCfg {
  explicit AlphaCfg(double v) : value(v) {}
  double value;
};
/// diffusers' guidance scale s: guided ε̂ = ε̂_u + s (ε̂_c − ε̂_u); s = 1 + α_cfg.
struct GuidanceScale {
  explicit GuidanceScale(double v) : value(v) {}
  double value;
};

/// Strength of classifier-free guidance for CfgInside / CfgOutside, set in either convention.
///
/// Example: CfgOptions().guidance_scale(8.5)  ==  CfgOptions(AlphaCfg(7.5))  ==  CfgOptions(GuidanceScale(8.5))
struct CfgOptions {
  CfgOptions() = default;
  /* implicit */ CfgOptions(AlphaCfg a) : alpha_cfg_(a.value) {}
  /* implicit */ CfgOptions(GuidanceScale s) : alpha_cfg_(s.value - 1) {}
  /// α_cfg ≥ 0 (the paper's convention). CfgOptions() starts at 7.5 (guidance scale 8.5), the paper's
  /// value; the policies themselves have no default and take their options always.
  CfgOptions& alpha_cfg(double a) {
    alpha_cfg_ = a;
    return *this;
  }
  double alpha_cfg() const { return alpha_cfg_; }
  /// s = 1 + α_cfg ≥ 1 (diffusers' `guidance_scale`).
  CfgOptions& guidance_scale(double s) {
    alpha_cfg_ = s - 1;
    return *this;
  }
  double guidance_scale() const { return alpha_cfg_ + 1; }

 private:
  double alpha_cfg_ = 7.5;
};

/// No guidance: the target is the conditional teacher. Copy this to write your own.
struct NoGuidance {
  static constexpr bool needs_unconditional = false;
  static constexpr bool differentiates_unconditional = false;
  static constexpr const char* name = "none";
  torch::Tensor target(const torch::Tensor& eps_cond, const torch::Tensor&) const { return eps_cond; }
  torch::Tensor loss(const torch::Tensor&, const torch::Tensor&, const torch::Tensor& x_t, const torch::Tensor&,
                     const torch::Tensor&) const {
    return torch::zeros({x_t.size(0)}, x_t.options());
  }
};

namespace detail {
inline void check_cfg_inputs(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond, const char* component) {
  check_batch(eps_cond, component, "eps_cond");
  check_like(eps_cond, eps_uncond, component, "eps_cond", "eps_uncond");
}
inline void check_cfg_options(const CfgOptions& o, const char* component) {
  TORCH_CHECK(std::isfinite(o.alpha_cfg()) && o.alpha_cfg() >= 0, "diffinstruct::", component,
              ": expected a finite alpha_cfg >= 0 (guidance scale s = 1 + alpha_cfg >= 1), got alpha_cfg ", o.alpha_cfg(),
              " (guidance scale ", o.guidance_scale(), ")");
}
} // namespace detail

/// CFG inside the divergence (DI*-IN, the paper's final model): b = ε̂_c + α_cfg (ε̂_c − ε̂_u).
///
/// Example: CfgInside(AlphaCfg(7.5)), or the same as CfgInside(GuidanceScale(8.5)).
class CfgInside {
 public:
  static constexpr bool needs_unconditional = true;
  static constexpr bool differentiates_unconditional = true;  // ε̂_u is inside d'(y)
  static constexpr const char* name = "cfg_inside";

  /// The scale is always given (there is no default: the strength of guidance is a choice a run
  /// must make visibly).
  explicit CfgInside(CfgOptions options) : options_(options) { detail::check_cfg_options(options_, name); }

  torch::Tensor target(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond) const {
    detail::check_cfg_inputs(eps_cond, eps_uncond, "CfgInside");
    return eps_cond + options_.alpha_cfg() * (eps_cond - eps_uncond);
  }
  torch::Tensor loss(const torch::Tensor&, const torch::Tensor&, const torch::Tensor& x_t, const torch::Tensor&,
                     const torch::Tensor&) const {
    return torch::zeros({x_t.size(0)}, x_t.options());
  }
  std::string describe() const { return std::string(name) + "(alpha_cfg=" + detail::exact_number(options_.alpha_cfg()) + ")"; }
  const CfgOptions& options() const { return options_; }

 private:
  CfgOptions options_;
};

/// CFG outside the divergence as its own term (DI*-OUT, DI++ style): the target is ε̂_c, plus
///   L_cfg = α_cfg · w ⟨sg[(ε̂_c − ε̂_u)/σ], x_t⟩,
/// the surrogate of −α_cfg · w · r_cfg. For KL this equals CfgInside's gradient; for score
/// divergences it does not.
class CfgOutside {
 public:
  static constexpr bool needs_unconditional = true;
  static constexpr bool differentiates_unconditional = false;  // only sg[ε̂_c − ε̂_u] enters
  static constexpr const char* name = "cfg_outside";

  /// The scale is always given, as for CfgInside.
  explicit CfgOutside(CfgOptions options) : options_(options) { detail::check_cfg_options(options_, name); }

  torch::Tensor target(const torch::Tensor& eps_cond, const torch::Tensor&) const { return eps_cond; }
  /// With `check_values` (the default) σ > 0 and finite inputs are verified (device read-backs);
  /// generator_loss() checks once itself and passes false.
  torch::Tensor loss(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond, const torch::Tensor& x_t,
                     const torch::Tensor& sigma, const torch::Tensor& w, bool check_values = true) const {
    detail::check_cfg_inputs(eps_cond, eps_uncond, "CfgOutside");
    detail::check_like(eps_cond, x_t, "CfgOutside", "eps_cond", "x_t");
    detail::check_per_sample(x_t, sigma, "CfgOutside", "sigma");
    detail::check_per_sample(x_t, w, "CfgOutside", "w");
    if (check_values) {
      detail::check_finite(eps_cond, "CfgOutside", "eps_cond");
      detail::check_finite(eps_uncond, "CfgOutside", "eps_uncond");
      detail::check_finite(w, "CfgOutside", "w");
      detail::check_positive_values(sigma, "CfgOutside", "sigma");
    }
    const auto push = ((eps_cond - eps_uncond) / per_sample(sigma, x_t)).detach();
    return options_.alpha_cfg() * w * sum_per_sample(push * x_t);
  }
  std::string describe() const { return std::string(name) + "(alpha_cfg=" + detail::exact_number(options_.alpha_cfg()) + ")"; }
  const CfgOptions& options() const { return options_; }

 private:
  CfgOptions options_;
};

namespace detail {
template <class G, class = void>
struct is_guidance : std::false_type {};
template <class G>
struct is_guidance<G, std::void_t<decltype(bool{G::needs_unconditional}), decltype(static_cast<const char*>(G::name)),
                                  decltype(torch::Tensor(std::declval<const G&>().target(std::declval<const torch::Tensor&>(),
                                                                                         std::declval<const torch::Tensor&>()))),
                                  decltype(torch::Tensor(std::declval<const G&>().loss(
                                      std::declval<const torch::Tensor&>(), std::declval<const torch::Tensor&>(),
                                      std::declval<const torch::Tensor&>(), std::declval<const torch::Tensor&>(),
                                      std::declval<const torch::Tensor&>())))>> : std::true_type {};

/// Does the guidance need gradients through the teacher's unconditional prediction? (Optional
/// member; a policy that does not say is assumed to.)
template <class G, class = void>
struct differentiates_unconditional : std::true_type {};
template <class G>
struct differentiates_unconditional<G, std::void_t<decltype(bool{G::differentiates_unconditional})>>
    : std::bool_constant<G::differentiates_unconditional> {};

/// Calls guidance.loss(...), telling the shipped policies (which take `check_values`) to skip value checks.
template <class G, class = void>
struct guidance_loss_takes_check : std::false_type {};
template <class G>
struct guidance_loss_takes_check<G, std::void_t<decltype(std::declval<const G&>().loss(
                                        std::declval<const torch::Tensor&>(), std::declval<const torch::Tensor&>(),
                                        std::declval<const torch::Tensor&>(), std::declval<const torch::Tensor&>(),
                                        std::declval<const torch::Tensor&>(), bool{}))>> : std::true_type {};
template <class G>
torch::Tensor guidance_loss(const G& g, const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond, const torch::Tensor& x_t,
                            const torch::Tensor& sigma, const torch::Tensor& w, bool check_values) {
  if constexpr (guidance_loss_takes_check<G>::value) return g.loss(eps_cond, eps_uncond, x_t, sigma, w, check_values);
  else return g.loss(eps_cond, eps_uncond, x_t, sigma, w);
}
} // namespace detail

/// True when `G` meets the Guidance contract.
template <class G>
inline constexpr bool is_guidance_v = detail::is_guidance<G>::value;

template <class G>
constexpr void require_guidance() {
  static_assert(is_guidance_v<G>,
                "diffinstruct: the Guidance policy must provide `static constexpr bool needs_unconditional`, "
                "`static constexpr const char* name`, `target(eps_cond, eps_uncond)` and "
                "`loss(eps_cond, eps_uncond, x_t, sigma, w)`; see docs/policies.md#guidance");
}

} // namespace diffinstruct
