#pragma once
/// \file Everything a DI* text-to-image run loads, from a diffusers pipeline folder and a CLIP model
/// folder, each where and how it will be used: what every text-to-image user would otherwise write.
///
///   teacher      the pipeline's UNet, frozen, stored in the compute dtype (bf16/fp16 under autocast)
///   assistant    a trained float32 copy of the teacher's UNet, or (assistant_lora > 0) a LoRA on the
///                teacher's own module: one copy of the base (adapters/shared_base.hpp)
///   generator    a UNet (the teacher's by default, or another folder) at t* as a OneStepUNet, fully
///                trained (float32) or a LoRA; a LoRA generator from the teacher's weights is a LoRA
///                on the teacher's own module too, so that the three roles share one base. A
///                published LoRA (generator_base_lora: DMD2's one-step LoRA) may sit frozen under it.
///   conditions   the pipeline's text encoders and tokenizers (SDXL: both), and the reward's text
///                tower, in a PromptEncoder; a PromptSource over the prompts
///   reward       ClipReward: the CLIP model's vision tower, through the pipeline's VAE decoder
///
/// Example:
///   auto m = text2image::load_di_star_models(text2image::DiStarModelsOptions("stable-diffusion-v1-5", "PickScore_v1")
///                                                .reward_tokenizer("CLIP-ViT-H-14").assistant_lora(64), prompts);
///   models::with_parameterization(m.pipeline->scheduler().prediction, [&](auto param) {
///     text2image::with_roles<decltype(param)>(m, [&](auto generator, auto teacher, auto assistant) { /* build the trainer */ });
///   });

#include <diffinstruct/adapters/lora.hpp>
#include <diffinstruct/adapters/lora_file.hpp>
#include <diffinstruct/adapters/shared_base.hpp>
#include <diffinstruct/models/clip_model.hpp>
#include <diffinstruct/precision/precision.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>
#include <diffinstruct/text2image/one_step_unet.hpp>
#include <diffinstruct/text2image/pipeline_folder.hpp>
#include <diffinstruct/text2image/prompt_source.hpp>

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace diffinstruct {
namespace text2image {

struct DiStarModelsOptions {
  DiStarModelsOptions(std::string teacher, std::string reward) : teacher_(std::move(teacher)), reward_(std::move(reward)) {}
  /// The pipeline folder (teacher, VAE, text encoders, scheduler) and the CLIPModel folder of the
  /// reward (empty: no CLIP reward loaded here; the run brings its own, text2image/prompt_rewards.hpp).
  TORCH_ARG(std::string, teacher);
  TORCH_ARG(std::string, reward);
  /// The reward's tokenizer folder, when the reward's folder has none (PickScore's: give CLIP-H's).
  TORCH_ARG(std::string, reward_tokenizer) = "";
  /// The generator's UNet folder; empty: the teacher's UNet.
  TORCH_ARG(std::string, generator) = "";
  /// LoRA ranks (alpha = rank) of the generator and of the assistant (on the teacher's base); 0: full.
  TORCH_ARG(int64_t, generator_lora) = 0;
  TORCH_ARG(int64_t, assistant_lora) = 0;
  /// A LoRA file (diffusers' format) that is part of the generator and stays frozen: the generator is
  /// the base plus this LoRA plus the one it trains (generator_lora > 0), or the merged result (a
  /// full generator). Empty: none.
  TORCH_ARG(std::string, generator_base_lora) = "";
  TORCH_ARG(std::vector<std::string>, lora_targets) = std::vector<std::string>{"to_q", "to_k", "to_v", "to_out.0"};
  /// The generator's timestep t* and what its UNet predicts there (unset: the scheduler's prediction type).
  TORCH_ARG(int64_t, t_star) = 999;
  TORCH_ARG(c10::optional<models::Prediction>, generator_prediction) = c10::nullopt;
  /// Image side in pixels (0: the UNet's sample_size × the VAE's factor).
  TORCH_ARG(int64_t, resolution) = 0;
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  /// Frozen weights are stored in this precision's compute dtype; trained ones stay float32.
  TORCH_ARG(Precision, precision) = Precision::kFloat32;
  /// Every UNet block recomputed in backward (set_gradient_checkpointing).
  TORCH_ARG(bool, gradient_checkpointing) = false;
};

/// What load_di_star_models returns. The UNets are handles: `assistant_unet` is `teacher_unet`
/// itself when the assistant is a LoRA on the teacher's base, and so is `generator_unet` when the
/// generator is a LoRA on the teacher's weights.
struct DiStarModels {
  std::optional<PipelineFolder> pipeline;
  std::optional<DiscreteVPSchedule> schedule;
  models::UNet2DConditionModel teacher_unet{nullptr}, assistant_unet{nullptr}, generator_unet{nullptr};
  adapters::Lora assistant_lora, generator_lora;  // empty without LoRA
  adapters::Lora generator_base_lora;             // the frozen published LoRA under the generator's; empty without
  OneStepUNet generator{nullptr};
  models::AutoencoderKL vae{nullptr};                // the decoder only
  std::shared_ptr<PromptEncoder> encoder;
  std::shared_ptr<PromptSource> prompts;
  std::optional<ClipReward> reward;  // unset without a reward folder
  models::ClipModelParts reward_clip;  // the reward's CLIP model (both towers); empty without one
  std::vector<int64_t> latent_shape;  // [C, h, w]
  int64_t height = 0, width = 0;      // pixels

};

/// Loads every model of a DI* text-to-image run; `prompt_list` becomes the PromptSource. `log` (if
/// set) is told what was loaded and how long it took.
inline DiStarModels load_di_star_models(const DiStarModelsOptions& o, const std::vector<std::string>& prompt_list,
                                        const std::function<void(const std::string&)>& log = nullptr) {
  TORCH_CHECK(!prompt_list.empty(), "diffinstruct::text2image::load_di_star_models: expected at least one prompt");
  auto timed = [&](const std::string& what, auto load) {
    const auto t0 = std::chrono::steady_clock::now();
    load();
    if (!log) return;
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    log(what + " loaded in " + seconds + " s");
  };
  DiStarModels m;
  m.pipeline = PipelineFolder::open(o.teacher());
  const auto& pipe = *m.pipeline;
  m.schedule.emplace(pipe.scheduler().options);
  TORCH_CHECK(pipe.scheduler().prediction != models::Prediction::kSample, "diffinstruct::text2image: the teacher's scheduler says "
              "prediction_type = sample; teachers that predict epsilon or v are supported");
  const auto frozen = models::PretrainedOptions().device(o.device()).dtype(compute_dtype(o.precision()));
  const auto trained = models::PretrainedOptions().device(o.device()).dtype(torch::kFloat);  // master weights
  auto lora_options = [&](int64_t rank) {
    return adapters::LoraOptions().rank(rank).alpha(static_cast<double>(rank)).target_modules(o.lora_targets());
  };
  // The teacher's UNet: frozen, stored in the compute dtype. With a LoRA assistant it is also the
  // assistant's base, and the assistant's adapters live on it.
  timed("teacher UNet", [&] { m.teacher_unet = pipe.unet(frozen); });
  // A LoRA generator from the teacher's weights is a LoRA on the teacher's module: one base for all.
  const bool generator_shares = o.generator().empty() && o.generator_lora() > 0;
  // Adapters are named when a module carries several sets (the roles' passes switch each other's off).
  const bool several = (o.assistant_lora() > 0 && generator_shares) || (o.generator_lora() > 0 && !o.generator_base_lora().empty());
  auto name = [&](const char* n) { return several ? std::string(n) : std::string(); };
  if (o.assistant_lora() > 0) {
    m.assistant_unet = m.teacher_unet;
    m.assistant_lora = adapters::add_lora(*m.assistant_unet, lora_options(o.assistant_lora()).adapter_name(name("assistant")));
  } else {
    timed("assistant UNet (a trained copy of the teacher's)", [&] { m.assistant_unet = pipe.unet(trained); });
  }
  // The generator: the teacher's module, or its own UNet (a LoRA's base is frozen, so it is stored
  // like the teacher's; a full generator is trained, float32).
  const std::string gen_dir = o.generator().empty() ? pipe.path("unet") : o.generator();
  if (generator_shares) {
    m.generator_unet = m.teacher_unet;
  } else {
    timed("generator UNet '" + gen_dir + "'", [&] { m.generator_unet = models::load_unet(gen_dir, o.generator_lora() > 0 ? frozen : trained); });
  }
  if (!o.generator_base_lora().empty()) {
    TORCH_CHECK(o.generator_lora() > 0, "diffinstruct::text2image: generator_base_lora '", o.generator_base_lora(), "' sits under a LoRA "
                "generator (generator_lora > 0); to train a full generator from it, fuse it into a UNet folder first (diffusers' fuse_lora "
                "and save_pretrained) and pass that folder as the generator");
    const auto load = adapters::LoraLoadOptions().adapter_name(name("generator_base")).trainable(false);
    timed("generator's published LoRA '" + o.generator_base_lora() + "'",
          [&] { m.generator_base_lora = adapters::load_lora(*m.generator_unet, o.generator_base_lora(), "unet", load); });
  }
  if (o.generator_lora() > 0) m.generator_lora = adapters::add_lora(*m.generator_unet, lora_options(o.generator_lora()).adapter_name(name("generator")));
  for (auto* u : {&m.teacher_unet, &m.assistant_unet, &m.generator_unet}) (*u)->set_gradient_checkpointing(o.gradient_checkpointing());
  const auto prediction = o.generator_prediction().value_or(pipe.scheduler().prediction);
  m.generator = OneStepUNet(m.generator_unet, *m.schedule, OneStepUNetOptions().timestep(o.t_star()).prediction(prediction));

  // Sizes: the UNet's sample_size (or the resolution asked) and the VAE's downsampling.
  m.vae = pipe.vae(frozen, models::VaeParts::kDecoderOnly);
  const int64_t factor = int64_t{1} << (m.vae->config().block_out_channels.size() - 1);
  TORCH_CHECK(o.resolution() % factor == 0, "diffinstruct::text2image: the resolution must be a multiple of the VAE's factor ", factor, ", got ",
              o.resolution());
  const int64_t side = o.resolution() > 0 ? o.resolution() / factor : m.generator_unet->config().sample_size;
  m.latent_shape = {m.generator_unet->config().in_channels, side, side};
  m.height = m.width = side * factor;

  // Prompts -> conditions: the pipeline's text encoders for the UNets, the reward's text tower for r.
  auto options = pipe.prompt_options(m.height, m.width).device(o.device()).dtype(torch::kFloat);
  timed(pipe.is_sdxl() ? "text encoders (2)" : "text encoder",
        [&] { m.encoder = std::make_shared<PromptEncoder>(pipe.text_encoders(frozen), options); });
  if (!o.reward().empty()) {
    auto& clip = m.reward_clip;
    timed("reward CLIP model '" + o.reward() + "'", [&] { clip = models::load_clip_model(o.reward(), frozen, models::ClipTowers::kBoth); });
    m.encoder->set_reward_text(text::ClipTokenizer::from_folder(o.reward_tokenizer().empty() ? o.reward() : o.reward_tokenizer()), clip.text);
    m.reward.emplace(clip.vision, clip.logit_scale, m.vae);
  }
  m.prompts = std::make_shared<PromptSource>(prompt_list, m.encoder);
  return m;
}

/// The run's generator as a pass that switches the assistant's adapters off when it shares their
/// module (with nothing to switch off, the pass is the OneStepUNet itself).
inline Generator<adapters::SharedBasePass<OneStepUNet>> generator_role(const DiStarModels& m) {
  std::vector<adapters::Lora> off;
  if (m.generator_unet.ptr() == m.assistant_unet.ptr()) off.push_back(m.assistant_lora);
  return adapters::shared_base_generator(m.generator, off);
}

/// Calls `f(generator, teacher, assistant)` with the run's roles, the denoisers in parameterization
/// `Param`. The generator and the assistant are passes that switch off each other's adapters where
/// they share a module (adapters::SharedBasePass); the teacher is its own UNet, or, when the teacher's
/// module carries adapters, the shared base with all of them off (adapters::shared_base_teacher).
/// The two teachers are different types, so `f` is generic (a lambda taking auto) and returns nothing.
template <class Param, class F>
void with_roles(const DiStarModels& m, F&& f) {
  std::vector<adapters::Lora> generator_adapters;
  if (m.generator_unet.ptr() == m.assistant_unet.ptr()) generator_adapters = {m.generator_base_lora, m.generator_lora};
  auto assistant = adapters::shared_base_denoiser<Param>(m.assistant_unet, generator_adapters, "assistant");
  if (!adapters::find_lora(*m.teacher_unet.ptr()).empty()) {
    f(generator_role(m), adapters::shared_base_teacher<Param>(m.teacher_unet), std::move(assistant));
  } else {
    f(generator_role(m), Denoiser<models::UNet2DConditionModel, Param>(m.teacher_unet, "teacher"), std::move(assistant));
  }
}

}  // namespace text2image
}  // namespace diffinstruct
