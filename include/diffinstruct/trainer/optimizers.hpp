#pragma once
/// \file The optimizers the trainer builds (Adam, or AdamW for decoupled weight decay), and the
/// check that an optimizer step will not make a weight non-finite, made before the step so that a
/// bad step can be refused instead of undone.

#include <diffinstruct/core/torch_compat.hpp>
#include <diffinstruct/trainer/options.hpp>

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace diffinstruct {
namespace detail {

/// The key under which torch::optim keeps a parameter's state.
inline compat::OptimizerStateKey optimizer_state_key(const torch::Tensor& p) { return compat::optimizer_state_key(p); }

/// Which optimizer the trainer holds: one it built (whose update it can predict) or the user's.
enum class OptimizerKind { kAdam, kAdamW, kUser };

inline OptimizerKind adam_kind(const AdamSettings& s) {
  return s.decoupled_weight_decay() && s.weight_decay() > 0 ? OptimizerKind::kAdamW : OptimizerKind::kAdam;
}

/// Adam (or AdamW when weight decay is decoupled and nonzero) over a parameter list.
inline std::unique_ptr<torch::optim::Optimizer> make_adam(const std::vector<torch::Tensor>& params, const AdamSettings& s) {
  const auto betas = std::make_tuple(s.beta1(), s.beta2());
  if (adam_kind(s) == OptimizerKind::kAdamW) {
    return std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(s.lr()).betas(betas).eps(s.eps()).weight_decay(s.weight_decay()));
  }
  return std::make_unique<torch::optim::Adam>(
      params, torch::optim::AdamOptions(s.lr()).betas(betas).eps(s.eps()).weight_decay(s.weight_decay()));
}

/// Calls fn(param, weights_after_step) for every parameter LibTorch's Adam/AdamW step would update,
/// computing the new weights into a temporary with the step's own formula and order of operations
/// (torch/csrc/api/src/optim/adam{,w}.cpp); nothing is modified. Costs about one optimizer step.
template <class Options, class State, class F>
void for_each_adam_update(torch::optim::Optimizer& opt, bool decoupled, F&& fn) {
  torch::NoGradGuard no_grad;
  for (auto& group : opt.param_groups()) {
    const auto& o = static_cast<const Options&>(group.options());
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      torch::Tensor grad = p.grad();
      int64_t step = 1;
      torch::Tensor m, v, v_max;
      const auto it = opt.state().find(optimizer_state_key(p));
      if (it != opt.state().end()) {
        const auto& st = static_cast<const State&>(*it->second);
        step = st.step() + 1;
        m = st.exp_avg();
        v = st.exp_avg_sq();
        v_max = st.max_exp_avg_sq();
      }
      const double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
      const double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
      torch::Tensor base = p;
      if (o.weight_decay() != 0) {
        if (decoupled) base = p.mul(1 - o.lr() * o.weight_decay());
        else grad = grad.add(p, o.weight_decay());
      }
      // A parameter's first step starts from zero moments, exactly as the optimizer would.
      if (!m.defined()) m = torch::zeros_like(p, torch::MemoryFormat::Preserve);
      if (!v.defined()) v = torch::zeros_like(p, torch::MemoryFormat::Preserve);
      const auto m_new = m.mul(beta1).add_(grad, 1 - beta1);
      auto v_new = v.mul(beta2).addcmul_(grad, grad, 1 - beta2);
      if (o.amsgrad()) v_new = v_max.defined() && v_max.numel() ? torch::max(v_max, v_new) : v_new;
      const auto denom = (v_new.sqrt() / std::sqrt(bc2)).add_(o.eps());
      fn(p, base.addcdiv(m_new, denom, -o.lr() / bc1));
    }
  }
}

/// Calls fn(param, weights_after_step) for the optimizers the trainer builds; false for others.
template <class F>
bool for_each_update(torch::optim::Optimizer& opt, OptimizerKind kind, F&& fn) {
  switch (kind) {
    case OptimizerKind::kAdam:
      for_each_adam_update<torch::optim::AdamOptions, torch::optim::AdamParamState>(opt, false, fn);
      return true;
    case OptimizerKind::kAdamW:
      for_each_adam_update<torch::optim::AdamWOptions, torch::optim::AdamWParamState>(opt, true, fn);
      return true;
    case OptimizerKind::kUser: return false;
  }
  return false;
}

/// Would `opt`'s next step keep every weight finite? Exact for the optimizers the trainer builds
/// (one device read-back); true for others, which are checked after their step instead.
inline bool step_keeps_finite(torch::optim::Optimizer& opt, OptimizerKind kind) {
  std::vector<torch::Tensor> ok;
  if (!for_each_update(opt, kind, [&](const torch::Tensor&, const torch::Tensor& next) { ok.push_back(torch::isfinite(next).all()); }))
    return true;
  return ok.empty() || torch::stack(ok).all().item<bool>();
}

/// Are all of these tensors finite? One device read-back.
inline bool all_finite(const std::vector<torch::Tensor>& tensors) {
  if (tensors.empty()) return true;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> ok;
  ok.reserve(tensors.size());
  for (const auto& t : tensors) ok.push_back(torch::isfinite(t).all());
  return torch::stack(ok).all().item<bool>();
}

} // namespace detail
} // namespace diffinstruct
