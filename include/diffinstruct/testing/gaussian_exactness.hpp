#pragma once
/// \file The Gaussian exactness problem of docs/math.md §5: a check that a divergence surrogate's
/// gradient is the divergence's true gradient, on a problem where every score is known exactly.
///
/// Generator x0 = m + e^l z (location m ∈ R^D, log-scale l), teacher N(μ_c, s_c² I) (conditional) and
/// N(μ_u, s_u² I) (unconditional), all diffused at one time (α, σ): each diffused density is
/// N(α μ, (α² s² + σ²) I), whose score s(x) = −A x + b is linear. The assistant is the generator's
/// exact diffused score, with its parameters frozen and autograd through its input.
///
/// For each sample the library's surrogate gradient with respect to (m, l) is computed by autograd
/// through x0; the truth is
///   * score divergences: E_{x~p_θ,t}[d'(y)ᵀ ∂s_θ(x)/∂θ] (docs/math.md §5), estimated on the SAME draws
///     with the analytic ∂s_θ/∂θ (paired, so the difference has a small standard error), or in closed
///     form for squared L2;
///   * KL: the derivative of the closed-form Gaussian KL (in its DI form E[(s_p − s_tgt)ᵀ ∂x_t/∂θ]);
///   * CFG outside: the closed-form derivative of α_cfg·w·E[−log q_c(x_t)/q_u(x_t)].
/// Not part of `di_star.hpp`: a verification kit for tests, the exactness demo, and users who want
/// to check a divergence of their own.

#include <diffinstruct/di_star.hpp>

#include <cmath>
#include <type_traits>

namespace diffinstruct {
namespace testing {

/// A linear score s(x) = −A x + b (A a scalar, b a [D] vector); ε̂(x) = −σ s(x).
struct LinearScore {
  double A = 1.0;
  torch::Tensor b;
  torch::Tensor score(const torch::Tensor& x) const { return -A * x + b; }
  torch::Tensor eps(const torch::Tensor& x, double sigma) const { return -sigma * score(x); }
};

/// The Gaussian problem at one time t (float64 throughout).
struct GaussianProblem {
  double alpha = std::sqrt(0.5), sigma = std::sqrt(0.5), w = 0.5;  ///< α_t, σ_t, w(t)
  torch::Tensor m;                                                 ///< generator location [D]
  double l = std::log(0.5);                                        ///< generator log-scale
  torch::Tensor mu_c;                                              ///< conditional teacher mean [D]
  double s_c = 1.2;                                                ///< conditional teacher std
  torch::Tensor mu_u;                                              ///< unconditional teacher mean [D]
  double s_u = 1.5;                                                ///< unconditional teacher std

  int64_t dim() const { return m.size(0); }
  double v_gen() const { return alpha * alpha * std::exp(2 * l) + sigma * sigma; }
  LinearScore diffused(const torch::Tensor& mu, double s) const {
    const double v = alpha * alpha * s * s + sigma * sigma;
    return {1.0 / v, alpha * mu / v};
  }
  LinearScore generator_score() const { return diffused(m, std::exp(l)); }
  LinearScore cond_score() const { return diffused(mu_c, s_c); }
  LinearScore uncond_score() const { return diffused(mu_u, s_u); }
  /// s_c + α_cfg (s_c − s_u): the score CFG-inside distils towards.
  LinearScore guided_score(double cfg) const {
    const auto c = cond_score(), u = uncond_score();
    return {(1 + cfg) * c.A - cfg * u.A, (1 + cfg) * c.b - cfg * u.b};
  }

  /// A problem in `dim` dimensions with fixed, asymmetric parameters and time t = 0.5 of the
  /// cosine VP schedule with offset 0 (α = σ = √½), w = σ².
  static GaussianProblem make(int64_t dim) {
    TORCH_CHECK(dim >= 1, "diffinstruct::testing::GaussianProblem: expected dim >= 1, got ", dim);
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    const auto k = torch::arange(dim, f64);
    GaussianProblem p;
    p.m = 0.3 * torch::cos(1.7 * k);
    p.mu_c = 1.0 - 0.4 * torch::sin(0.9 * k + 0.3);
    p.mu_u = 0.2 * torch::cos(0.5 * k + 1.0);
    return p;
  }
};

/// Per-component Monte-Carlo mean and standard error, components ordered (m_1..m_D, l).
struct GradientEstimate {
  torch::Tensor mean;  ///< [D + 1]
  torch::Tensor se;    ///< [D + 1] (zero for a closed form)
};

struct ExactnessResult {
  GradientEstimate surrogate;   ///< the library's surrogate gradient
  GradientEstimate truth;       ///< the divergence's true gradient
  GradientEstimate difference;  ///< surrogate − truth (paired when the truth is Monte Carlo)
  bool truth_is_closed_form = false;

  /// |difference| / standard error per component. The standard error is floored at 1e-9 of the
  /// gradient's size: where surrogate and truth coincide sample by sample (e.g. the location gradient
  /// of the detached control), the paired difference is float64 round-off, not a discrepancy.
  torch::Tensor z() const {
    const auto floor = 1e-9 * (surrogate.mean.abs() + truth.mean.abs()) + 1e-300;
    return difference.mean.abs() / torch::max(difference.se, floor);
  }
  /// max over components of z().
  double max_z() const { return z().max().item<double>(); }
  /// The check used by the tests and the demo: every component within `k` standard errors.
  bool agrees(double k = 5.0) const { return max_z() <= k; }
};

namespace detail {

inline GradientEstimate estimate(const torch::Tensor& per_sample) {
  const double n = static_cast<double>(per_sample.size(0));
  return {per_sample.mean(0), per_sample.std(0) / std::sqrt(n)};
}

/// The guidance placement of a shipped guidance policy.
template <class G>
constexpr int placement() {
  if constexpr (std::is_same_v<G, CfgInside>) return 1;
  else if constexpr (std::is_same_v<G, CfgOutside>) return 2;
  else return 0;
}

template <class G>
double cfg_scale(const G& g) {
  if constexpr (placement<G>() == 0) return 0.0;
  else return g.options().alpha_cfg();
}

/// E[s(x)ᵀ ∂x_t/∂θ] under x_t = α(m + e^l z) + σ ε, for a linear score; layout (m, l).
inline torch::Tensor expected_score_push(const GaussianProblem& p, const LinearScore& s) {
  const double a = p.alpha, e2l = std::exp(2 * p.l);
  const auto gm = a * (-s.A * a * p.m + s.b);
  const double gl = -s.A * a * a * e2l * static_cast<double>(p.dim());
  return torch::cat({gm, torch::full({1}, gl, gm.options())});
}

/// Closed-form CFG-outside gradient: α_cfg w E[−(s_c − s_u)ᵀ ∂x_t/∂θ].
inline torch::Tensor cfg_outside_truth(const GaussianProblem& p, double cfg) {
  const auto c = p.cond_score(), u = p.uncond_score();
  const LinearScore diff{c.A - u.A, c.b - u.b};
  return -cfg * p.w * expected_score_push(p, diff);
}

/// Closed-form KL gradient towards a linear target: w (E[s_pᵀ ∂x/∂θ] − E[s_tgtᵀ ∂x/∂θ]).
inline torch::Tensor kl_truth(const GaussianProblem& p, const LinearScore& target) {
  return p.w * (expected_score_push(p, p.generator_score()) - expected_score_push(p, target));
}

/// Closed-form Fisher (squared-L2) gradient E[2yᵀ ∂s_θ/∂θ] towards a linear target.
inline torch::Tensor fisher_truth(const GaussianProblem& p, const LinearScore& target) {
  const double a = p.alpha, v = p.v_gen(), e2l = std::exp(2 * p.l), D = static_cast<double>(p.dim());
  const auto gm = 2 * p.w * (a / v) * (target.A * a * p.m - target.b);
  const double gl = 4 * p.w * D * a * a * e2l * (target.A - 1 / v) / v;
  return torch::cat({gm, torch::full({1}, gl, gm.options())});
}

/// Per-sample truth E[d'(y)ᵀ ∂s_θ/∂θ] for a distance, on given draws: [N, D + 1].
template <class Distance>
torch::Tensor score_truth_per_sample(const GaussianProblem& p, const LinearScore& target, const Distance& distance,
                                     const torch::Tensor& z, const torch::Tensor& eps) {
  const double a = p.alpha, v = p.v_gen(), e2l = std::exp(2 * p.l);
  const auto x = a * (p.m + std::exp(p.l) * z) + p.sigma * eps;
  const auto u = x - a * p.m;
  const auto y = -u / v - target.score(x);
  const auto d = distance.grad(y);
  const auto gm = p.w * d * (a / v);
  const auto gl = p.w * (d * u).sum(1, true) * (2 * a * a * e2l / (v * v));
  return torch::cat({gm, gl}, 1);
}

/// The library's per-sample surrogate gradient with respect to (m, l): [N, D + 1].
template <class Divergence, class Guidance>
torch::Tensor surrogate_per_sample(const Divergence& div, const Guidance& guid, const GaussianProblem& p,
                                   const torch::Tensor& z, const torch::Tensor& eps) {
  const int64_t n = z.size(0);
  const auto opts = z.options();
  const double scale = std::exp(p.l);
  // Each sample's loss depends on its own x0 only, so ∂(Σ L)/∂x0 holds every per-sample gradient.
  const auto x0 = (p.m + scale * z).detach().requires_grad_(true);
  const auto alpha = torch::full({n}, p.alpha, opts), sigma = torch::full({n}, p.sigma, opts);
  const auto x_t = diffuse(x0, alpha, sigma, eps);
  GeneratorLossInputs in;
  in.assistant_eps = p.generator_score().eps(x_t, p.sigma);  // frozen parameters, live input
  in.eps_cond = p.cond_score().eps(x_t, p.sigma);
  if constexpr (Guidance::needs_unconditional) in.eps_uncond = p.uncond_score().eps(x_t, p.sigma);
  in.noise = eps;
  in.x_t = x_t;
  in.x0 = x0;
  in.alpha = alpha;
  in.sigma = sigma;
  in.w = torch::full({n}, p.w, opts);
  const auto total = generator_loss(div, guid, in, /*check_values=*/false).total;
  const auto gx = torch::autograd::grad({total.sum()}, {x0})[0];
  return torch::cat({gx, (gx * (scale * z)).sum(1, true)}, 1);
}

} // namespace detail

/// Surrogate versus truth for a score divergence whose true distance is `truth_distance` (the
/// distance the surrogate claims to implement; a wrong surrogate is caught by comparing to it).
/// `n` draws in chunks of `chunk`, seeded by `seed`.
template <class Divergence, class Guidance, class Distance>
ExactnessResult check_score_exactness(const Divergence& div, const Guidance& guid, const Distance& truth_distance,
                                      const GaussianProblem& p, int64_t n, uint64_t seed, int64_t chunk = 1 << 18) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const int place = detail::placement<Guidance>();
  const double cfg = detail::cfg_scale(guid);
  const auto target = place == 1 ? p.guided_score(cfg) : p.cond_score();
  const auto extra = place == 2 ? detail::cfg_outside_truth(p, cfg) : torch::zeros({p.dim() + 1}, f64);
  constexpr bool closed = std::is_same_v<Distance, SquaredL2Distance>;

  std::vector<torch::Tensor> sur, tru;
  for (int64_t done = 0; done < n; done += chunk) {
    const int64_t b = std::min(chunk, n - done);
    const auto z = torch::randn({b, p.dim()}, gen, f64);
    const auto eps = torch::randn({b, p.dim()}, gen, f64);
    sur.push_back(detail::surrogate_per_sample(div, guid, p, z, eps));
    if (!closed) tru.push_back(detail::score_truth_per_sample(p, target, truth_distance, z, eps) + extra);
  }
  const auto s = torch::cat(sur);
  ExactnessResult r;
  r.surrogate = detail::estimate(s);
  if constexpr (closed) {
    const auto truth = detail::fisher_truth(p, target) + extra;
    r.truth = {truth, torch::zeros_like(truth)};
    r.difference = {r.surrogate.mean - truth, r.surrogate.se};
    r.truth_is_closed_form = true;
  } else {
    const auto t = torch::cat(tru);
    r.truth = detail::estimate(t);
    r.difference = detail::estimate(s - t);
  }
  return r;
}

/// Surrogate versus the closed-form gradient of the Gaussian KL (plus CFG-outside term).
template <class Divergence, class Guidance>
ExactnessResult check_kl_exactness(const Divergence& div, const Guidance& guid, const GaussianProblem& p, int64_t n,
                                   uint64_t seed, int64_t chunk = 1 << 18) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const int place = detail::placement<Guidance>();
  const double cfg = detail::cfg_scale(guid);
  const auto target = place == 1 ? p.guided_score(cfg) : p.cond_score();
  auto truth = detail::kl_truth(p, target);
  if (place == 2) truth = truth + detail::cfg_outside_truth(p, cfg);

  std::vector<torch::Tensor> sur;
  for (int64_t done = 0; done < n; done += chunk) {
    const int64_t b = std::min(chunk, n - done);
    const auto z = torch::randn({b, p.dim()}, gen, f64);
    const auto eps = torch::randn({b, p.dim()}, gen, f64);
    sur.push_back(detail::surrogate_per_sample(div, guid, p, z, eps));
  }
  ExactnessResult r;
  r.surrogate = detail::estimate(torch::cat(sur));
  r.truth = {truth, torch::zeros_like(truth)};
  r.difference = {r.surrogate.mean - truth, r.surrogate.se};
  r.truth_is_closed_form = true;
  return r;
}

/// A distance whose d'(y) is detached: the classic mistake, used as the negative control.
template <class Distance>
struct DetachedDistance {
  static constexpr const char* name = "detached";
  Distance inner;
  torch::Tensor grad(const torch::Tensor& y) const { return inner.grad(y).detach(); }
};

} // namespace testing
} // namespace diffinstruct
