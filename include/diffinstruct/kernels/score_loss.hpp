#pragma once
/// \file Backend dispatch for the score-divergence surrogate: the seam where fused kernels plug in.
///
/// `score_loss` is what the divergence policies call. `KernelBackend::kAuto` picks the fastest
/// implementation for the inputs: the fused CPU kernel for CPU tensors (float, double, bfloat16,
/// half) whose e, σ and w need no gradient, else the reference composition of ATen ops. (The CUDA
/// kernels, when built, will slot in before the CPU one.) `kReference` always forces the oracle;
/// `kFused` demands a fused kernel and throws when none applies.

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
enum class ScoreDistanceKind { kPseudoHuber, kSquaredL2 };

/// Per-sample score-divergence surrogate [B]; `param` is c (pseudo-Huber) or SiD's α (squared L2).
inline torch::Tensor score_loss(ScoreDistanceKind kind, const torch::Tensor& a, const torch::Tensor& b,
                                const torch::Tensor& e, const torch::Tensor& sigma, const torch::Tensor& w, double param,
                                KernelBackend backend = KernelBackend::kAuto) {
  if (backend != KernelBackend::kReference) {
    if (detail::fused_cpu_applies(a, b, e, sigma, w)) {
      const auto d = kind == ScoreDistanceKind::kPseudoHuber ? kernels::cpu::Distance::kPseudoHuber
                                                             : kernels::cpu::Distance::kSquaredL2;
      return detail::FusedScoreLossCpu::apply(a, b, e, sigma, w, param, static_cast<int64_t>(d));
    }
    TORCH_CHECK(backend != KernelBackend::kFused, "diffinstruct::score_loss: no fused kernel for inputs on ", a.device(), " with dtype ",
                a.scalar_type(), (e.requires_grad() || sigma.requires_grad() || w.requires_grad())
                                     ? " where e, sigma or w require gradients (the fused kernel treats them as constants)"
                                     : "", "; use KernelBackend::kAuto or kReference");
  }
  switch (kind) {
    case ScoreDistanceKind::kPseudoHuber: return reference::pseudo_huber_score_loss(a, b, e, sigma, w, param);
    case ScoreDistanceKind::kSquaredL2: return reference::squared_l2_score_loss(a, b, e, sigma, w, param);
  }
  TORCH_INTERNAL_ASSERT(false, "unknown ScoreDistanceKind");
}

} // namespace diffinstruct
