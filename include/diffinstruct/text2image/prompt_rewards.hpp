#pragma once
/// \file Several rewards of text-to-image samples at once, chosen at run time: a weighted sum of
/// those with a weight (the reward the generator is trained on), and every one of them — the
/// weighted and the held-out, weight 0 — scored at evaluations, so that a reward the run does not
/// train on watches for reward hacking (ImageReward corrupting images, HPS favouring saturation).
///
///   r(x0, c) = Σ_i w_i r_i(decode(x0), c)      over the terms with w_i ≠ 0
///
/// The VAE decodes x0 once for all terms (its backward is the costliest part of a reward). Each term
/// finds its prompt by the condition's `prompt_index`, in the prompt list given here — the same list
/// as the PromptSource's — so a CLIP-like term's text embeddings are computed once per prompt, with
/// its own text tower and tokenizer, whatever the other terms use. Terms:
///
///   add_clip          ClipReward (PickScore, the CLIP score, HPS: ClipRewardOptions) on its CLIP model
///   add_aesthetic     AestheticReward (the LAION aesthetic predictor v2)
///   add_image_reward  ImageRewardReward (ImageReward v1.0)
///
/// Meets the Reward contract (rewards/reward.hpp) for PromptCondition; every model is declared, and
/// the trainer freezes them.
///
/// Example:
///   text2image::PromptRewards rewards(vae, prompts);
///   rewards.add_clip("pickscore", 1.0, pickscore, pickscore_tokenizer, text2image::pickscore_reward_options());
///   rewards.add_image_reward("image_reward", 0.0, image_reward, wordpiece);   // held out: scored, not trained
///   auto r = rewards(x0, c);                    // [B], differentiable in x0
///   auto all = rewards.scores(rewards.decode(x0), c.prompt_index);   // every term's raw score

#include <diffinstruct/models/clip_model.hpp>
#include <diffinstruct/text/clip_tokenizer.hpp>
#include <diffinstruct/text2image/aesthetic_reward.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>
#include <diffinstruct/text2image/image_reward_reward.hpp>
#include <diffinstruct/text2image/prompt_encoder.hpp>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace text2image {

class PromptRewards {
 public:
  static constexpr bool is_null = false;
  static constexpr const char* name = "prompt_rewards";

  /// `vae`: the decoder for latents (nullptr when x0 is pixels in [−1, 1]); `prompts`: the prompt list
  /// the conditions' prompt_index points into.
  PromptRewards(models::AutoencoderKL vae, std::vector<std::string> prompts) : vae_(std::move(vae)), prompts_(std::move(prompts)) {
    TORCH_CHECK(!prompts_.empty(), "diffinstruct::text2image::PromptRewards: no prompts (give the PromptSource's prompt list)");
  }

  /// A CLIP-similarity term: s · cos(image, prompt) as `options` say (pickscore_reward_options(),
  /// clip_score_reward_options(), hps_reward_options()); the text side from `clip.text` and `tokenizer`.
  void add_clip(const std::string& term, double weight, const models::ClipModelParts& clip, const text::ClipTokenizer& tokenizer,
                const ClipRewardOptions& options) {
    TORCH_CHECK(clip.vision && clip.text, "diffinstruct::text2image::PromptRewards: '", term, "' needs both towers of its CLIP model");
    TORCH_CHECK(tokenizer.vocab_size() <= clip.text->config().vocab_size, "diffinstruct::text2image::PromptRewards: '", term, "': the tokenizer has ",
                tokenizer.vocab_size(), " tokens, the text tower ", clip.text->config().vocab_size);
    auto reward = std::make_shared<ClipReward>(clip.vision, clip.logit_scale, nullptr, ClipRewardOptions(options).label(term));
    auto text_tower = clip.text;  // a handle to the same module
    for (auto& p : text_tower->parameters()) p.requires_grad_(false);
    const auto table = prompt_text_embeddings(text_tower, tokenizer, prompts_);  // [P, E] on the tower's device
    Term t{term, weight, nullptr, nullptr, reward->modules()};
    t.score = [reward, table](const torch::Tensor& pixels, const torch::Tensor& index) {
      const auto image = reward->embed_pixels(pixels);
      return reward->reward_of_embeddings(image, table.index_select(0, index.to(table.device())).to(image.device()));
    };
    t.embed = [reward, table](const torch::Tensor& pixels, const torch::Tensor& index) {
      return std::make_pair(reward->embed_pixels(pixels), table.index_select(0, index.to(table.device())));
    };
    t.modules.push_back(ModuleRef::of(text_tower));
    add(std::move(t));
  }

  void add_aesthetic(const std::string& term, double weight, models::ClipVisionModel vision, models::AestheticHead head) {
    auto reward = std::make_shared<AestheticReward>(std::move(vision), std::move(head), nullptr);
    Term t{term, weight, nullptr, nullptr, reward->modules()};
    t.score = [reward](const torch::Tensor& pixels, const torch::Tensor&) { return (*reward)(pixels, 0); };
    add(std::move(t));
  }

  void add_image_reward(const std::string& term, double weight, models::ImageRewardModel model, const text::WordPieceTokenizer& tokenizer) {
    auto reward = std::make_shared<ImageRewardReward>(std::move(model), tokenizer, prompts_, nullptr);
    Term t{term, weight, nullptr, nullptr, reward->modules()};
    t.score = [reward](const torch::Tensor& pixels, const torch::Tensor& index) {
      PromptCondition c;
      c.prompt_index = index;
      return (*reward)(pixels, c);
    };
    add(std::move(t));
  }

  /// The trained reward [B]: the weighted sum over the terms with a weight, of x0 decoded once.
  torch::Tensor operator()(const torch::Tensor& x0, const PromptCondition& c) {
    TORCH_CHECK(x0.defined() && x0.dim() == 4, "diffinstruct::text2image::PromptRewards: expected x0 [B, C, H, W], got ",
                x0.defined() ? c10::str(x0.sizes()) : std::string("an undefined tensor"));
    const auto index = check_index(c.prompt_index, x0.size(0));
    TORCH_CHECK(trains_anything(), "diffinstruct::text2image::PromptRewards: no term has a weight (every one is held out)");
    const auto pixels = decode(x0);
    torch::Tensor total;
    for (const auto& t : terms_) {
      if (t.weight == 0) continue;
      const auto r = t.weight * t.score(pixels, index).to(x0.device());
      total = total.defined() ? total + r : r;
    }
    return total;
  }

  /// x0 as pixels in [−1, 1]: decoded by the VAE, or x0 itself without one.
  torch::Tensor decode(const torch::Tensor& x0) { return decode_for_reward(x0, vae_, "PromptRewards"); }

  /// Every term's raw score [B] (float32, on the CPU) of `pixels` (what decode gives), without gradient.
  std::vector<std::pair<std::string, torch::Tensor>> scores(const torch::Tensor& pixels, const torch::Tensor& prompt_index) {
    torch::NoGradGuard no_grad;
    const auto index = check_index(prompt_index, pixels.size(0));
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& t : terms_) out.emplace_back(t.name, t.score(pixels, index).to(torch::kCPU, torch::kFloat));
    return out;
  }

  /// The unit-norm image and prompt embeddings [B, E] of the first CLIP-like term (for the CLIP score
  /// and diversity), on the CPU; undefined tensors when there is none.
  std::pair<torch::Tensor, torch::Tensor> clip_embeddings(const torch::Tensor& pixels, const torch::Tensor& prompt_index) {
    torch::NoGradGuard no_grad;
    const auto index = check_index(prompt_index, pixels.size(0));
    for (const auto& t : terms_)
      if (t.embed) {
        auto [image, text] = t.embed(pixels, index);
        return {image.to(torch::kCPU, torch::kFloat), text.to(torch::kCPU, torch::kFloat)};
      }
    return {};
  }

  bool trains_anything() const {
    for (const auto& t : terms_)
      if (t.weight != 0) return true;
    return false;
  }
  std::vector<std::string> term_names() const {
    std::vector<std::string> out;
    for (const auto& t : terms_) out.push_back(t.name);
    return out;
  }
  double weight(const std::string& term) const {
    for (const auto& t : terms_)
      if (t.name == term) return t.weight;
    TORCH_CHECK(false, "diffinstruct::text2image::PromptRewards: no term '", term, "'");
    return 0;
  }
  std::vector<ModuleRef> modules() const {
    std::vector<ModuleRef> out;
    if (vae_) out.push_back(ModuleRef::of(vae_));
    for (const auto& t : terms_) out.insert(out.end(), t.modules.begin(), t.modules.end());
    return out;
  }
  std::string describe() const {
    std::string out = "prompt_rewards(";
    for (size_t i = 0; i < terms_.size(); ++i)
      out += (i ? ", " : "") + terms_[i].name + (terms_[i].weight == 0 ? " held out" : " × " + c10::str(terms_[i].weight));
    return out + (vae_ ? "; through the VAE decoder)" : ")");
  }

 private:
  struct Term {
    std::string name;
    double weight = 0;
    std::function<torch::Tensor(const torch::Tensor& pixels, const torch::Tensor& index)> score;
    std::function<std::pair<torch::Tensor, torch::Tensor>(const torch::Tensor& pixels, const torch::Tensor& index)> embed;  // CLIP-like only
    std::vector<ModuleRef> modules;
  };

  void add(Term t) {
    TORCH_CHECK(std::isfinite(t.weight), "diffinstruct::text2image::PromptRewards: '", t.name, "': expected a finite weight, got ", t.weight);
    for (const auto& other : terms_)
      TORCH_CHECK(other.name != t.name, "diffinstruct::text2image::PromptRewards: two terms named '", t.name, "'");
    terms_.push_back(std::move(t));
  }

  torch::Tensor check_index(const torch::Tensor& prompt_index, int64_t batch) const {
    TORCH_CHECK(prompt_index.defined() && prompt_index.dim() == 1 && prompt_index.size(0) == batch,
                "diffinstruct::text2image::PromptRewards: the condition needs a prompt_index per row (from a PromptSource), ", batch, " rows");
    const auto index = prompt_index.to(torch::kCPU, torch::kLong);
    TORCH_CHECK(index.min().item<int64_t>() >= 0 && index.max().item<int64_t>() < static_cast<int64_t>(prompts_.size()),
                "diffinstruct::text2image::PromptRewards: prompt_index must lie in [0, ", prompts_.size(), ") (−1, the null prompt, has no reward)");
    return index;
  }

  models::AutoencoderKL vae_;
  std::vector<std::string> prompts_;
  std::vector<Term> terms_;
};

}  // namespace text2image
}  // namespace diffinstruct
