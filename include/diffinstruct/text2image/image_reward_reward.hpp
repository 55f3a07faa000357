#pragma once
/// \file ImageReward v1.0 as a reward and a metric (the model: models/image_reward.hpp): r(x0, c) is
/// ImageReward's score of x0 (decoded by the VAE for latents; pixels in [−1, 1] to [0, 1], clamped;
/// blip_preprocess) for the prompt of each row. The prompts are tokenized once, when the reward is
/// built, with BERT's WordPiece (text/wordpiece_tokenizer.hpp; [CLS] ... [SEP], padded to 35 as
/// ImageReward does), and a row finds its tokens by the condition's `prompt_index` — so the reward
/// is given the same prompt list as the PromptSource that draws the conditions. The score is on
/// ImageReward's own scale (standardised: about −2 to 2; the paper's 1.140 is one). The gradient
/// reaches x0; the VAE and the model are declared to the trainer, which freezes them.
///
/// Example:
///   auto model = models::load_image_reward("ImageReward.pt");
///   auto tok = text::WordPieceTokenizer::from_vocab_file("bert-base-uncased/vocab.txt").with_added_tokens({"[DEC]", "[ENC]"});
///   text2image::ImageRewardReward reward(model, tok, prompts, vae);

#include <diffinstruct/core/module_ref.hpp>
#include <diffinstruct/models/autoencoder_kl.hpp>
#include <diffinstruct/models/image_reward.hpp>
#include <diffinstruct/text/wordpiece_tokenizer.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>
#include <diffinstruct/text2image/prompt_condition.hpp>

#include <string>
#include <vector>

namespace diffinstruct {
namespace text2image {

class ImageRewardReward {
 public:
  static constexpr bool is_null = false;
  static constexpr const char* name = "image_reward";
  static constexpr int64_t kMaxLength = 35;  // ImageReward.score's tokenizer call

  ImageRewardReward(models::ImageRewardModel model, const text::WordPieceTokenizer& tokenizer, const std::vector<std::string>& prompts,
                    models::AutoencoderKL vae = nullptr)
      : model_(std::move(model)), vae_(std::move(vae)) {
    TORCH_CHECK(model_, "diffinstruct::ImageRewardReward: no model");
    TORCH_CHECK(!prompts.empty(), "diffinstruct::ImageRewardReward: no prompts (give the PromptSource's prompt list)");
    TORCH_CHECK(tokenizer.vocab_size() <= model_->text_encoder->config().vocab_size, "diffinstruct::ImageRewardReward: the tokenizer has ",
                tokenizer.vocab_size(), " tokens, the model's BERT ", model_->text_encoder->config().vocab_size);
    std::tie(ids_, mask_) = tokenizer.batch(prompts, kMaxLength);
  }

  torch::Tensor operator()(const torch::Tensor& x0, const PromptCondition& c) {
    TORCH_CHECK(x0.defined() && x0.dim() == 4, "diffinstruct::ImageRewardReward: expected x0 [B, C, H, W], got ",
                x0.defined() ? c10::str(x0.sizes()) : std::string("an undefined tensor"));
    TORCH_CHECK(c.prompt_index.defined() && c.prompt_index.dim() == 1 && c.prompt_index.size(0) == x0.size(0),
                "diffinstruct::ImageRewardReward: the condition needs a prompt_index per row (from a PromptSource)");
    const auto index = c.prompt_index.to(torch::kCPU, torch::kLong);
    TORCH_CHECK(index.min().item<int64_t>() >= 0 && index.max().item<int64_t>() < ids_.size(0), "diffinstruct::ImageRewardReward: prompt_index ",
                "must lie in [0, ", ids_.size(0), ") (the reward's prompts; −1, the null prompt, has no score)");
    const auto device = params_device();
    return model_->forward(pixel_values(x0), ids_.index_select(0, index).to(device), mask_.index_select(0, index).to(device));
  }

  /// ImageReward's input from x0: decoded (with a VAE), to [0, 1], resized, cropped, normalised.
  torch::Tensor pixel_values(const torch::Tensor& x0) {
    const auto images = unit_images(decode_for_reward(x0, vae_, "ImageRewardReward"));
    return models::blip_preprocess(images, model_->config().vision.image_size).to(module_dtype(*model_));
  }

  std::vector<ModuleRef> modules() const {
    std::vector<ModuleRef> out{ModuleRef::of(model_)};
    if (vae_) out.push_back(ModuleRef::of(vae_));
    return out;
  }
  std::string describe() const { return "image_reward(" + std::to_string(ids_.size(0)) + " prompts" + (vae_ ? ", through the VAE decoder)" : ")"); }

 private:
  c10::Device params_device() const { return model_->visual_encoder->proj->weight.device(); }

  models::ImageRewardModel model_;
  models::AutoencoderKL vae_;
  torch::Tensor ids_, mask_;  // [P, 35] on the CPU; rows picked per step
};

}  // namespace text2image
}  // namespace diffinstruct
