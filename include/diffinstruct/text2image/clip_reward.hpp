#pragma once
/// \file The CLIP-similarity reward: r(x0, c) = s · cos(image_embeds(x0), text_embeds(c)) per sample,
/// as CLIP score, PickScore and HPSv2 compute it: s = exp(logit_scale) by default (PickScore's
/// score), or a fixed scale (HPSv2's score is the plain cosine, s = 1; `ClipRewardOptions`). A latent-space generator's x0 goes
/// through the VAE decoder first (decode_latents: ÷ scaling_factor); pixels in [−1, 1] become images
/// in [0, 1] (clamped, as a pipeline's output is), then CLIP's preprocessing (differentiable resize
/// and crop, or OpenCLIP's resize and pad for HPS; then normalise) and the CLIP vision tower. The text side comes precomputed with the condition
/// (PromptCondition::reward_text_embeds, from a PromptEncoder), so a step never re-encodes prompts.
/// The gradient reaches x0; the VAE decoder and the vision tower are declared to the trainer, which
/// freezes them. Meets the Reward contract (rewards/reward.hpp) for PromptCondition.
///
/// Example:
///   auto clip = models::load_clip_model("PickScore_v1", {}, models::ClipTowers::kBoth);
///   text2image::ClipReward reward(clip.vision, clip.logit_scale, vae);    // vae: nullptr in pixel space

#include <diffinstruct/core/module_ref.hpp>
#include <diffinstruct/models/autoencoder_kl.hpp>
#include <diffinstruct/models/clip_vision.hpp>
#include <diffinstruct/text2image/prompt_condition.hpp>

#include <cmath>
#include <vector>

namespace diffinstruct {
namespace text2image {

/// How the images reach the vision tower.
enum class ClipImagePreprocess {
  kResizeCrop,  ///< short side to the tower's size, centre crop (CLIP, PickScore: models::clip_preprocess)
  kResizePad,   ///< long side to the size, zero padding (OpenCLIP's resize_longest_max, HPSv2: models::clip_preprocess_pad)
};

struct ClipRewardOptions {
  TORCH_ARG(ClipImagePreprocess, preprocess) = ClipImagePreprocess::kResizeCrop;
  /// The factor of the cosine; unset: exp(logit_scale).
  TORCH_ARG(c10::optional<double>, scale) = c10::nullopt;
  /// max(s · cos, 0) instead of s · cos (the CLIP score's floor; the gradient is zero below it).
  TORCH_ARG(bool, floor_at_zero) = false;
  /// What describe() and the metrics call it ("clip", "pickscore", "hps", "clip_score").
  TORCH_ARG(std::string, label) = "clip";
};

/// The dtype a module computes in: that of its first parameter (float32 without parameters).
inline c10::ScalarType module_dtype(const torch::nn::Module& m) {
  const auto params = m.parameters();
  return params.empty() ? torch::kFloat : params.front().scalar_type();
}

/// x0 as pixels in [−1, 1] (roughly; not clamped): decoded by `vae` when x0 is latents, x0 itself
/// without one. `who` names the reward in errors. Shared by the rewards that read images.
inline torch::Tensor decode_for_reward(const torch::Tensor& x0, models::AutoencoderKL& vae, const char* who) {
  if (!vae) return x0;
  TORCH_CHECK(x0.size(1) == vae->config().latent_channels, "diffinstruct::", who, ": the VAE decodes ", vae->config().latent_channels,
              "-channel latents; x0 has ", x0.size(1), " channels");
  return vae->decode_latents(x0.to(module_dtype(*vae)));
}

/// Pixels in [−1, 1] as images in [0, 1], clamped as a pipeline's output is, in float32 (float64
/// for float64 pixels).
inline torch::Tensor unit_images(const torch::Tensor& pixels) {
  const auto dtype = pixels.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  return (pixels.to(dtype) / 2 + 0.5).clamp(0, 1);
}

/// HPSv2 / HPSv2.1 (an OpenCLIP ViT-H-14 loaded by models::load_open_clip): the plain cosine, as
/// HPSv2's `score()` returns it (its leaderboards print it ×100), with OpenCLIP's resize-and-pad.
inline ClipRewardOptions hps_reward_options() { return ClipRewardOptions().preprocess(ClipImagePreprocess::kResizePad).scale(1.0).label("hps"); }
/// PickScore: exp(logit_scale) · cos with CLIP's resize-and-crop, as PickScore's inference code computes it.
inline ClipRewardOptions pickscore_reward_options() { return ClipRewardOptions().label("pickscore"); }
/// The CLIP score (Hessel et al., 2021, as torchmetrics' CLIPScore computes it): 100 · max(cos, 0),
/// CLIP's resize-and-crop; with OpenAI's CLIP ViT-L/14 (`openai/clip-vit-large-patch14`,
/// torchmetrics' default) it is the number papers report (about 30 for good text-image pairs).
inline ClipRewardOptions clip_score_reward_options() { return ClipRewardOptions().scale(100.0).floor_at_zero(true).label("clip_score"); }

class ClipReward {
 public:
  static constexpr bool is_null = false;
  static constexpr const char* name = "clip";

  /// `logit_scale`: the CLIPModel's scalar (a log; models::load_clip_model reads it). `vae`: the
  /// decoder for latents, or nullptr when x0 is already pixels in [−1, 1].
  ClipReward(models::ClipVisionModel vision, torch::Tensor logit_scale, models::AutoencoderKL vae = nullptr, ClipRewardOptions options = {})
      : vision_(std::move(vision)), vae_(std::move(vae)), options_(std::move(options)) {
    TORCH_CHECK(vision_ && vision_->config().with_projection, "diffinstruct::ClipReward: the vision model must have a projection ",
                "(a CLIPModel's vision tower or a CLIPVisionModelWithProjection)");
    TORCH_CHECK(logit_scale.defined() && logit_scale.numel() == 1, "diffinstruct::ClipReward: logit_scale must be one number");
    const double s = logit_scale.to(torch::kDouble).item<double>();
    TORCH_CHECK(std::isfinite(s), "diffinstruct::ClipReward: logit_scale is not finite");
    scale_ = options_.scale() ? *options_.scale() : std::exp(s);
    TORCH_CHECK(std::isfinite(scale_), "diffinstruct::ClipReward: the scale is not finite");
  }

  torch::Tensor operator()(const torch::Tensor& x0, const PromptCondition& c) {
    TORCH_CHECK(x0.defined() && x0.dim() == 4, "diffinstruct::ClipReward: expected x0 [B, C, H, W], got ",
                x0.defined() ? c10::str(x0.sizes()) : std::string("an undefined tensor"));
    TORCH_CHECK(c.reward_text_embeds.defined(), "diffinstruct::ClipReward: the condition has no reward_text_embeds: give the PromptEncoder ",
                "the reward's text tower (set_reward_text)");
    const int64_t batch = x0.size(0);
    TORCH_CHECK(c.reward_text_embeds.dim() == 2 && c.reward_text_embeds.size(0) == batch &&
                    c.reward_text_embeds.size(1) == vision_->config().projection_dim,
                "diffinstruct::ClipReward: expected reward_text_embeds [", batch, ", ", vision_->config().projection_dim, "], got ",
                c.reward_text_embeds.sizes());
    return reward_of_embeddings(embed_images(x0), c.reward_text_embeds);
  }

  /// The reward from unit-norm image and text embeddings [B, E]: s · cos (floored at 0 if asked), per sample
  /// (what operator() returns; an evaluation that has the embeddings already uses this).
  torch::Tensor reward_of_embeddings(const torch::Tensor& image_embeds, const torch::Tensor& text_embeds) const {
    const auto r = scale_ * cosine_of_unit(image_embeds, text_embeds);
    return options_.floor_at_zero() ? r.clamp_min(0) : r;
  }
  /// cos(image, text) per row of unit-norm embeddings, in the image embeddings' dtype and device.
  static torch::Tensor cosine_of_unit(const torch::Tensor& image_embeds, const torch::Tensor& text_embeds) {
    return (image_embeds * text_embeds.to(image_embeds.device(), image_embeds.scalar_type())).sum(-1);
  }

  /// Unit-norm image embeddings [B, E] of x0 (latents with a VAE, else pixels in [−1, 1]), in float32
  /// (float64 for a float64 x0): the models may run in a reduced dtype, the similarity does not.
  torch::Tensor embed_images(const torch::Tensor& x0) { return embed_pixels(decode(x0)); }

  /// x0 as pixels in [−1, 1] (roughly; not clamped): decoded by the VAE, or x0 itself without one.
  torch::Tensor decode(const torch::Tensor& x0) { return decode_for_reward(x0, vae_, "ClipReward"); }

  /// Unit-norm image embeddings [B, E] of pixels in [−1, 1] (what decode() gives), in float32
  /// (float64 for float64 pixels).
  torch::Tensor embed_pixels(const torch::Tensor& pixels) {
    const auto images = unit_images(pixels);
    const auto size = vision_->config().image_size;
    const auto pixel_values = options_.preprocess() == ClipImagePreprocess::kResizePad ? models::clip_preprocess_pad(images, size)
                                                                                       : models::clip_preprocess(images, size);
    const auto e = vision_->forward(pixel_values.to(module_dtype(*vision_))).image_embeds.to(images.scalar_type());
    return e / e.norm(2, -1, true);
  }

  /// What the trainer freezes.
  std::vector<ModuleRef> modules() const {
    std::vector<ModuleRef> out{ModuleRef::of(vision_)};
    if (vae_) out.push_back(ModuleRef::of(vae_));
    return out;
  }
  double scale() const { return scale_; }
  const ClipRewardOptions& options() const { return options_; }
  int64_t projection_dim() const { return vision_->config().projection_dim; }
  std::string describe() const { return options_.label() + "(scale " + std::to_string(scale_) + (vae_ ? ", through the VAE decoder)" : ")"); }

 private:
  models::ClipVisionModel vision_;
  models::AutoencoderKL vae_;
  ClipRewardOptions options_;
  double scale_ = 1;
};

}  // namespace text2image
}  // namespace diffinstruct
