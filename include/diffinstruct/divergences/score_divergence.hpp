#pragma once
/// \file Score divergences with a user-supplied distance: D(θ) = ∫ w E_π[d(s_θ − s_ref)] dt.
///
/// Requirements of a Distance policy `Dist` (see docs/policies.md#distances):
///   static constexpr const char* name;
///   torch::Tensor grad(const torch::Tensor& y) const;  // d'(y), shape of y [B, ...]; per-sample
///                                                      // reductions over a sample's dims are allowed
/// The surrogate is SIM's L = w ⟨d'(y), g⟩ with y = (b − a)/σ, g = (a − e)/σ (docs/math.md §2.1), and
/// d'(y) is NOT detached: the gradient must reach the generator through the networks' inputs inside
/// d'(y) as well as inside g. Detaching it leaves the location gradient right and the scale gradient
/// wrong (tests/divergences show it).

#include <diffinstruct/divergences/divergence.hpp>

#include <type_traits>

namespace diffinstruct {

/// Pseudo-Huber distance d(y) = √(‖y‖² + c²) − c, d'(y) = y / √(‖y‖² + c²) (per sample).
struct PseudoHuberDistance {
  static constexpr const char* name = "pseudo_huber";
  double c = 1.0;
  torch::Tensor grad(const torch::Tensor& y) const {
    return y / per_sample(torch::sqrt(sum_per_sample(y * y) + c * c), y);
  }
};

/// Squared L2 distance d(y) = ‖y‖², d'(y) = 2y.
struct SquaredL2Distance {
  static constexpr const char* name = "squared_l2";
  torch::Tensor grad(const torch::Tensor& y) const { return 2 * y; }
};

namespace detail {
template <class T, class = void>
struct is_distance : std::false_type {};
template <class T>
struct is_distance<T, std::void_t<decltype(torch::Tensor(std::declval<const T&>().grad(std::declval<const torch::Tensor&>()))),
                                  decltype(static_cast<const char*>(T::name))>> : std::true_type {};
} // namespace detail

/// True when `T` meets the Distance contract.
template <class T>
inline constexpr bool is_distance_v = detail::is_distance<T>::value;

/// The score divergence for any distance: per-sample surrogate w ⟨d'(y), g⟩.
///
/// Example (a distance of your own):
///   struct CauchyDistance {                       // d(y) = log(1 + ‖y‖²/c²)
///     static constexpr const char* name = "cauchy";
///     double c = 1.0;
///     torch::Tensor grad(const torch::Tensor& y) const {
///       return 2 * y / diffinstruct::per_sample(c * c + diffinstruct::sum_per_sample(y * y), y);
///     }
///   };
///   using CauchyScore = diffinstruct::ScoreDivergence<CauchyDistance>;
template <class Distance>
class ScoreDivergence {
  static_assert(is_distance_v<Distance>,
                "diffinstruct::ScoreDivergence: the Distance policy must provide `static constexpr const char* name` "
                "and `torch::Tensor grad(const torch::Tensor& y) const` returning d'(y); see docs/policies.md#distances");

 public:
  static constexpr bool needs_input_grad = true;
  static constexpr const char* name = Distance::name;

  explicit ScoreDivergence(Distance distance = {}) : distance_(std::move(distance)) {}

  torch::Tensor loss(const DivergenceInputs& in) const {
    detail::check_divergence_inputs(in, "ScoreDivergence");
    const auto s = per_sample(in.sigma, in.x_t);
    const auto y = (in.target_eps - in.assistant_eps) / s;
    const auto g = (in.assistant_eps - in.noise) / s;
    const auto d = distance_.grad(y);
    TORCH_CHECK(d.sizes() == y.sizes(), "diffinstruct::ScoreDivergence<", Distance::name,
                ">: expected the distance's grad(y) to have the shape of y ", y.sizes(), ", got ", d.sizes());
    return in.w * sum_per_sample(d * g);
  }

  const Distance& distance() const { return distance_; }

 private:
  Distance distance_;
};

} // namespace diffinstruct
