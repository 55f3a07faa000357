#pragma once
/// \file Options of the DI* trainer.

#include <diffinstruct/core/checks.hpp>
#include <diffinstruct/precision/grad_scaler.hpp>
#include <diffinstruct/precision/precision.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace diffinstruct {

/// What the trainer does when an update would be non-finite (loss, gradient, the generator's output,
/// or the weights the optimizer step would produce). In both cases the update is NOT applied.
enum class NonFinitePolicy {
  kSkip,   ///< drop the update, count it in the statistics, carry on (up to max_consecutive_skips in a row)
  kThrow,  ///< drop the update and throw a c10::Error naming the phase and the step
};

/// What `load()` does when the checkpoint's run definition (trainer options, policies, shapes,
/// world size) differs from this trainer's.
enum class ResumeMode {
  kRequireMatch,          ///< refuse with a message listing every difference (the default)
  kUseCheckpointOptions,  ///< take the checkpoint's trainer options (optimizers rebuilt to match); policies must still match
  kKeepLiveOptions,       ///< keep this trainer's options and policies; the differences go to the log sink
};

/// Whether the trainer scales the losses (grad_scaler.hpp) before backward.
enum class LossScaling {
  kAuto,  ///< with Precision::kFloat16 only (float16's small exponent range needs it; bfloat16's does not)
  kOn,    ///< always (also in float32 and bfloat16)
  kOff,   ///< never
};

/// Adam settings for one of the two trained networks (docs/findings.md §6: betas (0.5, 0.999) worked).
struct AdamSettings {
  /* implicit */ AdamSettings(double lr = 1e-4) : lr_(lr) {}
  TORCH_ARG(double, lr);
  TORCH_ARG(double, beta1) = 0.5;
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0.0;
  /// Decoupled weight decay (AdamW, Loshchilov & Hutter): p ← p (1 − lr·wd) before the Adam step,
  /// which is what `weight_decay` means in diffusers' and most trainers' AdamW. false: Adam's L2
  /// penalty (wd·p added to the gradient). Irrelevant when weight_decay = 0.
  TORCH_ARG(bool, decoupled_weight_decay) = true;
};

/// Options of `DiStarTrainer` (docs/math.md §4).
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
  /// Under kSkip, this many dropped updates in a row of one network stop the run with an error:
  /// a run that skips forever is a dead run.
  TORCH_ARG(int64_t, max_consecutive_skips) = 100;
  /// Before each optimizer step the trainer builds, evaluate the weights the step would produce and
  /// refuse the step (as a non-finite update) if any would be non-finite: one extra pass over the
  /// parameters, optimizer state and gradients, no copy kept. For optimizers installed with
  /// set_optimizers() the weights are checked after the step instead, and a non-finite result
  /// throws (it cannot be undone). false: no check.
  TORCH_ARG(bool, check_weights) = true;
  /// Per-sample shape the generator must return (x0 is [B, sample_shape...]); empty: the noise shape.
  TORCH_ARG(std::vector<int64_t>, sample_shape) = {};
  /// save(path) keeps this many checkpoints: path (newest), path.1, ..., path.(N-1).
  TORCH_ARG(int64_t, keep_checkpoints) = 1;
  /// Seed of the trainer's own generator: z, conditions, t and ε all come from it.
  TORCH_ARG(uint64_t, seed) = 0;
  /// Compute precision of the networks' forward passes (precision/precision.hpp): kBFloat16 and
  /// kFloat16 run them under autocast; the trained weights, gradients, optimizer states and EMA stay
  /// float32 (master weights) and the loop's own numbers float32 or wider, whatever is chosen here.
  TORCH_ARG(Precision, precision) = Precision::kFloat32;
  /// Dynamic loss scaling of both networks' losses (one scaler each); kAuto: with kFloat16 only.
  TORCH_ARG(LossScaling, loss_scaling) = LossScaling::kAuto;
  TORCH_ARG(GradScalerOptions, grad_scaler) = {};
  /// Activation checkpointing (memory/activation_checkpoint.hpp) of each role's forward passes
  /// while training: nothing inside the network is kept for backward, which runs that forward
  /// again (the same gradients, tested). How a run computes, not what: not part of the run
  /// definition, so a run may resume with other choices. Per-block checkpointing inside a UNet is
  /// the UNet's own switch (`set_gradient_checkpointing`).
  TORCH_ARG(bool, checkpoint_generator) = false;
  TORCH_ARG(bool, checkpoint_teacher) = false;
  TORCH_ARG(bool, checkpoint_assistant) = false;
  TORCH_ARG(bool, checkpoint_reward) = false;
  /// The DMD2 arrangement: each iteration updates the generator first and trains the assistant's
  /// first update on that update's samples (detached) and conditions, instead of drawing new ones
  /// and running the generator again: one generator forward fewer per iteration, on samples one
  /// generator update old (docs/trainer.md#one-iteration-step). Part of the run definition.
  TORCH_ARG(bool, reuse_generator_samples) = false;
  /// Gradient accumulation: each update runs its batch as this many micro-batches of
  /// batch_size / micro_batches samples (forward and backward each), sums their gradients and
  /// then (data-parallel: once per update) averages, clips and steps. The same update as one batch,
  /// up to float round-off (tested), with the activations of one micro-batch. Not part of the run
  /// definition.
  TORCH_ARG(int64_t, micro_batches) = 1;
  /// Measure each step's peak memory into StepStats::peak_bytes (memory/peak_memory.hpp): exact on
  /// the CPU (a counting allocator for the step), the caching allocator's statistics on CUDA (with
  /// the CUDA extension). Not part of the run definition.
  TORCH_ARG(bool, measure_memory) = false;
  /// Drop each network's gradients once its optimizer has stepped (the next update computes new
  /// ones), so that no role holds gradients between its updates: the generator's backward then
  /// holds neither the assistant's gradients nor its own previous ones, 4 bytes per trained
  /// parameter of each role fewer at the step's peak (docs/memory.md). Off: the gradients stay in
  /// the parameters' grad() until the next update, for inspecting them after step(). Not part of
  /// the run definition.
  TORCH_ARG(bool, release_gradients) = true;

  /// Whether the losses are scaled under these options.
 public:
  bool scales_losses() const {
    return loss_scaling_ == LossScaling::kOn || (loss_scaling_ == LossScaling::kAuto && precision_ == Precision::kFloat16);
  }

  /// Throws a c10::Error naming the first invalid option.
 public:
  void validate() const {
    TORCH_CHECK(batch_size_ > 0, "diffinstruct::DiStarTrainerOptions: expected batch_size > 0, got ", batch_size_);
    TORCH_CHECK(assistant_steps_ >= 0, "diffinstruct::DiStarTrainerOptions: expected assistant_steps >= 0, got ",
                assistant_steps_);
    TORCH_CHECK(std::isfinite(alpha_rew_), "diffinstruct::DiStarTrainerOptions: expected a finite alpha_rew, got ", alpha_rew_);
    check_adam(generator_adam_, "generator_adam");
    check_adam(assistant_adam_, "assistant_adam");
    TORCH_CHECK(std::isfinite(generator_max_grad_norm_) && std::isfinite(assistant_max_grad_norm_) && generator_max_grad_norm_ >= 0 &&
                    assistant_max_grad_norm_ >= 0,
                "diffinstruct::DiStarTrainerOptions: expected a finite max_grad_norm >= 0 (0 disables clipping), got generator ",
                generator_max_grad_norm_, ", assistant ", assistant_max_grad_norm_);
    TORCH_CHECK(ema_decay_ >= 0 && ema_decay_ < 1, "diffinstruct::DiStarTrainerOptions: expected 0 <= ema_decay < 1, got ",
                ema_decay_);
    TORCH_CHECK(max_consecutive_skips_ >= 1, "diffinstruct::DiStarTrainerOptions: expected max_consecutive_skips >= 1, got ",
                max_consecutive_skips_);
    TORCH_CHECK(keep_checkpoints_ >= 1 && keep_checkpoints_ <= 1000,
                "diffinstruct::DiStarTrainerOptions: expected keep_checkpoints in [1, 1000], got ", keep_checkpoints_);
    grad_scaler_.validate();
    TORCH_CHECK(micro_batches_ >= 1 && batch_size_ % micro_batches_ == 0, "diffinstruct::DiStarTrainerOptions: expected micro_batches >= 1 "
                "dividing batch_size ", batch_size_, ", got ", micro_batches_);
    for (auto d : sample_shape_) {
      TORCH_CHECK(d > 0, "diffinstruct::DiStarTrainerOptions: expected positive sample_shape dimensions, got ",
                  c10::IntArrayRef(sample_shape_));
    }
  }

 private:
  static void check_adam(const AdamSettings& a, const char* name) {
    TORCH_CHECK(std::isfinite(a.lr()) && a.lr() > 0 && a.lr() <= std::numeric_limits<float>::max(),
                "diffinstruct::DiStarTrainerOptions: expected ", name, ".lr > 0 and finite in float32, got ", a.lr());
    TORCH_CHECK(a.beta1() >= 0 && a.beta1() < 1 && a.beta2() >= 0 && a.beta2() < 1, "diffinstruct::DiStarTrainerOptions: expected ",
                name, " betas in [0, 1), got (", a.beta1(), ", ", a.beta2(), ")");
    // eps must stay a nonzero number in float32, or Adam computes 0/0 where a gradient entry is zero.
    TORCH_CHECK(std::isfinite(a.eps()) && a.eps() >= std::numeric_limits<float>::min() && a.eps() <= 1,
                "diffinstruct::DiStarTrainerOptions: expected ", name, ".eps in [", std::numeric_limits<float>::min(),
                ", 1] (nonzero in float32), got ", a.eps());
    TORCH_CHECK(std::isfinite(a.weight_decay()) && a.weight_decay() >= 0, "diffinstruct::DiStarTrainerOptions: expected ", name,
                ".weight_decay finite and >= 0, got ", a.weight_decay());
    TORCH_CHECK(!a.decoupled_weight_decay() || a.lr() * a.weight_decay() <= 1, "diffinstruct::DiStarTrainerOptions: expected ", name,
                ".lr * weight_decay <= 1 with decoupled weight decay (each step multiplies the weights by 1 - lr * weight_decay), got ",
                a.lr() * a.weight_decay());
  }
};

} // namespace diffinstruct
