#pragma once
/// \file A 2-D (or D-dimensional) mixture of isotropic Gaussians whose diffused score is exact at
/// every time (MATH.md §5): a teacher known exactly, for end-to-end checks of DI*.
///
/// Diffused at (α, σ), component k is N(α μ_k, v I) with v = α² s² + σ², so
///   score(x) = −(x − α Σ_k r_k(x) μ_k)/v,   r = softmax_k(log w_k − ‖x − α μ_k‖²/(2v)),
///   ε̂(x) = −σ score(x).

#include <diffinstruct/core/checks.hpp>

#include <cmath>

namespace diffinstruct {
namespace testing {

struct GaussianMixture {
  torch::Tensor means;  ///< [K, D]
  double std = 0.1;     ///< per-component standard deviation s

  /// K modes evenly spaced on a circle of the given radius (the classic 8-Gaussian ring by default).
  static GaussianMixture ring(int64_t k = 8, double radius = 2.0, double std = 0.1,
                              torch::Dtype dtype = torch::kFloat32) {
    const auto angle = torch::arange(k, torch::kFloat64) * (2 * M_PI / static_cast<double>(k));
    return {torch::stack({radius * torch::cos(angle), radius * torch::sin(angle)}, 1).to(dtype), std};
  }

  int64_t modes() const { return means.size(0); }

  /// Exact ε̂ of the diffused mixture at x_t [B, D]; `log_weights` [B, K] restricts or reweights the
  /// components per sample (−inf drops a component); undefined = uniform.
  torch::Tensor eps(const torch::Tensor& x_t, const torch::Tensor& alpha, const torch::Tensor& sigma,
                    const torch::Tensor& log_weights = {}) const {
    const auto mu = means.to(x_t.options());
    const auto a = alpha.reshape({-1, 1}), s = sigma.reshape({-1, 1});
    const auto v = a * a * (std * std) + s * s;                            // [B, 1]
    const auto centred = x_t.unsqueeze(1) - a.unsqueeze(2) * mu.unsqueeze(0);  // [B, K, D]
    auto logits = -centred.pow(2).sum(2) / (2 * v);                        // [B, K]
    if (log_weights.defined()) logits = logits + log_weights;
    const auto r = torch::softmax(logits, 1);
    const auto mean = a * torch::matmul(r, mu);                            // [B, D]
    return s * (x_t - mean) / v;
  }

  /// n samples, with the given generator.
  torch::Tensor sample(int64_t n, at::Generator gen) const {
    const auto idx = torch::randint(modes(), {n}, gen, torch::kLong);
    return means.index_select(0, idx) + std * torch::randn({n, means.size(1)}, gen, means.options());
  }

  /// Index of the nearest mode [N] and the distance to it [N].
  std::pair<torch::Tensor, torch::Tensor> nearest(const torch::Tensor& x) const {
    const auto d = torch::cdist(x.to(means.dtype()), means);
    const auto m = d.min(1);
    return {std::get<1>(m), std::get<0>(m)};
  }
};

} // namespace testing
} // namespace diffinstruct
