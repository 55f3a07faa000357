#pragma once
/// \file A type-erased reference to a model's module (a torch::nn module or a TorchScript module),
/// so that the trainer can freeze, switch modes of and inspect what a policy holds without knowing
/// its type: the teacher, a reward model, the modules a callable reward captures.

#include <diffinstruct/core/model_traits.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {

/// Refers to (does not copy) one module. Copies refer to the same module.
///
/// Example:
///   ModuleRef vae = ModuleRef::of(decoder);   // a TORCH_MODULE holder, shared_ptr<Impl> or jit::Module
///   vae.freeze();                              // eval mode, requires_grad(false)
class ModuleRef {
 public:
  /// A reference to `model`: a module holder, a shared_ptr to a torch::nn::Module, or a TorchScript module.
  template <class Model>
  static ModuleRef of(const Model& model) {
    static_assert(detail::is_native_module_v<Model> || detail::is_script_module_v<Model>,
                  "diffinstruct::ModuleRef::of: expected a torch::nn module (holder or shared_ptr) or a torch::jit::Module");
    ModuleRef r;
    if constexpr (detail::is_script_module_v<Model>) {
      r.script_ = std::make_shared<torch::jit::Module>(model);  // a jit::Module is itself a handle: this shares the object
    } else if constexpr (detail::is_module_holder<std::decay_t<Model>>::value) {
      r.native_ = model.ptr();
    } else {
      r.native_ = model;
    }
    TORCH_CHECK(r.native_ || r.script_, "diffinstruct::ModuleRef::of: expected a module, got an empty holder");
    return r;
  }

  /// Named parameters, in the module's own order.
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    if (native_) {
      for (const auto& p : native_->named_parameters()) out.emplace_back(p.key(), p.value());
    } else {
      for (const auto& p : script_->named_parameters()) out.emplace_back(p.name, p.value);
    }
    return out;
  }
  std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> out;
    for (auto& p : named_parameters()) out.push_back(std::move(p.second));
    return out;
  }
  /// Every parameter and buffer, parameters first.
  std::vector<torch::Tensor> tensors() const {
    auto out = parameters();
    if (native_) {
      for (const auto& b : native_->buffers()) out.push_back(b);
    } else {
      for (const auto& b : script_->buffers()) out.push_back(b);
    }
    return out;
  }
  void train(bool on) const {
    if (native_) native_->train(on);
    else script_->train(on);
  }
  bool is_training() const { return native_ ? native_->is_training() : script_->is_training(); }
  /// The train/eval flag of the module and of each submodule, in pre-order (the module first).
  std::vector<bool> subtree_modes() const {
    std::vector<bool> out;
    if (native_) {
      for (const auto& m : native_->modules(/*include_self=*/true)) out.push_back(m->is_training());
    } else {
      for (const auto& m : script_->modules()) out.push_back(m.is_training());
    }
    return out;
  }
  /// Sets the flags subtree_modes() returned (each module's train() sets its submodules too, so
  /// setting them in pre-order leaves every module with its own flag).
  void set_subtree_modes(const std::vector<bool>& modes) const {
    size_t i = 0;
    if (native_) {
      for (const auto& m : native_->modules(/*include_self=*/true)) {
        TORCH_INTERNAL_ASSERT(i < modes.size(), "diffinstruct::ModuleRef: the module gained submodules since its modes were taken");
        m->train(modes[i++]);
      }
    } else {
      for (auto m : script_->modules()) {
        TORCH_INTERNAL_ASSERT(i < modes.size(), "diffinstruct::ModuleRef: the module gained submodules since its modes were taken");
        m.train(modes[i++]);
      }
    }
  }
  /// Frozen: evaluation mode (dropout off, batch-norm statistics fixed) and no parameter gradients.
  void freeze() const {
    train(false);
    for (auto& p : parameters()) p.requires_grad_(false);
  }
  /// Do two references name the same module object?
  bool same_module(const ModuleRef& other) const {
    return native_ ? native_ == other.native_ : (other.script_ && script_->_ivalue() == other.script_->_ivalue());
  }

 private:
  std::shared_ptr<torch::nn::Module> native_;
  std::shared_ptr<torch::jit::Module> script_;
};

namespace detail {

/// Does a policy expose the modules it holds (`std::vector<ModuleRef> modules() const`)?
template <class T, class = void>
struct has_modules : std::false_type {};
template <class T>
struct has_modules<T, std::void_t<decltype(std::vector<ModuleRef>(std::declval<const T&>().modules()))>> : std::true_type {};

/// The module behind a model, if it is one, or those a callable says it runs (a pass on a shared
/// base, adapters/shared_base.hpp); a plain callable has none we can see.
template <class Model>
std::vector<ModuleRef> module_refs_of(const Model& model) {
  if constexpr (is_native_module_v<Model> || is_script_module_v<Model>) return {ModuleRef::of(model)};
  else if constexpr (has_modules<Model>::value) return model.modules();
  else return {};
}

/// Puts modules in evaluation mode for a scope and restores each one's mode after.
class EvalModeScope {
 public:
  explicit EvalModeScope(std::vector<ModuleRef> modules) : modules_(std::move(modules)) {
    for (const auto& m : modules_) {
      was_.push_back(m.is_training());
      m.train(false);
    }
  }
  ~EvalModeScope() {
    for (size_t i = 0; i < modules_.size(); ++i) modules_[i].train(was_[i]);
  }
  EvalModeScope(const EvalModeScope&) = delete;
  EvalModeScope& operator=(const EvalModeScope&) = delete;

 private:
  std::vector<ModuleRef> modules_;
  std::vector<bool> was_;
};

/// The train/eval modes of some modules (and all their submodules), to be set again later: what
/// activation checkpointing's recompute must see (memory/activation_checkpoint.hpp).
class ModeSnapshot {
 public:
  static ModeSnapshot take(const std::vector<ModuleRef>& modules) {
    ModeSnapshot s;
    for (const auto& m : modules) s.entries_.emplace_back(m, m.subtree_modes());
    return s;
  }
  void apply() const {
    for (const auto& [m, modes] : entries_) m.set_subtree_modes(modes);
  }
  bool empty() const { return entries_.empty(); }
  /// The modes the same modules have now.
  ModeSnapshot current() const {
    ModeSnapshot s;
    for (const auto& e : entries_) s.entries_.emplace_back(e.first, e.first.subtree_modes());
    return s;
  }

 private:
  std::vector<std::pair<ModuleRef, std::vector<bool>>> entries_;
};

/// Sets a snapshot's modes for a scope and puts the modes of that moment back after.
class ModeGuard {
 public:
  explicit ModeGuard(const ModeSnapshot& wanted) {
    if (wanted.empty()) return;
    now_ = wanted.current();
    wanted.apply();
  }
  ~ModeGuard() { now_.apply(); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  ModeSnapshot now_;
};

/// The modules a policy declares, or none.
template <class T>
std::vector<ModuleRef> modules_of(const T& policy) {
  if constexpr (has_modules<T>::value) return policy.modules();
  else return {};
}

} // namespace detail

} // namespace diffinstruct
