#pragma once
// 05_text_to_image's evaluation: a fixed set of prompts × seeds, the generator's samples on it, the
// trained reward (the weighted sum), every reward term's own score — the held-out ones (weight 0) are
// the guards against reward hacking — the CLIP score and diversity (text2image/clip_metrics.hpp, with
// the first CLIP-like term's model), and the sample grid with the prompts as captions.
#include <diffinstruct/text2image/clip_metrics.hpp>
#include <diffinstruct/text2image/prompt_rewards.hpp>
#include <diffinstruct/text2image/prompt_encoder.hpp>
#include <diffinstruct/util/image_grid_png.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <vector>

namespace text_to_image {

namespace t2i = diffinstruct::text2image;

struct EvalSet {
  std::vector<std::string> prompts;  // P prompts
  int64_t seeds = 1;                 // S samples per prompt
  t2i::PromptCondition condition;    // P·S rows, prompt-major (row p·S + s)
  torch::Tensor z;                   // [P·S, C, h, w]: seed s's noise is the same for every prompt
};

/// The first `n_prompts` prompts with `seeds` noises each, drawn from their own generator (`seed`),
/// so that evaluation neither depends on nor disturbs the trainer's random stream.
inline EvalSet make_eval_set(const std::vector<std::string>& prompts, int64_t n_prompts, int64_t seeds, const std::vector<int64_t>& latent_shape,
                             uint64_t seed, t2i::PromptEncoder& encoder, const torch::Device& device) {
  EvalSet e;
  e.prompts.assign(prompts.begin(), prompts.begin() + std::min<int64_t>(n_prompts, static_cast<int64_t>(prompts.size())));
  e.seeds = seeds;
  std::vector<std::string> rows;
  std::vector<int64_t> index;
  for (size_t p = 0; p < e.prompts.size(); ++p)
    for (int64_t s = 0; s < seeds; ++s) {
      rows.push_back(e.prompts[p]);
      index.push_back(static_cast<int64_t>(p));
    }
  e.condition = encoder.encode(rows, index);
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<int64_t> shape = {seeds};
  shape.insert(shape.end(), latent_shape.begin(), latent_shape.end());
  const auto noise = torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat));
  e.z = noise.repeat({static_cast<int64_t>(e.prompts.size()), 1, 1, 1}).to(device);
  return e;
}

struct EvalResult {
  double reward = 0, clip_score = NAN, diversity = NAN;        // reward: the trained weighted sum
  std::vector<std::pair<std::string, double>> terms;           // every term's mean raw score
  torch::Tensor x0;      // [P·S, C, h, w] latents, float32 on the CPU
  torch::Tensor images;  // [P·S, 3, H, W] in [−1, 1], float32 on the CPU
};

/// The metrics of samples `x0` (the generator's on `e`).
inline EvalResult score_samples(const torch::Tensor& x0, const EvalSet& e, t2i::PromptRewards& rewards) {
  torch::NoGradGuard no_grad;
  EvalResult r;
  r.x0 = x0.to(torch::kCPU, torch::kFloat);
  const auto pixels = rewards.decode(x0);  // once: for every term and for the grid
  r.images = pixels.to(torch::kCPU, torch::kFloat);
  const auto& index = e.condition.prompt_index;
  for (auto& [name, scores] : rewards.scores(pixels, index)) {
    const double mean = scores.to(torch::kDouble).mean().item<double>();
    r.terms.emplace_back(name, mean);
    r.reward += rewards.weight(name) * mean;
  }
  const auto [image_embeds, text] = rewards.clip_embeddings(pixels, index);
  if (image_embeds.defined()) {
    r.clip_score = t2i::clip_score(image_embeds, text);
    r.diversity = t2i::clip_diversity(image_embeds, static_cast<int64_t>(e.prompts.size()), e.seeds);
  }
  return r;
}

/// The sample grid: one row per prompt (its caption above), one column per seed. Images wider than
/// 256 pixels are shown at 256 (area-averaged), small ones enlarged.
inline void write_sample_grid(const std::string& path, const torch::Tensor& images, const EvalSet& e, const std::string& title) {
  auto x = images;
  const int64_t side = std::max(x.size(2), x.size(3));
  if (side > 256) {
    const double f = 256.0 / static_cast<double>(side);
    x = torch::nn::functional::interpolate(
        x, torch::nn::functional::InterpolateFuncOptions()
               .size(std::vector<int64_t>{std::max<int64_t>(1, static_cast<int64_t>(x.size(2) * f)), std::max<int64_t>(1, static_cast<int64_t>(x.size(3) * f))})
               .mode(torch::kArea));
  }
  const int zoom = static_cast<int>(std::clamp<int64_t>(128 / std::max(x.size(2), x.size(3)), 1, 8));
  const auto grid = x.reshape({static_cast<int64_t>(e.prompts.size()), e.seeds, 3, x.size(2), x.size(3)});
  diffinstruct::write_image_grid_png(path, grid, e.prompts, diffinstruct::ImageGridOptions().zoom(zoom).labels_above(true).title(title));
}

}  // namespace text_to_image
