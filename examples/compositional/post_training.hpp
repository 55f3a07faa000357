#pragma once
// The miniature's one-step generators, trained with the library's text-to-image API exactly as a
// user with Stable Diffusion and PickScore folders would: text2image::load_di_star_models reads the
// pipeline and CLIP folders the earlier stages wrote, text2image::with_roles builds the roles, and
// DiStarTrainer runs the losses. Each generator is a UNet folder (the teacher's architecture run once
// at t*, text2image::OneStepUNet), so the next run, di_evaluate and 05_text_to_image --generator load it.
//
//   init     SIM from the teacher's weights: pseudo-Huber + CFG inside, no reward (as 03's init)
//   runs     from that init: DI* (CFG inside / outside / none), DI++ (KL + reward), SIM, DI (KL), DI*-in
//            on 2- and 4-step generators, and DI*-in and DI++ at other reward scales (the reward-hacking
//            sweep); every run once per seed
#include "evaluation.hpp"

#include <diffinstruct/di_star.hpp>
#include <diffinstruct/text2image/di_star_models.hpp>
#include <diffinstruct/text2image/few_step_unet.hpp>

#include <fmt/ranges.h>

#include <algorithm>
#include <set>

namespace compositional {

namespace t2i = diffinstruct::text2image;

enum class Divergence { kPseudoHuber, kKL };
enum class CfgPlace { kInside, kOutside, kNone };

/// One post-training run: its losses and where it starts.
struct PostRun {
  std::string name, method, slug;
  Divergence divergence = Divergence::kPseudoHuber;
  CfgPlace cfg = CfgPlace::kInside;
  double alpha_rew = 0, alpha_cfg = 0;
  int64_t steps = 0;
  uint64_t seed = 0;
  std::vector<int64_t> timesteps{};  // several: a K-step generator (text2image::FewStepUNet); empty: one step at t*
  std::string sweep{};               // the reward-scale sweep it belongs to ("DI*-in", "DI++"), if any
  int64_t seed_index = 0;            // which of the repeated seeds (rows of one name are summarised over it)

  std::string settings(const Config& cfg_) const {
    return fmt::format("{} div={} cfg={} alpha_rew={} alpha_cfg={} steps={} batch={} K={} lr_gen={} lr_asst={} c={} t_star={} seed={} timesteps={}",
                       slug, divergence == Divergence::kKL ? "kl" : "ph", static_cast<int>(cfg), alpha_rew, alpha_cfg, steps, cfg_.batch, cfg_.k,
                       cfg_.lr_gen, cfg_.lr_asst, cfg_.c, cfg_.t_star, seed, fmt::join(timesteps, ","));
  }
};

/// Training captions for the generators: distinct captions of seen-pair scenes.
inline std::vector<std::string> training_prompts(const Config& cfg) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed + 41);
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& s : sample_scenes(cfg.train_prompts, gen, Combinations::kSeen))
    if (seen.insert(s.caption()).second) out.push_back(s.caption());
  return out;
}

/// Runs `run.steps` DI* steps with the given roles and losses; returns the smoothed reward.
template <class Gen, class Teacher, class Assistant, class Div, class Guid>
double run_trainer(const PostRun& run, Gen generator, Teacher teacher, Assistant assistant, Div divergence, Guid guidance, t2i::DiStarModels& m,
                   std::vector<int64_t> noise_shape, const di::DiStarTrainerOptions& options) {
  using Trainer = di::DiStarTrainer<Gen, Teacher, Assistant, t2i::PromptCondition, Div, Guid, t2i::ClipReward, di::DiscreteVPSchedule>;
  Trainer trainer(std::move(generator), std::move(teacher), std::move(assistant), {divergence, guidance, *m.reward, *m.schedule},
                  di::ConditionSource<t2i::PromptCondition>{*m.prompts, m.prompts->null_condition()}, std::move(noise_shape), options);
  di::ProgressBar bar(run.slug, run.steps);
  double smoothed = 0;
  for (int64_t i = 0; i < run.steps; ++i) {
    const di::StepStats s = trainer.step();
    smoothed = i == 0 ? s.mean_reward : 0.95 * smoothed + 0.05 * s.mean_reward;
    if (i % 10 == 0 || i + 1 == run.steps)
      bar.update(i + 1, fmt::format("L_div {:+.4f}  DSM {:.3f}  reward {:.2f}  skipped {}", s.divergence_loss, s.assistant_loss, smoothed,
                                    trainer.non_finite_total()));
  }
  bar.finish();
  return smoothed;
}

/// Calls f(divergence, guidance) with the run's loss types.
template <class F>
void with_losses(const PostRun& run, const Config& cfg, F&& f) {
  const di::AlphaCfg a(run.alpha_cfg);
  if (run.divergence == Divergence::kKL) f(di::KL(), di::CfgInside(a));
  else if (run.cfg == CfgPlace::kOutside) f(di::PseudoHuberScore(cfg.c), di::CfgOutside(a));
  else if (run.cfg == CfgPlace::kNone) f(di::PseudoHuberScore(cfg.c), di::NoGuidance{});
  else f(di::PseudoHuberScore(cfg.c), di::CfgInside(a));
}

/// Trains one generator from `init_unet` (a UNet folder; empty: the teacher's weights) and writes
/// its UNet into `out_dir`. A run with several timesteps trains a FewStepUNet on that UNet (its noise
/// is K chunks of latents); otherwise the one-step generator of text2image::with_roles.
inline double train_generator(const PostRun& run, const fs::path& pipeline, const fs::path& clip_dir, const fs::path& init_unet,
                              const std::vector<std::string>& prompts, const Config& cfg, const fs::path& out_dir) {
  auto m = t2i::load_di_star_models(
      t2i::DiStarModelsOptions(pipeline.string(), clip_dir.string())
          .reward_tokenizer((pipeline / "tokenizer").string())  // CLIP and the pipeline share the caption tokenizer
          .generator(init_unet.empty() ? "" : init_unet.string())
          .t_star(cfg.t_star),
      prompts);
  auto options = di::DiStarTrainerOptions()
                     .batch_size(cfg.batch)
                     .assistant_steps(cfg.k)
                     .alpha_rew(run.alpha_rew)
                     .generator_adam(di::AdamSettings(cfg.lr_gen))
                     .assistant_adam(di::AdamSettings(cfg.lr_asst))
                     .ema_decay(0)
                     .seed(run.seed);
  double reward = 0;
  if (run.timesteps.size() > 1) {
    using Den = di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>;
    t2i::FewStepUNet few(m.generator_unet, *m.schedule, t2i::FewStepUNetOptions().timesteps(run.timesteps));
    auto noise = m.latent_shape;
    noise[0] *= static_cast<int64_t>(run.timesteps.size());
    with_losses(run, cfg, [&](auto div, auto guid) {
      reward = run_trainer(run, di::Generator<t2i::FewStepUNet>(few), Den(m.teacher_unet, "teacher"), Den(m.assistant_unet, "assistant"), div, guid,
                           m, noise, options.sample_shape(m.latent_shape));
    });
  } else {
    t2i::with_roles<di::EpsPrediction>(m, [&](auto generator, auto teacher, auto assistant) {
      with_losses(run, cfg, [&](auto div, auto guid) {
        reward = run_trainer(run, std::move(generator), std::move(teacher), std::move(assistant), div, guid, m, m.latent_shape, options);
      });
    });
  }
  dm::save_pretrained(m.generator_unet, out_dir.string());
  return reward;
}

/// A generator in a UNet folder as a sampler of latents: one step at t*, or the run's K steps (the
/// re-noising noises drawn from `seed`, the first step's noise the evaluation's own, so that every
/// model starts from the same noise).
inline Sampler generator_sampler(const fs::path& unet_dir, const di::DiscreteVPSchedule& schedule, const Config& cfg,
                                 const std::vector<int64_t>& timesteps, uint64_t seed) {
  auto unet = dm::load_unet(unet_dir.string());
  if (timesteps.size() <= 1) {
    t2i::OneStepUNet g(unet, schedule, t2i::OneStepUNetOptions().timestep(cfg.t_star));
    return [g](const torch::Tensor& z, const torch::Tensor& states) mutable { return g->forward(z, dm::TextCondition(states)); };
  }
  t2i::FewStepUNet g(unet, schedule, t2i::FewStepUNetOptions().timesteps(timesteps));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);  // advanced call by call: the same calls draw the same noise
  return [g, gen, k = static_cast<int64_t>(timesteps.size())](const torch::Tensor& z, const torch::Tensor& states) mutable {
    auto shape = z.sizes().vec();
    shape[1] *= k - 1;
    return g->forward(torch::cat({z, torch::randn(shape, gen)}, 1), dm::TextCondition(states));
  };
}

/// The main table's runs (all from the init), each repeated for `cfg.seeds` seeds; only those named in
/// `cfg.only` when it is set (a name no run has is refused, with the names there are).
inline std::vector<PostRun> table_runs(const Config& cfg) {
  const double ar = cfg.alpha_rew, ac = cfg.alpha_cfg;
  const auto ph = Divergence::kPseudoHuber, kl = Divergence::kKL;
  std::vector<PostRun> runs;
  for (int64_t i = 0; i < cfg.seeds; ++i) {
    const uint64_t s = cfg.seed + 20 + 1000 * static_cast<uint64_t>(i);
    auto add = [&](PostRun r) {
      r.seed_index = i;
      runs.push_back(std::move(r));
    };
    add({"DI*-in", "PH + reward + CFG inside", "di_star_in", ph, CfgPlace::kInside, ar, ac, cfg.post_steps, s, {}, "DI*-in"});
    add({"DI*-out", "PH + reward + CFG outside", "di_star_out", ph, CfgPlace::kOutside, ar, ac, cfg.post_steps, s});
    add({"DI* no CFG", "PH + reward", "di_star_nocfg", ph, CfgPlace::kNone, ar, 0.0, cfg.post_steps, s});
    add({"DI++", "KL + reward + CFG inside", "di_plusplus", kl, CfgPlace::kInside, ar, ac, cfg.post_steps, s, {}, "DI++"});
    add({"SIM", "PH + CFG inside", "sim", ph, CfgPlace::kInside, 0.0, ac, cfg.post_steps, s});
    add({"DI", "KL + CFG inside", "di", kl, CfgPlace::kInside, 0.0, ac, cfg.post_steps, s});
    // Few-step DI* (the paper's open question 2): the same losses, a generator of K steps from the init.
    for (const auto& ts : cfg.few_step_timesteps)
      add({fmt::format("DI*-in, {} steps", ts.size()), "PH + reward + CFG inside, K-step generator", fmt::format("di_star_in_{}step", ts.size()), ph,
           CfgPlace::kInside, ar, ac, cfg.post_steps, s, ts});
    // Where reward hacking starts, for each divergence (DI++ needs a larger scale to reach DI*'s reward).
    for (double a : cfg.reward_sweep)
      add({fmt::format("DI*-in, a_rew = {:g}", a), "PH + reward + CFG inside", fmt::format("di_star_in_arew{:g}", a), ph, CfgPlace::kInside, a, ac,
           cfg.post_steps, s, {}, "DI*-in"});
    for (double a : cfg.kl_reward_sweep)
      add({fmt::format("DI++, a_rew = {:g}", a), "KL + reward + CFG inside", fmt::format("di_plusplus_arew{:g}", a), kl, CfgPlace::kInside, a, ac,
           cfg.post_steps, s, {}, "DI++"});
  }
  if (cfg.only.empty()) return runs;
  std::vector<PostRun> kept;
  std::string names;
  for (const auto& r : runs) {
    if (r.seed_index == 0) names += (names.empty() ? "" : ", ") + r.slug;
    if (std::find(cfg.only.begin(), cfg.only.end(), r.slug) != cfg.only.end()) kept.push_back(r);
  }
  for (const auto& name : cfg.only)
    TORCH_CHECK(std::any_of(runs.begin(), runs.end(), [&](const PostRun& r) { return r.slug == name; }), "06_compositional: --only names '", name,
                "', which is not a run; the runs are: ", names);
  return kept;
}

}  // namespace compositional
