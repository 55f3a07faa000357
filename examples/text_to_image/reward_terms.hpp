#pragma once
// 05_text_to_image's rewards: every reward model given on the command line becomes a term of one
// text2image::PromptRewards, with the weight of its own flag:
//
//   --reward DIR           --reward-weight W          a CLIPModel at exp(logit_scale) · cos (PickScore's form)
//   --pickscore DIR        --pickscore-weight W       PickScore
//   --clip DIR             --clip-weight W            the CLIP score, 100 · max(cos, 0)
//   --hps FILE             --hps-weight W             HPSv2 / HPSv2.1, cos
//   --aesthetic HEAD       --aesthetic-weight W       the LAION aesthetic predictor v2
//   --image-reward FILE    --image-reward-weight W    ImageReward v1.0
//
// Every weight defaults to 1; weight 0 holds a reward out: it is not trained on, and every evaluation
// scores it (metrics.csv: eval_<term>), the guard against reward hacking. The generator's loss adds
// −α_rew · Σ w_i r_i (--alpha-rew; the paper's "reward scale 100" is α_rew · w = 100 on the reward's
// raw scale).
#include "../rewards/reward_files.hpp"

#include <diffinstruct/text2image/di_star_models.hpp>
#include <diffinstruct/text2image/prompt_rewards.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <functional>
#include <string>
#include <vector>

namespace text_to_image {

namespace t2i = diffinstruct::text2image;
namespace dm = diffinstruct::models;

struct RewardWeights {
  double reward = 1, pickscore = 1, clip = 1, hps = 1, aesthetic = 1, image_reward = 1;
};

inline void add_weight_options(CLI::App& app, RewardWeights& w) {
  const std::vector<std::pair<const char*, double*>> flags = {{"--reward-weight", &w.reward},     {"--pickscore-weight", &w.pickscore},
                                                              {"--clip-weight", &w.clip},         {"--hps-weight", &w.hps},
                                                              {"--aesthetic-weight", &w.aesthetic}, {"--image-reward-weight", &w.image_reward}};
  for (const auto& [flag, value] : flags)
    app.add_option(flag, *value, "its weight in the trained reward (0: held out, scored at evaluations only)")
        ->capture_default_str()
        ->check(CLI::Range(-1e6, 1e6));
}

/// The rewards of the run: --reward's CLIP model (loaded with the pipeline, `m.reward_clip`) and every
/// reward file given, decoded by the run's VAE once, over the run's prompt list.
inline t2i::PromptRewards make_reward_terms(const reward_files::RewardFiles& f, const RewardWeights& w, const t2i::DiStarModels& m,
                                            const std::string& reward_tokenizer_dir, const std::vector<std::string>& prompts,
                                            const dm::PretrainedOptions& o, const std::function<void(const std::string&)>& log) {
  t2i::PromptRewards rewards(m.vae, prompts);
  if (m.reward_clip.vision) {
    rewards.add_clip("clip_reward", w.reward, m.reward_clip, diffinstruct::text::ClipTokenizer::from_folder(reward_tokenizer_dir),
                     t2i::pickscore_reward_options());
  }
  if (!f.pickscore.empty()) {
    auto p = reward_files::load_clip(f.pickscore, f.pickscore_tokenizer, o);
    rewards.add_clip("pickscore", w.pickscore, p.clip, p.tokenizer, t2i::pickscore_reward_options());
  }
  if (!f.clip.empty()) {
    auto p = reward_files::load_clip(f.clip, f.clip_tokenizer, o);
    rewards.add_clip("clip_score", w.clip, p.clip, p.tokenizer, t2i::clip_score_reward_options());
  }
  if (!f.hps.empty()) {
    auto p = reward_files::load_hps(f, o, m.pipeline->path("tokenizer"));
    rewards.add_clip("hps", w.hps, p.clip, p.tokenizer, t2i::hps_reward_options());
  }
  if (!f.aesthetic.empty()) {
    auto p = reward_files::load_aesthetic(f, o, "05_text_to_image");
    rewards.add_aesthetic("aesthetic", w.aesthetic, p.vision, p.head);
  }
  if (!f.image_reward.empty()) {
    auto p = reward_files::load_image_reward(f, o, "05_text_to_image");
    rewards.add_image_reward("image_reward", w.image_reward, p.model, p.tokenizer);
  }
  TORCH_CHECK(!rewards.term_names().empty(), "05_text_to_image: no reward given (--reward, --pickscore, --clip, --hps, --aesthetic or --image-reward)");
  TORCH_CHECK(rewards.trains_anything(), "05_text_to_image: every reward has weight 0 (held out): give one a weight to train on");
  if (log) log("rewards: " + rewards.describe());
  return rewards;
}

}  // namespace text_to_image
