#pragma once
/// \file The optimizers the trainer builds (Adam, or AdamW for decoupled weight decay), and the
/// check that an optimizer step will not make a weight non-finite, made before the step so that a
/// bad step can be refused instead of undone.

#include <diffinstruct/core/torch_compat.hpp>
#include <diffinstruct/kernels/cpu/adam_check_cpu.hpp>
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

/// Calls fn(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, scalars) for every parameter LibTorch's
/// Adam/AdamW step would update: its gradient, its moments (undefined before its first step) and the
/// scalars of its next step. Nothing is modified.
template <class Options, class State, class F>
void for_each_adam_param(torch::optim::Optimizer& opt, bool decoupled, F&& fn) {
  for (auto& group : opt.param_groups()) {
    const auto& o = static_cast<const Options&>(group.options());
    kernels::cpu::AdamStepScalars s;
    s.lr = o.lr();
    s.beta1 = std::get<0>(o.betas());
    s.beta2 = std::get<1>(o.betas());
    s.eps = o.eps();
    s.weight_decay = o.weight_decay();
    s.decoupled = decoupled;
    s.amsgrad = o.amsgrad();
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      torch::Tensor m, v, v_max;
      s.step = 1;
      const auto it = opt.state().find(optimizer_state_key(p));
      if (it != opt.state().end()) {
        const auto& st = static_cast<const State&>(*it->second);
        s.step = st.step() + 1;
        m = st.exp_avg();
        v = st.exp_avg_sq();
        v_max = st.max_exp_avg_sq();
      }
      fn(p, p.grad(), m, v, v_max, s);
    }
  }
}

/// The weights after one parameter's step, computed with tensor ops in the step's own formula and
/// order of operations (torch/csrc/api/src/optim/adam{,w}.cpp): the same arithmetic, bit for bit
/// (tested). The reference for the fused CPU check, and the check on other devices. Costs about one
/// optimizer step.
inline torch::Tensor adam_next_weights(const torch::Tensor& p, torch::Tensor grad, torch::Tensor m, torch::Tensor v,
                                       const torch::Tensor& v_max, const kernels::cpu::AdamStepScalars& s) {
  torch::NoGradGuard no_grad;
  const double bc1 = 1 - std::pow(s.beta1, static_cast<double>(s.step));
  const double bc2 = 1 - std::pow(s.beta2, static_cast<double>(s.step));
  torch::Tensor base = p;
  if (s.weight_decay != 0) {
    if (s.decoupled) base = p.mul(1 - s.lr * s.weight_decay);
    else grad = grad.add(p, s.weight_decay);
  }
  // A parameter's first step starts from zero moments, exactly as the optimizer would.
  if (!m.defined()) m = torch::zeros_like(p, torch::MemoryFormat::Preserve);
  if (!v.defined()) v = torch::zeros_like(p, torch::MemoryFormat::Preserve);
  const auto m_new = m.mul(s.beta1).add_(grad, 1 - s.beta1);
  auto v_new = v.mul(s.beta2).addcmul_(grad, grad, 1 - s.beta2);
  if (s.amsgrad) v_new = v_max.defined() && v_max.numel() ? torch::max(v_max, v_new) : v_new;
  const auto denom = (v_new.sqrt() / std::sqrt(bc2)).add_(s.eps);
  return base.addcdiv(m_new, denom, -s.lr / bc1);
}

/// Calls fn(param, weights_after_step) for every parameter the optimizers the trainer builds would
/// update (tensor ops, `adam_next_weights`); false for other optimizers.
template <class F>
bool for_each_update(torch::optim::Optimizer& opt, OptimizerKind kind, F&& fn) {
  auto visit = [&](const torch::Tensor& p, const torch::Tensor& g, const torch::Tensor& m, const torch::Tensor& v, const torch::Tensor& v_max,
                   const kernels::cpu::AdamStepScalars& s) { fn(p, adam_next_weights(p, g, m, v, v_max, s)); };
  switch (kind) {
    case OptimizerKind::kAdam: for_each_adam_param<torch::optim::AdamOptions, torch::optim::AdamParamState>(opt, false, visit); return true;
    case OptimizerKind::kAdamW: for_each_adam_param<torch::optim::AdamWOptions, torch::optim::AdamWParamState>(opt, true, visit); return true;
    case OptimizerKind::kUser: return false;
  }
  return false;
}

/// Would `opt`'s next step keep every weight finite? Exact for the optimizers the trainer builds;
/// true for others, which are checked after their step instead. CPU float32/float64 weights take
/// the fused check (kernels/cpu/adam_check_cpu.hpp: one read, no temporaries); others the tensor
/// ops, with one device read-back for all of them.
inline bool step_keeps_finite(torch::optim::Optimizer& opt, OptimizerKind kind) {
  bool fused_ok = true;
  std::vector<torch::Tensor> ok;
  auto visit = [&](const torch::Tensor& p, const torch::Tensor& g, const torch::Tensor& m, const torch::Tensor& v, const torch::Tensor& v_max,
                   const kernels::cpu::AdamStepScalars& s) {
    if (!fused_ok) return;
    if (kernels::cpu::adam_check_supported(p, g, m, v, v_max)) fused_ok = kernels::cpu::adam_step_keeps_finite(p, g, m, v, v_max, s);
    else ok.push_back(torch::isfinite(adam_next_weights(p, g, m, v, v_max, s)).all());
  };
  switch (kind) {
    case OptimizerKind::kAdam: for_each_adam_param<torch::optim::AdamOptions, torch::optim::AdamParamState>(opt, false, visit); break;
    case OptimizerKind::kAdamW: for_each_adam_param<torch::optim::AdamWOptions, torch::optim::AdamWParamState>(opt, true, visit); break;
    case OptimizerKind::kUser: return true;
  }
  return fused_ok && (ok.empty() || torch::stack(ok).all().item<bool>());
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
