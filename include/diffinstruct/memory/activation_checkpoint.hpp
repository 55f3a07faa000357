#pragma once
/// \file Activation checkpointing for C++ modules, the `torch.utils.checkpoint` LibTorch lacks: run a
/// function without keeping its activations, and recompute them in backward.
///
///   forward:  y = f(x)        under no_grad: only x (the inputs) is kept, not f's intermediates
///   backward: y' = f(x')      recomputed with grad, x' = x detached; then ∂L/∂x and ∂L/∂θ from
///                             autograd::grad(y', (x', θ), ∂L/∂y)
///
/// The recompute sees the same random numbers and the same autocast state as the forward did: the
/// CPU generator's state (and that of every CUDA device an input lives on) is saved in forward,
/// set for the recompute, and the generators are put back afterwards, so dropout drops the same
/// units and the rest of the program's random stream is untouched. Recomputing outside the
/// forward's autocast region would compute different numbers in a different dtype (a known trap of
/// hand-written checkpointing); here the region is restored. So is the set of layer adapters
/// disabled on this thread (core/adapter_context.hpp: a shared-base teacher's pass disables the
/// assistant's LoRA, and its blocks are recomputed after that pass has returned).
///
/// The recompute also runs each module of `modules` in the train/eval mode it had in the forward
/// (a pass that switched a module to evaluation mode for its duration, as a shared-base teacher's
/// does, has restored it before backward runs; the recompute must not see dropout switched on).
///
/// The parameters θ that f reads are passed explicitly (a module's `parameters()`): they become
/// inputs of the checkpoint node, so their gradients come back through the graph. This works with
/// `loss.backward()` and with `torch::autograd::grad(loss, params)` alike (the trainer uses the
/// latter), and for graphs that need input gradients only (a frozen teacher: no θ requires grad).
/// What needs a gradient is decided when the forward runs, as autograd decides for any node: a
/// parameter switched to requires_grad(false) for the forward (the assistant's weights during the
/// generator's update) gets no weight gradient computed in the recompute, whatever its flag is by
/// the time backward runs.
///
/// Example:
///   auto y = checkpoint([&](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{block->forward(in[0])}; },
///                       {x}, block->parameters())[0];
///   auto y = checkpoint_module(block, x);                // the same, for a module with forward(Tensor)

#include <diffinstruct/core/adapter_context.hpp>
#include <diffinstruct/core/module_ref.hpp>
#include <diffinstruct/core/torch_compat.hpp>

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace diffinstruct {

using CheckpointedFn = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;

namespace detail {

/// The random-generator states a recompute must start from.
struct RngSnapshot {
  torch::Tensor cpu;
  std::vector<std::pair<c10::Device, torch::Tensor>> cuda;

  static RngSnapshot take(const std::vector<torch::Tensor>& inputs) {
    RngSnapshot s;
    auto cpu_gen = at::detail::getDefaultCPUGenerator();
    {
      std::lock_guard<std::mutex> lock(cpu_gen.mutex());
      s.cpu = cpu_gen.get_state();
    }
    for (const auto& t : inputs) {
      if (!t.defined() || !t.is_cuda()) continue;
      const auto device = t.device();
      bool seen = false;
      for (const auto& d : s.cuda) seen = seen || d.first == device;
      if (seen) continue;
      auto gen = at::globalContext().defaultGenerator(device);
      std::lock_guard<std::mutex> lock(gen.mutex());
      s.cuda.emplace_back(device, gen.get_state());
    }
    return s;
  }
  void restore() const {
    auto cpu_gen = at::detail::getDefaultCPUGenerator();
    {
      std::lock_guard<std::mutex> lock(cpu_gen.mutex());
      cpu_gen.set_state(cpu);
    }
    for (const auto& [device, state] : cuda) {
      auto gen = at::globalContext().defaultGenerator(device);
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state);
    }
  }
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  // Arguments after ctx: the function, the number of inputs, then inputs followed by params as one
  // list (the list's tensors are the node's differentiable inputs), and the modules whose modes the
  // recompute restores.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, std::shared_ptr<CheckpointedFn> fn, int64_t num_inputs,
                                                at::TensorList inputs_and_params, std::shared_ptr<std::vector<ModuleRef>> modules) {
    std::vector<torch::Tensor> all(inputs_and_params.begin(), inputs_and_params.end());
    const std::vector<torch::Tensor> inputs(all.begin(), all.begin() + num_inputs);
    auto rng = std::make_shared<RngSnapshot>(RngSnapshot::take(inputs));
    const auto autocast = compat::autocast_state();
    auto disabled = detail::disabled_adapters();
    ModeSnapshot modes = ModeSnapshot::take(*modules);
    // What needs a gradient, as it is now (backward may run after flags were restored).
    std::vector<bool> needs_grad;
    for (const auto& t : all) needs_grad.push_back(t.defined() && t.requires_grad());
    std::vector<torch::Tensor> out;
    {
      torch::NoGradGuard no_grad;  // Function::forward runs without grad already; explicit for clarity
      out = (*fn)(inputs);
    }
    ctx->save_for_backward(inputs);
    ctx->saved_data["num_inputs"] = num_inputs;
    // The function, the parameters (the very tensors f reads, so that gradients can be taken with
    // respect to them), the generator states and the autocast state travel with the node.
    const std::vector<torch::Tensor> params(all.begin() + num_inputs, all.end());
    ctx->saved_data["state"] = c10::IValue::make_capsule(
        c10::make_intrusive<Holder>(fn, params, rng, autocast, std::move(disabled), std::move(modes), std::move(needs_grad)));
    for (size_t i = 0; i < out.size(); ++i) {
      TORCH_CHECK(out[i].defined(), "diffinstruct::checkpoint: output ", i, " of the checkpointed function is undefined");
      // An output that aliases an input would be changed in place by autograd's bookkeeping.
      // So would one returned twice: each output of the node needs its own tensor.
      bool aliases = false;
      for (const auto& t : inputs) aliases = aliases || (t.defined() && out[i].is_same(t));
      for (size_t j = 0; j < i; ++j) aliases = aliases || out[i].is_same(out[j]);
      if (aliases) out[i] = out[i].clone();
    }
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const int64_t num_inputs = ctx->saved_data["num_inputs"].toInt();
    const auto holder = c10::static_intrusive_pointer_cast<Holder>(ctx->saved_data["state"].toCapsule());
    const auto& needs_grad = holder->needs_grad;
    std::vector<torch::Tensor> inputs;
    for (int64_t i = 0; i < num_inputs; ++i) {
      const auto& t = saved[static_cast<size_t>(i)];
      inputs.push_back(t.defined() ? t.detach().requires_grad_(needs_grad[static_cast<size_t>(i)]) : t);
    }
    const auto& params = holder->params;
    std::vector<torch::Tensor> outputs;
    {
      // Recompute from the forward's random state, then hand the generators back as they were.
      const RngSnapshot now = RngSnapshot::take(inputs);
      struct PutBack {
        const RngSnapshot& s;
        ~PutBack() { s.restore(); }
      } put_back{now};
      holder->rng->restore();
      compat::AutocastStateGuard autocast(holder->autocast);
      detail::DisabledAdaptersGuard adapters(holder->disabled_adapters);
      ModeGuard modes(holder->modes);
      torch::AutoGradMode grad(true);
      outputs = (*holder->fn)(inputs);
    }
    TORCH_CHECK(outputs.size() == grad_outputs.size(), "diffinstruct::checkpoint: the recompute returned ", outputs.size(),
                " tensors, the forward ", grad_outputs.size(), " (the function must be deterministic in its structure)");
    // What needs a gradient: the inputs and params that required grad when the forward ran.
    std::vector<torch::Tensor> wrt;
    std::vector<size_t> where;
    const size_t total = inputs.size() + params.size();
    for (size_t i = 0; i < total; ++i) {
      const auto& t = i < inputs.size() ? inputs[i] : params[i - inputs.size()];
      if (t.defined() && needs_grad[i]) {
        wrt.push_back(t);
        where.push_back(i);
      }
    }
    std::vector<torch::Tensor> outs, grads;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].requires_grad() && grad_outputs[i].defined()) {
        outs.push_back(outputs[i]);
        grads.push_back(grad_outputs[i]);
      }
    }
    torch::autograd::variable_list result(3 + total);  // fn, num_inputs and modules get no gradient
    if (wrt.empty() || outs.empty()) return result;
    const auto g = torch::autograd::grad(outs, wrt, grads, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t k = 0; k < where.size(); ++k) result[2 + where[k]] = g[k];
    return result;
  }

  struct Holder : torch::CustomClassHolder {
    Holder(std::shared_ptr<CheckpointedFn> f, std::vector<torch::Tensor> p, std::shared_ptr<RngSnapshot> r, compat::AutocastState a,
           DisabledAdapters d, ModeSnapshot m, std::vector<bool> n)
        : fn(std::move(f)), params(std::move(p)), rng(std::move(r)), autocast(a), disabled_adapters(std::move(d)), modes(std::move(m)),
          needs_grad(std::move(n)) {}
    std::shared_ptr<CheckpointedFn> fn;
    std::vector<torch::Tensor> params;
    std::shared_ptr<RngSnapshot> rng;
    compat::AutocastState autocast;
    DisabledAdapters disabled_adapters;
    ModeSnapshot modes;
    std::vector<bool> needs_grad;  // per input, then per param
  };
};

}  // namespace detail

/// Runs `fn(inputs)` keeping only `inputs` for backward, and recomputes `fn` there. `params`: every
/// tensor `fn` reads besides `inputs` that may need a gradient (a module's parameters). `modules`:
/// the modules `fn` runs, recomputed in the train/eval mode they have now. Without grad mode, or
/// when nothing requires grad, it is a plain call.
inline std::vector<torch::Tensor> checkpoint(CheckpointedFn fn, const std::vector<torch::Tensor>& inputs,
                                             const std::vector<torch::Tensor>& params = {}, std::vector<ModuleRef> modules = {}) {
  bool any = false;
  for (const auto& t : inputs) any = any || (t.defined() && t.requires_grad());
  std::vector<torch::Tensor> all(inputs);
  for (const auto& t : params) {
    // A switched-off adapter's parameters are not read by fn (core/adapter_context.hpp).
    if (t.defined() && detail::parameter_of_disabled_adapter(t.unsafeGetTensorImpl())) continue;
    any = any || (t.defined() && t.requires_grad());
    all.push_back(t);
  }
  if (!torch::GradMode::is_enabled() || !any) return fn(inputs);
  return detail::CheckpointFunction::apply(std::make_shared<CheckpointedFn>(std::move(fn)), static_cast<int64_t>(inputs.size()),
                                           at::TensorList(all), std::make_shared<std::vector<ModuleRef>>(std::move(modules)));
}

namespace detail {
template <class Module, size_t... I>
torch::Tensor call_with(Module& module, const std::vector<torch::Tensor>& in, std::index_sequence<I...>) {
  return module->forward(in[I]...);
}
}  // namespace detail

/// `module->forward(args...)` (tensor arguments, one tensor out), checkpointed with the module's parameters.
template <class Module, class... Tensors>
torch::Tensor checkpoint_module(Module& module, const Tensors&... args) {
  return checkpoint(
      [module](const std::vector<torch::Tensor>& in) mutable {
        return std::vector<torch::Tensor>{detail::call_with(module, in, std::index_sequence_for<Tensors...>{})};
      },
      {args...}, module->parameters(), {ModuleRef::of(module)})[0];
}

}  // namespace diffinstruct
