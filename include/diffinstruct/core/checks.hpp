#pragma once
/// \file Input validation shared by every component.
///
/// Every check names the component (e.g. "PseudoHuberScore"), the argument, what was expected and
/// what came, so that a user reading the exception knows which call to fix.

#include <torch/torch.h>

#include <string>

namespace diffinstruct {
namespace detail {

inline std::string shape_str(const torch::Tensor& t) {
  if (!t.defined()) return "<undefined>";
  return c10::str(t.sizes());
}

inline void check_defined(const torch::Tensor& t, const char* component, const char* name) {
  TORCH_CHECK(t.defined(), "diffinstruct::", component, ": expected a defined tensor for `", name,
              "`, got an undefined tensor");
}

inline void check_floating(const torch::Tensor& t, const char* component, const char* name) {
  check_defined(t, component, name);
  TORCH_CHECK(t.is_floating_point(), "diffinstruct::", component, ": expected a floating-point `",
              name, "`, got dtype ", t.scalar_type());
}

/// A batch tensor: at least one dimension, and at least one sample.
inline void check_batch(const torch::Tensor& t, const char* component, const char* name) {
  check_floating(t, component, name);
  TORCH_CHECK(t.dim() >= 1, "diffinstruct::", component, ": expected `", name,
              "` with a leading batch dimension, got a 0-dim tensor");
  TORCH_CHECK(t.size(0) > 0, "diffinstruct::", component, ": expected a non-empty batch for `", name,
              "`, got shape ", t.sizes());
}

inline void check_same_shape(const torch::Tensor& ref, const torch::Tensor& t, const char* component,
                             const char* ref_name, const char* name) {
  check_defined(t, component, name);
  TORCH_CHECK(ref.sizes() == t.sizes(), "diffinstruct::", component, ": expected `", name,
              "` to have the shape of `", ref_name, "` ", ref.sizes(), ", got ", t.sizes());
}

inline void check_same_options(const torch::Tensor& ref, const torch::Tensor& t, const char* component,
                               const char* ref_name, const char* name) {
  check_defined(t, component, name);
  TORCH_CHECK(ref.scalar_type() == t.scalar_type(), "diffinstruct::", component, ": expected `", name,
              "` to have dtype ", ref.scalar_type(), " like `", ref_name, "`, got ", t.scalar_type());
  TORCH_CHECK(ref.device() == t.device(), "diffinstruct::", component, ": expected `", name,
              "` on device ", ref.device(), " like `", ref_name, "`, got ", t.device());
}

/// `t` has the shape, dtype and device of `ref`.
inline void check_like(const torch::Tensor& ref, const torch::Tensor& t, const char* component,
                       const char* ref_name, const char* name) {
  check_same_shape(ref, t, component, ref_name, name);
  check_same_options(ref, t, component, ref_name, name);
}

/// A per-sample quantity (σ_t, α_t, w(t), t): shape [B] or a 0-dim scalar, same dtype and device as
/// the batch tensor `ref`.
inline void check_per_sample(const torch::Tensor& ref, const torch::Tensor& v, const char* component,
                             const char* name) {
  check_floating(v, component, name);
  const int64_t batch = ref.size(0);
  TORCH_CHECK(v.dim() == 0 || (v.dim() == 1 && v.size(0) == batch), "diffinstruct::", component,
              ": expected `", name, "` of shape [", batch, "] (one value per sample) or a scalar, got ",
              v.sizes());
  check_same_options(ref, v, component, "the batch", name);
}

inline void check_finite(const torch::Tensor& t, const char* component, const char* name) {
  TORCH_CHECK(torch::isfinite(t).all().item<bool>(), "diffinstruct::", component,
              ": expected finite values in `", name, "`, got ",
              torch::isnan(t).sum().item<int64_t>(), " NaN and ", torch::isinf(t).sum().item<int64_t>(),
              " infinite entries (shape ", t.sizes(), ")");
}

/// Every entry of `t` is finite and > 0 (one device read-back).
inline void check_positive_values(const torch::Tensor& t, const char* component, const char* name) {
  if (t.numel() == 0) return;
  const auto lo = t.min().to(torch::kCPU, torch::kFloat64).item<double>();
  TORCH_CHECK(std::isfinite(lo) && lo > 0 && torch::isfinite(t).all().item<bool>(), "diffinstruct::", component, ": expected ",
              name, " > 0 and finite for every sample, got min ", lo);
}

inline void check_positive(double value, const char* component, const char* name) {
  TORCH_CHECK(std::isfinite(value) && value > 0.0, "diffinstruct::", component, ": expected ", name,
              " > 0, got ", value);
}

} // namespace detail

/// Reshapes a per-sample vector [B] (or a scalar) so that it broadcasts against a batch tensor of
/// `like`'s rank: [B] -> [B, 1, ..., 1].
inline torch::Tensor per_sample(const torch::Tensor& v, const torch::Tensor& like) {
  if (v.dim() == 0) return v;
  std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[0] = v.size(0);
  return v.reshape(shape);
}

/// Sum over every non-batch dimension: the library's reduction convention (docs/math.md §2.4) is "sum over
/// the dimensions of one sample, mean over the batch".
inline torch::Tensor sum_per_sample(const torch::Tensor& t) {
  return t.reshape({t.size(0), -1}).sum(1);
}

} // namespace diffinstruct
