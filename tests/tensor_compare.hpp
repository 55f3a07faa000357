// Comparing sets of tensors (parameters, gradients) in the tests: copies, bit-identity, relative size
// of a difference. One copy for every test file.
#pragma once
#include <torch/torch.h>

#include <cmath>
#include <vector>

namespace test_util {

/// Detached copies (the values now, whatever happens to the tensors later).
inline std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
}

/// Same count, and every pair bit-identical (on any device).
inline bool identical(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i].cpu(), b[i].cpu())) return false;
  }
  return true;
}

/// ‖a − b‖ / ‖b‖ over all the tensors together, in float64.
inline double relative_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto bi = b[i].detach().cpu().to(torch::kDouble);
    num += (a[i].detach().cpu().to(torch::kDouble) - bi).pow(2).sum().item<double>();
    den += bi.pow(2).sum().item<double>();
  }
  return std::sqrt(num / (den + 1e-300));
}

}  // namespace test_util
