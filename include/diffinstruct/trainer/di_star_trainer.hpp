#pragma once
/// \file The DI* training loop (MATH.md §4): K assistant updates, then one generator update.

#include <diffinstruct/divergences/pseudo_huber_score.hpp>
#include <diffinstruct/losses/assistant_loss.hpp>
#include <diffinstruct/losses/generator_loss.hpp>
#include <diffinstruct/memory/activation_checkpoint.hpp>
#include <diffinstruct/memory/peak_memory.hpp>
#include <diffinstruct/precision/grad_scaler.hpp>
#include <diffinstruct/precision/precision.hpp>
#include <diffinstruct/rewards/guidance.hpp>
#include <diffinstruct/rewards/reward.hpp>
#include <diffinstruct/schedules/discrete_vp.hpp>
#include <diffinstruct/trainer/collectives.hpp>
#include <diffinstruct/trainer/ema.hpp>
#include <diffinstruct/trainer/graph_check.hpp>
#include <diffinstruct/trainer/model_state.hpp>
#include <diffinstruct/trainer/optimizers.hpp>
#include <diffinstruct/trainer/options.hpp>
#include <diffinstruct/trainer/step_stats.hpp>

#include <chrono>
#include <cstring>
#include <unordered_map>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace diffinstruct {

/// The policies of one trainer, built by the user and passed in whole (mlpack style).
template <class Divergence = PseudoHuberScore, class Guidance = CfgInside, class Reward = NoReward,
          class Schedule = DiscreteVPSchedule>
struct DiStarPolicies {
  Divergence divergence{};
  Guidance guidance{};
  Reward reward{};
  Schedule schedule{};
};

/// Where conditions come from: a sampler drawing a batch from the trainer's generator, and the null
/// condition (1 row, or a full batch) used for the teacher's unconditional pass under CFG.
template <class Cond>
struct ConditionSource {
  std::function<Cond(int64_t batch, at::Generator& gen)> sample;
  Cond null_condition{};
};

namespace detail {
template <class T, class = void>
struct has_parameters : std::false_type {};
template <class T>
struct has_parameters<T, std::void_t<decltype(std::declval<T&>().parameters())>> : std::true_type {};

/// f(inputs), or f checkpointed (memory/activation_checkpoint.hpp): recomputed in backward, keeping
/// only `inputs`. `f` is kept by the autograd graph until backward, so it must own what it uses.
template <class F>
torch::Tensor maybe_checkpointed(bool on, F f, const std::vector<torch::Tensor>& inputs, const std::vector<torch::Tensor>& params = {}) {
  if (!on) return f(inputs);
  return checkpoint([f = std::move(f)](const std::vector<torch::Tensor>& in) mutable { return std::vector<torch::Tensor>{f(in)}; }, inputs,
                    params)[0];
}

inline double since_ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/// Sets requires_grad(false) on tensors for a scope and restores each one's flag after.
class RequiresGradOff {
 public:
  explicit RequiresGradOff(const std::vector<torch::Tensor>& tensors) : tensors_(tensors) {
    for (const auto& t : tensors_) {
      was_.push_back(t.requires_grad());
      t.requires_grad_(false);
    }
  }
  ~RequiresGradOff() {
    for (size_t i = 0; i < tensors_.size(); ++i) tensors_[i].requires_grad_(was_[i]);
  }
  RequiresGradOff(const RequiresGradOff&) = delete;
  RequiresGradOff& operator=(const RequiresGradOff&) = delete;

 private:
  const std::vector<torch::Tensor>& tensors_;
  std::vector<bool> was_;
};

/// The first parameter two roles share (by storage), as "'name' of <role a> and 'name' of <role b>", or "".
inline std::string first_shared(const NamedTensors& a, const char* role_a, const NamedTensors& b, const char* role_b, int64_t* count) {
  std::unordered_map<const void*, std::string> owners;
  for (const auto& [name, t] : a) owners.emplace(t.storage().unsafeGetStorageImpl(), name);
  std::string first;
  *count = 0;
  for (const auto& [name, t] : b) {
    const auto it = owners.find(t.storage().unsafeGetStorageImpl());
    if (it == owners.end()) continue;
    if (first.empty()) first = c10::str("'", it->second, "' of the ", role_a, " and '", name, "' of the ", role_b);
    ++*count;
  }
  return first;
}
/// The parameters that require grad: what a role trains.
inline NamedTensors requiring_grad(const NamedTensors& all) {
  NamedTensors out;
  for (const auto& [n, p] : all) {
    if (p.requires_grad()) out.emplace_back(n, p);
  }
  return out;
}

/// A role's trained state in a checkpoint: its trained parameters and every buffer.
template <class Model>
NamedTensors trained_state(const NamedTensors& trained, const Model& model) {
  auto out = trained;
  for (auto& b : named_buffers(model)) out.emplace_back("buffer:" + b.first, b.second);
  return out;
}

/// Does a denoiser declare parameters its callable reads without owning them (Denoiser::reads)?
template <class T, class = void>
struct has_read_parameters : std::false_type {};
template <class T>
struct has_read_parameters<T, std::void_t<decltype(std::declval<const T&>().read_parameters())>> : std::true_type {};
} // namespace detail

/// Diff-Instruct* trainer: post-trains a one-step generator g_θ(z, c) to maximise a reward while a
/// score divergence keeps it close to a frozen teacher, with an assistant fitted online.
///
/// * `GeneratorT`: `Generator<M>`, `TeacherT` / `AssistantT`: `Denoiser<M, Parameterization>`, with M a
///   torch::nn module (holder or shared_ptr) or a TorchScript module — the generator and assistant
///   must have parameters; the teacher may also be a callable (an analytic score).
/// * The teacher and the reward (every module they declare) are frozen here — evaluation mode, no
///   parameter gradients — and never stepped; they are put back in evaluation mode at every step.
///   The generator and the assistant stay in the mode the user chose. The generator and the
///   assistant train the parameters that require grad when the trainer is built (a LoRA's adapters,
///   not its frozen base; docs/lora.md): only those are differentiated, clipped, averaged over ranks,
///   EMA-averaged and checkpointed. A trained parameter must belong to its role alone (checked);
///   frozen ones may be shared (one base for the teacher and a LoRA assistant). At the first step the trainer walks each loss's autograd graph
///   and refuses a graph that reaches any tensor requiring grad other than the trained network's
///   parameters (a frozen model hiding trainable parameters behind a callable).
/// * The generator update differentiates the generator's parameters only (the assistant's are
///   switched to requires_grad(false) for the phase, so no graph is kept for them either), so no
///   frozen or assistant parameter ever receives a gradient from it.
/// * Nothing non-finite is ever applied: an update whose loss, gradient, generator output, or
///   resulting weights (checked before the step, `check_weights`) would be non-finite is dropped
///   and counted; `max_consecutive_skips` in a row end the run with an error.
/// * All randomness (z, conditions, t, ε) comes from the trainer's own CPU generator seeded by
///   `options.seed()`: two runs with the same seed give bit-identical weights on CPU.
/// * Precision (`options.precision()`, docs/memory.md#precision): the trained weights are float32
///   or float64 master weights (checked), and the loop's numbers (noise, t, α_t, σ_t, w(t), losses,
///   rewards, statistics) are in their dtype; under kBFloat16/kFloat16 the networks' forward passes
///   run under autocast and their outputs come back to the loop's dtype. With loss scaling
///   (kFloat16, or `loss_scaling(kOn)`) an update whose gradients overflow is skipped, counted in
///   `StepStats::overflows`, and the scale backs off.
///
/// Example:
///   DiStarTrainer<Generator<Mlp>, Denoiser<Score, ScorePrediction>, Denoiser<Mlp>, NoCondition,
///                 PseudoHuberScore, NoGuidance, ModelReward<F>, CosineVPSchedule>
///       trainer(gen, teacher, assistant, {div, guid, reward, sched}, {}, {2}, options);
///   for (int i = 0; i < 1000; ++i) StepStats s = trainer.step();
template <class GeneratorT, class TeacherT, class AssistantT, class Cond = torch::Tensor, class Divergence = PseudoHuberScore,
          class Guidance = CfgInside, class Reward = NoReward, class Schedule = DiscreteVPSchedule>
class DiStarTrainer {
  static_assert(is_divergence_v<Divergence>, "diffinstruct::DiStarTrainer: Divergence does not meet the contract; see docs/policies.md#divergences");
  static_assert(is_guidance_v<Guidance>, "diffinstruct::DiStarTrainer: Guidance does not meet the contract; see docs/policies.md#guidance");
  static_assert(is_reward_v<Reward, Cond>, "diffinstruct::DiStarTrainer: Reward does not meet the contract for this condition type; see docs/policies.md#rewards");
  static_assert(is_schedule_v<Schedule>, "diffinstruct::DiStarTrainer: Schedule does not meet the contract; see docs/policies.md#schedules");
  static_assert(is_condition_v<Cond>, "diffinstruct::DiStarTrainer: ConditionTraits<Cond> is not specialised; see docs/policies.md#conditions");
  static_assert(detail::is_trainable_model_v<typename GeneratorT::ModelType>,
                "diffinstruct::DiStarTrainer: the generator must be a torch::nn module or a TorchScript module (it is trained)");
  static_assert(detail::is_trainable_model_v<typename AssistantT::ModelType>,
                "diffinstruct::DiStarTrainer: the assistant must be a torch::nn module or a TorchScript module (it is trained)");
  static_assert(!(Guidance::needs_unconditional && std::is_same_v<Cond, NoCondition>),
                "diffinstruct::DiStarTrainer: classifier-free guidance (CfgInside, CfgOutside) needs conditions: with NoCondition "
                "there is no unconditional prediction to guide against; use NoGuidance, or a condition type with a null condition");

 public:
  using Policies = DiStarPolicies<Divergence, Guidance, Reward, Schedule>;

  DiStarTrainer(GeneratorT generator, TeacherT teacher, AssistantT assistant, Policies policies, ConditionSource<Cond> conditions,
                std::vector<int64_t> noise_shape, DiStarTrainerOptions options = {})
      : generator_(std::move(generator)),
        teacher_(std::move(teacher)),
        assistant_(std::move(assistant)),
        policies_(std::move(policies)),
        conditions_(std::move(conditions)),
        noise_shape_(std::move(noise_shape)),
        options_(std::move(options)),
        rng_(at::make_generator<at::CPUGeneratorImpl>(options_.seed())) {
    options_.validate();
    TORCH_CHECK(!noise_shape_.empty(), "diffinstruct::DiStarTrainer: expected a per-sample noise shape (e.g. {4, 64, 64}), got {}");
    for (auto d : noise_shape_) {
      TORCH_CHECK(d > 0, "diffinstruct::DiStarTrainer: expected positive noise dimensions, got ", c10::IntArrayRef(noise_shape_));
    }
    if constexpr (!std::is_same_v<Cond, NoCondition>) {
      TORCH_CHECK(static_cast<bool>(conditions_.sample), "diffinstruct::DiStarTrainer: expected a condition sampler, got an empty function");
    }
    if constexpr (!std::is_same_v<Cond, NoCondition> && !detail::has_condition_slice<Cond>::value) {
      TORCH_CHECK(options_.micro_batches() == 1, "diffinstruct::DiStarTrainer: micro_batches > 1 needs ConditionTraits<Cond>::slice(c, "
                  "begin, end) for this condition type (docs/policies.md#conditions)");
    }
    // What trains is what requires grad: a LoRA's adapters, not its frozen base.
    TORCH_CHECK(!detail::named_parameters(generator_.model()).empty(), "diffinstruct::DiStarTrainer: the generator has no parameters to train");
    TORCH_CHECK(!detail::named_parameters(assistant_.model()).empty(), "diffinstruct::DiStarTrainer: the assistant has no parameters to train");
    generator_named_ = detail::requiring_grad(detail::named_parameters(generator_.model()));
    assistant_named_ = detail::requiring_grad(detail::named_parameters(assistant_.model()));
    for (const auto& [named, role] : {std::make_pair(&generator_named_, "generator"), std::make_pair(&assistant_named_, "assistant")}) {
      TORCH_CHECK(!named->empty(), "diffinstruct::DiStarTrainer: the ", role, " has no trainable parameters: every one has "
                  "requires_grad(false). The trainer trains the parameters that require grad: set requires_grad_(true) on what should train (a "
                  "TorchScript module saved from a frozen model loads frozen), or, for a LoRA, adapters::add_lora");
    }
    for (const auto& [n, p] : generator_named_) generator_params_.push_back(p);
    for (const auto& [n, p] : assistant_named_) assistant_params_.push_back(p);
    check_master_weights(options_.precision());
    const auto& p0 = generator_params_.front();
    tensor_options_ = p0.options().requires_grad(false).dtype(loop_dtype_for(p0.scalar_type()));
    check_precision_supported(options_.precision(), tensor_options_.device(), "diffinstruct::DiStarTrainer");
    TORCH_CHECK(!options_.measure_memory() || peak_memory_supported(tensor_options_.device()), "diffinstruct::DiStarTrainer: "
                "measure_memory on ", tensor_options_.device(), " needs the CUDA extension diffinstruct::cuda linked");
    sample_shape_ = options_.sample_shape().empty() ? noise_shape_ : options_.sample_shape();
    // Frozen models: evaluation mode and no parameter gradients, ever.
    frozen_ = teacher_.modules();
    for (auto& m : detail::modules_of(policies_.reward)) frozen_.push_back(m);
    check_distinct_parameters();
    for (const auto& m : frozen_) m.freeze();
    if constexpr (detail::has_parameters<Reward>::value && !detail::has_modules<Reward>::value) {
      for (auto& p : policies_.reward.parameters()) p.requires_grad_(false);
    }
    build_optimizers();
    build_scalers();
    if (options_.ema_decay() > 0) ema_ = ExponentialMovingAverage(generator_params_, options_.ema_decay());
  }

  /// Replaces the optimizers (e.g. another algorithm); they must optimise exactly the generator's and
  /// the assistant's parameters.
  void set_optimizers(std::unique_ptr<torch::optim::Optimizer> generator_opt, std::unique_ptr<torch::optim::Optimizer> assistant_opt) {
    TORCH_CHECK(generator_opt && assistant_opt, "diffinstruct::DiStarTrainer::set_optimizers: expected two optimizers, got a null one");
    generator_opt_ = std::move(generator_opt);
    assistant_opt_ = std::move(assistant_opt);
    generator_opt_kind_ = assistant_opt_kind_ = detail::OptimizerKind::kUser;
  }

  /// Where the trainer's messages go (nothing is printed without a sink).
  void set_log_sink(std::function<void(const std::string&)> sink) { sink_ = std::move(sink); }

  /// Makes this trainer one rank of a data-parallel run (distributed/data_parallel.hpp): the batch
  /// size becomes per rank; every rank draws the same global batch of noise, conditions and times
  /// from the shared seed and keeps its own rows, so N ranks × batch B follow the same trajectory as
  /// 1 rank × batch N·B; gradients and statistics are averaged over ranks before clipping; rank 0's
  /// parameters are broadcast now and after every load(); only rank 0 writes checkpoints.
  void set_data_parallel(std::shared_ptr<Collectives> collectives) {
    TORCH_CHECK(collectives, "diffinstruct::DiStarTrainer::set_data_parallel: expected collectives, got a null pointer");
    if constexpr (!detail::has_condition_slice<Cond>::value) {
      TORCH_CHECK(collectives->world_size() == 1, "diffinstruct::DiStarTrainer::set_data_parallel: data-parallel training needs "
                  "ConditionTraits<Cond>::slice(c, begin, end) for this condition type (docs/policies.md#conditions)");
    }
    dp_ = std::move(collectives);
    broadcast_state();
  }
  const std::shared_ptr<Collectives>& data_parallel() const { return dp_; }

  /// One DI* iteration.
  StepStats step() {
    StepStats stats;
    std::unique_ptr<PeakMemoryScope> memory;
    if (options_.measure_memory()) memory = std::make_unique<PeakMemoryScope>(tensor_options_.device());
    for (const auto& m : frozen_) {
      if (m.is_training()) m.train(false);  // someone switched a frozen model back to training mode
    }
    // With reuse_generator_samples the generator updates first and its (detached) samples train
    // the assistant's first update, as in DMD2; otherwise the assistant updates first.
    const bool reuse = options_.reuse_generator_samples();
    if (reuse) generator_phase(stats);
    const auto t_assistant = std::chrono::steady_clock::now();
    double assistant_loss_sum = 0;
    int64_t assistant_done = 0;
    for (int64_t k = 0; k < options_.assistant_steps(); ++k) {
      const auto loss = assistant_update(stats, reuse && k == 0 ? &reused_ : nullptr);
      if (std::isfinite(loss)) {
        assistant_loss_sum += loss;
        ++assistant_done;
      }
    }
    reused_ = {};
    stats.assistant_loss = assistant_done ? assistant_loss_sum / assistant_done : std::nan("");
    stats.assistant_ms = detail::since_ms(t_assistant);
    if (!reuse) generator_phase(stats);
    if (memory) stats.peak_bytes = memory->peak_bytes();
    stats.step = ++step_;
    non_finite_total_ += stats.non_finite;
    return stats;
  }

  /// Runs `steps` iterations, calling each callback's on_step_begin(step) and on_step_end(stats)
  /// when it has them; an on_step_end returning false stops training. Returns the last statistics.
  template <class... Callbacks>
  StepStats fit(int64_t steps, Callbacks&... callbacks) {
    TORCH_CHECK(steps >= 0, "diffinstruct::DiStarTrainer::fit: expected steps >= 0, got ", steps);
    StepStats last;
    for (int64_t i = 0; i < steps; ++i) {
      (call_begin(callbacks), ...);
      last = step();
      bool keep_going = true;  // every callback sees the step, even after one asked to stop
      ((keep_going = detail::call_step_end(callbacks, last) && keep_going), ...);
      if (!keep_going) break;
    }
    return last;
  }

  /// Samples x0 = g(z, c) for given noise and conditions, without gradient, with the generator in
  /// evaluation mode (its mode is restored after), optionally with the EMA weights.
  torch::Tensor sample(const torch::Tensor& z, const Cond& c, bool use_ema = false) {
    torch::NoGradGuard no_grad;
    detail::EvalModeScope eval(generator_.modules());
    struct SwapBack {  // restores the trained weights even if the generator throws
      ExponentialMovingAverage* ema;
      const std::vector<torch::Tensor>& params;
      ~SwapBack() {
        if (ema) ema->swap(params);
      }
    };
    const bool swap = use_ema && ema_decay_on();
    if (swap) ema_.swap(generator_params_);
    SwapBack guard{swap ? &ema_ : nullptr, generator_params_};
    AutocastScope autocast(options_.precision(), tensor_options_.device());
    return generator_(z, c).to(tensor_options_.dtype());
  }

  /// What defines this run, as (key, text) pairs: the trainer options, the policies, the shapes and
  /// the world size. A checkpoint stores it; load() compares it (ResumeMode).
  std::vector<std::pair<std::string, std::string>> run_definition() const;

  int64_t step_count() const { return step_; }
  int64_t non_finite_total() const { return non_finite_total_; }
  const DiStarTrainerOptions& options() const { return options_; }
  GeneratorT& generator() { return generator_; }
  TeacherT& teacher() { return teacher_; }
  AssistantT& assistant() { return assistant_; }
  Policies& policies() { return policies_; }
  ExponentialMovingAverage& ema() { return ema_; }
  torch::optim::Optimizer& generator_optimizer() { return *generator_opt_; }
  torch::optim::Optimizer& assistant_optimizer() { return *assistant_opt_; }
  /// The dynamic loss scales (disabled unless the options scale losses).
  GradScaler& generator_scaler() { return generator_scaler_; }
  GradScaler& assistant_scaler() { return assistant_scaler_; }
  /// The dtype of the loop's own numbers (noise, times, losses): the trained weights' (float32 or float64).
  c10::ScalarType loop_dtype() const { return c10::typeMetaToScalarType(tensor_options_.dtype()); }
  at::Generator& rng() { return rng_; }
  const std::vector<torch::Tensor>& generator_parameters() const { return generator_params_; }
  const std::vector<torch::Tensor>& assistant_parameters() const { return assistant_params_; }

  /// Saves everything needed to resume exactly (checkpoint.hpp): atomic and durable (a uniquely
  /// named temporary file, fsync, rename, fsync of the folder), keeping `keep_checkpoints` files.
  /// Data-parallel: every rank calls it; rank 0 writes, and its success or failure reaches every rank.
  void save(const std::string& path);
  /// Restores a checkpoint written by save(), onto each model's current device and dtype, after
  /// verifying every tensor's checksum and the run definition (ResumeMode); on a missing, corrupt,
  /// truncated or mismatched file throws an error naming the file and leaves this trainer untouched.
  void load(const std::string& path, ResumeMode mode = ResumeMode::kRequireMatch);

 private:
  template <class C>
  void call_begin(C& c) {
    if constexpr (detail::has_step_begin<C>::value) c.on_step_begin(step_);
  }
  bool ema_decay_on() const { return options_.ema_decay() > 0; }

  int world() const { return dp_ ? dp_->world_size() : 1; }
  /// This rank's rows [rank·B, (rank+1)·B) of a global batch drawn on every rank alike.
  template <class T>
  T own_rows(const T& global) const {
    if (world() == 1) return global;
    const int64_t B = options_.batch_size(), r = dp_->rank();
    if constexpr (std::is_same_v<T, torch::Tensor>) return global.slice(0, r * B, (r + 1) * B).contiguous();
    else return ConditionTraits<T>::slice(global, r * B, (r + 1) * B);
  }
  torch::Tensor randn(std::vector<int64_t> shape) {
    shape[0] *= world();
    return own_rows(torch::randn(shape, rng_, torch::TensorOptions().dtype(tensor_options_.dtype()))).to(tensor_options_.device());
  }
  /// Rank 0's generator, assistant and EMA values to every rank.
  void broadcast_state() {
    if (!dp_) return;
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> values;
    for (const auto& p : generator_params_) values.push_back(p.detach());
    for (const auto& p : assistant_params_) values.push_back(p.detach());
    for (const auto& e : ema_.shadow()) values.push_back(e);
    dp_->broadcast(values, 0);
  }
  /// Averages gradients (undefined ones count as zeros) and the values in `summary` over ranks.
  void average_over_ranks(std::vector<torch::Tensor>& grads, const std::vector<torch::Tensor>& params, torch::Tensor& summary) {
    if (!dp_) return;
    for (size_t i = 0; i < grads.size(); ++i)
      if (!grads[i].defined()) grads[i] = torch::zeros_like(params[i]);
    std::vector<torch::Tensor> all(grads.begin(), grads.end());
    summary = summary.to(params.front().device()).contiguous();
    all.push_back(summary);
    dp_->average(all);
    for (size_t i = 0; i < grads.size(); ++i) grads[i] = all[i];
    summary = all.back().to(torch::kCPU);
  }
  std::vector<int64_t> batch_shape() const {
    std::vector<int64_t> s{options_.batch_size()};
    s.insert(s.end(), noise_shape_.begin(), noise_shape_.end());
    return s;
  }
  std::vector<int64_t> sample_batch_shape() const {
    std::vector<int64_t> s{options_.batch_size()};
    s.insert(s.end(), sample_shape_.begin(), sample_shape_.end());
    return s;
  }
  /// Rows of micro-batch k of this rank's batch (all of it with one micro-batch).
  template <class T>
  T micro_rows(const T& batch, int64_t k) const {
    const int64_t n = options_.micro_batches();
    if (n == 1) return batch;
    const int64_t m = options_.batch_size() / n;
    if constexpr (std::is_same_v<T, torch::Tensor>) return batch.slice(0, k * m, (k + 1) * m);
    else if constexpr (std::is_same_v<T, NoCondition>) return batch;
    else return ConditionTraits<T>::slice(batch, k * m, (k + 1) * m);
  }
  /// Sums micro-batches' gradients (an undefined one counts as zero).
  static void accumulate(std::vector<torch::Tensor>& sum, std::vector<torch::Tensor> part) {
    if (sum.empty()) {
      sum = std::move(part);
      return;
    }
    for (size_t i = 0; i < sum.size(); ++i) {
      if (!part[i].defined()) continue;
      if (sum[i].defined()) sum[i].add_(part[i]);
      else sum[i] = std::move(part[i]);
    }
  }
  /// Sums micro-batches' summaries: every entry is a share of a mean, but the last, a flag (all finite), which is the minimum.
  static void add_summary(torch::Tensor& sum, const torch::Tensor& part) {
    if (!sum.defined()) {
      sum = part;
      return;
    }
    const int64_t last = sum.size(0) - 1;
    auto flag = torch::minimum(sum[last], part[last]);
    sum = sum + part;
    sum[last] = flag;
  }
  Cond draw_condition() {
    if constexpr (std::is_same_v<Cond, NoCondition>) return NoCondition{};
    else return own_rows(conditions_.sample(options_.batch_size() * world(), rng_));
  }
  torch::Tensor draw_t(bool generator_phase) {
    const auto cpu = torch::TensorOptions().dtype(tensor_options_.dtype());
    const int64_t n = options_.batch_size() * world();
    const auto t = generator_phase ? policies_.schedule.sample_generator_t(n, cpu, rng_)
                                   : policies_.schedule.sample_assistant_t(n, cpu, rng_);
    return own_rows(t).to(tensor_options_.device());
  }

  enum Phase { kGeneratorPhase = 0, kAssistantPhase = 1 };
  static const char* phase_name(Phase p) { return p == kGeneratorPhase ? "generator" : "assistant"; }

  /// Handles a dropped update: counts it, logs it, throws under kThrow or after too many in a row.
  void non_finite_event(StepStats& stats, Phase phase, const std::string& what, double loss, double grad_norm) {
    ++stats.non_finite;
    const int64_t in_row = ++skips_in_row_[phase];
    const std::string msg = c10::str("diffinstruct::DiStarTrainer: non-finite ", phase_name(phase), " update at step ", step_ + 1, " (",
                                     what, "; loss ", loss, ", gradient norm ", grad_norm, "); the update was not applied");
    if (sink_) sink_(msg);
    TORCH_CHECK(options_.non_finite() != NonFinitePolicy::kThrow, msg);
    TORCH_CHECK(in_row < options_.max_consecutive_skips(), "diffinstruct::DiStarTrainer: ", in_row, " ", phase_name(phase),
                " updates in a row were dropped as non-finite (max_consecutive_skips = ", options_.max_consecutive_skips(),
                "); the run is not training any more. Last: ", msg);
  }

  /// Handles an update whose scaled gradients overflowed: not applied, counted, the scale backs off.
  /// Not an error (float16 scaling meets a few at its start), but `max_consecutive_skips` in a row
  /// mean no scale helps: the run stops.
  void overflow_event(StepStats& stats, Phase phase, GradScaler& scaler, const std::vector<torch::Tensor>& params) {
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
    const double was = scaler.scale_value();
    scaler.update(/*overflow=*/true);
    ++stats.overflows;
    const int64_t in_row = ++skips_in_row_[phase];
    const std::string msg = c10::str("diffinstruct::DiStarTrainer: the ", phase_name(phase), " gradients overflowed at loss scale ", was,
                                     " at step ", step_ + 1, "; the update was skipped and the scale is now ", scaler.scale_value());
    if (sink_) sink_(msg);
    TORCH_CHECK(in_row < options_.max_consecutive_skips(), "diffinstruct::DiStarTrainer: ", in_row, " ", phase_name(phase),
                " updates in a row were skipped (non-finite, or overflowing at every loss scale; max_consecutive_skips = ",
                options_.max_consecutive_skips(), "). Last: ", msg);
  }

  /// Sets .grad from `grads`, clips, and returns the pre-clip global norm (NaN/inf if any is non-finite).
  static double assign_and_clip(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads, double max_norm) {
    std::vector<torch::Tensor> sq;
    for (size_t i = 0; i < params.size(); ++i) {
      auto g = grads[i].defined() ? grads[i] : torch::zeros_like(params[i]);
      params[i].mutable_grad() = g;
      sq.push_back(g.detach().pow(2).sum());
    }
    const double norm = torch::stack(sq).sum().sqrt().item<double>();
    if (std::isfinite(norm) && max_norm > 0 && norm > max_norm) {
      const double scale = max_norm / (norm + 1e-6);
      for (auto& p : params) p.mutable_grad().mul_(scale);
    }
    return norm;
  }

  /// Steps `opt` unless the step would make a weight non-finite (then: dropped, counted). Returns
  /// whether it stepped.
  bool guarded_step(torch::optim::Optimizer& opt, detail::OptimizerKind kind, const std::vector<torch::Tensor>& params,
                    StepStats& stats, Phase phase, double loss, double norm) {
    const bool check = options_.check_weights();
    if (check && kind != detail::OptimizerKind::kUser && !detail::step_keeps_finite(opt, kind)) {
      for (auto& p : params) p.mutable_grad() = torch::Tensor();
      non_finite_event(stats, phase, "the optimizer step would make weights non-finite", loss, norm);
      return false;
    }
    opt.step();
    if (check && kind == detail::OptimizerKind::kUser && !detail::all_finite(params)) {
      TORCH_CHECK(false, "diffinstruct::DiStarTrainer: the ", phase_name(phase), " optimizer (installed with set_optimizers) made weights "
                  "non-finite at step ", step_ + 1, " (loss ", loss, ", gradient norm ", norm, "); a step of an optimizer the trainer "
                  "did not build cannot be undone, so training stops here: resume from the last checkpoint");
    }
    skips_in_row_[phase] = 0;
    return true;
  }

  /// The generator's samples for noise z, checked where they are produced: floating point, on the
  /// trainer's device, of the expected per-sample shape.
  torch::Tensor generate(const torch::Tensor& z, const Cond& c) {
    torch::Tensor x0 = detail::maybe_checkpointed(
        options_.checkpoint_generator(), [this, c](const std::vector<torch::Tensor>& in) { return generator_(in[0], c); }, {z},
        generator_params_);
    const auto& name = generator_.name();
    TORCH_CHECK(x0.is_floating_point(), "diffinstruct::DiStarTrainer: the generator ('", name, "') returned samples of dtype ",
                x0.scalar_type(), "; expected a floating-point tensor");
    TORCH_CHECK(x0.device() == tensor_options_.device(), "diffinstruct::DiStarTrainer: the generator ('", name,
                "') returned samples on device ", x0.device(), "; expected ", tensor_options_.device(), " (where its parameters are)");
    TORCH_CHECK(x0.sizes().slice(1) == c10::IntArrayRef(sample_shape_), "diffinstruct::DiStarTrainer: the generator ('", name,
                "') returned samples of per-sample shape ", x0.sizes().slice(1), " (batch ", x0.sizes(), "); expected ",
                c10::IntArrayRef(sample_shape_),
                options_.sample_shape().empty() ? " (the noise shape; set DiStarTrainerOptions::sample_shape if the generator's samples "
                                                  "differ from its noise)"
                                                : " (DiStarTrainerOptions::sample_shape)");
    return x0.to(tensor_options_.dtype());  // under autocast a network returns reduced precision: the loop is float32+
  }

  /// At the first step of each phase: the loss must reach no tensor requiring grad but `trained`.
  void check_graph(const torch::Tensor& loss, const std::vector<torch::Tensor>& trained, Phase phase) {
    if (graph_checked_[phase]) return;
    graph_checked_[phase] = true;
    const auto foreign = detail::foreign_leaves(loss, trained);
    if (foreign.empty()) return;
    std::string shapes;
    for (size_t i = 0; i < foreign.size() && i < 4; ++i) shapes += (i ? ", " : "") + c10::str(foreign[i].sizes());
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer: the ", phase_name(phase), " loss reaches ", foreign.size(),
                " tensor(s) that require grad but are not the ", phase_name(phase), "'s parameters (shapes ", shapes,
                foreign.size() > 4 ? ", ..." : "", "): a frozen model (the teacher, the reward, or a module a callable uses) has "
                "trainable parameters, or a condition requires grad. Declare the modules a callable uses with holds(module), so that "
                "the trainer freezes them, or set requires_grad(false) on them");
  }

  /// A trained parameter belongs to its role alone: the generator's and the assistant's trained
  /// parameters must not be held by another role (a copied TORCH_MODULE holder shares its module,
  /// and a shared teacher would be trained through the assistant). Frozen parameters may be shared:
  /// a LoRA assistant on the teacher's base (adapters/shared_base.hpp) holds the base the teacher reads.
  void check_distinct_parameters() const {
    detail::NamedTensors frozen;
    for (const auto& m : frozen_) {
      for (auto& p : m.named_parameters()) frozen.push_back(std::move(p));
    }
    if constexpr (detail::has_read_parameters<TeacherT>::value) {
      for (auto& p : teacher_.read_parameters()) frozen.push_back(std::move(p));
    }
    const auto gen = detail::named_parameters(generator_.model());
    const auto asst = detail::named_parameters(assistant_.model());
    const std::pair<const detail::NamedTensors*, const char*> trained[] = {{&generator_named_, "generator"}, {&assistant_named_, "assistant"}};
    const std::pair<const detail::NamedTensors*, const char*> held[] = {{&gen, "generator"}, {&asst, "assistant"}, {&frozen, "teacher or reward"}};
    for (const auto& [mine, role] : trained) {
      for (const auto& [theirs, other] : held) {
        if (std::strcmp(role, other) == 0) continue;
        int64_t count = 0;
        const auto first = detail::first_shared(*mine, role, *theirs, other, &count);
        TORCH_CHECK(first.empty(), "diffinstruct::DiStarTrainer: ", count, " trained parameter tensor(s) of the ", role, " are also the ",
                    other, "'s (first: ", first, "): shared weights would be trained where they must stay frozen. Give each role its "
                    "own copy (build a second module and copy_state(teacher, assistant)), or, for one base shared by the teacher and "
                    "the assistant, train a LoRA on it and pass the teacher's pass on the base (adapters/shared_base.hpp, docs/lora.md)");
      }
    }
  }

  /// Trained weights are master weights: float32 (or float64 without autocast), never reduced
  /// precision, whose updates of size lr·g would mostly round away.
  void check_master_weights(Precision precision) const {
    const bool autocast = precision != Precision::kFloat32;
    const std::pair<detail::NamedTensors, const char*> roles[] = {{generator_named_, "generator"}, {assistant_named_, "assistant"}};
    for (const auto& [named, role] : roles) {
      for (const auto& [name, p] : named) {
        const auto dt = p.scalar_type();
        TORCH_CHECK(p.is_floating_point() && !is_reduced_precision(dt) && (!autocast || dt == torch::kFloat),
                    "diffinstruct::DiStarTrainer: the ", role, "'s parameter '", name, "' is ", dt, "; trained weights must be ",
                    autocast ? "float32 under mixed precision (autocast computes in "
                             : "float32 or float64 (master weights; for reduced-precision compute keep them float32 and set "
                               "DiStarTrainerOptions::precision, e.g. ",
                    autocast ? precision_name(precision) : "bf16", autocast ? " from float32 master weights)" : ")");
      }
    }
  }

  void build_scalers() {
    const auto device = tensor_options_.device();
    generator_scaler_ = options_.scales_losses() ? GradScaler(options_.grad_scaler(), device) : GradScaler();
    assistant_scaler_ = options_.scales_losses() ? GradScaler(options_.grad_scaler(), device) : GradScaler();
  }

  void build_optimizers() {
    generator_opt_ = detail::make_adam(generator_params_, options_.generator_adam());
    assistant_opt_ = detail::make_adam(assistant_params_, options_.assistant_adam());
    generator_opt_kind_ = detail::adam_kind(options_.generator_adam());
    assistant_opt_kind_ = detail::adam_kind(options_.assistant_adam());
  }

  /// The generator's samples of the last generator update, kept for the assistant (reuse_generator_samples).
  struct ReusedSamples {
    torch::Tensor x0;  // this rank's rows, detached
    Cond c{};
  };

  void generator_phase(StepStats& stats) {
    const auto t0 = std::chrono::steady_clock::now();
    generator_update(stats);
    stats.generator_ms = detail::since_ms(t0);
  }

  double assistant_update(StepStats& stats, const ReusedSamples* reused = nullptr) {
    // Everything random is drawn for the whole batch first, in the order z, c, t, ε: any number of
    // micro-batches follows the same random stream. Reused samples replace z, c and the generator.
    const bool reuse = reused && reused->x0.defined();
    const auto z = reuse ? torch::Tensor() : randn(batch_shape());
    const Cond c = reuse ? reused->c : draw_condition();
    const auto t = draw_t(/*generator_phase=*/false);
    const auto noise = randn(sample_batch_shape());
    const auto device = tensor_options_.device();
    const int64_t n = options_.micro_batches();
    std::vector<torch::Tensor> grads;
    torch::Tensor summary;  // [mean loss, samples finite]
    for (int64_t k = 0; k < n; ++k) {
      const Cond ck = micro_rows(c, k);
      torch::Tensor x0;
      if (reuse) {
        x0 = micro_rows(reused->x0, k);
      } else {
        torch::NoGradGuard no_grad;
        AutocastScope autocast(options_.precision(), device);
        x0 = generate(micro_rows(z, k), ck);
      }
      torch::Tensor loss;
      {
        AutocastScope autocast(options_.precision(), device);  // the assistant's forward; its ε̂ comes back in the loop's dtype
        loss = assistant_loss_of(
                   [&](const torch::Tensor& x_t, const torch::Tensor& tt, const torch::Tensor& a, const torch::Tensor& s) {
                     return assistant_eps(x_t, tt, a, s, ck);
                   },
                   policies_.schedule, x0, micro_rows(t, k), micro_rows(noise, k))
                   .mean();
      }
      if (n > 1) loss = loss / static_cast<double>(n);  // the batch mean is the sum of the micro-batches' shares
      check_graph(loss, assistant_params_, kAssistantPhase);
      accumulate(grads, torch::autograd::grad({assistant_scaler_.scale(loss)}, assistant_params_, {}, false, false, /*allow_unused=*/true));
      add_summary(summary, torch::stack({loss.detach().to(torch::kFloat64), torch::isfinite(x0).all().to(torch::kFloat64)}).to(torch::kCPU));
    }
    average_over_ranks(grads, assistant_params_, summary);  // data-parallel: once per update, every rank decides alike
    const double loss_value = summary[0].item<double>();
    const bool x0_finite = summary[1].item<double>() == 1.0;
    const bool overflow = assistant_scaler_.enabled() && assistant_scaler_.unscale(grads);
    stats.assistant_loss_scale = assistant_scaler_.scale_value();
    if (overflow && x0_finite && std::isfinite(loss_value)) {
      overflow_event(stats, kAssistantPhase, assistant_scaler_, assistant_params_);
      return std::nan("");
    }
    const double norm = assign_and_clip(assistant_params_, grads, options_.assistant_max_grad_norm());
    stats.assistant_grad_norm = norm;
    if (!x0_finite || !std::isfinite(loss_value) || !std::isfinite(norm)) {
      for (auto& p : assistant_params_) p.mutable_grad() = torch::Tensor();
      non_finite_event(stats, kAssistantPhase,
                       x0_finite ? "non-finite loss or gradient"
                                 : c10::str("the generator ('", generator_.name(), "') produced non-finite samples"),
                       loss_value, norm);
      return std::nan("");
    }
    assistant_scaler_.update(/*overflow=*/false);
    if (!guarded_step(*assistant_opt_, assistant_opt_kind_, assistant_params_, stats, kAssistantPhase, loss_value, norm)) return std::nan("");
    release_gradients(assistant_params_);
    return loss_value;
  }

  /// The teacher's conditional (and, under CFG, unconditional) predictions at x_t. One batched
  /// forward for both, except when the divergence differentiates through the networks but the
  /// guidance uses ε̂_u only detached (CFG outside): then the unconditional pass builds no graph.
  void teacher_predictions(GeneratorLossInputs& in, const torch::Tensor& net_in, const torch::Tensor& t, const torch::Tensor& alpha,
                           const torch::Tensor& sigma, const Cond& c) {
    if constexpr (Guidance::needs_unconditional) {
      using Traits = ConditionTraits<Cond>;
      const auto B = net_in.size(0);  // the micro-batch
      const Cond null = Traits::broadcast(conditions_.null_condition, B);
      if constexpr (Divergence::needs_input_grad && !detail::differentiates_unconditional<Guidance>::value) {
        in.eps_cond = teacher_eps(net_in, t, alpha, sigma, c);
        torch::NoGradGuard no_grad;
        in.eps_uncond = teacher_eps(net_in.detach(), t, alpha, sigma, null);
      } else {
        const auto eps = teacher_eps(torch::cat({net_in, net_in}), torch::cat({t, t}), torch::cat({alpha, alpha}),
                                     torch::cat({sigma, sigma}), Traits::concat(c, null));
        in.eps_cond = eps.slice(0, 0, B);
        in.eps_uncond = eps.slice(0, B);
      }
    } else {
      in.eps_cond = teacher_eps(net_in, t, alpha, sigma, c);
    }
  }

  /// The frozen teacher's ε̂; checkpointed, its graph keeps only the inputs (it has no parameter
  /// to differentiate: only x_t's gradient flows through it).
  torch::Tensor teacher_eps(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& alpha, const torch::Tensor& sigma,
                            const Cond& c) {
    return detail::maybe_checkpointed(
        options_.checkpoint_teacher(),
        [this, c](const std::vector<torch::Tensor>& in) { return teacher_.eps(in[0], in[1], in[2], in[3], c); }, {x_t, t, alpha, sigma});
  }

  /// The assistant's ε̂. Its parameters are passed on (when the assistant trains they require grad;
  /// in the generator phase they do not, and only x_t's gradient flows).
  torch::Tensor assistant_eps(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& alpha, const torch::Tensor& sigma,
                              const Cond& c) {
    return detail::maybe_checkpointed(
        options_.checkpoint_assistant(),
        [this, c](const std::vector<torch::Tensor>& in) { return assistant_.eps(in[0], in[1], in[2], in[3], c); }, {x_t, t, alpha, sigma},
        assistant_params_);
  }

  /// The generator phase's loss on one micro-batch (its share of the batch mean) and its summary
  /// [loss, L_div, L_cfg, L_rew, mean r (each a share), samples finite].
  std::pair<torch::Tensor, torch::Tensor> generator_micro_batch(const torch::Tensor& z, const Cond& c, const torch::Tensor& t,
                                                                const torch::Tensor& noise, int64_t micro_batches,
                                                                std::vector<torch::Tensor>* samples) {
    const auto device = tensor_options_.device();
    const auto precision = options_.precision();
    torch::Tensor x0;
    {
      AutocastScope autocast(precision, device);
      x0 = generate(z, c);
    }
    if (samples) samples->push_back(x0.detach());
    auto& sched = policies_.schedule;
    const auto alpha = sched.alpha(t), sigma = sched.sigma(t);
    const auto w = generator_weight(sched, t, alpha, sigma);
    const auto x_t = diffuse(x0, alpha, sigma, noise);

    GeneratorLossInputs in;
    {
      // The assistant's weights are not trained here: no graph for them (its inputs still get one).
      detail::RequiresGradOff assistant_frozen(assistant_params_);
      // Score divergences differentiate through the networks' inputs; KL does not, so no graph is built.
      torch::AutoGradMode grad_mode(Divergence::needs_input_grad);
      AutocastScope autocast(precision, device);  // ε̂ of both networks come back in the loop's dtype (Denoiser::eps)
      const auto net_in = Divergence::needs_input_grad ? x_t : x_t.detach();
      in.assistant_eps = assistant_eps(net_in, t, alpha, sigma, c);
      teacher_predictions(in, net_in, t, alpha, sigma, c);
    }
    in.noise = noise;
    in.x_t = x_t;
    in.x0 = x0;
    in.alpha = alpha;
    in.sigma = sigma;
    in.w = w;
    if constexpr (!Reward::is_null) {
      AutocastScope autocast(precision, device);
      in.reward = detail::maybe_checkpointed(
                      options_.checkpoint_reward(), [this, c](const std::vector<torch::Tensor>& in) { return policies_.reward(in[0], c); },
                      {x0})
                      .to(tensor_options_.dtype());  // rewards are loop numbers: float32+
      in.alpha_rew = options_.alpha_rew();
    }
    const GeneratorLossTerms terms = generator_loss(policies_.divergence, policies_.guidance, in, /*check_values=*/false);
    const double share = micro_batches > 1 ? 1.0 / static_cast<double>(micro_batches) : 1.0;
    const torch::Tensor loss = micro_batches > 1 ? terms.total.mean() * share : terms.total.mean();
    check_graph(loss, generator_params_, kGeneratorPhase);
    auto summary = torch::stack({loss, terms.divergence.mean() * share, terms.guidance.mean() * share, terms.reward.mean() * share,
                                 in.reward.defined() ? in.reward.mean() * share : torch::zeros({}, loss.options()),
                                 torch::isfinite(x0).all().to(loss.scalar_type())})
                       .detach()
                       .to(torch::kCPU, torch::kFloat64);
    return {loss, summary};
  }

  void generator_update(StepStats& stats) {
    // As in the assistant phase: the whole batch's randomness first, then one micro-batch at a time.
    const auto z = randn(batch_shape());
    const Cond c = draw_condition();
    const auto t = draw_t(/*generator_phase=*/true);
    const auto noise = randn(sample_batch_shape());
    const int64_t n = options_.micro_batches();
    std::vector<torch::Tensor> grads, samples;
    auto* keep = options_.reuse_generator_samples() ? &samples : nullptr;
    torch::Tensor summary;
    for (int64_t k = 0; k < n; ++k) {
      auto [loss, part] = generator_micro_batch(micro_rows(z, k), micro_rows(c, k), micro_rows(t, k), micro_rows(noise, k), n, keep);
      // Only the generator's parameters are differentiated: frozen and assistant weights get nothing.
      accumulate(grads, torch::autograd::grad({generator_scaler_.scale(loss)}, generator_params_, {}, false, false, /*allow_unused=*/true));
      add_summary(summary, part);
    }
    average_over_ranks(grads, generator_params_, summary);  // data-parallel: once per update
    if (keep) reused_ = {samples.size() == 1 ? samples[0] : torch::cat(samples), c};
    const auto s = summary.accessor<double, 1>();
    stats.generator_loss = s[0];
    stats.divergence_loss = s[1];
    stats.guidance_loss = s[2];
    stats.reward_loss = s[3];
    stats.mean_reward = s[4];
    const bool x0_finite = s[5] == 1.0;
    const bool overflow = generator_scaler_.enabled() && generator_scaler_.unscale(grads);
    stats.generator_loss_scale = generator_scaler_.scale_value();
    if (overflow && x0_finite && std::isfinite(stats.generator_loss)) {
      stats.generator_skipped = true;
      overflow_event(stats, kGeneratorPhase, generator_scaler_, generator_params_);
      return;
    }
    const double norm = assign_and_clip(generator_params_, grads, options_.generator_max_grad_norm());
    stats.generator_grad_norm = norm;
    if (!x0_finite || !std::isfinite(stats.generator_loss) || !std::isfinite(norm)) {
      for (auto& p : generator_params_) p.mutable_grad() = torch::Tensor();
      stats.generator_skipped = true;
      non_finite_event(stats, kGeneratorPhase,
                       x0_finite ? "non-finite loss or gradient"
                                 : c10::str("the generator ('", generator_.name(), "') produced non-finite samples"),
                       stats.generator_loss, norm);
      return;
    }
    generator_scaler_.update(/*overflow=*/false);
    if (!guarded_step(*generator_opt_, generator_opt_kind_, generator_params_, stats, kGeneratorPhase, stats.generator_loss, norm)) {
      stats.generator_skipped = true;
      return;
    }
    if (ema_decay_on()) ema_.update(generator_params_);
    release_gradients(generator_params_);
  }

  /// After an optimizer step: the gradients are spent (release_gradients).
  void release_gradients(const std::vector<torch::Tensor>& params) {
    if (!options_.release_gradients()) return;
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  }

  GeneratorT generator_;
  TeacherT teacher_;
  AssistantT assistant_;
  Policies policies_;
  ConditionSource<Cond> conditions_;
  std::vector<int64_t> noise_shape_;
  DiStarTrainerOptions options_;
  at::Generator rng_;
  torch::TensorOptions tensor_options_;
  std::vector<torch::Tensor> generator_params_, assistant_params_;  // the trained ones: those that require grad at construction
  detail::NamedTensors generator_named_, assistant_named_;           // the same, with their names in the model
  std::unique_ptr<torch::optim::Optimizer> generator_opt_, assistant_opt_;
  detail::OptimizerKind generator_opt_kind_ = detail::OptimizerKind::kAdam, assistant_opt_kind_ = detail::OptimizerKind::kAdam;
  std::vector<int64_t> sample_shape_;
  std::vector<ModuleRef> frozen_;  // the teacher's and the reward's modules
  ExponentialMovingAverage ema_;
  GradScaler generator_scaler_, assistant_scaler_;  // disabled unless the options scale losses
  ReusedSamples reused_;  // within one step only (reuse_generator_samples), so checkpoints need nothing of it
  std::function<void(const std::string&)> sink_;
  std::shared_ptr<Collectives> dp_;
  int64_t step_ = 0;
  int64_t non_finite_total_ = 0;
  int64_t skips_in_row_[2] = {0, 0};  // dropped updates in a row, per Phase
  bool graph_checked_[2] = {false, false};
  std::map<std::string, int64_t> saves_;  // saves per (step, path): data-parallel ranks agree on which report is which
};

} // namespace diffinstruct

#include <diffinstruct/trainer/checkpoint.hpp>
