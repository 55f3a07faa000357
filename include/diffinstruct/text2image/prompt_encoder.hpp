#pragma once
/// \file Prompts (strings) -> a PromptCondition: tokenised and encoded once, then cached per prompt.
///
///   UNet side: one CLIP text encoder (SD 1.x, 2.x), or two (SDXL), each with its tokenizer. The
///   hidden states are the last layer's (after the final layer norm), or the layer `hidden_layer`
///   counts from the end before it (SDXL: −2, the penultimate); several encoders are concatenated
///   along features, as SDXL does. With `time_ids` set (SDXL's six size/crop numbers), the last
///   encoder's projected pooled output becomes `text_embeds`.
///   Reward side (optional): a CLIPModel's text tower and its tokenizer -> unit-norm text_embeds.
///
/// Every model here is frozen (eval, no parameter gradients) and runs without autograd.
///
/// Example (SD 1.5 with a CLIP-score reward):
///   text2image::PromptEncoder enc({{tok, text_encoder}});
///   enc.set_reward_text(reward_tok, clip.text);
///   auto c = enc.encode({"a photo of a cat", "a dog"});

#include <diffinstruct/models/clip_text.hpp>
#include <diffinstruct/text/clip_tokenizer.hpp>
#include <diffinstruct/text2image/prompt_condition.hpp>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace diffinstruct {
namespace text2image {

/// One text encoder of the UNet and its tokenizer.
struct UNetTextEncoder {
  text::ClipTokenizer tokenizer;
  models::ClipTextModel model;
  /// −1: last_hidden_state (SD 1.x, 2.x); −2: the penultimate layer before the final norm (SDXL).
  int hidden_layer = -1;
};

struct PromptEncoderOptions {
  /// SDXL's add_time_ids [6] (original size, crop top-left, target size); undefined for SD 1.x/2.x.
  TORCH_ARG(torch::Tensor, time_ids);
  /// Prompts kept encoded (first in, first out past this); each costs L × D floats per encoder.
  TORCH_ARG(size_t, cache_size) = 4096;
  /// Where the condition's tensors go (the UNets' device) and the floating dtype they take.
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  TORCH_ARG(c10::ScalarType, dtype) = torch::kFloat;
};

/// Unit-norm text embeddings [P, E] (float32, on the tower's device) of every prompt, through a text
/// tower with a projection: the table a reward or metric looks its rows up in by prompt index.
/// Computed without gradient, 32 prompts at a time.
inline torch::Tensor prompt_text_embeddings(models::ClipTextModel text_tower, const text::ClipTokenizer& tokenizer,
                                            const std::vector<std::string>& prompts) {
  TORCH_CHECK(text_tower && text_tower->config().with_projection, "diffinstruct::text2image::prompt_text_embeddings: expected a text tower with a projection");
  TORCH_CHECK(!prompts.empty(), "diffinstruct::text2image::prompt_text_embeddings: no prompts");
  torch::NoGradGuard no_grad;
  text_tower->eval();
  const auto params = text_tower->parameters();
  const auto device = params.empty() ? c10::Device(torch::kCPU) : params.front().device();
  std::vector<torch::Tensor> parts;
  for (size_t b = 0; b < prompts.size(); b += 32) {
    const std::vector<std::string> chunk(prompts.begin() + static_cast<long>(b), prompts.begin() + static_cast<long>(std::min(prompts.size(), b + 32)));
    const auto e = text_tower->forward(tokenizer.batch(chunk).to(device)).text_embeds.to(torch::kFloat);
    parts.push_back(e / e.norm(2, -1, true));
  }
  return torch::cat(parts);
}

class PromptEncoder {
 public:
  explicit PromptEncoder(std::vector<UNetTextEncoder> unet_encoders, PromptEncoderOptions options = {})
      : unet_(std::move(unet_encoders)), options_(std::move(options)) {
    TORCH_CHECK(!unet_.empty(), "diffinstruct::PromptEncoder: expected at least one text encoder for the UNet");
    for (auto& e : unet_) {
      TORCH_CHECK(e.model, "diffinstruct::PromptEncoder: a UNet text encoder is empty");
      TORCH_CHECK(e.hidden_layer < 0 && -e.hidden_layer <= e.model->config().num_hidden_layers, "diffinstruct::PromptEncoder: hidden_layer ",
                  e.hidden_layer, " must be -1 (last) ... -", e.model->config().num_hidden_layers);
      check_pair(e.tokenizer, e.model);
      freeze(*e.model);
    }
    TORCH_CHECK(options_.cache_size() >= 1, "diffinstruct::PromptEncoder: cache_size must be at least 1");
    if (options_.time_ids().defined()) {
      TORCH_CHECK(options_.time_ids().numel() == 6, "diffinstruct::PromptEncoder: time_ids must hold 6 numbers (SDXL's), got ",
                  options_.time_ids().sizes());
      TORCH_CHECK(unet_.back().model->config().with_projection, "diffinstruct::PromptEncoder: with time_ids (SDXL), the last text encoder must ",
                  "be a CLIPTextModelWithProjection: its projected pooled output is the UNet's text_embeds");
    }
  }

  /// The reward's text tower (a CLIPModel's, with projection) and its tokenizer.
  void set_reward_text(text::ClipTokenizer tokenizer, models::ClipTextModel model) {
    TORCH_CHECK(model && model->config().with_projection, "diffinstruct::PromptEncoder: the reward's text model must have a projection ",
                "(a CLIPModel's text tower or a CLIPTextModelWithProjection)");
    check_pair(tokenizer, model);
    freeze(*model);
    reward_.emplace(RewardText{std::move(tokenizer), std::move(model)});
    cache_.clear();
    order_.clear();
  }
  bool has_reward_text() const { return reward_.has_value(); }

  /// The condition of `prompts`, one row each; `index[i]` is recorded as row i's prompt_index
  /// (default: −1 for every row).
  PromptCondition encode(const std::vector<std::string>& prompts, const std::vector<int64_t>& index = {}) {
    TORCH_CHECK(!prompts.empty(), "diffinstruct::PromptEncoder: no prompts to encode");
    TORCH_CHECK(index.empty() || index.size() == prompts.size(), "diffinstruct::PromptEncoder: ", index.size(), " indices for ", prompts.size(),
                " prompts");
    std::vector<Entry> rows;  // copies of tensor handles: a long batch may evict its own first prompts
    rows.reserve(prompts.size());
    for (const auto& p : prompts) rows.push_back(lookup(p));
    PromptCondition c;
    auto stack = [&](torch::Tensor Entry::*field) {
      std::vector<torch::Tensor> parts;
      for (const Entry& e : rows) parts.push_back(e.*field);
      return torch::cat(parts).to(options_.device(), options_.dtype());
    };
    c.encoder_hidden_states = stack(&Entry::hidden);
    if (options_.time_ids().defined()) {
      c.text_embeds = stack(&Entry::pooled);
      c.time_ids = options_.time_ids().reshape({1, 6}).to(options_.device(), options_.dtype()).expand({static_cast<int64_t>(prompts.size()), 6}).contiguous();
    }
    if (reward_) c.reward_text_embeds = stack(&Entry::reward);
    c.prompt_index = index.empty() ? torch::full({static_cast<int64_t>(prompts.size())}, -1, torch::kLong) : torch::tensor(index, torch::kLong);
    return c;
  }

  size_t cached() const { return cache_.size(); }
  const PromptEncoderOptions& options() const { return options_; }

 private:
  struct Entry {
    torch::Tensor hidden, pooled, reward;  // [1, L, D], [1, P], [1, E] on the encoders' devices
  };
  struct RewardText {
    text::ClipTokenizer tokenizer;
    models::ClipTextModel model;
  };

  static void freeze(torch::nn::Module& m) {
    m.eval();
    for (auto& p : m.parameters()) p.requires_grad_(false);
  }

  /// A tokenizer and a text model belong together: checked once, when they are given.
  static void check_pair(const text::ClipTokenizer& tok, const models::ClipTextModel& model) {
    TORCH_CHECK(tok.max_length() <= model->config().max_position_embeddings, "diffinstruct::PromptEncoder: the tokenizer pads to ",
                tok.max_length(), " tokens, more than the text model's ", model->config().max_position_embeddings, " positions");
    TORCH_CHECK(tok.vocab_size() <= model->config().vocab_size, "diffinstruct::PromptEncoder: the tokenizer has ", tok.vocab_size(),
                " tokens, the text model only ", model->config().vocab_size, ": they do not belong together");
  }

  const Entry& lookup(const std::string& prompt) {
    const auto it = cache_.find(prompt);
    if (it != cache_.end()) return it->second;
    torch::NoGradGuard no_grad;
    Entry e;
    std::vector<torch::Tensor> hidden;
    for (auto& enc : unet_) {
      const auto out = enc.model->forward(enc.tokenizer.batch({prompt}), /*keep_hidden_states=*/enc.hidden_layer != -1);
      const auto layers = static_cast<int64_t>(out.hidden_states.size());  // h_0 ... h_N
      hidden.push_back(enc.hidden_layer == -1 ? out.last_hidden_state : out.hidden_states[static_cast<size_t>(layers + enc.hidden_layer)]);
      if (&enc == &unet_.back() && options_.time_ids().defined()) e.pooled = out.text_embeds;
    }
    e.hidden = hidden.size() == 1 ? hidden[0] : torch::cat(hidden, -1);
    if (reward_) {
      const auto out = reward_->model->forward(reward_->tokenizer.batch({prompt}));
      e.reward = out.text_embeds / out.text_embeds.norm(2, -1, true);
    }
    if (cache_.size() >= options_.cache_size()) {
      cache_.erase(order_.front());
      order_.pop_front();
    }
    order_.push_back(prompt);
    return cache_.emplace(prompt, std::move(e)).first->second;
  }

  std::vector<UNetTextEncoder> unet_;
  std::optional<RewardText> reward_;
  PromptEncoderOptions options_;
  std::unordered_map<std::string, Entry> cache_;
  std::deque<std::string> order_;
};

}  // namespace text2image
}  // namespace diffinstruct
