#pragma once
/// \file A 2-D (or D-dimensional) mixture of isotropic Gaussians whose diffused score is exact at
/// every time (docs/math.md §5): a teacher known exactly, for end-to-end checks of DI*.
///
/// Diffused at (α, σ), component k is N(α μ_k, v I) with v = α² s² + σ², so
///   score(x) = −(x − α Σ_k r_k(x) μ_k)/v,   r = softmax_k(log w_k − ‖x − α μ_k‖²/(2v)),
///   ε̂(x) = −σ score(x).

#include <diffinstruct/core/checks.hpp>

#include <cmath>
#include <utility>
#include <vector>

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

  /// How samples spread over the modes.
  struct ModeStats {
    std::vector<double> mass;  ///< fraction of on-support samples at each mode (sums to 1 − off_support)
    int64_t covered = 0;       ///< modes holding at least `min_mass` of the samples
    double entropy = 0;        ///< entropy (nats) of the on-support mode distribution; log K is the maximum
    double off_support = 0;    ///< fraction farther than `radius` from every mode
  };

  /// A sample counts at a mode when within `radius` of it (default 5 standard deviations).
  ModeStats mode_stats(const torch::Tensor& x, double radius = -1, double min_mass = 0.02) const {
    if (radius <= 0) radius = 5 * std;
    const auto [idx, dist] = nearest(x);
    const auto on = dist <= radius;
    const double n = static_cast<double>(x.size(0));
    ModeStats s;
    s.off_support = 1.0 - on.sum().item<double>() / n;
    const auto counts = torch::bincount(idx.masked_select(on), {}, modes()).to(torch::kFloat64);
    const double on_total = counts.sum().item<double>();
    for (int64_t k = 0; k < modes(); ++k) {
      const double m = counts[k].item<double>() / n;
      s.mass.push_back(m);
      s.covered += m >= min_mass;
      if (on_total > 0 && counts[k].item<double>() > 0) {
        const double p = counts[k].item<double>() / on_total;
        s.entropy -= p * std::log(p);
      }
    }
    return s;
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
