#pragma once
/// \file Fréchet distance between two Gaussians fitted to feature sets (the FID formula, in any
/// feature space):  FD = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}).
/// Computed in double with Eigen's symmetric eigensolver: the inner matrix is symmetric positive
/// semi-definite, so its square root's trace is Σ √λᵢ (tiny negative eigenvalues from rounding are
/// clamped to 0). This avoids the general (non-symmetric) matrix square root of Σ₁Σ₂.

#include <torch/torch.h>

#include <Eigen/Dense>

namespace diffinstruct {

/// Mean and covariance (unbiased) of features [N, D].
struct GaussianStats {
  Eigen::VectorXd mean;
  Eigen::MatrixXd cov;
};

inline GaussianStats gaussian_stats(const torch::Tensor& features) {
  TORCH_CHECK(features.dim() == 2 && features.size(0) >= 2, "diffinstruct::gaussian_stats: expected features [N >= 2, D], got ",
              features.sizes());
  const auto f = features.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  TORCH_CHECK(torch::isfinite(f).all().item<bool>(), "diffinstruct::gaussian_stats: features hold non-finite values");
  const int64_t n = f.size(0), d = f.size(1);
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> x(f.data_ptr<double>(), n, d);
  GaussianStats s;
  s.mean = x.colwise().mean().transpose();
  const Eigen::MatrixXd centred = x.rowwise() - s.mean.transpose();
  s.cov = (centred.transpose() * centred) / static_cast<double>(n - 1);
  return s;
}

/// Symmetric PSD square root via eigen-decomposition.
inline Eigen::MatrixXd psd_sqrt(const Eigen::MatrixXd& m) {
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(0.5 * (m + m.transpose()));
  TORCH_CHECK(eig.info() == Eigen::Success, "diffinstruct::psd_sqrt: eigen-decomposition failed");
  return eig.eigenvectors() * eig.eigenvalues().cwiseMax(0.0).cwiseSqrt().asDiagonal() * eig.eigenvectors().transpose();
}

inline double frechet_distance(const GaussianStats& a, const GaussianStats& b) {
  TORCH_CHECK(a.mean.size() == b.mean.size(), "diffinstruct::frechet_distance: feature sizes differ (", a.mean.size(), " vs ",
              b.mean.size(), ")");
  const Eigen::MatrixXd root_a = psd_sqrt(a.cov);
  const Eigen::MatrixXd inner = root_a * b.cov * root_a;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(0.5 * (inner + inner.transpose()), Eigen::EigenvaluesOnly);
  TORCH_CHECK(eig.info() == Eigen::Success, "diffinstruct::frechet_distance: eigen-decomposition failed");
  const double cross = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  return (a.mean - b.mean).squaredNorm() + a.cov.trace() + b.cov.trace() - 2.0 * cross;
}

/// FD between two feature sets [N, D] and [M, D].
inline double frechet_distance(const torch::Tensor& features_a, const torch::Tensor& features_b) {
  return frechet_distance(gaussian_stats(features_a), gaussian_stats(features_b));
}

}  // namespace diffinstruct
