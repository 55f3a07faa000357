#pragma once
/// \file A reward computed by a model: a torch::nn module, a TorchScript module or a callable.

#include <diffinstruct/core/roles.hpp>
#include <diffinstruct/rewards/reward.hpp>

#include <string>

namespace diffinstruct {

/// Reward from any model called as `r(x0, c)` (or `r(x0)` for NoCondition), returning [B] or [B, 1].
/// Gradients flow through x0 into the generator; the model is frozen by the trainer (eval mode, no
/// parameter gradients). A callable that uses modules (a VAE decoder and a CLIP model, say) declares
/// them with `holds(...)`, so that they are frozen too: the trainer refuses, at its first step, a
/// reward whose graph reaches a parameter that requires grad and that nobody declared.
///
/// Example:
///   auto reward = ModuleReward<Classifier>(classifier);                  // torch::nn module
///   auto bounded = CallableReward<std::function<torch::Tensor(torch::Tensor)>>(
///       [](const torch::Tensor& x0) { return torch::sigmoid(3 * x0.select(1, 0)); });
///   auto clip_score = make_reward([=](const torch::Tensor& x0) { return score(vae, clip, x0); }).holds(vae).holds(clip);
template <class Model>
class ModelReward {
 public:
  static constexpr bool is_null = false;
  static constexpr const char* name = "model";

  explicit ModelReward(Model model, std::string label = "reward") : model_(std::move(model)), label_(std::move(label)) {}

  template <class Cond>
  torch::Tensor operator()(const torch::Tensor& x0, const Cond& c) {
    detail::check_batch(x0, "ModelReward", "x0");
    detail::check_condition_batch(c, x0.size(0), "ModelReward");
    return detail::check_reward_output(detail::call_named("ModelReward", label_, x0, model_, c, x0), x0, label_.c_str());
  }

  /// Declares a module that the callable model uses (returns *this).
  template <class Module>
  ModelReward& holds(const Module& module) {
    held_.push_back(ModuleRef::of(module));
    return *this;
  }
  /// The model itself (when it is a module) and every module declared with holds(): what the trainer freezes.
  std::vector<ModuleRef> modules() const {
    auto out = detail::module_refs_of(model_);
    out.insert(out.end(), held_.begin(), held_.end());
    return out;
  }

  std::string describe() const { return "model(" + label_ + ")"; }
  Model& model() { return model_; }
  std::vector<torch::Tensor> parameters() const { return detail::model_parameters(model_); }

 private:
  Model model_;
  std::string label_;
  std::vector<ModuleRef> held_;
};

/// A reward from a torch::nn module (holder or shared_ptr) or a TorchScript module.
template <class Module>
using ModuleReward = ModelReward<Module>;
/// A reward from a plain callable (lambda, function object, std::function).
template <class F>
using CallableReward = ModelReward<F>;

/// Deduces the model type: `auto r = make_reward(net);`.
template <class Model>
ModelReward<Model> make_reward(Model model, std::string label = "reward") {
  return ModelReward<Model>(std::move(model), std::move(label));
}

} // namespace diffinstruct
