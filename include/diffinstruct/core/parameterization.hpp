#pragma once
/// \file What a diffusion network predicts, and conversions between the predictions.
///
/// Requirements of a Parameterization policy `P` (see docs/policies.md#parameterizations):
///   static torch::Tensor to_eps(out, x_t, alpha, sigma);    // network output -> ε̂
///   static torch::Tensor from_eps(eps, x_t, alpha, sigma);  // ε̂ -> network output
///   static constexpr const char* name;
/// `alpha` and `sigma` are per-sample [B] or scalars; they broadcast against [B, ...].
///
/// With x_t = α x0 + σ ε (docs/math.md §1):
///   score  s = −ε̂/σ
///   x0     D = (x_t − σ ε̂)/α
///   v      v = α ε̂ − σ x̂0  (diffusers' convention)  ⇒  ε̂ = (α v + σ x_t)/(α² + σ²)
/// The v formula is written for any (α, σ); under VP (α² + σ² = 1) it is ε̂ = σ x_t + α v.

#include <diffinstruct/core/checks.hpp>

#include <type_traits>

namespace diffinstruct {

/// ε-prediction (DDPM, SD 1.x/2.x base, SDXL).
struct EpsPrediction {
  static constexpr const char* name = "eps";
  static torch::Tensor to_eps(const torch::Tensor& out, const torch::Tensor&, const torch::Tensor&,
                              const torch::Tensor&) {
    return out;
  }
  static torch::Tensor from_eps(const torch::Tensor& eps, const torch::Tensor&, const torch::Tensor&,
                                const torch::Tensor&) {
    return eps;
  }
};

/// x0-prediction, the denoiser D(x_t) (EDM's D, DMD2's "x0 pred").
struct X0Prediction {
  static constexpr const char* name = "x0";
  static torch::Tensor to_eps(const torch::Tensor& x0, const torch::Tensor& x_t, const torch::Tensor& alpha,
                              const torch::Tensor& sigma) {
    return (x_t - per_sample(alpha, x_t) * x0) / per_sample(sigma, x_t);
  }
  static torch::Tensor from_eps(const torch::Tensor& eps, const torch::Tensor& x_t, const torch::Tensor& alpha,
                                const torch::Tensor& sigma) {
    return (x_t - per_sample(sigma, x_t) * eps) / per_sample(alpha, x_t);
  }
};

/// v-prediction, v = α ε − σ x0 (Salimans & Ho 2022; SD 2.x 768-v).
struct VPrediction {
  static constexpr const char* name = "v";
  static torch::Tensor to_eps(const torch::Tensor& v, const torch::Tensor& x_t, const torch::Tensor& alpha,
                              const torch::Tensor& sigma) {
    const auto a = per_sample(alpha, x_t);
    const auto s = per_sample(sigma, x_t);
    return (a * v + s * x_t) / (a * a + s * s);
  }
  static torch::Tensor from_eps(const torch::Tensor& eps, const torch::Tensor& x_t, const torch::Tensor& alpha,
                                const torch::Tensor& sigma) {
    const auto a = per_sample(alpha, x_t);
    const auto s = per_sample(sigma, x_t);
    const auto x0 = (x_t - s * eps) / a;
    return a * eps - s * x0;
  }
};

/// Score prediction, s = ∇ log p_t(x_t) = −ε/σ (score SDE models, analytic teachers).
struct ScorePrediction {
  static constexpr const char* name = "score";
  static torch::Tensor to_eps(const torch::Tensor& score, const torch::Tensor& x_t, const torch::Tensor&,
                              const torch::Tensor& sigma) {
    return -per_sample(sigma, x_t) * score;
  }
  static torch::Tensor from_eps(const torch::Tensor& eps, const torch::Tensor& x_t, const torch::Tensor&,
                                const torch::Tensor& sigma) {
    return -eps / per_sample(sigma, x_t);
  }
};

/// Converts a prediction from parameterization `From` to parameterization `To`.
///
/// Example:
///   auto v = convert_prediction<EpsPrediction, VPrediction>(eps, x_t, alpha, sigma);
template <class From, class To>
torch::Tensor convert_prediction(const torch::Tensor& out, const torch::Tensor& x_t, const torch::Tensor& alpha,
                                 const torch::Tensor& sigma) {
  if constexpr (std::is_same_v<From, To>) return out;
  return To::from_eps(From::to_eps(out, x_t, alpha, sigma), x_t, alpha, sigma);
}

namespace detail {
template <class P, class = void>
struct is_parameterization : std::false_type {};
template <class P>
struct is_parameterization<P, std::void_t<decltype(P::to_eps(std::declval<torch::Tensor>(), std::declval<torch::Tensor>(),
                                                              std::declval<torch::Tensor>(), std::declval<torch::Tensor>())),
                                          decltype(P::from_eps(std::declval<torch::Tensor>(), std::declval<torch::Tensor>(),
                                                               std::declval<torch::Tensor>(), std::declval<torch::Tensor>()))>>
    : std::true_type {};
} // namespace detail

/// True when `P` provides static `to_eps` and `from_eps` (the Parameterization contract).
template <class P>
inline constexpr bool is_parameterization_v = detail::is_parameterization<P>::value;

} // namespace diffinstruct

namespace diffinstruct {

/// The forward process x_t = α_t x0 + σ_t ε (docs/math.md §1), α and σ per sample [B] or scalars.
inline torch::Tensor diffuse(const torch::Tensor& x0, const torch::Tensor& alpha, const torch::Tensor& sigma,
                             const torch::Tensor& noise) {
  return per_sample(alpha, x0) * x0 + per_sample(sigma, x0) * noise;
}

} // namespace diffinstruct
