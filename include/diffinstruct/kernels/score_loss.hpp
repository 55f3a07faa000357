#pragma once
/// \file Backend dispatch for the score-divergence surrogate: the seam where fused kernels plug in.
///
/// `score_loss` is what the divergence policies call. Today the only backend is the reference
/// composition of ATen ops; fused CPU and CUDA kernels (one pass over memory, same values and
/// gradients) register here, and `KernelBackend::kAuto` will pick fused CUDA → fused CPU →
/// reference by device and availability. `kReference` always forces the oracle.

#include <diffinstruct/kernels/reference/score_loss.hpp>

namespace diffinstruct {

/// Which implementation computes the score-divergence surrogate.
enum class KernelBackend {
  kAuto,       ///< the fastest available for the inputs' device (currently: reference)
  kReference,  ///< plain ATen ops, always available (the test oracle)
};

/// The closed-form distances that have a dedicated (fusable) surrogate.
enum class ScoreDistanceKind { kPseudoHuber, kSquaredL2 };

/// Per-sample score-divergence surrogate [B]; `param` is c (pseudo-Huber) or SiD's α (squared L2).
inline torch::Tensor score_loss(ScoreDistanceKind kind, const torch::Tensor& a, const torch::Tensor& b,
                                const torch::Tensor& e, const torch::Tensor& sigma, const torch::Tensor& w, double param,
                                KernelBackend backend = KernelBackend::kAuto) {
  (void)backend;  // every backend resolves to the reference until fused kernels are registered
  switch (kind) {
    case ScoreDistanceKind::kPseudoHuber: return reference::pseudo_huber_score_loss(a, b, e, sigma, w, param);
    case ScoreDistanceKind::kSquaredL2: return reference::squared_l2_score_loss(a, b, e, sigma, w, param);
  }
  TORCH_INTERNAL_ASSERT(false, "unknown ScoreDistanceKind");
}

} // namespace diffinstruct
