#pragma once
/// \file The DI* trainer's step, Algorithm 1 of the paper (docs/math.md §4): K
/// assistant updates, then one generator update. This file is the algorithm; what it stands on is
/// beside it, one job per file: what a trainer holds, builds and checks (trainer_base.hpp), the
/// trained roles (trained_role.hpp), the one update path (update_path.hpp), the seeded draws
/// (draws.hpp), the networks' passes with autocast and checkpointing (passes.hpp), micro-batches
/// (micro_batches.hpp) and checkpoints (checkpoint.hpp). make_trainer.hpp builds a trainer in a
/// few lines.

#include <diffinstruct/losses/assistant_loss.hpp>
#include <diffinstruct/losses/generator_loss.hpp>
#include <diffinstruct/trainer/trainer_base.hpp>

#include <cmath>
#include <memory>
#include <utility>
#include <vector>

namespace diffinstruct {

/// Diff-Instruct* trainer: post-trains a one-step generator g_θ(z, c) to maximise a reward while a
/// score divergence keeps it close to a frozen teacher, with an assistant fitted online.
///
/// * `GeneratorT`: `Generator<M>`, `TeacherT` / `AssistantT`: `Denoiser<M, Parameterization>`, with M a
///   torch::nn module (holder or shared_ptr) or a TorchScript module — the generator and assistant
///   must have parameters; the teacher may also be a callable (an analytic score). A broken
///   requirement is a compile error that names it (trainer/policies.hpp).
/// * The teacher and the reward (every module they declare) are frozen — evaluation mode, no
///   parameter gradients — and never stepped; they are put back in evaluation mode at every step.
///   The generator and the assistant stay in the mode the user chose, and train the parameters that
///   require grad when the trainer is built (a LoRA's adapters, not its frozen base; TrainedRole).
///   A trained parameter must belong to its role alone (checked); frozen ones may be shared.
/// * The generator's update differentiates the generator's parameters only: the assistant's are
///   switched to requires_grad(false) for its passes, so no graph is kept for them, also under
///   activation checkpointing (which decides what to differentiate when the forward runs).
/// * Nothing non-finite is ever applied (update_path.hpp).
/// * Every random number the trainer draws (z, conditions, t, ε) comes from its own CPU generator
///   seeded by `options.seed()` (draws.hpp): two runs with one seed give bit-identical weights on one
///   machine, provided the networks draw nothing from LibTorch's default generator (dropout does;
///   docs/trainer.md#reproducibility).
/// * Precision: trained weights are float32 (or float64) master weights; the networks' passes run
///   under autocast at `options.precision()` and return the loop's dtype (passes.hpp).
/// * One trainer is driven by one thread: its methods are not safe to call concurrently.
///
/// Example (or make_trainer, trainer/make_trainer.hpp):
///   DiStarTrainer<Generator<Mlp>, Denoiser<Score, ScorePrediction>, Denoiser<Mlp>, NoCondition,
///                 PseudoHuberScore, NoGuidance, ModelReward<F>, CosineVPSchedule>
///       trainer(gen, teacher, assistant, {div, guid, reward, sched}, {}, {2}, options);
///   for (int i = 0; i < 1000; ++i) StepStats s = trainer.step();
template <class GeneratorT, class TeacherT, class AssistantT, class Cond, class Divergence, class Guidance, class Reward, class Schedule>
class DiStarTrainer : public DiStarTrainerBase<GeneratorT, TeacherT, AssistantT, Cond, Divergence, Guidance, Reward, Schedule> {
  using Base = DiStarTrainerBase<GeneratorT, TeacherT, AssistantT, Cond, Divergence, Guidance, Reward, Schedule>;
  using Base::assistant_role_, Base::draws_, Base::frozen_, Base::generator_role_, Base::loop_, Base::non_finite_total_, Base::options_,
      Base::policies_, Base::step_;

 public:
  using typename Base::Policies;

  DiStarTrainer(GeneratorT generator, TeacherT teacher, AssistantT assistant, Policies policies, ConditionSource<Cond> conditions,
                std::vector<int64_t> noise_shape, DiStarTrainerOptions options = {})
      : Base(std::move(generator), std::move(teacher), std::move(assistant), std::move(policies), std::move(conditions),
             std::move(noise_shape), std::move(options)) {}

  /// One DI* iteration: K assistant updates, then one generator update. With
  /// reuse_generator_samples the generator updates first and its (detached) samples train the
  /// assistant's first update, as in DMD2.
  StepStats step() {
    StepStats stats;
    std::unique_ptr<PeakMemoryScope> memory;
    if (options_.measure_memory()) memory = std::make_unique<PeakMemoryScope>(loop_.device());
    for (const auto& m : frozen_) {
      if (m.is_training()) m.train(false);  // someone switched a frozen model back to training mode
    }
    const bool reuse = options_.reuse_generator_samples();
    ReusedSamples reused;
    if (reuse) Base::timed(stats.generator_ms, [&] { generator_update(stats, &reused); });
    Base::timed(stats.assistant_ms, [&] {
      double loss_sum = 0;
      int64_t applied = 0;
      for (int64_t k = 0; k < options_.assistant_steps(); ++k) {
        const double loss = assistant_update(stats, reuse && k == 0 ? &reused : nullptr);
        if (std::isfinite(loss)) loss_sum += loss, ++applied;
      }
      stats.assistant_loss = applied ? loss_sum / applied : std::nan("");
    });
    if (!reuse) Base::timed(stats.generator_ms, [&] { generator_update(stats, nullptr); });
    if (memory) stats.peak_bytes = memory->peak_bytes();
    stats.step = ++step_;
    non_finite_total_ += stats.non_finite;
    return stats;
  }

  /// Runs `steps` iterations, calling each callback's on_step_begin(step) and on_step_end(stats)
  /// when it has them; an on_step_end returning false stops training. Returns the last statistics.
  /// Callbacks may be temporaries.
  template <class... Callbacks>
  StepStats fit(int64_t steps, Callbacks&&... callbacks) {
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

 private:
  /// The generator's samples of this step's generator update, kept for the assistant (DMD2's order).
  struct ReusedSamples {
    torch::Tensor x0;  // this rank's rows, detached
    Cond c{};
  };

  /// The assistant fits the generator's current distribution by denoising score matching:
  /// x0 = sg[g(z, c)], x_t = α_t x0 + σ_t ε, L_ψ = λ(t) ‖ε̂_ψ(x_t, t, c) − ε‖². Returns its loss, NaN if dropped.
  double assistant_update(StepStats& stats, const ReusedSamples* reused) {
    const bool reuse = reused && reused->x0.defined();
    const auto batch = draws_.draw(Phase::kAssistant, policies_.schedule, reuse ? &reused->c : nullptr);
    const auto nets = Base::passes(stats);
    const int64_t n = options_.micro_batches(), B = options_.batch_size();
    MicroBatchSum sum;
    for (int64_t k = 0; k < n; ++k) {
      const auto mb = batch.micro(k, n, B);
      const auto x0 = reuse ? micro_batch_rows(reused->x0, k, n, B) : nets.generate_detached(mb.z, mb.c);
      const auto eps = [&](const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& a, const torch::Tensor& s) {
        return nets.assistant_eps(x_t, t, a, s, mb.c);
      };
      // The batch mean is the sum of the micro-batches' shares.
      const auto loss = assistant_loss_of(eps, policies_.schedule, x0, mb.t, mb.noise).mean() / static_cast<double>(n);
      assistant_role_.check_graph_once(loss);
      sum.add(Base::gradients(loss, assistant_role_, stats), Base::summary_of({loss}, x0));
    }
    const auto out = apply_update(assistant_role_, sum, Base::update_rules(options_.assistant_max_grad_norm()), stats);
    stats.assistant_loss_scale = out.loss_scale;
    if (out.norm_measured) stats.assistant_grad_norm = out.grad_norm;
    return out.applied ? out.loss : std::nan("");
  }

  /// The generator's update: x0 = g(z, c); diffuse; the frozen assistant's and the guided teacher's
  /// ε̂ at x_t; the reward; L = L_div + L_cfg + L_rew; one update of the generator.
  void generator_update(StepStats& stats, ReusedSamples* keep) {
    const auto batch = draws_.draw(Phase::kGenerator, policies_.schedule);
    const auto nets = Base::passes(stats);
    auto& sched = policies_.schedule;
    const int64_t n = options_.micro_batches(), B = options_.batch_size();
    const double share = Base::share(n);
    MicroBatchSum sum;
    std::vector<torch::Tensor> samples;
    for (int64_t k = 0; k < n; ++k) {
      const auto mb = batch.micro(k, n, B);
      const auto x0 = nets.generate(mb.z, mb.c);                // x0 = g_θ(z, c)
      const auto alpha = sched.alpha(mb.t), sigma = sched.sigma(mb.t);
      const auto x_t = diffuse(x0, alpha, sigma, mb.noise);     // x_t = α_t x0 + σ_t ε
      GeneratorLossInputs in;
      {
        FrozenForGenerator<Divergence> frozen(assistant_role_.parameters());
        const auto net_in = Divergence::needs_input_grad ? x_t : x_t.detach();  // score divergences differentiate through x_t
        in.assistant_eps = nets.assistant_eps(net_in, mb.t, alpha, sigma, mb.c);  // the frozen assistant: ε̂_ψ
        nets.template teacher_predictions<Divergence, Guidance>(in, net_in, mb.t, alpha, sigma, mb.c,
                                                                draws_.conditions().null_condition);  // the teacher: ε̂_c, ε̂_u
      }
      in.noise = mb.noise, in.x_t = x_t, in.x0 = x0, in.alpha = alpha, in.sigma = sigma;
      in.w = generator_weight(sched, mb.t, alpha, sigma);
      if constexpr (!Reward::is_null) {
        in.reward = nets.reward_of(x0, mb.c);                   // r(x0, c)
        in.alpha_rew = options_.alpha_rew();
      }
      const auto terms = generator_loss(policies_.divergence, policies_.guidance, in, /*check_values=*/false);
      const auto loss = terms.total.mean() * share;             // L = L_div + L_cfg + L_rew
      generator_role_.check_graph_once(loss);
      const auto mean_r = in.reward.defined() ? in.reward.mean() * share : torch::zeros({}, loss.options());
      sum.add(Base::gradients(loss, generator_role_, stats),
              Base::summary_of({loss, terms.divergence.mean() * share, terms.guidance.mean() * share, terms.reward.mean() * share, mean_r}, x0));
      if (keep) samples.push_back(x0.detach());
    }
    const auto out = apply_update(generator_role_, sum, Base::update_rules(options_.generator_max_grad_norm()), stats);
    const auto s = sum.summary.accessor<double, 1>();  // averaged over ranks by the update
    stats.generator_loss = s[0], stats.divergence_loss = s[1], stats.guidance_loss = s[2], stats.reward_loss = s[3], stats.mean_reward = s[4];
    stats.generator_loss_scale = out.loss_scale;
    if (out.norm_measured) stats.generator_grad_norm = out.grad_norm;
    stats.generator_skipped = !out.applied;
    if (keep) *keep = {samples.size() == 1 ? samples[0] : torch::cat(samples), batch.c};
  }

  template <class C>
  void call_begin(C& c) {
    if constexpr (detail::has_step_begin<std::decay_t<C>>::value) c.on_step_begin(step_);
  }
};

} // namespace diffinstruct
