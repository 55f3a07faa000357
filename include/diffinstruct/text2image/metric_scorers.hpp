#pragma once
/// \file The rewards as metrics: each scores finished 8-bit images (what a pipeline saves as PNG) for
/// their prompts the way its original's evaluation code does, with the resampling of the original
/// (PIL's bicubic, bit for bit: models/pil_resize.hpp), not the differentiable path the rewards train
/// through (docs/evaluation.md, "Resampling"). The models are the rewards' own; only the way in
/// differs.
///
///   scorer          preprocessing of the 8-bit image              score (raw)                     paper's column
///   image_reward    PIL bicubic, crop rounded half to even        ImageReward's standardised one  as is
///   aesthetic       PIL bicubic, crop rounded half to even        head(e / ‖e‖)                   as is
///   pickscore       PIL bicubic, crop floored (CLIPProcessor)     exp(logit_scale) · cos          ÷ 100
///   clip_score      PIL bicubic, crop floored (CLIPProcessor)     100 · max(cos, 0)               as is
///   hps             /255, resize longest side, pad (preprocess_val)  cos                          × 100
///
/// Prompts are encoded once, when a scorer is built; a row of a batch names its prompt by index.
///
/// Example:
///   auto clip = models::load_clip_model("PickScore_v1", {}, models::ClipTowers::kBoth);
///   text2image::ClipSimilarityScorer pick(clip, text::ClipTokenizer::from_folder("CLIP-ViT-H-14"), prompts,
///                                         text2image::ClipSimilarityScorer::pickscore());
///   auto s = pick.score(images_u8, prompt_index);   // s.score [B] float64, s.image_embeds [B, E]

#include <diffinstruct/models/aesthetic_head.hpp>
#include <diffinstruct/models/clip_model.hpp>
#include <diffinstruct/models/image_reward.hpp>
#include <diffinstruct/models/pil_resize.hpp>
#include <diffinstruct/text/clip_tokenizer.hpp>
#include <diffinstruct/text/wordpiece_tokenizer.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>
#include <diffinstruct/text2image/image_reward_reward.hpp>
#include <diffinstruct/text2image/prompt_encoder.hpp>

#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

namespace diffinstruct {
namespace text2image {

/// What a metric is called and how the paper prints it.
struct MetricInfo {
  std::string name;          ///< the column of metrics.csv ("pickscore")
  std::string title;         ///< the paper's column title ("PickScore")
  double paper_factor = 1;   ///< the paper's number = raw score × paper_factor
};

struct ImageScores {
  torch::Tensor score;         ///< [B] float64 on the CPU, raw (MetricInfo::paper_factor gives the paper's scale)
  torch::Tensor image_embeds;  ///< [B, E] unit-norm float32 on the CPU, or undefined (a scorer without CLIP embeddings)
};

class MetricScorer {
 public:
  virtual ~MetricScorer() = default;
  virtual const MetricInfo& info() const = 0;
  /// Scores `images` [B, 3, H, W] uint8 (on the CPU) for prompts `prompt_index` [B] (indices into the
  /// scorer's prompt list).
  virtual ImageScores score(const torch::Tensor& images, const torch::Tensor& prompt_index) = 0;

 protected:
  /// Checks the inputs and returns the prompt indices as an int64 tensor on the CPU.
  static torch::Tensor check_inputs(const torch::Tensor& images, const torch::Tensor& prompt_index, int64_t prompts, const std::string& who) {
    TORCH_CHECK(images.defined() && images.dim() == 4 && images.size(1) == 3 && images.scalar_type() == torch::kByte && images.device().is_cpu(),
                "diffinstruct::text2image::", who, ": expected uint8 images [B, 3, H, W] on the CPU, got ",
                images.defined() ? c10::str(images.scalar_type(), " ", images.sizes(), " on ", images.device()) : std::string("none"));
    TORCH_CHECK(prompt_index.defined() && prompt_index.dim() == 1 && prompt_index.size(0) == images.size(0), "diffinstruct::text2image::", who,
                ": expected one prompt index per image (", images.size(0), "), got ",
                prompt_index.defined() ? c10::str(prompt_index.sizes()) : std::string("none"));
    const auto index = prompt_index.to(torch::kCPU, torch::kLong);
    TORCH_CHECK(index.numel() == 0 || (index.min().item<int64_t>() >= 0 && index.max().item<int64_t>() < prompts), "diffinstruct::text2image::",
                who, ": prompt indices must lie in [0, ", prompts, ")");
    return index;
  }
  static c10::Device device_of(const torch::nn::Module& m) {
    const auto p = m.parameters();
    return p.empty() ? c10::Device(torch::kCPU) : p.front().device();
  }
  static torch::Tensor unit(const torch::Tensor& e) {
    const auto f = e.to(torch::kCPU, torch::kFloat);
    return f / f.norm(2, -1, true);
  }
};

/// PickScore, the CLIP score and HPSv2: s · cos(image, prompt), optionally floored at 0.
class ClipSimilarityScorer : public MetricScorer {
 public:
  struct Kind {
    MetricInfo info;
    bool pad = false;            ///< HPS's resize-longest-and-pad on the float image; else PIL's resize and a floored crop
    bool use_logit_scale = false;  ///< s = exp(logit_scale) (PickScore); else `scale`
    double scale = 1;
    bool floor_at_zero = false;
  };
  static Kind pickscore() { return {{"pickscore", "PickScore", 0.01}, false, true, 1, false}; }
  static Kind clip_score() { return {{"clip_score", "CLIP", 1}, false, false, 100, true}; }
  static Kind hps() { return {{"hps", "HPSv2.1", 100}, true, false, 1, false}; }

  ClipSimilarityScorer(const models::ClipModelParts& clip, const text::ClipTokenizer& tokenizer, const std::vector<std::string>& prompts, Kind kind)
      : vision_(clip.vision), kind_(std::move(kind)) {
    TORCH_CHECK(clip.vision && clip.text && clip.vision->config().with_projection && clip.text->config().with_projection,
                "diffinstruct::text2image::ClipSimilarityScorer (", kind_.info.name, "): needs both towers of a CLIP model, with projections");
    TORCH_CHECK(!prompts.empty(), "diffinstruct::text2image::ClipSimilarityScorer: no prompts");
    TORCH_CHECK(tokenizer.vocab_size() <= clip.text->config().vocab_size, "diffinstruct::text2image::ClipSimilarityScorer (", kind_.info.name,
                "): the tokenizer has ", tokenizer.vocab_size(), " tokens, the text tower ", clip.text->config().vocab_size);
    scale_ = kind_.use_logit_scale ? std::exp(clip.logit_scale.to(torch::kDouble).item<double>()) : kind_.scale;
    TORCH_CHECK(std::isfinite(scale_), "diffinstruct::text2image::ClipSimilarityScorer: the scale is not finite");
    vision_->eval();
    text_ = prompt_text_embeddings(clip.text, tokenizer, prompts).to(torch::kCPU);
  }

  const MetricInfo& info() const override { return kind_.info; }
  double scale() const { return scale_; }

  ImageScores score(const torch::Tensor& images, const torch::Tensor& prompt_index) override {
    const auto index = check_inputs(images, prompt_index, text_.size(0), "ClipSimilarityScorer");
    torch::NoGradGuard no_grad;
    const int64_t size = vision_->config().image_size;
    const auto pixel_values = kind_.pad ? models::clip_preprocess_pad(images.to(torch::kFloat) / 255.0f, size)
                                        : models::clip_preprocess_pil(images, size, models::CropRounding::kFloor);
    ImageScores s;
    s.image_embeds = unit(vision_->forward(pixel_values.to(device_of(*vision_), module_dtype(*vision_))).image_embeds);
    auto r = scale_ * (s.image_embeds.to(torch::kDouble) * text_.index_select(0, index).to(torch::kDouble)).sum(-1);
    s.score = kind_.floor_at_zero ? r.clamp_min(0) : r;
    return s;
  }

 private:
  models::ClipVisionModel vision_;
  Kind kind_;
  double scale_ = 1;
  torch::Tensor text_;  // [P, E] unit-norm, float32 on the CPU
};

/// The LAION aesthetic predictor v2: head(e / ‖e‖), e the CLIP ViT-L/14 image embedding.
class AestheticScorer : public MetricScorer {
 public:
  AestheticScorer(models::ClipVisionModel vision, models::AestheticHead head) : vision_(std::move(vision)), head_(std::move(head)) {
    TORCH_CHECK(vision_ && vision_->config().with_projection && head_, "diffinstruct::text2image::AestheticScorer: needs a CLIP vision tower with a projection and a head");
    TORCH_CHECK(head_->input_size() == vision_->config().projection_dim, "diffinstruct::text2image::AestheticScorer: the head takes ",
                head_->input_size(), "-dimensional embeddings, the vision tower gives ", vision_->config().projection_dim);
    vision_->eval();
    head_->eval();
  }
  const MetricInfo& info() const override { return info_; }
  ImageScores score(const torch::Tensor& images, const torch::Tensor& prompt_index) override {
    check_inputs(images, prompt_index, std::numeric_limits<int64_t>::max(), "AestheticScorer");
    torch::NoGradGuard no_grad;
    const auto pixel_values = models::clip_preprocess_pil(images, vision_->config().image_size, models::CropRounding::kHalfEven);
    ImageScores s;
    s.image_embeds = unit(vision_->forward(pixel_values.to(device_of(*vision_), module_dtype(*vision_))).image_embeds);
    s.score = head_(s.image_embeds.to(device_of(*head_))).squeeze(-1).to(torch::kCPU, torch::kDouble);
    return s;
  }

 private:
  models::ClipVisionModel vision_;
  models::AestheticHead head_;
  MetricInfo info_{"aesthetic", "aesthetic", 1};
};

/// ImageReward v1.0 on its own standardised scale.
class ImageRewardScorer : public MetricScorer {
 public:
  ImageRewardScorer(models::ImageRewardModel model, const text::WordPieceTokenizer& tokenizer, const std::vector<std::string>& prompts)
      : model_(std::move(model)) {
    TORCH_CHECK(model_, "diffinstruct::text2image::ImageRewardScorer: no model");
    TORCH_CHECK(!prompts.empty(), "diffinstruct::text2image::ImageRewardScorer: no prompts");
    TORCH_CHECK(tokenizer.vocab_size() <= model_->text_encoder->config().vocab_size, "diffinstruct::text2image::ImageRewardScorer: the tokenizer has ",
                tokenizer.vocab_size(), " tokens, the model's BERT ", model_->text_encoder->config().vocab_size);
    std::tie(ids_, mask_) = tokenizer.batch(prompts, ImageRewardReward::kMaxLength);
    model_->eval();
  }
  const MetricInfo& info() const override { return info_; }
  ImageScores score(const torch::Tensor& images, const torch::Tensor& prompt_index) override {
    const auto index = check_inputs(images, prompt_index, ids_.size(0), "ImageRewardScorer");
    torch::NoGradGuard no_grad;
    const auto device = device_of(*model_);
    const auto pixel_values = models::clip_preprocess_pil(images, model_->config().vision.image_size, models::CropRounding::kHalfEven);
    ImageScores s;
    s.score = model_->forward(pixel_values.to(device, module_dtype(*model_)), ids_.index_select(0, index).to(device), mask_.index_select(0, index).to(device))
                  .to(torch::kCPU, torch::kDouble);
    return s;
  }

 private:
  models::ImageRewardModel model_;
  torch::Tensor ids_, mask_;  // [P, 35] on the CPU
  MetricInfo info_{"image_reward", "ImageReward", 1};
};

}  // namespace text2image
}  // namespace diffinstruct
