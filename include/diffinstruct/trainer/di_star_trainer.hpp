#pragma once
/// \file The DI* training loop (MATH.md §4): K assistant updates, then one generator update.

#include <diffinstruct/divergences/pseudo_huber_score.hpp>
#include <diffinstruct/losses/assistant_loss.hpp>
#include <diffinstruct/losses/generator_loss.hpp>
#include <diffinstruct/rewards/guidance.hpp>
#include <diffinstruct/rewards/reward.hpp>
#include <diffinstruct/schedules/discrete_vp.hpp>
#include <diffinstruct/trainer/collectives.hpp>
#include <diffinstruct/trainer/ema.hpp>
#include <diffinstruct/trainer/model_state.hpp>
#include <diffinstruct/trainer/options.hpp>
#include <diffinstruct/trainer/step_stats.hpp>

#include <chrono>
#include <functional>
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
/// Adam over a parameter list, from AdamSettings.
inline std::unique_ptr<torch::optim::Optimizer> make_adam(const std::vector<torch::Tensor>& params, const AdamSettings& s) {
  return std::make_unique<torch::optim::Adam>(
      params, torch::optim::AdamOptions(s.lr()).betas(std::make_tuple(s.beta1(), s.beta2())).eps(s.eps()).weight_decay(s.weight_decay()));
}

template <class T, class = void>
struct has_parameters : std::false_type {};
template <class T>
struct has_parameters<T, std::void_t<decltype(std::declval<T&>().parameters())>> : std::true_type {};

inline double since_ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
} // namespace detail

/// Diff-Instruct* trainer: post-trains a one-step generator g_θ(z, c) to maximise a reward while a
/// score divergence keeps it close to a frozen teacher, with an assistant fitted online.
///
/// * `GeneratorT`: `Generator<M>`, `TeacherT` / `AssistantT`: `Denoiser<M, Parameterization>`, with M a
///   torch::nn module (holder or shared_ptr) or a TorchScript module — the generator and assistant
///   must have parameters; the teacher may also be a callable (an analytic score).
/// * The teacher and the reward are frozen here (requires_grad false) and never stepped; the
///   generator update differentiates the generator's parameters only, so no frozen or assistant
///   parameter ever receives a gradient from it.
/// * All randomness (z, conditions, t, ε) comes from the trainer's own CPU generator seeded by
///   `options.seed()`: two runs with the same seed give bit-identical weights on CPU.
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
    generator_params_ = detail::model_parameters(generator_.model());
    assistant_params_ = detail::model_parameters(assistant_.model());
    TORCH_CHECK(!generator_params_.empty(), "diffinstruct::DiStarTrainer: the generator has no parameters to train");
    TORCH_CHECK(!assistant_params_.empty(), "diffinstruct::DiStarTrainer: the assistant has no parameters to train");
    const auto& p0 = generator_params_.front();
    tensor_options_ = p0.options().requires_grad(false);
    // Frozen models: no parameter gradients, ever.
    detail::set_requires_grad(teacher_.model(), false);
    if constexpr (detail::has_parameters<Reward>::value) {
      for (auto& p : policies_.reward.parameters()) p.requires_grad_(false);
    }
    for (auto& p : generator_params_) p.requires_grad_(true);
    for (auto& p : assistant_params_) p.requires_grad_(true);
    generator_opt_ = detail::make_adam(generator_params_, options_.generator_adam());
    assistant_opt_ = detail::make_adam(assistant_params_, options_.assistant_adam());
    if (options_.ema_decay() > 0) ema_ = ExponentialMovingAverage(generator_params_, options_.ema_decay());
  }

  /// Replaces the optimizers (e.g. another algorithm); they must optimise exactly the generator's and
  /// the assistant's parameters.
  void set_optimizers(std::unique_ptr<torch::optim::Optimizer> generator_opt, std::unique_ptr<torch::optim::Optimizer> assistant_opt) {
    TORCH_CHECK(generator_opt && assistant_opt, "diffinstruct::DiStarTrainer::set_optimizers: expected two optimizers, got a null one");
    generator_opt_ = std::move(generator_opt);
    assistant_opt_ = std::move(assistant_opt);
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
    const auto t_assistant = std::chrono::steady_clock::now();
    double assistant_loss_sum = 0;
    int64_t assistant_done = 0;
    for (int64_t k = 0; k < options_.assistant_steps(); ++k) {
      const auto loss = assistant_update(stats);
      if (std::isfinite(loss)) {
        assistant_loss_sum += loss;
        ++assistant_done;
      }
    }
    stats.assistant_loss = assistant_done ? assistant_loss_sum / assistant_done : std::nan("");
    stats.assistant_ms = detail::since_ms(t_assistant);
    const auto t_generator = std::chrono::steady_clock::now();
    generator_update(stats);
    stats.generator_ms = detail::since_ms(t_generator);
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

  /// Samples x0 = g(z, c) for given noise and conditions, without gradient (optionally with the EMA).
  torch::Tensor sample(const torch::Tensor& z, const Cond& c, bool use_ema = false) {
    torch::NoGradGuard no_grad;
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
    return generator_(z, c);
  }

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
  at::Generator& rng() { return rng_; }
  const std::vector<torch::Tensor>& generator_parameters() const { return generator_params_; }
  const std::vector<torch::Tensor>& assistant_parameters() const { return assistant_params_; }

  /// Saves everything needed to resume exactly (checkpoint.hpp); atomic (temporary file, rename).
  void save(const std::string& path);
  /// Restores a checkpoint written by save(); on a missing, truncated or mismatched file throws and
  /// leaves this trainer untouched.
  void load(const std::string& path);

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

  /// Handles a dropped update: counts it, logs it, throws under kThrow.
  void non_finite_event(StepStats& stats, const char* phase, double loss, double grad_norm) {
    ++stats.non_finite;
    const std::string msg = c10::str("diffinstruct::DiStarTrainer: non-finite ", phase, " update at step ", step_ + 1, " (loss ", loss,
                                     ", gradient norm ", grad_norm, "); the update was not applied");
    if (sink_) sink_(msg);
    TORCH_CHECK(options_.non_finite() != NonFinitePolicy::kThrow, msg);
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

  double assistant_update(StepStats& stats) {
    const auto z = randn(batch_shape());
    const Cond c = draw_condition();
    torch::Tensor x0;
    {
      torch::NoGradGuard no_grad;
      x0 = generator_(z, c);
    }
    const auto t = draw_t(/*generator_phase=*/false);
    const auto noise = randn(x0.sizes().vec());
    const torch::Tensor loss = assistant_loss(assistant_, policies_.schedule, x0, c, t, noise).mean();
    auto grads = torch::autograd::grad({loss}, assistant_params_, {}, false, false, /*allow_unused=*/true);
    torch::Tensor summary = loss.detach().to(torch::kCPU, torch::kFloat64).reshape({1});
    average_over_ranks(grads, assistant_params_, summary);  // data-parallel: every rank decides alike
    const double loss_value = summary[0].item<double>();
    const double norm = assign_and_clip(assistant_params_, grads, options_.assistant_max_grad_norm());
    stats.assistant_grad_norm = norm;
    if (!std::isfinite(loss_value) || !std::isfinite(norm)) {
      for (auto& p : assistant_params_) p.mutable_grad() = torch::Tensor();
      non_finite_event(stats, "assistant", loss_value, norm);
      return std::nan("");
    }
    assistant_opt_->step();
    return loss_value;
  }

  void generator_update(StepStats& stats) {
    const auto z = randn(batch_shape());
    const Cond c = draw_condition();
    const auto x0 = generator_(z, c);
    const auto t = draw_t(/*generator_phase=*/true);
    const auto noise = randn(x0.sizes().vec());
    auto& sched = policies_.schedule;
    const auto alpha = sched.alpha(t), sigma = sched.sigma(t);
    const auto w = generator_weight(sched, t, alpha, sigma);
    const auto x_t = diffuse(x0, alpha, sigma, noise);

    GeneratorLossInputs in;
    {
      // Score divergences differentiate through the networks' inputs; KL does not, so no graph is built.
      torch::AutoGradMode grad_mode(Divergence::needs_input_grad);
      const auto net_in = Divergence::needs_input_grad ? x_t : x_t.detach();
      in.assistant_eps = assistant_.eps(net_in, t, alpha, sigma, c);
      if constexpr (Guidance::needs_unconditional) {
        // One teacher forward for the conditional and the unconditional pass.
        using Traits = ConditionTraits<Cond>;
        const auto B = options_.batch_size();
        const Cond both = Traits::concat(c, Traits::broadcast(conditions_.null_condition, B));
        const auto eps = teacher_.eps(torch::cat({net_in, net_in}), torch::cat({t, t}), torch::cat({alpha, alpha}),
                                      torch::cat({sigma, sigma}), both);
        in.eps_cond = eps.slice(0, 0, B);
        in.eps_uncond = eps.slice(0, B);
      } else {
        in.eps_cond = teacher_.eps(net_in, t, alpha, sigma, c);
      }
    }
    in.noise = noise;
    in.x_t = x_t;
    in.x0 = x0;
    in.alpha = alpha;
    in.sigma = sigma;
    in.w = w;
    if constexpr (!Reward::is_null) {
      in.reward = policies_.reward(x0, c);
      in.alpha_rew = options_.alpha_rew();
    }
    const GeneratorLossTerms terms = generator_loss(policies_.divergence, policies_.guidance, in, /*check_values=*/false);
    const torch::Tensor loss = terms.total.mean();
    torch::Tensor summary = torch::stack({loss, terms.divergence.mean(), terms.guidance.mean(), terms.reward.mean(),
                                          in.reward.defined() ? in.reward.mean() : torch::zeros({}, loss.options())})
                                .detach()
                                .to(torch::kCPU, torch::kFloat64);
    // Only the generator's parameters are differentiated: frozen and assistant weights get nothing.
    auto grads = torch::autograd::grad({loss}, generator_params_, {}, false, false, /*allow_unused=*/true);
    average_over_ranks(grads, generator_params_, summary);
    const auto s = summary.accessor<double, 1>();
    stats.generator_loss = s[0];
    stats.divergence_loss = s[1];
    stats.guidance_loss = s[2];
    stats.reward_loss = s[3];
    stats.mean_reward = s[4];
    const double norm = assign_and_clip(generator_params_, grads, options_.generator_max_grad_norm());
    stats.generator_grad_norm = norm;
    if (!std::isfinite(stats.generator_loss) || !std::isfinite(norm)) {
      for (auto& p : generator_params_) p.mutable_grad() = torch::Tensor();
      stats.generator_skipped = true;
      non_finite_event(stats, "generator", stats.generator_loss, norm);
      return;
    }
    generator_opt_->step();
    if (ema_decay_on()) ema_.update(generator_params_);
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
  std::vector<torch::Tensor> generator_params_, assistant_params_;
  std::unique_ptr<torch::optim::Optimizer> generator_opt_, assistant_opt_;
  ExponentialMovingAverage ema_;
  std::function<void(const std::string&)> sink_;
  std::shared_ptr<Collectives> dp_;
  int64_t step_ = 0;
  int64_t non_finite_total_ = 0;
};

} // namespace diffinstruct

#include <diffinstruct/trainer/checkpoint.hpp>
