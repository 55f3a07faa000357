#pragma once
/// \file The LAION aesthetic predictor v2 as a reward and a metric: r(x0) = head(e / ‖e‖), e the CLIP
/// ViT-L/14 image embedding of x0 (decoded by the VAE for latents; pixels in [−1, 1] to [0, 1],
/// clamped; CLIP's resize-and-crop preprocessing, as the predictor's inference code does with
/// OpenAI's `clip` package), the head models/aesthetic_head.hpp. The score is on the predictor's own
/// scale (about 1–10; the paper's table reports it as is). It ignores the prompt, so it meets the
/// Reward contract (rewards/reward.hpp) for any condition type. The gradient reaches x0; the VAE,
/// the vision tower and the head are declared to the trainer, which freezes them.
///
/// Example:
///   auto clip = models::load_clip_model("clip-vit-large-patch14", {}, models::ClipTowers::kVision);
///   text2image::AestheticReward reward(clip.vision, models::load_aesthetic_head("sac+logos+ava1-l14-linearMSE.pth"), vae);

#include <diffinstruct/models/aesthetic_head.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>

#include <string>
#include <vector>

namespace diffinstruct {
namespace text2image {

class AestheticReward {
 public:
  static constexpr bool is_null = false;
  static constexpr const char* name = "aesthetic";

  AestheticReward(models::ClipVisionModel vision, models::AestheticHead head, models::AutoencoderKL vae = nullptr)
      : images_(std::move(vision), torch::zeros({}), std::move(vae), ClipRewardOptions().scale(1.0).label("aesthetic")), head_(std::move(head)) {
    TORCH_CHECK(head_, "diffinstruct::AestheticReward: no head");
    TORCH_CHECK(head_->input_size() == images_.projection_dim(), "diffinstruct::AestheticReward: the head takes ", head_->input_size(),
                "-dimensional embeddings, the vision tower gives ", images_.projection_dim());
  }

  template <class Condition>
  torch::Tensor operator()(const torch::Tensor& x0, const Condition&) {
    return score_of_embeddings(images_.embed_images(x0));
  }
  /// The score [B] of unit-norm image embeddings (what ClipReward::embed_images gives), in float32.
  torch::Tensor score_of_embeddings(const torch::Tensor& unit_embeds) { return head_(unit_embeds).squeeze(-1).to(unit_embeds.scalar_type()); }
  /// The image side (decode, preprocess, embed), shared with the CLIP-similarity rewards.
  ClipReward& images() { return images_; }

  std::vector<ModuleRef> modules() const {
    auto out = images_.modules();
    out.push_back(ModuleRef::of(head_));
    return out;
  }
  std::string describe() const { return "aesthetic(" + std::to_string(head_->input_size()) + "-d head)"; }

 private:
  ClipReward images_;
  models::AestheticHead head_;
};

}  // namespace text2image
}  // namespace diffinstruct
