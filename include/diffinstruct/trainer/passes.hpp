#pragma once
/// \file The forward passes of the DI* step — generate, assistant, teacher (conditional and, under
/// CFG, unconditional), reward — each wrapped once with what the run asks for: autocast to the
/// compute precision, activation checkpointing of the role, and the loop's dtype for what comes back
/// (networks under autocast return reduced precision; the loop's numbers are float32 or wider). The
/// step itself (trainer/di_star_trainer.hpp) has no autocast scope or checkpoint of its own.

#include <diffinstruct/core/condition.hpp>
#include <diffinstruct/losses/generator_loss.hpp>
#include <diffinstruct/memory/activation_checkpoint.hpp>
#include <diffinstruct/precision/precision.hpp>
#include <diffinstruct/rewards/guidance.hpp>
#include <diffinstruct/trainer/options.hpp>
#include <diffinstruct/trainer/step_stats.hpp>

#include <torch/torch.h>

#include <utility>
#include <vector>

namespace diffinstruct {
namespace detail {

/// f(inputs), or f checkpointed (memory/activation_checkpoint.hpp): recomputed in backward, keeping
/// only `inputs`. `f` is kept by the autograd graph until backward, so it must own what it uses.
template <class F>
torch::Tensor maybe_checkpointed(bool on, F f, const std::vector<torch::Tensor>& inputs, const std::vector<torch::Tensor>& params = {},
                                 std::vector<ModuleRef> modules = {}) {
  if (!on) return f(inputs);
  return checkpoint([f = std::move(f)](const std::vector<torch::Tensor>& in) mutable { return std::vector<torch::Tensor>{f(in)}; }, inputs,
                    params, std::move(modules))[0];
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

}  // namespace detail

/// The networks' passes of one trainer: references to its networks and reward, and how they run.
/// Built for each update (it holds references, not the networks).
template <class GeneratorT, class TeacherT, class AssistantT, class Reward>
struct NetworkPasses {
  GeneratorT& generator;
  TeacherT& teacher;
  AssistantT& assistant;
  Reward& reward;
  const DiStarTrainerOptions& options;
  torch::TensorOptions loop;                          ///< the loop's dtype and the trainer's device
  const std::vector<int64_t>& sample_shape;           ///< what the generator must return per sample
  const std::vector<torch::Tensor>& generator_params;  ///< the trained ones (checkpoint inputs)
  const std::vector<torch::Tensor>& assistant_params;
  StepStats::Phases& times;                           ///< each pass adds its wall time here

  /// x0 = g(z, c), checked where it is produced: floating point, on the trainer's device, of the
  /// expected per-sample shape; in the loop's dtype.
  template <class Cond>
  torch::Tensor generate(const torch::Tensor& z, const Cond& c) const {
    AddElapsedMs clock(times.generator_forward);
    AutocastScope autocast(options.precision(), loop.device());
    auto* g = &generator;
    const torch::Tensor x0 = detail::maybe_checkpointed(
        options.checkpoint_generator(), [g, c](const std::vector<torch::Tensor>& in) { return (*g)(in[0], c); }, {z}, generator_params,
        generator.modules());
    const auto& name = generator.name();
    TORCH_CHECK(x0.is_floating_point(), "diffinstruct::DiStarTrainer: the generator ('", name, "') returned samples of dtype ",
                x0.scalar_type(), "; expected a floating-point tensor");
    TORCH_CHECK(x0.device() == loop.device(), "diffinstruct::DiStarTrainer: the generator ('", name, "') returned samples on device ",
                x0.device(), "; expected ", loop.device(), " (where its parameters are)");
    TORCH_CHECK(x0.sizes().slice(1) == c10::IntArrayRef(sample_shape), "diffinstruct::DiStarTrainer: the generator ('", name,
                "') returned samples of per-sample shape ", x0.sizes().slice(1), " (batch ", x0.sizes(), "); expected ",
                c10::IntArrayRef(sample_shape),
                options.sample_shape().empty() ? " (the noise shape; set DiStarTrainerOptions::sample_shape if the generator's samples "
                                                 "differ from its noise)"
                                               : " (DiStarTrainerOptions::sample_shape)");
    return x0.to(loop.dtype());
  }

  /// The generator's samples without a graph (for the assistant's update).
  template <class Cond>
  torch::Tensor generate_detached(const torch::Tensor& z, const Cond& c) const {
    torch::NoGradGuard no_grad;
    return generate(z, c);
  }

  /// The assistant's ε̂. Its trained parameters are checkpoint inputs: when the assistant trains they
  /// require grad; in the generator's update they do not (FrozenForGenerator), and only x_t's
  /// gradient flows.
  template <class Cond>
  torch::Tensor assistant_eps(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& alpha, const torch::Tensor& sigma,
                              const Cond& c) const {
    AddElapsedMs clock(times.assistant_forward);
    AutocastScope autocast(options.precision(), loop.device());
    auto* a = &assistant;
    return detail::maybe_checkpointed(
        options.checkpoint_assistant(), [a, c](const std::vector<torch::Tensor>& in) { return a->eps(in[0], in[1], in[2], in[3], c); },
        {x_t, t, alpha, sigma}, assistant_params, assistant.modules());
  }

  /// The frozen teacher's ε̂; checkpointed, its graph keeps only the inputs (only x_t's gradient
  /// flows through it).
  template <class Cond>
  torch::Tensor teacher_eps(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& alpha, const torch::Tensor& sigma,
                            const Cond& c) const {
    AddElapsedMs clock(times.teacher_forward);
    AutocastScope autocast(options.precision(), loop.device());
    auto* tr = &teacher;
    return detail::maybe_checkpointed(
        options.checkpoint_teacher(), [tr, c](const std::vector<torch::Tensor>& in) { return tr->eps(in[0], in[1], in[2], in[3], c); },
        {x_t, t, alpha, sigma}, {}, teacher.modules());
  }

  /// The teacher's conditional and, when `Guidance` needs it, unconditional predictions at x_t (the
  /// null condition broadcast to the batch). One batched forward for both, except when the
  /// divergence differentiates through the networks but the guidance uses ε̂_u only detached (CFG
  /// outside): then the unconditional pass builds no graph.
  template <class Divergence, class Guidance, class Cond>
  void teacher_predictions(GeneratorLossInputs& in, const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& alpha,
                           const torch::Tensor& sigma, const Cond& c, const Cond& null_condition) const {
    if constexpr (Guidance::needs_unconditional) {
      using Traits = ConditionTraits<Cond>;
      const auto B = x_t.size(0);
      const Cond null = Traits::broadcast(null_condition, B);
      if constexpr (Divergence::needs_input_grad && !detail::differentiates_unconditional<Guidance>::value) {
        in.eps_cond = teacher_eps(x_t, t, alpha, sigma, c);
        torch::NoGradGuard no_grad;
        in.eps_uncond = teacher_eps(x_t.detach(), t, alpha, sigma, null);
      } else {
        const auto eps = teacher_eps(torch::cat({x_t, x_t}), torch::cat({t, t}), torch::cat({alpha, alpha}), torch::cat({sigma, sigma}),
                                     Traits::concat(c, null));
        in.eps_cond = eps.slice(0, 0, B);
        in.eps_uncond = eps.slice(0, B);
      }
    } else {
      in.eps_cond = teacher_eps(x_t, t, alpha, sigma, c);
    }
  }

  /// r(x0, c) per sample, in the loop's dtype (rewards are loop numbers).
  template <class Cond>
  torch::Tensor reward_of(const torch::Tensor& x0, const Cond& c) const {
    AddElapsedMs clock(times.reward);
    AutocastScope autocast(options.precision(), loop.device());
    auto* r = &reward;
    return detail::maybe_checkpointed(
               options.checkpoint_reward(), [r, c](const std::vector<torch::Tensor>& in) { return (*r)(in[0], c); }, {x0}, {},
               detail::modules_of(reward))
        .to(loop.dtype());
  }
};

/// The generator's update sees the assistant and the teacher frozen: the assistant's weights are not
/// trained there, so no graph is built for them (its inputs still get one), and a divergence that
/// does not differentiate through the networks (KL) builds no graph through them at all.
template <class Divergence>
class FrozenForGenerator {
 public:
  explicit FrozenForGenerator(const std::vector<torch::Tensor>& assistant_params)
      : assistant_off_(assistant_params), grad_mode_(Divergence::needs_input_grad) {}

 private:
  detail::RequiresGradOff assistant_off_;
  torch::AutoGradMode grad_mode_;
};

}  // namespace diffinstruct
