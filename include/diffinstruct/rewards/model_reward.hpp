#pragma once
/// \file A reward computed by a model: a torch::nn module, a TorchScript module or a callable.

#include <diffinstruct/core/model_adapter.hpp>
#include <diffinstruct/rewards/reward.hpp>

#include <string>

namespace diffinstruct {

/// Reward from any model called as `r(x0, c)` (or `r(x0)` for NoCondition), returning [B] or [B, 1].
/// The model is frozen by the caller; gradients flow through x0 into the generator.
///
/// Example:
///   auto reward = ModuleReward<Classifier>(classifier);                  // torch::nn module
///   auto bounded = CallableReward<std::function<torch::Tensor(torch::Tensor)>>(
///       [](const torch::Tensor& x0) { return torch::sigmoid(3 * x0.select(1, 0)); });
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
    return detail::check_reward_output(detail::call_model(model_, c, x0), x0, label_.c_str());
  }

  Model& model() { return model_; }
  std::vector<torch::Tensor> parameters() const { return detail::model_parameters(model_); }

 private:
  Model model_;
  std::string label_;
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
