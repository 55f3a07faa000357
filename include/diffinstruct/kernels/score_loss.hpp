#pragma once
/// \file Backend dispatch for the score-divergence surrogate: the seam where fused kernels plug in.
///
/// `score_loss` is what the divergence policies call. `KernelBackend::kAuto` picks the fastest
/// implementation for the inputs, by device: the fused CUDA kernels for GPU tensors (float, half,
/// bfloat16) when the program links `diffinstruct::cuda`, the fused CPU kernel for CPU tensors
/// (float, double, bfloat16, half), and otherwise the reference composition of ATen ops. Inputs whose
/// e, σ or w need a gradient always take the reference. `kReference` forces the oracle; `kFused`
/// demands a fused kernel and throws with the reason when none applies.

#include <diffinstruct/kernels/fused_score_loss.hpp>
#include <diffinstruct/kernels/reference/score_loss.hpp>

namespace diffinstruct {

/// Which implementation computes the score-divergence surrogate.
enum class KernelBackend {
  kAuto,       ///< the fastest available for the inputs (fused when it applies, else reference)
  kReference,  ///< plain ATen ops, always available (the test oracle)
  kFused,      ///< a fused kernel or an error saying why none applies
};

/// The closed-form distances that have a dedicated (fused) surrogate.
/// The values are the kernels' `distance` argument (0 = pseudo-Huber, 1 = squared L2).
enum class ScoreDistanceKind { kPseudoHuber = 0, kSquaredL2 = 1 };
static_assert(static_cast<int>(ScoreDistanceKind::kSquaredL2) == static_cast<int>(kernels::cpu::Distance::kSquaredL2) &&
                  static_cast<int>(ScoreDistanceKind::kPseudoHuber) == static_cast<int>(kernels::cpu::Distance::kPseudoHuber),
              "ScoreDistanceKind and the kernels' distance codes must agree");

/// Per-sample score-divergence surrogate [B]; `param` is c (pseudo-Huber) or SiD's α (squared L2).
inline torch::Tensor score_loss(ScoreDistanceKind kind, const torch::Tensor& a, const torch::Tensor& b,
                                const torch::Tensor& e, const torch::Tensor& sigma, const torch::Tensor& w, double param,
                                KernelBackend backend = KernelBackend::kAuto) {
  if (backend != KernelBackend::kReference) {
    const std::string why_not = detail::fused_unavailable_reason(a, b, e, sigma, w);
    if (why_not.empty()) return detail::FusedScoreLoss::apply(a, b, e, sigma, w, param, static_cast<int64_t>(kind));
    TORCH_CHECK(backend != KernelBackend::kFused, "diffinstruct::score_loss: no fused kernel for ", why_not,
                "; use KernelBackend::kAuto or kReference");
  }
  switch (kind) {
    case ScoreDistanceKind::kPseudoHuber: return reference::pseudo_huber_score_loss(a, b, e, sigma, w, param);
    case ScoreDistanceKind::kSquaredL2: return reference::squared_l2_score_loss(a, b, e, sigma, w, param);
  }
  TORCH_INTERNAL_ASSERT(false, "unknown ScoreDistanceKind");
}

} // namespace diffinstruct
