#pragma once
/// \file Per-sample math of the score-divergence surrogates, shared by the CPU and CUDA kernels
/// (host/device, scalar type T, no torch).
///
/// After two per-sample reductions, yy = ‖y‖² and yg = ⟨y, g⟩ (y = (b − a)/σ, g = (a − e)/σ), the
/// loss and both input gradients are elementwise:
///   ∂L/∂a = ya · y + ga · g,     ∂L/∂b = yb · y + gb · g      (times the upstream gradient)
/// pseudo-Huber (docs/math.md §2.1), r = √(yy + c²):
///   L = w yg / r,  ya = (w/(σ r))(1 + yg/r²),  ga = −w/(σ r),  yb = −w yg/(σ r³),  gb = w/(σ r)
/// squared L2 with SiD's α:
///   L = 2w yg + (1 − α) w yy,  ya = 2wα/σ,  ga = −2w/σ,  yb = 2w(1 − α)/σ,  gb = 2w/σ

#include <diffinstruct/config.hpp>

#include <cmath>

namespace diffinstruct {
namespace kernels {

/// The loss of one sample and the coefficients of its input gradients.
template <class T>
struct ScoreLossCoefficients {
  T loss;
  T ya, ga;  ///< ∂L/∂a = ya·y + ga·g
  T yb, gb;  ///< ∂L/∂b = yb·y + gb·g
};

template <class T>
DIFFINSTRUCT_HOST_DEVICE inline ScoreLossCoefficients<T> pseudo_huber_coefficients(T yy, T yg, T sigma, T w, T c) {
  const T r2 = yy + c * c;
  const T r = std::sqrt(r2);
  const T k = w / (sigma * r);
  return {w * yg / r, k * (T(1) + yg / r2), -k, -k * yg / r2, k};
}

template <class T>
DIFFINSTRUCT_HOST_DEVICE inline ScoreLossCoefficients<T> squared_l2_coefficients(T yy, T yg, T sigma, T w, T sid_alpha) {
  const T k = T(2) * w / sigma;
  return {T(2) * w * yg + (T(1) - sid_alpha) * w * yy, k * sid_alpha, -k, k * (T(1) - sid_alpha), k};
}

} // namespace kernels
} // namespace diffinstruct
