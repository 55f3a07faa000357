#pragma once
/// \file Options of the DI* trainer.

#include <diffinstruct/core/checks.hpp>

#include <cmath>
#include <cstdint>
#include <string>

namespace diffinstruct {

/// What the trainer does when a step produces a non-finite loss or gradient. In both cases the
/// step is NOT applied to the weights.
enum class NonFinitePolicy {
  kSkip,   ///< drop the update, count it in the statistics, carry on
  kThrow,  ///< drop the update and throw a c10::Error naming the phase and the step
};

/// Adam settings for one of the two trained networks (NOTES.md §6: betas (0.5, 0.999) worked).
struct AdamSettings {
  /* implicit */ AdamSettings(double lr = 1e-4) : lr_(lr) {}
  TORCH_ARG(double, lr);
  TORCH_ARG(double, beta1) = 0.5;
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0.0;
};

/// Options of `DiStarTrainer` (MATH.md §4).
///
/// Example:
///   DiStarTrainerOptions().batch_size(256).assistant_steps(1).alpha_rew(0.3).seed(7)
struct DiStarTrainerOptions {
  /// Samples per generator (and per assistant) update.
  TORCH_ARG(int64_t, batch_size) = 64;
  /// K: assistant updates per generator update (DI, SiD: 1; DMD2: 5).
  TORCH_ARG(int64_t, assistant_steps) = 1;
  /// α_rew: scale of the explicit reward, L_rew = −α_rew r(x0, c).
  TORCH_ARG(double, alpha_rew) = 0.0;
  /// Optimizer settings when the trainer builds the optimizers itself.
  TORCH_ARG(AdamSettings, generator_adam) = AdamSettings(2e-4);
  TORCH_ARG(AdamSettings, assistant_adam) = AdamSettings(1e-3);
  /// Global gradient-norm clipping per network; 0 disables it.
  TORCH_ARG(double, generator_max_grad_norm) = 1.0;
  TORCH_ARG(double, assistant_max_grad_norm) = 1.0;
  /// Decay of the generator's exponential moving average; 0 disables the EMA.
  TORCH_ARG(double, ema_decay) = 0.999;
  TORCH_ARG(NonFinitePolicy, non_finite) = NonFinitePolicy::kSkip;
  /// Seed of the trainer's own generator: z, conditions, t and ε all come from it.
  TORCH_ARG(uint64_t, seed) = 0;

  /// Throws a c10::Error naming the first invalid option.
 public:
  void validate() const {
    TORCH_CHECK(batch_size_ > 0, "diffinstruct::DiStarTrainerOptions: expected batch_size > 0, got ", batch_size_);
    TORCH_CHECK(assistant_steps_ >= 0, "diffinstruct::DiStarTrainerOptions: expected assistant_steps >= 0, got ",
                assistant_steps_);
    TORCH_CHECK(std::isfinite(alpha_rew_), "diffinstruct::DiStarTrainerOptions: expected a finite alpha_rew, got ", alpha_rew_);
    check_adam(generator_adam_, "generator_adam");
    check_adam(assistant_adam_, "assistant_adam");
    TORCH_CHECK(generator_max_grad_norm_ >= 0 && assistant_max_grad_norm_ >= 0,
                "diffinstruct::DiStarTrainerOptions: expected max_grad_norm >= 0 (0 disables clipping), got generator ",
                generator_max_grad_norm_, ", assistant ", assistant_max_grad_norm_);
    TORCH_CHECK(ema_decay_ >= 0 && ema_decay_ < 1, "diffinstruct::DiStarTrainerOptions: expected 0 <= ema_decay < 1, got ",
                ema_decay_);
  }

 private:
  static void check_adam(const AdamSettings& a, const char* name) {
    TORCH_CHECK(std::isfinite(a.lr()) && a.lr() > 0, "diffinstruct::DiStarTrainerOptions: expected ", name, ".lr > 0, got ",
                a.lr());
    TORCH_CHECK(a.beta1() >= 0 && a.beta1() < 1 && a.beta2() >= 0 && a.beta2() < 1, "diffinstruct::DiStarTrainerOptions: expected ",
                name, " betas in [0, 1), got (", a.beta1(), ", ", a.beta2(), ")");
    TORCH_CHECK(a.eps() > 0 && a.weight_decay() >= 0, "diffinstruct::DiStarTrainerOptions: expected ", name,
                ".eps > 0 and weight_decay >= 0, got eps ", a.eps(), ", weight_decay ", a.weight_decay());
  }
};

} // namespace diffinstruct
