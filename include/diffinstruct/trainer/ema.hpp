#pragma once
/// \file Exponential moving average of a set of parameters (the generator's, usually).

#include <diffinstruct/core/checks.hpp>

#include <vector>

namespace diffinstruct {

/// shadow ← decay · shadow + (1 − decay) · parameter, after every applied update.
///
/// Example (evaluate with the EMA weights, then go back):
///   ema.swap(params);  sample();  ema.swap(params);
class ExponentialMovingAverage {
 public:
  ExponentialMovingAverage() = default;
  ExponentialMovingAverage(const std::vector<torch::Tensor>& params, double decay) : decay_(decay) {
    TORCH_CHECK(decay >= 0 && decay < 1, "diffinstruct::ExponentialMovingAverage: expected 0 <= decay < 1, got ", decay);
    torch::NoGradGuard no_grad;
    for (const auto& p : params) shadow_.push_back(p.detach().clone());
  }

  void update(const std::vector<torch::Tensor>& params) {
    torch::NoGradGuard no_grad;
    TORCH_INTERNAL_ASSERT(params.size() == shadow_.size());
    for (size_t i = 0; i < params.size(); ++i) shadow_[i].mul_(decay_).add_(params[i].detach(), 1 - decay_);
  }

  /// Exchanges the shadow values with the parameters' values (call twice to undo).
  void swap(const std::vector<torch::Tensor>& params) {
    torch::NoGradGuard no_grad;
    TORCH_INTERNAL_ASSERT(params.size() == shadow_.size());
    for (size_t i = 0; i < params.size(); ++i) {
      auto tmp = params[i].detach().clone();
      params[i].detach().copy_(shadow_[i]);
      shadow_[i].copy_(tmp);
    }
  }

  double decay() const { return decay_; }
  void set_decay(double decay) {
    TORCH_CHECK(decay >= 0 && decay < 1, "diffinstruct::ExponentialMovingAverage: expected 0 <= decay < 1, got ", decay);
    decay_ = decay;
  }
  std::vector<torch::Tensor>& shadow() { return shadow_; }
  const std::vector<torch::Tensor>& shadow() const { return shadow_; }

 private:
  double decay_ = 0.0;
  std::vector<torch::Tensor> shadow_;
};

/// The EMA's weights in the parameters for a scope, the trained ones back after (even if the scope
/// throws). An empty EMA (decay 0) swaps nothing.
///
/// Example:
///   { EmaWeightsScope ema_weights(trainer.ema(), trainer.generator_parameters());  sample(); }
class EmaWeightsScope {
 public:
  EmaWeightsScope(ExponentialMovingAverage& ema, const std::vector<torch::Tensor>& params, bool on = true)
      : ema_(on && !ema.shadow().empty() ? &ema : nullptr), params_(params) {
    if (ema_) ema_->swap(params_);
  }
  ~EmaWeightsScope() {
    if (ema_) ema_->swap(params_);
  }
  EmaWeightsScope(const EmaWeightsScope&) = delete;
  EmaWeightsScope& operator=(const EmaWeightsScope&) = delete;
  /// Whether the EMA's weights are in (false without an EMA).
  bool active() const { return ema_ != nullptr; }

 private:
  ExponentialMovingAverage* ema_;
  std::vector<torch::Tensor> params_;
};

} // namespace diffinstruct
