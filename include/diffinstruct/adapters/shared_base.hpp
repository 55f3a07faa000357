#pragma once
/// \file One set of base weights for the teacher and the assistant: the assistant is the frozen
/// teacher plus a trainable LoRA, and the teacher's pass is the same module with the adapters
/// disabled. Only one copy of the base exists (the memory trick of DMDR and diffusers' LCM-LoRA
/// script). At step 0 the assistant equals the teacher exactly (B = 0), and the teacher's output
/// never changes while the assistant's adapters train.
///
/// Example:
///   auto unet = models::load_unet(dir);                                   // one copy
///   auto lora = adapters::add_lora(*unet, adapters::LoraOptions().rank(64).alpha(64));  // base frozen
///   auto teacher = adapters::shared_base_teacher<EpsPrediction>(unet, lora);   // adapters off
///   Denoiser<models::UNet2DConditionModel, EpsPrediction> assistant(unet, "assistant");  // adapters on
///   DiStarTrainer<...> trainer(generator, teacher, assistant, ...);   // trains the adapters only

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

/// The teacher's forward on a shared base: `module` with the adapters of `lora` disabled, in
/// evaluation mode for the pass (the assistant's mode is restored after). A callable, so that the
/// trainer does not freeze or switch the mode of the module it shares with the assistant.
template <class Module>
class SharedBaseTeacher {
 public:
  SharedBaseTeacher(Module module, Lora lora) : module_(std::move(module)), lora_(std::move(lora)) {
    TORCH_CHECK(!lora_.empty(), "diffinstruct::adapters::SharedBaseTeacher: expected the LoRA that the assistant trains on this module, "
                "got one without layers");
    const auto mine = find_lora(*module_);
    std::unordered_set<const void*> adapters;
    for (const auto& p : mine.parameters()) adapters.insert(p.unsafeGetTensorImpl());
    for (const auto& p : lora_.parameters()) {
      TORCH_CHECK(adapters.count(p.unsafeGetTensorImpl()), "diffinstruct::adapters::SharedBaseTeacher: the LoRA given is not on this module");
    }
    TORCH_CHECK(mine.size() == lora_.size(), "diffinstruct::adapters::SharedBaseTeacher: the module has ", mine.size(),
                " adapted layers, the LoRA given ", lora_.size(), "; the teacher's pass must disable all of them");
    for (const auto& item : module_->named_parameters()) {
      if (adapters.count(item.value().unsafeGetTensorImpl())) continue;
      TORCH_CHECK(!item.value().requires_grad(), "diffinstruct::adapters::SharedBaseTeacher: the shared base's parameter '", item.key(),
                  "' requires grad; the base the teacher reads must be frozen (add_lora freezes it unless freeze_base(false))");
      base_.emplace_back(item.key(), item.value());
    }
  }

  template <class... Args>
  torch::Tensor operator()(const Args&... args) const {
    diffinstruct::detail::EvalModeScope eval({ModuleRef::of(module_)});
    LoraDisabledScope off(lora_);
    return module_->forward(args...);
  }

  /// The base's parameters (every parameter of the module but the adapters'), by name.
  const std::vector<std::pair<std::string, torch::Tensor>>& base_parameters() const { return base_; }
  const Module& module() const { return module_; }
  const Lora& lora() const { return lora_; }

 private:
  mutable Module module_;  // the pass runs the shared module
  Lora lora_;
  std::vector<std::pair<std::string, torch::Tensor>> base_;
};

/// The teacher of a shared-base run as a Denoiser: the module's pass with the adapters disabled. It
/// declares the base as parameters it reads (Denoiser::reads), so that the trainer refuses to train
/// them through any role.
template <class Param, class Module>
Denoiser<SharedBaseTeacher<Module>, Param> shared_base_teacher(Module module, const Lora& lora, std::string name = "teacher") {
  SharedBaseTeacher<Module> pass(std::move(module), lora);
  auto base = pass.base_parameters();
  Denoiser<SharedBaseTeacher<Module>, Param> teacher(std::move(pass), std::move(name));
  teacher.reads(std::move(base));
  return teacher;
}

} // namespace adapters
} // namespace diffinstruct
