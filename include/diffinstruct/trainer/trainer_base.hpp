#pragma once
/// \file What a DI* trainer holds and everything around its step: building and checking the roles,
/// accessors, sampling, data parallel, checkpoints. The step itself is DiStarTrainer
/// (trainer/di_star_trainer.hpp), which derives from this.

#include <diffinstruct/core/roles.hpp>
#include <diffinstruct/memory/peak_memory.hpp>
#include <diffinstruct/trainer/checkpoint_load.hpp>
#include <diffinstruct/trainer/draws.hpp>
#include <diffinstruct/trainer/passes.hpp>
#include <diffinstruct/trainer/policies.hpp>
#include <diffinstruct/trainer/role_checks.hpp>
#include <diffinstruct/trainer/update_path.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {

template <class GeneratorT, class TeacherT, class AssistantT, class Cond, class Divergence, class Guidance, class Reward, class Schedule>
class DiStarTrainerBase {
  static_assert(detail::trainer_contracts<GeneratorT, TeacherT, AssistantT, Cond, Divergence, Guidance, Reward, Schedule>(),
                "diffinstruct::DiStarTrainer: a contract is broken (the message above says which)");

 public:
  using Policies = DiStarPolicies<Divergence, Guidance, Reward, Schedule>;

  DiStarTrainerBase(GeneratorT generator, TeacherT teacher, AssistantT assistant, Policies policies, ConditionSource<Cond> conditions,
                    std::vector<int64_t> noise_shape, DiStarTrainerOptions options)
      : generator_(std::move(generator)),
        teacher_(std::move(teacher)),
        assistant_(std::move(assistant)),
        policies_(std::move(policies)),
        options_((options.validate(), std::move(options))),
        generator_role_("generator", generator_.model()),
        assistant_role_("assistant", assistant_.model()),
        draws_(std::move(conditions), std::move(noise_shape), options_.seed()) {
    detail::check_trainer_setup<Cond>(draws_.conditions(), draws_.noise_shape(), options_);
    generator_role_.check_master_weights(options_.precision());
    assistant_role_.check_master_weights(options_.precision());
    const auto& p0 = generator_role_.parameters().front();
    loop_ = p0.options().requires_grad(false).dtype(loop_dtype_for(p0.scalar_type()));
    check_precision_supported(options_.precision(), loop_.device(), "diffinstruct::DiStarTrainer");
    TORCH_CHECK(!options_.measure_memory() || peak_memory_supported(loop_.device()), "diffinstruct::DiStarTrainer: measure_memory on ",
                loop_.device(), " needs the CUDA extension diffinstruct::cuda linked");
    if constexpr (Guidance::needs_unconditional) {
      auto& null = draws_.conditions().null_condition;
      null = detail::checked_null_condition(null, options_.batch_size() / options_.micro_batches(), loop_.device());
    }
    // Frozen models: evaluation mode and no parameter gradients, ever.
    frozen_ = teacher_.modules();
    for (auto& m : detail::modules_of(policies_.reward)) frozen_.push_back(m);
    check_distinct_parameters();
    for (const auto& m : frozen_) m.freeze();
    detail::freeze_policy_parameters(policies_.reward);
    generator_role_.build_optimizer(options_.generator_adam());
    assistant_role_.build_optimizer(options_.assistant_adam());
    for (auto* role : {&generator_role_, &assistant_role_}) role->build_scaler(options_, loop_.device());
    generator_role_.start_ema(options_.ema_decay());
    configure_draws();
  }

  /// Replaces the optimizers (e.g. another algorithm); they must optimise exactly the generator's and
  /// the assistant's trained parameters.
  void set_optimizers(std::unique_ptr<torch::optim::Optimizer> generator_opt, std::unique_ptr<torch::optim::Optimizer> assistant_opt) {
    TORCH_CHECK(generator_opt && assistant_opt, "diffinstruct::DiStarTrainer::set_optimizers: expected two optimizers, got a null one");
    generator_role_.set_optimizer(std::move(generator_opt));
    assistant_role_.set_optimizer(std::move(assistant_opt));
  }

  /// Where the trainer's messages go (nothing is printed without a sink).
  void set_log_sink(std::function<void(const std::string&)> sink) { sink_ = std::move(sink); }

  /// Makes this trainer one rank of a data-parallel run (distributed/data_parallel.hpp): the batch
  /// size becomes per rank; every rank draws the same global batch from the shared seed and keeps
  /// its own rows (draws.hpp), so N ranks × batch B follow the same trajectory as 1 rank × batch
  /// N·B; gradients and statistics are averaged over ranks before clipping (update_path.hpp); rank
  /// 0's parameters are broadcast now and after every load(); only rank 0 writes checkpoints.
  void set_data_parallel(std::shared_ptr<Collectives> collectives) {
    TORCH_CHECK(collectives, "diffinstruct::DiStarTrainer::set_data_parallel: expected collectives, got a null pointer");
    if constexpr (!detail::has_condition_slice<Cond>::value) {
      TORCH_CHECK(collectives->world_size() == 1, "diffinstruct::DiStarTrainer::set_data_parallel: data-parallel training needs "
                  "ConditionTraits<Cond>::slice(c, begin, end) for this condition type (docs/policies.md#conditions)");
    }
    dp_ = std::move(collectives);
    configure_draws();
    broadcast_state();
  }
  const std::shared_ptr<Collectives>& data_parallel() const { return dp_; }

  /// Samples x0 = g(z, c) for given noise and conditions, without gradient, with the generator in
  /// evaluation mode (its mode is restored after), optionally with the EMA weights.
  torch::Tensor sample(const torch::Tensor& z, const Cond& c, bool use_ema = false) {
    torch::NoGradGuard no_grad;
    detail::EvalModeScope eval(generator_.modules());
    EmaWeightsScope ema_weights(generator_role_.ema(), generator_role_.parameters(), use_ema);
    AutocastScope autocast(options_.precision(), loop_.device());
    return generator_(z, c).to(loop_.dtype());
  }

  /// What defines this run, as (key, text) pairs: the trainer options, the policies, the shapes and
  /// the world size. A checkpoint stores it; load() compares it (ResumeMode).
  std::vector<std::pair<std::string, std::string>> run_definition() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& [k, v] : detail::options_to_text(options_)) {
      if (k != "keep_checkpoints") out.emplace_back("options." + k, v);  // how many files are kept does not define the run
    }
    out.emplace_back("policy.divergence", detail::describe_policy(policies_.divergence));
    out.emplace_back("policy.guidance", detail::describe_policy(policies_.guidance));
    out.emplace_back("policy.reward", detail::describe_policy(policies_.reward));
    out.emplace_back("policy.schedule", detail::describe_policy(policies_.schedule));
    out.emplace_back("shape.noise", c10::str(c10::IntArrayRef(draws_.noise_shape())));
    out.emplace_back("world_size", std::to_string(world()));
    out.emplace_back("optimizer.generator", detail::optimizer_type(generator_role_.optimizer()));
    out.emplace_back("optimizer.assistant", detail::optimizer_type(assistant_role_.optimizer()));
    return out;
  }

  /// Saves everything needed to resume exactly (trainer/checkpoint.hpp): atomic and durable,
  /// keeping `keep_checkpoints` files. Data-parallel: every rank calls it; rank 0 writes.
  void save(const std::string& path) {
    auto st = checkpoint_state();
    save_checkpoint(st, path);
  }
  /// Restores a checkpoint written by save(), onto each model's current device and dtype, after
  /// verifying every tensor's checksum and the run definition (ResumeMode); on a missing, corrupt,
  /// truncated or mismatched file throws an error naming the file and leaves this trainer untouched.
  void load(const std::string& path, ResumeMode mode = ResumeMode::kRequireMatch) {
    auto st = checkpoint_state();
    load_checkpoint(st, path, mode);
    configure_draws();  // the options may have changed (sample_shape)
    broadcast_state();  // data-parallel: every rank continues from rank 0's values
  }

  int64_t step_count() const { return step_; }
  int64_t non_finite_total() const { return non_finite_total_; }
  const DiStarTrainerOptions& options() const { return options_; }
  GeneratorT& generator() { return generator_; }
  TeacherT& teacher() { return teacher_; }
  AssistantT& assistant() { return assistant_; }
  Policies& policies() { return policies_; }
  ExponentialMovingAverage& ema() { return generator_role_.ema(); }
  torch::optim::Optimizer& generator_optimizer() { return generator_role_.optimizer(); }
  torch::optim::Optimizer& assistant_optimizer() { return assistant_role_.optimizer(); }
  /// The dynamic loss scales (disabled unless the options scale losses).
  GradScaler& generator_scaler() { return generator_role_.scaler(); }
  GradScaler& assistant_scaler() { return assistant_role_.scaler(); }
  /// The trained roles (parameters, optimizer, scaler, EMA, counters).
  TrainedRole& generator_role() { return generator_role_; }
  TrainedRole& assistant_role() { return assistant_role_; }
  /// The dtype of the loop's own numbers (noise, times, losses): the trained weights' (float32 or float64).
  c10::ScalarType loop_dtype() const { return c10::typeMetaToScalarType(loop_.dtype()); }
  at::Generator& rng() { return draws_.rng(); }
  const std::vector<torch::Tensor>& generator_parameters() const { return generator_role_.parameters(); }
  const std::vector<torch::Tensor>& assistant_parameters() const { return assistant_role_.parameters(); }

 protected:
  using Passes = NetworkPasses<GeneratorT, TeacherT, AssistantT, Reward>;
  /// The networks' passes for this update (passes.hpp).
  Passes passes(StepStats& stats) {
    return Passes{generator_, teacher_, assistant_, policies_.reward, options_, loop_, draws_.sample_shape(), generator_role_.parameters(),
                  assistant_role_.parameters(), stats.phases};
  }
  /// The rules of one update of a role (update_path.hpp).
  UpdateRules update_rules(double max_grad_norm) const {
    return UpdateRules{&options_, max_grad_norm, step_ + 1, generator_.name(), dp_.get(), &sink_};
  }
  /// The gradients of a role's (scaled) loss with respect to its trained parameters only: frozen and
  /// other roles' weights get nothing.
  static std::vector<torch::Tensor> gradients(const torch::Tensor& loss, TrainedRole& role, StepStats& stats) {
    AddElapsedMs clock(stats.phases.backward);
    return torch::autograd::grad({role.scaler().scale(loss)}, role.parameters(), {}, false, false, /*allow_unused=*/true);
  }
  /// A micro-batch's summary for MicroBatchSum: the values given (shares of batch means), then
  /// whether every sample of x0 is finite; float64, on the CPU.
  static torch::Tensor summary_of(std::vector<torch::Tensor> values, const torch::Tensor& x0) {
    for (auto& v : values) v = v.detach();
    values.push_back(torch::isfinite(x0).all().to(values.front().scalar_type()));
    return torch::stack(values).to(torch::kCPU, torch::kFloat64);
  }
  /// Each of n micro-batches' share of a batch mean.
  static double share(int64_t n) { return 1.0 / static_cast<double>(n); }
  template <class F>
  static void timed(double& ms, F f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  GeneratorT generator_;
  TeacherT teacher_;
  AssistantT assistant_;
  Policies policies_;
  DiStarTrainerOptions options_;
  TrainedRole generator_role_, assistant_role_;
  SeededDraws<Cond> draws_;
  torch::TensorOptions loop_;      // the loop's dtype, the trainer's device
  std::vector<ModuleRef> frozen_;  // the teacher's and the reward's modules
  std::function<void(const std::string&)> sink_;
  std::shared_ptr<Collectives> dp_;
  int64_t step_ = 0;
  int64_t non_finite_total_ = 0;

 private:
  int world() const { return dp_ ? dp_->world_size() : 1; }
  void configure_draws() {
    const auto& s = options_.sample_shape();
    draws_.configure(loop_, options_.batch_size(), s.empty() ? draws_.noise_shape() : s, dp_ ? dp_->rank() : 0, world());
  }
  CheckpointState checkpoint_state() {
    return CheckpointState{generator_role_, assistant_role_,     draws_.rng(), options_, step_, non_finite_total_, run_definition(),
                           loop_.device(),  dp_.get(),           &sink_,       &saves_};
  }
  /// Rank 0's generator, assistant and EMA values to every rank.
  void broadcast_state() {
    if (!dp_) return;
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> values;
    for (const auto& p : generator_role_.parameters()) values.push_back(p.detach());
    for (const auto& p : assistant_role_.parameters()) values.push_back(p.detach());
    for (const auto& e : generator_role_.ema().shadow()) values.push_back(e);
    dp_->broadcast(values, 0);
  }
  void check_distinct_parameters() const {
    detail::NamedTensors frozen;
    for (const auto& m : frozen_) {
      for (auto& p : m.named_parameters()) frozen.push_back(std::move(p));
    }
    if constexpr (detail::has_read_parameters<TeacherT>::value) {
      for (auto& p : teacher_.read_parameters()) frozen.push_back(std::move(p));
    }
    detail::check_distinct_parameters(generator_role_, assistant_role_, detail::named_parameters(generator_.model()),
                                      detail::named_parameters(assistant_.model()), frozen);
  }

  std::map<std::string, int64_t> saves_;  // saves per (step, path): data-parallel ranks agree on which report is which
};

}  // namespace diffinstruct
