#pragma once
/// \file The Divergence policy family: what keeps the generator close to the reference model.
///
/// Requirements of a Divergence policy `D` (see docs/policies.md#divergences):
///   static constexpr bool needs_input_grad;   // must the assistant and teacher be evaluated with
///                                             // autograd through their inputs x_t? (score: yes, KL: no)
///   static constexpr const char* name;
///   torch::Tensor loss(const DivergenceInputs& in) const;  // per-sample surrogate [B]
/// `loss` validates what it uses: shapes, dtypes and devices always (no device read-back), values
/// (finite, σ > 0, α > 0) when `in.check_values` is true, the default; call
/// `detail::check_divergence_inputs(in, name)` first thing, as the shipped policies do.
/// The surrogate's *value* is not the divergence; its gradient with respect to the generator's
/// parameters is (docs/math.md §2). Copy `NoDivergence` to write your own, or supply only a distance
/// d'(y) to `ScoreDivergence<Distance>` (score_divergence.hpp).

#include <diffinstruct/core/checks.hpp>
#include <diffinstruct/core/describe.hpp>

#include <type_traits>

namespace diffinstruct {

/// Everything a divergence may use, for one batch at per-sample times t. All [B, ...] tensors share
/// shape, dtype and device; per-sample quantities are [B] or scalars.
struct DivergenceInputs {
  torch::Tensor assistant_eps;  ///< a = ε̂_ψ(x_t): assistant prediction (input-differentiable when needed)
  torch::Tensor target_eps;     ///< b = ε̂_tgt(x_t): teacher prediction, guided when CFG is inside
  torch::Tensor noise;          ///< e = ε, the noise that made x_t (carries no gradient)
  torch::Tensor x_t;            ///< α x0 + σ ε: carries the gradient to the generator
  torch::Tensor x0;             ///< the generator's samples (used by KL's DMD normaliser)
  torch::Tensor alpha;          ///< α_t
  torch::Tensor sigma;          ///< σ_t
  torch::Tensor w;              ///< w(t), the generator weighting
  /// Verify values too (finite, σ > 0, α > 0): one device read-back per tensor. generator_loss()
  /// and the trainer check once themselves and set it false.
  bool check_values = true;
};

namespace detail {
inline void check_divergence_values(const DivergenceInputs& in, const char* component);

/// Validates DivergenceInputs' shapes, dtypes, devices and batch (no device synchronisation), and
/// their values when `in.check_values` is set.
inline void check_divergence_inputs(const DivergenceInputs& in, const char* component) {
  check_batch(in.x_t, component, "x_t");
  check_like(in.x_t, in.assistant_eps, component, "x_t", "assistant_eps");
  check_like(in.x_t, in.target_eps, component, "x_t", "target_eps");
  check_like(in.x_t, in.noise, component, "x_t", "noise");
  if (in.x0.defined()) check_like(in.x_t, in.x0, component, "x_t", "x0");
  check_per_sample(in.x_t, in.alpha, component, "alpha");
  check_per_sample(in.x_t, in.sigma, component, "sigma");
  check_per_sample(in.x_t, in.w, component, "w");
  if (in.check_values) check_divergence_values(in, component);
}

/// Validates DivergenceInputs' values: finite, σ > 0, α > 0 (reads back from the device).
inline void check_divergence_values(const DivergenceInputs& in, const char* component) {
  check_finite(in.assistant_eps, component, "assistant_eps");
  check_finite(in.target_eps, component, "target_eps");
  check_finite(in.noise, component, "noise");
  check_finite(in.x_t, component, "x_t");
  if (in.x0.defined()) check_finite(in.x0, component, "x0");
  check_finite(in.w, component, "w");
  check_positive_values(in.sigma, component, "sigma");
  check_positive_values(in.alpha, component, "alpha");
}
} // namespace detail

/// The null divergence: no pull towards the reference (reward-only training, which runs away on
/// unbounded rewards; useful as an ablation). Copy this to write your own divergence.
struct NoDivergence {
  static constexpr bool needs_input_grad = false;
  static constexpr const char* name = "none";
  torch::Tensor loss(const DivergenceInputs& in) const {
    detail::check_divergence_inputs(in, name);
    return torch::zeros({in.x_t.size(0)}, in.x_t.options());
  }
};

namespace detail {
template <class D, class = void>
struct is_divergence : std::false_type {};
template <class D>
struct is_divergence<D, std::void_t<decltype(bool{D::needs_input_grad}), decltype(static_cast<const char*>(D::name)),
                                    decltype(torch::Tensor(std::declval<const D&>().loss(std::declval<const DivergenceInputs&>())))>>
    : std::true_type {};
} // namespace detail

/// True when `D` meets the Divergence contract.
template <class D>
inline constexpr bool is_divergence_v = detail::is_divergence<D>::value;

/// Fails compilation with a message that names the contract (used by the trainer and the loss).
template <class D>
constexpr void require_divergence() {
  static_assert(is_divergence_v<D>,
                "diffinstruct: the Divergence policy must provide `static constexpr bool needs_input_grad`, "
                "`static constexpr const char* name` and `torch::Tensor loss(const DivergenceInputs&) const`; "
                "see docs/policies.md#divergences");
}

} // namespace diffinstruct
