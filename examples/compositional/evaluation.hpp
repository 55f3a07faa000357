#pragma once
// The miniature's evaluation: fixed prompts (half with seen colour–class pairs, half with held-out
// ones) and fixed seeds shared by every model, each model's images scored by the exact evaluator
// (measure.hpp) and by the CLIP reward, timed, and written as a captioned grid.
#include "latent_stack.hpp"
#include "measure.hpp"

#include <diffinstruct/eval/ddim_sampler.hpp>
#include <diffinstruct/util/image_grid_png.hpp>

#include <functional>

namespace compositional {

/// The prompts and the noise every model gets: prompts × seeds images, prompt-major.
struct EvalSet {
  std::vector<Scene> scenes;   // one per image (a prompt's seeds repeat its scene)
  std::vector<bool> held_out;  // per image
  torch::Tensor noise;         // [N, 4, 8, 8]
  int64_t seeds = 1;
};

inline EvalSet make_eval_set(const Config& cfg) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed + 99);
  EvalSet set;
  set.seeds = cfg.eval_seeds;
  for (auto which : {Combinations::kSeen, Combinations::kHeldOut})
    for (const auto& s : sample_scenes(cfg.eval_prompts, gen, which))
      for (int64_t k = 0; k < cfg.eval_seeds; ++k) {
        Scene copy = s;
        copy.free_line = torch::randint(2, {1}, gen, torch::kLong).item<int64_t>();  // the real images vary where a caption allows
        set.scenes.push_back(copy);
        set.held_out.push_back(which == Combinations::kHeldOut);
      }
  set.noise = torch::randn({static_cast<int64_t>(set.scenes.size()), 4, kCanvas / 4, kCanvas / 4}, gen);
  return set;
}

/// One row of the table.
struct Row {
  Row() = default;
  Row(std::string name_, std::string method_, int64_t steps_, double guidance_ = 1)
      : name(std::move(name_)), method(std::move(method_)), steps(steps_), guidance(guidance_) {}

  std::string name, method;
  int64_t steps = 1;
  double guidance = 1, ms_per_image = 0, train_seconds = 0;
  PromptFollowing all, seen, held;  // over every prompt, the seen combinations, the held-out ones
  double reward = 0;                // the CLIP reward s·cos(image, caption), mean
  std::string sweep;                // the reward-scale sweep the row belongs to, if any, at alpha_rew
  double alpha_rew = 0;
  int64_t seed_index = 0;           // rows of one name differ only in the post-training seed
};

/// Everything scoring needs: the evaluator, and the CLIP reward with its tokenizer.
struct Scorer {
  Evaluator evaluator;
  dm::ClipModelParts clip;
  const dtext::ClipTokenizer* tokenizer = nullptr;

  torch::Tensor reward(const torch::Tensor& x, const std::vector<std::string>& captions) {
    torch::NoGradGuard no_grad;
    auto ie = clip.vision->forward(clip_pixels(x, kCanvas)).image_embeds;
    auto te = clip.text->forward(tokenizer->batch(captions)).text_embeds;
    ie = ie / ie.norm(2, -1, true);
    te = te / te.norm(2, -1, true);
    return clip.logit_scale.exp() * (ie * te).sum(1);
  }

  void score(Row& row, const torch::Tensor& x, const EvalSet& set) {
    row.all = evaluator.score(x, set.scenes, set.seeds);
    std::vector<int64_t> seen_idx, held_idx;
    std::vector<Scene> seen_sc, held_sc;
    for (size_t i = 0; i < set.scenes.size(); ++i) {
      (set.held_out[i] ? held_idx : seen_idx).push_back(static_cast<int64_t>(i));
      (set.held_out[i] ? held_sc : seen_sc).push_back(set.scenes[i]);
    }
    row.seen = evaluator.score(x.index_select(0, torch::tensor(seen_idx)), seen_sc, set.seeds);
    row.held = evaluator.score(x.index_select(0, torch::tensor(held_idx)), held_sc, set.seeds);
    std::vector<std::string> captions;
    for (const auto& s : set.scenes) captions.push_back(s.caption());
    row.reward = reward(x, captions).mean().item<double>();
  }
};

using Sampler = std::function<torch::Tensor(const torch::Tensor& noise, const torch::Tensor& text_states)>;

/// Runs `sample` over the eval set in chunks (timed after a warm-up chunk), decodes, scores, and
/// returns the images.
inline torch::Tensor evaluate_row(Row& row, const Sampler& sample, const EvalSet& set, dm::ClipTextModel& text, const dtext::ClipTokenizer& tok,
                                  dm::AutoencoderKL& vae, Scorer& scorer, int64_t chunk = 64) {
  torch::NoGradGuard no_grad;
  std::vector<std::string> captions;
  for (const auto& s : set.scenes) captions.push_back(s.caption());
  const auto states = encode_captions(text, tok, captions);
  const int64_t n = set.noise.size(0);
  sample(set.noise.slice(0, 0, std::min<int64_t>(n, 4)), states.slice(0, 0, std::min<int64_t>(n, 4)));  // warm-up
  std::vector<torch::Tensor> latents;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; i += chunk) latents.push_back(sample(set.noise.slice(0, i, std::min(n, i + chunk)), states.slice(0, i, std::min(n, i + chunk))));
  row.ms_per_image = 1e3 * seconds_since(t0) / static_cast<double>(n);
  const auto x = vae->decode_latents(torch::cat(latents)).clamp(-1, 1);
  scorer.score(row, x, set);
  return x;
}

/// The teacher sampled with DDIM at `steps` and guidance scale `guidance` (1: no CFG).
inline Sampler teacher_sampler(dm::UNet2DConditionModel unet, const di::DiscreteVPSchedule& schedule, const torch::Tensor& empty_states, int64_t steps,
                               double guidance) {
  return [=, &schedule](const torch::Tensor& noise, const torch::Tensor& states) {
    di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction> denoiser(unet, "teacher");
    return di::ddim_sample(denoiser, schedule, noise, dm::TextCondition(states), dm::TextCondition(empty_states), schedule.full_range(),
                           di::DdimOptions().steps(steps).guidance_scale(guidance));
  };
}

/// A grid of the first `prompts` prompts of each half (seen, then held-out), one row per prompt
/// captioned with it, one column per seed.
inline void write_grid(const fs::path& path, const torch::Tensor& x, const EvalSet& set, const std::string& title, int64_t prompts = 6) {
  const int64_t per_half = static_cast<int64_t>(set.scenes.size()) / (2 * set.seeds);
  prompts = std::min(prompts, per_half);
  std::vector<torch::Tensor> rows;
  std::vector<std::string> labels;
  for (int64_t half = 0; half < 2; ++half)
    for (int64_t p = 0; p < prompts; ++p) {
      const int64_t first = (half * per_half + p) * set.seeds;
      rows.push_back(x.slice(0, first, first + set.seeds));
      labels.push_back((half ? "[held-out] " : "") + set.scenes[static_cast<size_t>(first)].caption());
    }
  di::write_image_grid_png(path.string(), torch::stack(rows), labels, di::ImageGridOptions().title(title).label_width(520).zoom(3));
}

}  // namespace compositional
