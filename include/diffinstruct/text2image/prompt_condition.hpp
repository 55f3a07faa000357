#pragma once
/// \file What a text-to-image DI* run is conditioned on when prompts are strings: the UNets' text
/// condition (it *is* a models::TextCondition, so every UNet takes it as is), plus the reward's
/// unit-norm text embeddings and each row's prompt index (for captions; −1 for the null prompt).
///
/// Example:
///   text2image::PromptCondition c = encoder.encode({"a photo of a cat"});
///   eps = unet->forward(x_t, t, c);                     // reads c's TextCondition part
///   r = clip_reward(x0, c);                              // reads c.reward_text_embeds

#include <diffinstruct/core/condition.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>

namespace diffinstruct {
namespace text2image {

struct PromptCondition : models::TextCondition {
  torch::Tensor reward_text_embeds;  ///< [B, E], unit norm; undefined when no reward reads text
  torch::Tensor prompt_index;        ///< [B] int64 on the CPU: the row's prompt in its source, −1 for the null prompt
};

}  // namespace text2image

template <>
struct ConditionTraits<text2image::PromptCondition> {
  using C = text2image::PromptCondition;
  using Text = ConditionTraits<models::TextCondition>;
  static int64_t batch_size(const C& c) { return Text::batch_size(c); }
  static C concat(const C& a, const C& b) {
    TORCH_CHECK(a.reward_text_embeds.defined() == b.reward_text_embeds.defined(),
                "diffinstruct::PromptCondition: cannot batch a condition with reward text embeddings and one without");
    return assemble(Text::concat(a, b), a.reward_text_embeds.defined() ? torch::cat({a.reward_text_embeds, b.reward_text_embeds}) : torch::Tensor(),
                    torch::cat({a.prompt_index, b.prompt_index}));
  }
  static C broadcast(const C& c, int64_t batch) {
    auto rows = [&](const torch::Tensor& t) { return t.defined() ? ConditionTraits<torch::Tensor>::broadcast(t, batch) : t; };
    return assemble(Text::broadcast(c, batch), rows(c.reward_text_embeds), rows(c.prompt_index));
  }
  static void append_ivalues(const C& c, std::vector<torch::jit::IValue>& args) { Text::append_ivalues(c, args); }
  static C slice(const C& c, int64_t begin, int64_t end) {
    auto rows = [&](const torch::Tensor& t) { return t.defined() ? t.slice(0, begin, end) : t; };
    return assemble(Text::slice(c, begin, end), rows(c.reward_text_embeds), rows(c.prompt_index));
  }
  static C to(const C& c, const c10::Device& device) {
    auto move = [&](const torch::Tensor& t) { return t.defined() ? t.to(device) : t; };
    return assemble(Text::to(c, device), move(c.reward_text_embeds), c.prompt_index);  // the index stays a CPU bookkeeping tensor
  }

 private:
  static C assemble(models::TextCondition text, torch::Tensor reward, torch::Tensor index) {
    C out;
    static_cast<models::TextCondition&>(out) = std::move(text);
    out.reward_text_embeds = std::move(reward);
    out.prompt_index = std::move(index);
    return out;
  }
};

}  // namespace diffinstruct
