#pragma once
/// \file Which leaf tensors requiring grad a loss's autograd graph reaches, besides the parameters
/// being trained: the check that frozen models really are frozen, even those a plain callable hides.

#include <torch/csrc/autograd/functions/accumulate_grad.h>
#include <torch/torch.h>

#include <unordered_set>
#include <vector>

namespace diffinstruct {
namespace detail {

/// Leaves of `loss`'s graph that require grad and are not in `trained`, in discovery order. Walks the
/// graph once (iteratively); the cost is a visit per autograd node.
inline std::vector<torch::Tensor> foreign_leaves(const torch::Tensor& loss, const std::vector<torch::Tensor>& trained) {
  std::vector<torch::Tensor> out;
  const auto root = loss.grad_fn();
  if (!root) return out;
  std::unordered_set<const void*> allowed;
  for (const auto& p : trained) allowed.insert(p.unsafeGetTensorImpl());
  std::unordered_set<const torch::autograd::Node*> seen{root.get()};
  std::vector<torch::autograd::Node*> stack{root.get()};
  while (!stack.empty()) {
    auto* node = stack.back();
    stack.pop_back();
    if (auto* acc = dynamic_cast<torch::autograd::AccumulateGrad*>(node)) {
      if (!allowed.count(acc->variable.unsafeGetTensorImpl())) out.push_back(acc->variable);
      continue;
    }
    for (const auto& edge : node->next_edges()) {
      auto* next = edge.function.get();
      if (next && seen.insert(next).second) stack.push_back(next);
    }
  }
  return out;
}

} // namespace detail
} // namespace diffinstruct
