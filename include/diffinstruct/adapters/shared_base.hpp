#pragma once
/// \file One set of base weights for the teacher, the assistant and the generator. When the assistant
/// and the generator both start from the teacher's weights and train through LoRAs, all three are
/// one module carrying two named adapters: the teacher's pass switches every adapter off, the
/// assistant's switches the generator's off, the generator's the assistant's. Only one copy of the
/// base exists (the memory trick of DMDR and diffusers' LCM-LoRA script, taken to the generator too).
/// At step 0 the assistant equals the teacher exactly (B = 0), and the teacher's output never changes
/// while the adapters train. A generator may also carry a frozen published LoRA (DMD2's one-step
/// LoRA) under the one it trains: it is one of the generator's adapters, off in the other passes.
///
/// The switched-off set is per thread and per pass, and activation checkpointing carries it into the
/// recompute (core/adapter_context.hpp), so a block recomputed in backward sees what its forward saw.
///
/// Example (three roles, one base):
///   auto unet = models::load_unet(dir, frozen);                                              // one copy
///   auto asst = adapters::add_lora(*unet, LoraOptions().rank(64).alpha(64).adapter_name("assistant"));
///   auto gen = adapters::add_lora(*unet, LoraOptions().rank(64).alpha(64).adapter_name("generator"));
///   auto teacher = adapters::shared_base_teacher<EpsPrediction>(unet);                 // every adapter off
///   auto assistant = adapters::shared_base_denoiser<EpsPrediction>(unet, {gen}, "assistant");
///   auto generator = adapters::shared_base_generator(one_step_around(unet), {asst});
///   DiStarTrainer<...> trainer(generator, teacher, assistant, ...);   // trains the two LoRAs only
///
/// The two-role form (a LoRA assistant on the teacher's base, a generator of its own) is the same
/// with the assistant as `Denoiser<UNet, Param>(unet, "assistant")`: it trains what requires grad.

#include <diffinstruct/adapters/lora.hpp>
#include <diffinstruct/core/roles.hpp>
#include <diffinstruct/core/module_ref.hpp>

#include <torch/torch.h>

#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace adapters {

namespace detail {
using Named = std::vector<std::pair<std::string, torch::Tensor>>;

/// The LoRAs of `loras` as one, each adapter once.
inline Lora joined(const std::vector<Lora>& loras) {
  std::vector<Lora::Entry> all;
  std::unordered_set<const void*> seen;
  for (const auto& l : loras) {
    for (const auto& e : l.layers()) {
      if (seen.insert(e.second.get()).second) all.push_back(e);
    }
  }
  return Lora(std::move(all));
}

inline std::unordered_set<const void*> tensor_set(const std::vector<torch::Tensor>& tensors) {
  std::unordered_set<const void*> out;
  for (const auto& t : tensors) out.insert(t.unsafeGetTensorImpl());
  return out;
}

/// Refuses adapters that are not on `module` (a LoRA of another copy would switch nothing off here).
inline void check_on_module(torch::nn::Module& module, const Lora& lora, const char* where) {
  const auto mine = tensor_set(find_lora(module).parameters());
  for (const auto& p : lora.parameters()) {
    TORCH_CHECK(mine.count(p.unsafeGetTensorImpl()), where, ": an adapter given is not on this module (a LoRA of another copy of the "
                "model?); the pass can switch off only the module's own adapters");
  }
}
}  // namespace detail

/// One role's pass on a module shared with other roles: `module`'s forward with the adapters of `off`
/// switched off. What the role computes with, and what a trainer trains through it (what requires
/// grad among these), are the module's parameters less those adapters': named_parameters().
template <class Module>
class SharedBasePass {
 public:
  SharedBasePass(Module module, const std::vector<Lora>& off) : module_(std::move(module)), off_(detail::joined(off)) {
    detail::check_on_module(*module_, off_, "diffinstruct::adapters::SharedBasePass");
  }

  template <class... Args>
  torch::Tensor operator()(const Args&... args) const {
    LoraDisabledScope others(off_);
    return module_->forward(args...);
  }

  /// The module's parameters and buffers less the switched-off adapters', named as in the module.
  detail::Named named_parameters() const {
    const auto off = detail::tensor_set(off_.parameters());
    detail::Named out;
    for (const auto& item : module_->named_parameters()) {
      if (!off.count(item.value().unsafeGetTensorImpl())) out.emplace_back(item.key(), item.value());
    }
    return out;
  }
  detail::Named named_buffers() const {
    detail::Named out;
    for (const auto& item : module_->named_buffers()) out.emplace_back(item.key(), item.value());
    return out;
  }
  /// The shared module (so that a trainer can switch its mode for sampling, and checkpointing can
  /// carry that mode into the recompute).
  std::vector<ModuleRef> modules() const { return {ModuleRef::of(module_)}; }
  const Module& module() const { return module_; }
  /// The adapters this pass switches off.
  const Lora& switched_off() const { return off_; }

 private:
  mutable Module module_;  // the pass runs the shared module
  Lora off_;
};

/// The teacher's forward on a shared base: `module` with every adapter it carries switched off, in
/// evaluation mode for the pass (the other roles' mode is restored after). A callable that exposes
/// no module, so that the trainer neither freezes nor switches the mode of the module it shares with
/// the roles that train; the base it reads is declared instead (base_parameters()).
template <class Module>
class SharedBaseTeacher {
 public:
  /// Every adapter on `module` when the teacher is built is off in its pass.
  explicit SharedBaseTeacher(Module module) : module_(std::move(module)), off_(find_lora(*module_)) {
    TORCH_CHECK(!off_.empty(), "diffinstruct::adapters::SharedBaseTeacher: the module carries no adapter; a teacher on a base shared with "
                "a LoRA needs the LoRA on the module first (without one, use the module itself as the teacher)");
    const auto adapters = detail::tensor_set(off_.parameters());
    for (const auto& item : module_->named_parameters()) {
      if (adapters.count(item.value().unsafeGetTensorImpl())) continue;
      TORCH_CHECK(!item.value().requires_grad(), "diffinstruct::adapters::SharedBaseTeacher: the shared base's parameter '", item.key(),
                  "' requires grad; the base the teacher reads must be frozen (add_lora freezes it unless freeze_base(false))");
      base_.emplace_back(item.key(), item.value());
    }
  }
  /// As above, checking that `lora` (the assistant's) is on the module.
  SharedBaseTeacher(Module module, const Lora& lora) : SharedBaseTeacher(std::move(module)) {
    TORCH_CHECK(!lora.empty(), "diffinstruct::adapters::SharedBaseTeacher: expected the LoRA that the assistant trains on this module, "
                "got one without layers");
    detail::check_on_module(*module_, lora, "diffinstruct::adapters::SharedBaseTeacher");
  }

  template <class... Args>
  torch::Tensor operator()(const Args&... args) const {
    diffinstruct::detail::EvalModeScope eval({ModuleRef::of(module_)});
    LoraDisabledScope off(off_);
    return module_->forward(args...);
  }

  /// The base's parameters (every parameter of the module but the adapters'), by name.
  const std::vector<std::pair<std::string, torch::Tensor>>& base_parameters() const { return base_; }
  const Module& module() const { return module_; }
  /// Every adapter the teacher's pass switches off.
  const Lora& lora() const { return off_; }

 private:
  mutable Module module_;  // the pass runs the shared module
  Lora off_;
  std::vector<std::pair<std::string, torch::Tensor>> base_;
};

/// The teacher of a shared-base run as a Denoiser: the module's pass with every adapter off. It
/// declares the base as parameters it reads (Denoiser::reads), so that the trainer refuses to train
/// them through any role.
template <class Param, class Module>
Denoiser<SharedBaseTeacher<Module>, Param> shared_base_teacher(Module module, std::string name = "teacher") {
  SharedBaseTeacher<Module> pass(std::move(module));
  auto base = pass.base_parameters();
  Denoiser<SharedBaseTeacher<Module>, Param> teacher(std::move(pass), std::move(name));
  teacher.reads(std::move(base));
  return teacher;
}
/// As above, checking that `lora` (the assistant's) is on the module.
template <class Param, class Module>
Denoiser<SharedBaseTeacher<Module>, Param> shared_base_teacher(Module module, const Lora& lora, std::string name = "teacher") {
  (void)SharedBaseTeacher<Module>(module, lora);  // the check
  return shared_base_teacher<Param>(std::move(module), std::move(name));
}

/// A trained denoiser (the assistant) on a shared base: the module with `off` (the generator's
/// adapters, trained or published) switched off in its pass.
template <class Param, class Module>
Denoiser<SharedBasePass<Module>, Param> shared_base_denoiser(Module module, const std::vector<Lora>& off, std::string name = "assistant") {
  return Denoiser<SharedBasePass<Module>, Param>(SharedBasePass<Module>(std::move(module), off), std::move(name));
}

/// The generator on a shared base: `module` (a one-step wrapper around the shared network, say) with
/// `off` (the assistant's adapters) switched off in its pass.
template <class Module>
Generator<SharedBasePass<Module>> shared_base_generator(Module module, const std::vector<Lora>& off, std::string name = "generator") {
  return Generator<SharedBasePass<Module>>(SharedBasePass<Module>(std::move(module), off), std::move(name));
}

} // namespace adapters
} // namespace diffinstruct
