#pragma once
// The compositional miniature's settings: sizes of the models trained here (the library's real
// CLIPTextModel / CLIPVisionModel, AutoencoderKL and UNet2DConditionModel, at toy widths) and the
// budgets of every stage. The defaults are the demo's; --quick shrinks every budget for a smoke run.
#include "stage_cache.hpp"

#include <diffinstruct/data/idx.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <vector>

namespace compositional {

struct Config {
  std::string data_dir = diffinstruct::data::kDebianFashionMnistDir, out = "out/compositional";
  uint64_t seed = 0;

  // The evaluator's recogniser.
  int64_t recogniser_steps = 1500;

  // The tokenizer: BPE trained on this many sampled captions; captions padded to max_length tokens.
  int64_t tokenizer_captions = 20000, max_length = 24;

  // CLIP (the reward): both towers 64 wide, 2 layers, 4 heads; the vision tower sees 8×8 patches.
  int64_t clip_width = 64, clip_layers = 2, clip_patch = 8;
  int64_t clip_steps = 1000, clip_batch = 128;
  double clip_lr = 5e-4;

  // The VAE: 32×32×3 <-> 8×8×4, trained on quadrant crops (it is fully convolutional).
  int64_t vae_steps = 800, vae_batch = 32;
  double vae_lr = 1e-3, vae_kl = 1e-6;

  // The teacher: a two-level UNet2DConditionModel on the latents, conditioned on CLIP's text states.
  int64_t unet_width = 32;
  int64_t teacher_steps = 2400, teacher_batch = 64;
  double teacher_lr = 5e-4, cond_drop = 0.1, teacher_ema = 0.999;

  // The one-step generators: the teacher's UNet at timestep t*, initialised by SIM distillation, then
  // post-trained; DI*'s losses with the CLIP reward (alpha_rew) and CFG strength alpha_cfg (guidance
  // scale 1 + alpha_cfg).
  int64_t t_star = 999, train_prompts = 4000;
  int64_t distill_steps = 400, post_steps = 200, batch = 16, k = 1;
  double lr_gen = 1e-4, lr_asst = 5e-4, c = 1.0, alpha_cfg = 2.0, alpha_rew = 1.0;
  std::vector<double> reward_sweep{0.3, 3.0, 10.0};  // extra DI*-in runs: where reward hacking starts
  std::vector<double> kl_reward_sweep{3.0, 10.0};    // extra DI++ runs: KL against pseudo-Huber at matched reward
  // Few-step generators (DMD2's spacing): each a DI*-in run of a K-step generator from the init.
  std::vector<std::vector<int64_t>> few_step_timesteps{{999, 499}, {999, 749, 499, 249}};

  // Every post-training run is repeated with this many seeds (the init and the stages before it are
  // shared), `jobs` runs at a time.
  int64_t seeds = 1;
  int jobs = 2;
  std::vector<std::string> only;  // when set, only the runs with these names (slugs) are trained

  // Evaluation: prompts with seen combinations and with held-out ones, each with this many seeds.
  int64_t eval_prompts = 40, eval_seeds = 4;
  std::vector<int64_t> teacher_steps_eval{10, 25};
  std::vector<double> teacher_guidance{1.0, 3.0, 5.0};

  void quick() {
    recogniser_steps = 60, tokenizer_captions = 2000, clip_steps = 20, clip_batch = 32, vae_steps = 20, vae_batch = 32;
    teacher_steps = 20, teacher_batch = 16, eval_prompts = 4, eval_seeds = 2, teacher_steps_eval = {4}, teacher_guidance = {1.0, 3.0};
    train_prompts = 50, distill_steps = 2, post_steps = 2, batch = 4, reward_sweep = {3.0}, kl_reward_sweep = {3.0},
    few_step_timesteps = {{999, 499}};
  }

  std::string recogniser_settings() const { return fmt::format("recogniser steps={} seed={} init=seeded", recogniser_steps, seed); }
  std::string tokenizer_settings() const { return fmt::format("tokenizer captions={} max_length={} seed={}", tokenizer_captions, max_length, seed); }
  std::string clip_settings() const {
    return fmt::format("clip width={} layers={} patch={} steps={} batch={} lr={} seed={}", clip_width, clip_layers, clip_patch, clip_steps, clip_batch,
                       clip_lr, seed);
  }
  std::string vae_settings() const { return fmt::format("vae steps={} batch={} lr={} kl={} seed={}", vae_steps, vae_batch, vae_lr, vae_kl, seed); }
  std::string teacher_settings() const {
    return fmt::format("teacher width={} steps={} batch={} lr={} cond_drop={} ema={} seed={}", unet_width, teacher_steps, teacher_batch, teacher_lr,
                       cond_drop, teacher_ema, seed);
  }
};

}  // namespace compositional
