#pragma once
/// \file Metrics of a text-to-image evaluation from CLIP embeddings (unit-norm, as ClipReward gives):
///
///   CLIP score  100 · max(cos(image, prompt), 0), averaged: the definition of Hessel et al. (2021),
///               as torchmetrics computes it
///   diversity   per prompt, the mean over pairs of its S samples of 1 − cos(image_i, image_j),
///               averaged over prompts (0: every seed gives the same image)

#include <diffinstruct/text2image/clip_reward.hpp>

#include <torch/torch.h>

namespace diffinstruct {
namespace text2image {

/// The mean CLIP score of rows of unit-norm image and text embeddings [N, E].
inline double clip_score(const torch::Tensor& image_embeds, const torch::Tensor& text_embeds) {
  torch::NoGradGuard no_grad;
  return (100 * ClipReward::cosine_of_unit(image_embeds, text_embeds).clamp_min(0)).mean().item<double>();
}

/// The diversity of P prompts × S samples of unit-norm image embeddings [P·S, E], prompt-major
/// (row p·S + s). 0 with one sample per prompt.
inline double clip_diversity(const torch::Tensor& image_embeds, int64_t prompts, int64_t samples_per_prompt) {
  TORCH_CHECK(image_embeds.dim() == 2 && image_embeds.size(0) == prompts * samples_per_prompt, "diffinstruct::clip_diversity: expected [",
              prompts * samples_per_prompt, ", E] embeddings, got ", image_embeds.sizes());
  if (samples_per_prompt < 2) return 0;
  torch::NoGradGuard no_grad;
  const auto per_prompt = image_embeds.view({prompts, samples_per_prompt, -1});
  const auto gram = torch::matmul(per_prompt, per_prompt.transpose(1, 2));  // [P, S, S]
  const double pairs = static_cast<double>(samples_per_prompt * (samples_per_prompt - 1));
  return ((1 - gram).sum({1, 2}) / pairs).mean().item<double>();  // the diagonal's 1 − 1 adds nothing
}

}  // namespace text2image
}  // namespace diffinstruct
