#pragma once
/// \file The Guidance policy family: classifier-free guidance as an implicit reward (MATH.md §2.3).
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
/// When `needs_unconditional` is false, `eps_uncond` is an undefined tensor.
///
/// Convention: `scale` is α_cfg of the paper (7.5 there): the guided prediction is
/// ε̂_c + α_cfg (ε̂_c − ε̂_u), which is the usual "guidance scale" 1 + α_cfg.

#include <diffinstruct/core/checks.hpp>

#include <type_traits>

namespace diffinstruct {

struct CfgOptions {
  /* implicit */ CfgOptions(double scale = 7.5) : scale_(scale) {}
  /// α_cfg ≥ 0 (the usual guidance scale minus one).
  TORCH_ARG(double, scale);
};

/// No guidance: the target is the conditional teacher. Copy this to write your own.
struct NoGuidance {
  static constexpr bool needs_unconditional = false;
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
inline void check_cfg_scale(double scale, const char* component) {
  TORCH_CHECK(std::isfinite(scale) && scale >= 0, "diffinstruct::", component, ": expected a finite guidance scale >= 0, got ",
              scale);
}
} // namespace detail

/// CFG inside the divergence (DI*-IN, the paper's final model): b = ε̂_c + α_cfg (ε̂_c − ε̂_u).
class CfgInside {
 public:
  static constexpr bool needs_unconditional = true;
  static constexpr const char* name = "cfg_inside";

  explicit CfgInside(CfgOptions options = {}) : options_(options) { detail::check_cfg_scale(options_.scale(), name); }

  torch::Tensor target(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond) const {
    detail::check_cfg_inputs(eps_cond, eps_uncond, "CfgInside");
    return eps_cond + options_.scale() * (eps_cond - eps_uncond);
  }
  torch::Tensor loss(const torch::Tensor&, const torch::Tensor&, const torch::Tensor& x_t, const torch::Tensor&,
                     const torch::Tensor&) const {
    return torch::zeros({x_t.size(0)}, x_t.options());
  }
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
  static constexpr const char* name = "cfg_outside";

  explicit CfgOutside(CfgOptions options = {}) : options_(options) { detail::check_cfg_scale(options_.scale(), name); }

  torch::Tensor target(const torch::Tensor& eps_cond, const torch::Tensor&) const { return eps_cond; }
  torch::Tensor loss(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond, const torch::Tensor& x_t,
                     const torch::Tensor& sigma, const torch::Tensor& w) const {
    detail::check_cfg_inputs(eps_cond, eps_uncond, "CfgOutside");
    detail::check_like(eps_cond, x_t, "CfgOutside", "eps_cond", "x_t");
    const auto push = ((eps_cond - eps_uncond) / per_sample(sigma, x_t)).detach();
    return options_.scale() * w * sum_per_sample(push * x_t);
  }
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
