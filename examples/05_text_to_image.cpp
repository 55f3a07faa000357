// 05 — the end-to-end job: DI* post-training of a one-step text-to-image UNet from diffusers and
// transformers folders, with no Python anywhere in the loop.
//
//   --teacher DIR    a diffusers pipeline folder (SD 1.x/2.x, SDXL; SD-Turbo, SDXL-Turbo): its UNet
//                    is the frozen reference, its text encoders encode the prompts, its VAE decodes
//                    the samples for the reward and the grids, its scheduler config gives the beta
//                    table and what the UNet predicts
//   --generator DIR  the one-step UNet to post-train (a diffusers UNet folder: SD-Turbo's, DMD2's);
//                    default: the teacher's UNet, evaluated at --t-star
//   --reward DIR     a transformers CLIPModel folder (CLIP, PickScore): a reward
//                    r = exp(logit_scale) · cos(CLIP image(decode(x0)), CLIP text(prompt))
//   --pickscore, --clip, --hps, --aesthetic, --image-reward (with their files): the paper's rewards,
//                    each with a --<name>-weight (default 1; 0 holds it out: scored at evaluations,
//                    not trained on); the trained reward is their weighted sum (text_to_image/reward_terms.hpp)
//   --prompts FILE   one prompt a line (default: text_to_image/default_prompts.hpp)
//
// The assistant starts as the teacher: a full trained copy, or (--assistant-lora R) a LoRA on the
// teacher's own weights, so that one copy of the base serves both (adapters/shared_base.hpp). The
// generator is trained fully or (--generator-lora R) through a LoRA; a LoRA generator from the
// teacher's weights (no --generator) is a LoRA on the teacher's module too: with both LoRAs the three
// roles share one base. --generator-base-lora FILE keeps a published LoRA (DMD2's) frozen under the
// generator's. --threads sets the CPU threads (default: every core). Writes into --out:
//   samples/step_NNNNNN.png    the fixed evaluation prompts × seeds, prompts as captions
//   metrics.csv                per step: losses, the batch's reward; per evaluation: the trained reward,
//                              every reward term's own score (eval_<term>: the held-out guards), CLIP
//                              score and diversity on the fixed set
//   checkpoints/trainer.safetensors   everything to resume exactly (--resume)
//   generator/unet/            the trained UNet as a diffusers folder (full generator), or
//   generator_lora/pytorch_lora_weights.safetensors   the generator's LoRA (diffusers' names)
//   generator/one_step.json    t*, the prediction type and the scheduler: how to run it
//   eval_samples.safetensors   the final generator's latents on the evaluation set, with their noise
// Data parallel: start every rank with the same flags and --data-parallel under a launcher that
// sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (scripts/launch_local.sh); --batch is per rank.

#include "text_to_image/default_prompts.hpp"
#include "text_to_image/evaluation.hpp"
#include "text_to_image/reward_terms.hpp"

#include <diffinstruct/text2image/di_star_models.hpp>
#include <diffinstruct/util/metrics_csv.hpp>
#include <diffinstruct/util/error_report.hpp>
#include <diffinstruct/util/threads.hpp>
#include <diffinstruct/adapters/lora_file.hpp>
#include <diffinstruct/adapters/shared_base.hpp>
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/io/module_state.hpp>
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/models/pretrained.hpp>
#include <diffinstruct/text/prompt_file.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>
#include <diffinstruct/text2image/one_step_unet.hpp>
#include <diffinstruct/text2image/pipeline_folder.hpp>
#include <diffinstruct/text2image/prompt_source.hpp>
#if DIFFINSTRUCT_EXAMPLE_DATA_PARALLEL
#include <diffinstruct/distributed/data_parallel.hpp>
#endif

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

namespace di = diffinstruct;
namespace da = diffinstruct::adapters;
namespace dm = diffinstruct::models;
namespace t2i = diffinstruct::text2image;
namespace fs = std::filesystem;

namespace {

struct Args {
  std::string teacher, generator, generator_base_lora, reward, reward_tokenizer, prompts, out = "out/text_to_image";
  reward_files::RewardFiles rewards;
  text_to_image::RewardWeights weights;
  int64_t generator_lora = 0, assistant_lora = 0;
  std::string lora_targets = "to_q,to_k,to_v,to_out.0";
  std::string precision = "fp32", device = "cpu", generator_prediction;
  bool gradient_checkpointing = false, resume = false, data_parallel = false, measure_memory = false;
  int threads = 0;
  int64_t micro_batches = 1, K = 1, batch = 4, steps = 100, t_star = 999, resolution = 0;
  int64_t eval_every = 50, save_every = 50, eval_prompts = 4, eval_seeds = 4, keep_checkpoints = 2;
  double alpha_rew = 1.0, alpha_cfg = 3.5, c = 1.0, lr_generator = 0, lr_assistant = 0, ema = 0, max_grad_norm = 1.0;
  uint64_t seed = 0;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

/// What every trainer instantiation below shares: the loaded models and the data.
struct Job {
  Args args;
  std::shared_ptr<di::Collectives> dp;  // data parallel (null: one process)
  int rank = 0;
  torch::Device device = torch::kCPU;
  di::Precision precision = di::Precision::kFloat32;
  std::vector<std::string> prompts;
  t2i::DiStarModels m;  // every model, loaded by t2i::load_di_star_models
  std::optional<t2i::PromptRewards> rewards;  // every reward term (text_to_image/reward_terms.hpp)

  bool writer() const { return rank == 0; }
  void log(const std::string& s) const {
    if (writer()) std::printf("%s\n", s.c_str()), std::fflush(stdout);
  }
};

int64_t count(const std::vector<torch::Tensor>& params) {
  int64_t n = 0;
  for (const auto& p : params) n += p.numel();
  return n;
}

/// metrics.csv (util/metrics_csv.hpp): a row per step; the evaluation columns are filled at
/// evaluations (and at step 0). A resumed run keeps the rows up to its checkpoint's step.
const std::vector<std::string> kMetricsColumns = {
    "step", "generator_loss", "divergence_loss", "reward_loss", "assistant_loss", "batch_reward", "generator_grad_norm",
    "assistant_grad_norm", "non_finite", "overflows", "step_seconds", "step_peak_mb", "generator_forward_s", "assistant_forward_s", "teacher_s",
    "reward_s", "backward_s", "update_s", "eval_reward", "eval_clip_score", "eval_diversity"};
// ... then eval_<term> for every reward term.

std::vector<std::string> metrics_row(int64_t step, const di::StepStats* s, double seconds, const text_to_image::EvalResult* e, size_t terms) {
  using Csv = di::MetricsCsv;
  std::vector<std::string> cells{std::to_string(step)};
  if (s) {
    for (double v : {s->generator_loss, s->divergence_loss, s->reward_loss, s->assistant_loss, s->mean_reward, s->generator_grad_norm,
                     s->assistant_grad_norm})
      cells.push_back(Csv::number(v));
    cells.push_back(std::to_string(s->non_finite));
    cells.push_back(std::to_string(s->overflows));
    cells.push_back(fmt::format("{:.4f}", seconds));
    cells.push_back(s->peak_bytes < 0 ? std::string() : fmt::format("{:.1f}", s->peak_bytes / 1e6));
    const auto& p = s->phases;  // where the step's time went (StepStats::Phases)
    for (double ms : {p.generator_forward, p.assistant_forward, p.teacher_forward, p.reward, p.backward, p.update})
      cells.push_back(fmt::format("{:.4f}", ms / 1e3));
  } else {
    cells.resize(18);
  }
  for (double v : {e ? e->reward : NAN, e ? e->clip_score : NAN, e ? e->diversity : NAN}) cells.push_back(Csv::number(v));
  for (size_t i = 0; i < terms; ++i) cells.push_back(Csv::number(e ? e->terms[i].second : NAN));
  return cells;
}

/// The trained generator, as Python loads it: a diffusers UNet folder, or a LoRA on the generator's
/// base; how to run it; and its samples on the evaluation set (for a round trip).
template <class Trainer>
void save_generator(Job& job, Trainer& trainer, const text_to_image::EvalSet& eval) {
  const Args& a = job.args;
  const fs::path out(a.out);
  const bool ema = a.ema > 0;
  {
    di::EmaWeightsScope ema_weights(trainer.ema(), trainer.generator_parameters(), ema);  // the EMA weights are what is saved
    if (!job.m.generator_lora.empty()) {
      fs::create_directories(out / "generator_lora");
      da::save_lora(job.m.generator_lora, (out / "generator_lora" / "pytorch_lora_weights.safetensors").string());
    } else {
      dm::save_pretrained(job.m.generator_unet, (out / "generator" / "unet").string());
    }
  }
  fs::create_directories(out / "generator");
  const std::string info = fmt::format(
      "{{\n  \"t_star\": {},\n  \"prediction_type\": \"{}\",\n  \"alpha\": {:.17g},\n  \"sigma\": {:.17g},\n  \"height\": {},\n  \"width\": {},\n"
      "  \"lora\": {},\n  \"ema\": {},\n  \"steps\": {},\n  \"teacher_scheduler\": \"{}\"\n}}\n",
      a.t_star, dm::prediction_name(job.m.generator->options().prediction()), job.m.generator->alpha(), job.m.generator->sigma(), job.m.height,
      job.m.width, job.m.generator_lora.empty() ? "false" : "true", ema ? "true" : "false", trainer.step_count(), job.m.pipeline->scheduler().class_name);
  di::io::write_text_file_atomically((out / "generator" / "one_step.json").string(), info, "one_step.json");
  // The samples of exactly the saved weights (the EMA's when there is one).
  const auto x0 = trainer.sample(eval.z, eval.condition, /*use_ema=*/ema);
  std::string prompts;
  for (const auto& p : eval.prompts) prompts += p + "\n";
  di::io::write_safetensors((out / "eval_samples.safetensors").string(),
                            {{"z", eval.z.to(torch::kCPU).contiguous()}, {"x0", x0.to(torch::kCPU, torch::kFloat).contiguous()},
                             {"encoder_hidden_states", eval.condition.encoder_hidden_states.to(torch::kCPU, torch::kFloat).contiguous()}},
                            {{"seeds", std::to_string(eval.seeds)}, {"prompts", prompts}});
}

/// The DI* run itself, for one teacher kind (its own UNet, or the assistant's base with the adapters
/// off) and one parameterisation of the teacher and assistant.
template <class Param, class Gen, class Teacher, class Assistant>
void train(Job& job, Gen generator, Teacher teacher, Assistant assistant) {
  const Args& a = job.args;
  using Trainer = di::DiStarTrainer<Gen, Teacher, Assistant, t2i::PromptCondition, di::PseudoHuberScore, di::CfgInside, t2i::PromptRewards,
                                    di::DiscreteVPSchedule>;
  const double lr_g = a.lr_generator > 0 ? a.lr_generator : (a.generator_lora > 0 ? 1e-4 : 1e-5);
  const double lr_a = a.lr_assistant > 0 ? a.lr_assistant : (a.assistant_lora > 0 ? 1e-4 : 1e-5);
  const auto options = di::DiStarTrainerOptions()
                           .batch_size(a.batch)
                           .assistant_steps(a.K)
                           .alpha_rew(a.alpha_rew)
                           .generator_adam(di::AdamSettings(lr_g))
                           .assistant_adam(di::AdamSettings(lr_a))
                           .generator_max_grad_norm(a.max_grad_norm)
                           .assistant_max_grad_norm(a.max_grad_norm)
                           .ema_decay(a.ema)
                           .seed(a.seed)
                           .precision(job.precision)
                           .micro_batches(a.micro_batches)
                           .keep_checkpoints(a.keep_checkpoints)
                           .measure_memory(a.measure_memory);
  Trainer trainer(std::move(generator), std::move(teacher), std::move(assistant),
                  {di::PseudoHuberScore(a.c), di::CfgInside(di::AlphaCfg(a.alpha_cfg)), *job.rewards, *job.m.schedule},
                  di::ConditionSource<t2i::PromptCondition>{*job.m.prompts, job.m.prompts->null_condition()}, job.m.latent_shape, options);
  if (job.dp) trainer.set_data_parallel(job.dp);
  const bool one_base = job.m.generator_unet.ptr() == job.m.teacher_unet.ptr();
  job.log(fmt::format("trained parameters: generator {:.3f} M{}, assistant {:.3f} M{}", count(trainer.generator_parameters()) / 1e6,
                      job.m.generator_lora.empty() ? " (the whole UNet)"
                                                   : fmt::format(" (LoRA rank {}{})", a.generator_lora, one_base ? " on the teacher's base" : ""),
                      count(trainer.assistant_parameters()) / 1e6,
                      job.m.assistant_lora.empty() ? " (a full copy)" : fmt::format(" (LoRA rank {} on the teacher's base)", a.assistant_lora)));

  const fs::path out(a.out);
  const auto checkpoint = (out / "checkpoints" / "trainer.safetensors").string();
  fs::create_directories(out / "checkpoints");
  if (a.resume) {
    TORCH_CHECK(fs::exists(checkpoint), "05_text_to_image: --resume: there is no checkpoint '", checkpoint, "'");
    trainer.load(checkpoint);
    job.log(fmt::format("resumed from '{}' at step {}", checkpoint, trainer.step_count()));
  }
  TORCH_CHECK(trainer.step_count() <= a.steps, "05_text_to_image: the checkpoint is at step ", trainer.step_count(), ", past --steps ", a.steps);

  const auto eval = text_to_image::make_eval_set(job.prompts, a.eval_prompts, a.eval_seeds, job.m.latent_shape, a.seed + 1, *job.m.encoder, job.device);
  std::optional<di::MetricsCsv> csv;
  const size_t terms = job.rewards->term_names().size();
  auto term_text = [&](const text_to_image::EvalResult& e) {
    std::string out;
    for (const auto& [name, value] : e.terms) out += fmt::format(", {}{} {:.4f}", name, job.rewards->weight(name) == 0 ? " (held out)" : "", value);
    return out;
  };
  auto evaluate = [&](int64_t step) {
    const auto x0 = trainer.sample(eval.z, eval.condition, /*use_ema=*/a.ema > 0);
    auto r = text_to_image::score_samples(x0, eval, *job.rewards);
    text_to_image::write_sample_grid((out / "samples" / fmt::format("step_{:06d}.png", step)).string(), r.images, eval,
                                     fmt::format("step {}: reward {:.3f}, CLIP score {:.2f}", step, r.reward, r.clip_score));
    return r;
  };
  if (job.writer()) {
    fs::create_directories(out / "samples");
    auto columns = kMetricsColumns;
    for (const auto& term : job.rewards->term_names()) columns.push_back("eval_" + term);
    csv.emplace((out / "metrics.csv").string(), columns, trainer.step_count());
    if (trainer.step_count() == 0) {
      const auto e = evaluate(0);
      csv->row(metrics_row(0, nullptr, 0, &e, terms));
      job.log(fmt::format("step 0: eval reward {:.4f}{}, CLIP score {:.3f}, diversity {:.4f}", e.reward, term_text(e), e.clip_score, e.diversity));
    }
  }
  while (trainer.step_count() < a.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto s = trainer.step();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool last = s.step == a.steps;
    if (job.writer()) {
      std::optional<text_to_image::EvalResult> e;
      if (s.step % a.eval_every == 0 || last) e = evaluate(s.step);
      csv->row(metrics_row(s.step, &s, seconds, e ? &*e : nullptr, terms));
      job.log(fmt::format("step {}: loss {:.4g} (divergence {:.4g}), assistant {:.4g}, batch reward {:.4f}, {:.2f} s{}{}", s.step, s.generator_loss,
                          s.divergence_loss, s.assistant_loss, s.mean_reward, seconds,
                          s.peak_bytes < 0 ? std::string() : fmt::format(", step peak {:.1f} MB", s.peak_bytes / 1e6),
                          e ? fmt::format(" | eval reward {:.4f}{}, CLIP score {:.3f}, diversity {:.4f}", e->reward, term_text(*e), e->clip_score, e->diversity)
                            : std::string()));
    }
    if (s.step % a.save_every == 0 || last) trainer.save(checkpoint);  // every rank: rank 0 writes
  }
  if (job.writer()) {
    save_generator(job, trainer, eval);
    job.log("wrote " + (job.m.generator_lora.empty() ? (out / "generator" / "unet").string() : (out / "generator_lora").string()));
  }
}

void run(const Args& args) {
  Job job;
  job.args = args;
  const Args& a = job.args;
  if (a.data_parallel) {
#if DIFFINSTRUCT_EXAMPLE_DATA_PARALLEL
    const bool cuda = a.device.rfind("cuda", 0) == 0;
    // Rank 0 evaluates and writes the generator while the others wait at the next collective: give
    // them time for that on a real model, not the default minute.
    auto dp = di::DataParallel::from_env(di::DataParallelOptions()
                                             .backend(cuda ? di::DistributedBackend::kNccl : di::DistributedBackend::kGloo)
                                             .timeout(std::chrono::minutes(30)));
    job.rank = dp->rank();
    job.device = cuda ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(dp->local_rank())) : torch::Device(torch::kCPU);
    job.dp = dp;
#else
    TORCH_CHECK(false, "05_text_to_image: --data-parallel: this build has no c10d Gloo headers (Debian: libgloo-dev); rebuild with them");
#endif
  } else {
    job.device = torch::Device(a.device);
  }
  TORCH_CHECK(!job.device.is_cuda() || torch::cuda::is_available(), "05_text_to_image: --device ", a.device, ": no CUDA device is available");
  const int threads = di::use_threads(a.threads);
  job.precision = di::parse_precision(a.precision);
  di::check_precision_supported(job.precision, job.device, "05_text_to_image");
  torch::manual_seed(static_cast<uint64_t>(a.seed));  // the LoRA adapters' initial A
  job.prompts = a.prompts.empty() ? text_to_image::default_prompts() : di::text::read_prompt_file(a.prompts);
  TORCH_CHECK(!job.prompts.empty(), "05_text_to_image: '", a.prompts, "' has no prompts");
  auto options = t2i::DiStarModelsOptions(a.teacher, a.reward)
                     .reward_tokenizer(a.reward_tokenizer)
                     .generator(a.generator)
                     .generator_lora(a.generator_lora)
                     .generator_base_lora(a.generator_base_lora)
                     .assistant_lora(a.assistant_lora)
                     .lora_targets(split_commas(a.lora_targets))
                     .t_star(a.t_star)
                     .resolution(a.resolution)
                     .device(job.device)
                     .precision(job.precision)
                     .gradient_checkpointing(a.gradient_checkpointing);
  if (!a.generator_prediction.empty()) options.generator_prediction(dm::parse_prediction(a.generator_prediction));
  job.m = t2i::load_di_star_models(options, job.prompts, [&](const std::string& line) { job.log(line); });
  job.rewards.emplace(text_to_image::make_reward_terms(a.rewards, a.weights, job.m, a.reward_tokenizer.empty() ? a.reward : a.reward_tokenizer, job.prompts,
                                                      dm::PretrainedOptions().device(job.device).dtype(di::compute_dtype(job.precision)),
                                                      [&](const std::string& line) { job.log(line); }));
  const auto& sc = job.m.pipeline->scheduler();
  job.log(fmt::format("teacher '{}': {} pipeline, {} ({}), {} x {} pixels, latents {}x{}x{}; device {}{}, precision {}{}", a.teacher,
                      job.m.pipeline->is_sdxl() ? "SDXL" : "SD", sc.class_name, dm::prediction_name(sc.prediction), job.m.height, job.m.width,
                      job.m.latent_shape[0], job.m.latent_shape[1], job.m.latent_shape[2], job.device.str(),
                      job.device.is_cpu() ? fmt::format(" ({} threads)", threads) : std::string(), di::precision_name(job.precision),
                      job.dp ? fmt::format(", rank {} of {}", job.rank, job.dp->world_size()) : std::string()));
  job.log(fmt::format("generator: {}; {} prompts", job.m.generator->describe(), job.prompts.size()));
  // The teacher's (and assistant's) parameterization, as its scheduler_config.json says (the loader
  // refused "sample": a teacher predicting x0 is not supported here), and the roles: the teacher its
  // own UNet, or the base shared with the LoRAs of the assistant and (from the teacher) the generator.
  dm::with_parameterization(sc.prediction, [&](auto param) {
    using Param = decltype(param);
    t2i::with_roles<Param>(job.m, [&](auto generator, auto teacher, auto assistant) {
      train<Param>(job, std::move(generator), std::move(teacher), std::move(assistant));
    });
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DI* post-training of a one-step text-to-image UNet from diffusers/transformers folders"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a later flag overrides an earlier one
  Args a;
  app.add_option("--teacher", a.teacher, "diffusers pipeline folder (unet, vae, text_encoder(s), tokenizer(s), scheduler)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--generator", a.generator, "diffusers UNet folder of the one-step generator (default: the teacher's UNet)")->check(CLI::ExistingDirectory);
  app.add_option("--reward", a.reward, "transformers CLIPModel folder (CLIP, PickScore): a reward, exp(logit_scale) · cos")->check(CLI::ExistingDirectory);
  app.add_option("--reward-tokenizer", a.reward_tokenizer, "the reward's tokenizer folder: vocab.json + merges.txt, or tokenizer.json (default: --reward)")
      ->check(CLI::ExistingDirectory);
  reward_files::add_options(app, a.rewards);
  text_to_image::add_weight_options(app, a.weights);
  app.add_option("--prompts", a.prompts, "prompt file, one a line (default: 16 built-in prompts)")->check(CLI::ExistingFile);
  app.add_option("--out", a.out, "output folder")->capture_default_str();
  app.add_option("--steps", a.steps, "DI* iterations (in all, counting those of a resumed run)")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--batch", a.batch, "generator batch per rank")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--micro-batches", a.micro_batches, "gradient accumulation: each update in this many micro-batches")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--K", a.K, "assistant updates per generator update")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1000}));
  app.add_option("--alpha-rew", a.alpha_rew, "weight of the explicit reward")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--alpha-cfg", a.alpha_cfg, "CFG strength inside the divergence (guidance scale - 1)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--c", a.c, "pseudo-Huber constant c")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--t-star", a.t_star, "the generator's UNet timestep")->capture_default_str();
  app.add_option("--generator-prediction", a.generator_prediction, "what the generator UNet predicts: epsilon | v_prediction | sample (default: the teacher's)")
      ->check(CLI::IsMember({"epsilon", "v_prediction", "sample"}));
  app.add_option("--generator-lora", a.generator_lora, "train the generator through a LoRA of this rank (0: the whole UNet)")->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{4096}));
  app.add_option("--generator-base-lora", a.generator_base_lora, "a LoRA file (diffusers' format, e.g. DMD2's) kept frozen under the generator's LoRA")
      ->check(CLI::ExistingFile);
  app.add_option("--threads", a.threads, "CPU threads (0: OMP_NUM_THREADS if set, else every core); one pool does the work")->capture_default_str()->check(CLI::Range(0, 4096));
  app.add_option("--assistant-lora", a.assistant_lora, "the assistant as a LoRA of this rank on the teacher's weights (0: a full copy)")->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{4096}));
  app.add_option("--lora-targets", a.lora_targets, "comma-separated module names the LoRAs adapt")->capture_default_str();
  app.add_option("--lr-generator", a.lr_generator, "generator learning rate (default 1e-5; 1e-4 with --generator-lora)")->check(CLI::PositiveNumber);
  app.add_option("--lr-assistant", a.lr_assistant, "assistant learning rate (default 1e-5; 1e-4 with --assistant-lora)")->check(CLI::PositiveNumber);
  app.add_option("--max-grad-norm", a.max_grad_norm, "gradient clipping of both networks")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--ema", a.ema, "EMA decay of the generator (0: off); the EMA weights are evaluated and saved")->capture_default_str()->check(CLI::Range(0.0, 0.999999));
  app.add_option("--precision", a.precision, "compute precision: fp32 | bf16 | fp16 (CUDA); frozen models are stored in it")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  app.add_flag("--gradient-checkpointing", a.gradient_checkpointing, "recompute every UNet block in backward instead of keeping its activations");
  app.add_flag("--measure-memory", a.measure_memory, "record each step's peak memory (exact on the CPU; the caching allocator's on CUDA)");
  app.add_option("--resolution", a.resolution, "image side in pixels (default: the UNet's sample_size x the VAE's factor)")->check(CLI::Range(int64_t{8}, int64_t{4096}));
  app.add_option("--device", a.device, "cpu | cuda | cuda:N")->capture_default_str();
#if DIFFINSTRUCT_EXAMPLE_DATA_PARALLEL
  app.add_flag("--data-parallel", a.data_parallel, "join a data-parallel run (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from the launcher)");
#else
  app.add_flag("--data-parallel", a.data_parallel, "join a data-parallel run (not in this build: it needs c10d's Gloo headers, Debian's libgloo-dev)");
#endif
  app.add_option("--seed", a.seed, "seed of the run (noise, prompts, times, LoRA initialisation)")->capture_default_str();
  app.add_option("--eval-every", a.eval_every, "evaluate (metrics and a sample grid) every N steps")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--eval-prompts", a.eval_prompts, "evaluation prompts (the first N)")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1000}));
  app.add_option("--eval-seeds", a.eval_seeds, "samples per evaluation prompt")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1000}));
  app.add_option("--save-every", a.save_every, "checkpoint every N steps")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--keep-checkpoints", a.keep_checkpoints, "checkpoints kept")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1000}));
  app.add_flag("--resume", a.resume, "continue from --out's checkpoint");
  CLI11_PARSE(app, argc, argv);
  try {
    run(a);
  } catch (const std::exception& e) {
    return di::report_error("05_text_to_image", e);
  }
  return 0;
}
