#pragma once
/// \file One trained network's training state. The DI* trainer trains two networks, the generator
/// and the assistant, and each has the same things: the parameters it trains, an optimizer, a loss
/// scaler, the counters of its dropped updates and whether its loss graph was checked. The
/// generator also has its EMA (the assistant's stays empty).

#include <diffinstruct/precision/grad_scaler.hpp>
#include <diffinstruct/precision/precision.hpp>
#include <diffinstruct/trainer/ema.hpp>
#include <diffinstruct/trainer/graph_check.hpp>
#include <diffinstruct/trainer/model_state.hpp>
#include <diffinstruct/trainer/optimizers.hpp>
#include <diffinstruct/trainer/options.hpp>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {

/// The training state of the generator or of the assistant.
///
/// What a role trains is what requires grad when the trainer is built (a LoRA's adapters, not its
/// frozen base): only those parameters are differentiated, clipped, averaged over ranks, stepped,
/// EMA-averaged and checkpointed.
class TrainedRole {
 public:
  TrainedRole() = default;

  /// The parameters of `model` that require grad, named as in the model; `role` is "generator" or
  /// "assistant" (it names the role in every message).
  template <class Model>
  TrainedRole(const char* role, const Model& model) : name_(role) {
    const auto all = detail::named_parameters(model);
    TORCH_CHECK(!all.empty(), "diffinstruct::DiStarTrainer: the ", role, " has no parameters to train");
    for (const auto& [n, p] : all) {
      if (p.requires_grad()) named_.emplace_back(n, p);
    }
    TORCH_CHECK(!named_.empty(), "diffinstruct::DiStarTrainer: the ", role, " has no trainable parameters: every one has "
                "requires_grad(false). The trainer trains the parameters that require grad: set requires_grad_(true) on what should train (a "
                "TorchScript module saved from a frozen model loads frozen), or, for a LoRA, adapters::add_lora");
    for (const auto& [n, p] : named_) params_.push_back(p);
    buffers_ = [model] { return detail::named_buffers(model); };
  }

  const char* name() const { return name_; }
  /// The trained parameters, with their names in the model.
  const detail::NamedTensors& named_parameters() const { return named_; }
  const std::vector<torch::Tensor>& parameters() const { return params_; }
  /// What a checkpoint holds of this role: its trained parameters and every buffer of its model.
  detail::NamedTensors checkpointed_state() const {
    auto out = named_;
    for (auto& b : buffers_()) out.emplace_back("buffer:" + b.first, b.second);
    return out;
  }

  /// Trained weights are master weights: float32 (or float64 without autocast), never reduced
  /// precision, whose updates of size lr·g would mostly round away.
  void check_master_weights(Precision precision) const {
    const bool autocast = precision != Precision::kFloat32;
    for (const auto& [n, p] : named_) {
      const auto dt = p.scalar_type();
      TORCH_CHECK(p.is_floating_point() && !is_reduced_precision(dt) && (!autocast || dt == torch::kFloat), "diffinstruct::DiStarTrainer: the ",
                  name_, "'s parameter '", n, "' is ", dt, "; trained weights must be ",
                  autocast ? "float32 under mixed precision (autocast computes in "
                           : "float32 or float64 (master weights; for reduced-precision compute keep them float32 and set "
                             "DiStarTrainerOptions::precision, e.g. ",
                  autocast ? precision_name(precision) : "bf16", autocast ? " from float32 master weights)" : ")");
    }
  }

  /// Builds the trainer's own Adam (or AdamW) for the trained parameters.
  void build_optimizer(const AdamSettings& settings) {
    optimizer_ = detail::make_adam(params_, settings);
    optimizer_kind_ = detail::adam_kind(settings);
  }
  /// Installs a user's optimizer (its step cannot be checked before it happens).
  void set_optimizer(std::unique_ptr<torch::optim::Optimizer> optimizer) {
    TORCH_CHECK(optimizer, "diffinstruct::DiStarTrainer::set_optimizers: expected an optimizer for the ", name_, ", got a null one");
    optimizer_ = std::move(optimizer);
    optimizer_kind_ = detail::OptimizerKind::kUser;
  }
  /// Replaces the optimizer and its kind together (a load that rebuilds it).
  void replace_optimizer(std::unique_ptr<torch::optim::Optimizer> optimizer, detail::OptimizerKind kind) {
    optimizer_ = std::move(optimizer);
    optimizer_kind_ = kind;
  }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  const torch::optim::Optimizer& optimizer() const { return *optimizer_; }
  detail::OptimizerKind optimizer_kind() const { return optimizer_kind_; }

  /// The dynamic loss scale of this role (disabled unless the options scale losses).
  GradScaler& scaler() { return scaler_; }
  const GradScaler& scaler() const { return scaler_; }
  void build_scaler(const DiStarTrainerOptions& options, const c10::Device& device) {
    scaler_ = options.scales_losses() ? GradScaler(options.grad_scaler(), device) : GradScaler();
  }

  /// The EMA of the trained parameters (the generator's; empty when the decay is 0).
  ExponentialMovingAverage& ema() { return ema_; }
  const ExponentialMovingAverage& ema() const { return ema_; }
  bool has_ema() const { return !ema_.shadow().empty(); }
  void start_ema(double decay) { ema_ = decay > 0 ? ExponentialMovingAverage(params_, decay) : ExponentialMovingAverage(); }

  /// Updates dropped in a row (non-finite or overflowing); reset by an applied update.
  int64_t& skips_in_row() { return skips_in_row_; }
  int64_t skips_in_row() const { return skips_in_row_; }

  /// At this role's first update: its loss must reach no tensor requiring grad but its own trained
  /// parameters (a frozen model hiding trainable parameters behind a callable is refused).
  void check_graph_once(const torch::Tensor& loss) {
    if (graph_checked_) return;
    graph_checked_ = true;
    const auto foreign = detail::foreign_leaves(loss, params_);
    if (foreign.empty()) return;
    std::string shapes;
    for (size_t i = 0; i < foreign.size() && i < 4; ++i) shapes += (i ? ", " : "") + c10::str(foreign[i].sizes());
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer: the ", name_, " loss reaches ", foreign.size(), " tensor(s) that require grad but are not the ",
                name_, "'s parameters (shapes ", shapes, foreign.size() > 4 ? ", ..." : "", "): a frozen model (the teacher, the reward, or a "
                "module a callable uses) has trainable parameters, or a condition requires grad. Declare the modules a callable uses with "
                "holds(module), so that the trainer freezes them, or set requires_grad(false) on them");
  }

  /// Drops the gradients (after a step, or a dropped update).
  void clear_gradients() const {
    for (auto& p : params_) p.mutable_grad() = torch::Tensor();
  }

 private:
  const char* name_ = "";
  detail::NamedTensors named_;
  std::vector<torch::Tensor> params_;
  std::function<detail::NamedTensors()> buffers_ = [] { return detail::NamedTensors{}; };
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  detail::OptimizerKind optimizer_kind_ = detail::OptimizerKind::kAdam;
  GradScaler scaler_;
  ExponentialMovingAverage ema_;
  int64_t skips_in_row_ = 0;
  bool graph_checked_ = false;
};

} // namespace diffinstruct
