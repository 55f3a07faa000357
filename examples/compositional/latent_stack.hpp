#pragma once
// The miniature's image side, trained here with the library's diffusers classes: an AutoencoderKL
// (32×32×3 <-> 8×8×4, as Stable Diffusion's VAE is 512² <-> 64²×4) and the teacher, a
// UNet2DConditionModel on its latents, conditioned on the CLIP text tower's last hidden states, with
// condition dropout so that one network gives the conditional and unconditional predictions of CFG.
// Both are written as diffusers folders; with the tokenizer, the text encoder and the scheduler they
// make a text-to-image pipeline folder that 05_text_to_image and di_evaluate load like any other.
#include "text_stack.hpp"
#include "../common/training_state.hpp"

#include <diffinstruct/models/autoencoder_kl.hpp>
#include <diffinstruct/models/scheduler_config.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>
#include <diffinstruct/schedules/discrete_vp.hpp>
#include <diffinstruct/trainer/ema.hpp>
#include <diffinstruct/trainer/model_state.hpp>

namespace compositional {

namespace di = diffinstruct;

inline dm::AutoencoderKLConfig vae_config() {
  dm::AutoencoderKLConfig c;
  c.down_block_types = {"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"};
  c.up_block_types = {"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"};
  c.block_out_channels = {16, 32, 32};
  c.norm_num_groups = 8;
  c.layers_per_block = 1;
  c.latent_channels = 4;
  c.sample_size = kCanvas;
  c.mid_block_add_attention = false;
  c.force_upcast = false;
  return c;
}

/// Reconstruction (squared error) plus a small KL to N(0, I), on rendered training scenes. The
/// scaling factor is then set as Stable Diffusion's was: 1 / the standard deviation of the latents.
inline dm::AutoencoderKL train_vae(const ItemBank& bank, const Config& cfg) {
  torch::manual_seed(cfg.seed + 21);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed + 22);
  dm::AutoencoderKL vae(vae_config());
  torch::optim::Adam opt(vae->parameters(), torch::optim::AdamOptions(cfg.vae_lr));
  di::ProgressBar bar("vae", cfg.vae_steps);
  double smoothed = 0;
  for (int64_t step = 0; step < cfg.vae_steps; ++step) {
    const auto x = render(sample_scenes(cfg.vae_batch, gen, Combinations::kAny), bank, gen);
    const auto post = vae->encode(x);
    const auto recon = vae->decode(post.sample(gen));
    const auto mse = (recon - x).pow(2).mean();
    const auto kl = 0.5 * (post.mean.pow(2) + post.logvar.exp() - 1 - post.logvar).sum({1, 2, 3}).mean();
    const auto loss = mse + cfg.vae_kl * kl;
    opt.zero_grad();
    loss.backward();
    opt.step();
    smoothed = step == 0 ? mse.item<double>() : 0.98 * smoothed + 0.02 * mse.item<double>();
    if (step % 10 == 0 || step + 1 == cfg.vae_steps) bar.update(step + 1, fmt::format("mse {:.4f}  kl {:.1f}", smoothed, kl.item<double>()));
  }
  bar.finish();
  vae->eval();
  torch::NoGradGuard no_grad;
  const auto x = render(sample_scenes(512, gen, Combinations::kAny), bank, gen);
  const double std = vae->encode(x).sample(gen).std().item<double>();
  auto c = vae->config();
  c.scaling_factor = 1.0 / std;
  dm::AutoencoderKL scaled(c);
  di::copy_state(vae, scaled);
  scaled->eval();
  return scaled;
}

inline dm::UNet2DConditionConfig unet_config(const Config& cfg) {
  dm::UNet2DConditionConfig c;
  c.in_channels = c.out_channels = 4;
  c.sample_size = kCanvas / 4;
  c.down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D"};
  c.up_block_types = {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
  c.block_out_channels = {cfg.unet_width, 2 * cfg.unet_width};
  c.layers_per_block = {1, 1};
  c.transformer_layers_per_block = {1, 1};
  c.attention_head_dim = {std::max<int64_t>(1, cfg.unet_width / 16), std::max<int64_t>(1, cfg.unet_width / 8)};  // heads of 16 channels
  c.norm_num_groups = 8;
  c.cross_attention_dim = cfg.clip_width;
  return c;
}

/// The text encoder's hidden states for captions (no gradients: it is frozen, as in Stable Diffusion).
inline torch::Tensor encode_captions(dm::ClipTextModel& text, const dtext::ClipTokenizer& tok, const std::vector<std::string>& captions) {
  torch::NoGradGuard no_grad;
  return text->forward(tok.batch(captions)).last_hidden_state;
}

/// ε-prediction on the scheduler's discrete VP table (Stable Diffusion's scaled_linear betas), the
/// caption replaced by the empty one with probability cond_drop; the EMA weights are the teacher.
/// Resumes from `resume_file` (written every 500 steps) after an interruption.
inline dm::UNet2DConditionModel train_teacher(const ItemBank& bank, dm::ClipTextModel& text, const dtext::ClipTokenizer& tok, dm::AutoencoderKL& vae,
                                              const di::DiscreteVPSchedule& schedule, const Config& cfg, const fs::path& resume_file) {
  torch::manual_seed(cfg.seed + 31);
  dm::UNet2DConditionModel unet(unet_config(cfg));
  di::ExponentialMovingAverage averaged(unet->parameters(), cfg.teacher_ema);
  torch::optim::Adam opt(unet->parameters(), torch::optim::AdamOptions(cfg.teacher_lr));
  int64_t start = 0;
  if (fs::exists(resume_file)) {
    start = examples_common::load_training_state(resume_file.string(), *unet, opt, averaged);
    fmt::print("teacher: resuming at step {} from {}\n", start, resume_file.string());
  }
  const auto empty = encode_captions(text, tok, {""});
  di::ProgressBar bar("teacher", cfg.teacher_steps);
  double smoothed = 0;
  for (int64_t step = start; step < cfg.teacher_steps; ++step) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed * 1000003 + 77 + static_cast<uint64_t>(step));  // per step: resumable
    const auto scenes = sample_scenes(cfg.teacher_batch, gen, Combinations::kSeen);
    torch::Tensor x0, states;
    {
      torch::NoGradGuard no_grad;
      x0 = vae->encode(render(scenes, bank, gen)).sample(gen) * vae->config().scaling_factor;
      states = encode_captions(text, tok, captions_of(scenes));
      const auto drop = (torch::rand({cfg.teacher_batch}, gen) < cfg.cond_drop).view({-1, 1, 1});
      states = torch::where(drop, empty.expand_as(states), states);
    }
    const auto t = torch::randint(0, schedule.options().num_train_timesteps(), {cfg.teacher_batch}, gen, torch::kLong).to(torch::kFloat);
    const auto eps = torch::randn(x0.sizes(), gen);
    const auto x_t = di::diffuse(x0, schedule.alpha(t), schedule.sigma(t), eps);
    const auto loss = (unet->forward(x_t, t, dm::TextCondition(states)) - eps).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(unet->parameters(), 1.0);
    opt.step();
    averaged.update(unet->parameters());
    smoothed = step == start ? loss.item<double>() : 0.98 * smoothed + 0.02 * loss.item<double>();
    if (step % 10 == 0 || step + 1 == cfg.teacher_steps) bar.update(step + 1, fmt::format("loss {:.4f}", smoothed));
    if ((step + 1) % 500 == 0 && step + 1 < cfg.teacher_steps)
      examples_common::save_training_state(resume_file.string(), *unet, opt, averaged, step + 1, "the teacher's partial training");
  }
  bar.finish();
  averaged.swap(unet->parameters());
  unet->eval();
  return unet;
}

/// scheduler/scheduler_config.json: Stable Diffusion's DDIM table (what the teacher was trained on).
inline std::string scheduler_config_json() {
  return "{\n  \"_class_name\": \"DDIMScheduler\",\n  \"num_train_timesteps\": 1000,\n  \"beta_start\": 0.00085,\n  \"beta_end\": 0.012,\n"
         "  \"beta_schedule\": \"scaled_linear\",\n  \"prediction_type\": \"epsilon\",\n  \"clip_sample\": false,\n  \"set_alpha_to_one\": false,\n"
         "  \"steps_offset\": 1,\n  \"trained_betas\": null\n}\n";
}

/// The pipeline's text encoder: CLIP's text tower without its projection. StableDiffusionPipeline reads
/// a CLIPTextModel's last hidden states; handed a CLIPTextModelWithProjection it would take the projected
/// embedding for them (found by loading the folder in diffusers: tests/examples/check_compositional_folders.py).
inline dm::ClipTextModel without_projection(const dm::ClipTextModel& text) {
  auto config = text->config();
  config.with_projection = false;
  dm::ClipTextModel bare(config);
  torch::NoGradGuard no_grad;
  const auto source = text->named_parameters(true);
  for (auto& p : bare->named_parameters(true)) p.value().copy_(source[p.key()]);
  const auto source_buffers = text->named_buffers(true);
  for (auto& b : bare->named_buffers(true)) b.value().copy_(source_buffers[b.key()]);
  bare->eval();
  return bare;
}

inline std::string model_index_json() {
  return "{\n  \"_class_name\": \"StableDiffusionPipeline\",\n  \"scheduler\": [\"diffusers\", \"DDIMScheduler\"],\n"
         "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
         "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n  \"vae\": [\"diffusers\", \"AutoencoderKL\"],\n"
         "  \"safety_checker\": [null, null],\n  \"feature_extractor\": [null, null],\n  \"requires_safety_checker\": false\n}\n";
}

}  // namespace compositional
