// 06 — text-to-image that learns, on real data: a compositional miniature (Fashion-MNIST items, four
// colours, four positions, one or two items per 32×32 image, captions in several phrasings) with the
// whole Stable Diffusion stack trained here with the library's own classes, and an exact evaluator.
//
//   1. evaluator   a held-out recogniser of item classes (a CNN, trained on train-split items, its
//                  test-split accuracy reported) plus exact position (mass) and colour (pixels)
//   2. tokenizer   a CLIP BPE vocabulary learnt from the captions (text::train_clip_bpe)
//   3. CLIP        CLIPTextModel + CLIPVisionModel with projections, trained contrastively: the reward,
//                  and the text encoder of the teacher
//   4. VAE         AutoencoderKL, 32×32×3 <-> 8×8×4
//   5. teacher     UNet2DConditionModel on the latents, conditioned on CLIP's text states, with
//                  condition dropout for CFG; stages 2-5 make a diffusers pipeline folder (out/pipeline)
//   6. evaluate    real test images and the teacher (DDIM, several step counts and guidance scales) on
//                  fixed prompts — half with colour–class pairs never seen in training — and seeds
//   7. generators  a one-step init distilled from the teacher (SIM), then from it DI* (CFG inside,
//                  outside, none), DI++, SIM, DI, few-step DI* and reward-scale sweeps, each repeated
//                  for --seeds seeds, --jobs of them side by side; every one scored like the teacher
//
// Stages are cached in --out (a rerun resumes; the teacher resumes mid-training). Writes report.md
// (mean ± sd over the seeds), metrics.json/.csv (every run, and the summary), captioned sample grids
// and reward_vs_evaluator.png (the reward-scale sweeps against the exact evaluator).

#include "compositional/post_training.hpp"
#include "compositional/report.hpp"
#include "compositional/stage_cache.hpp"
#include "common/parallel_jobs.hpp"

#include <diffinstruct/models/pretrained.hpp>
#include <diffinstruct/util/error_report.hpp>
#include <diffinstruct/util/threads.hpp>

#include <CLI/CLI.hpp>

namespace di = diffinstruct;
namespace dm = diffinstruct::models;
using namespace compositional;

namespace {

struct Options {
  Config cfg;
  bool quick = false;
  int threads = 1;  // on two cores, LibTorch 1.13's second OpenMP thread makes these small models slower, not faster
};

int parse_flags(int argc, char** argv, Options& o) {
  CLI::App app{"The compositional text-to-image miniature: tokenizer, CLIP, VAE and UNet teacher trained here, scored by an exact evaluator"};
  auto& c = o.cfg;
  app.add_option("--data", c.data_dir, "folder with the four Fashion-MNIST .gz IDX files")->capture_default_str();
  app.add_option("--out", c.out, "output folder (created; stages are cached there)")->capture_default_str();
  app.add_flag("--quick", o.quick, "tiny budgets everywhere: checks that the stages connect (the CI test), not a result");
  app.add_option("--recogniser-steps", c.recogniser_steps, "training steps of the evaluator's recogniser")->check(CLI::Range(1, 1000000));
  app.add_option("--clip-steps", c.clip_steps, "CLIP training steps")->check(CLI::Range(1, 1000000));
  app.add_option("--vae-steps", c.vae_steps, "VAE training steps")->check(CLI::Range(1, 1000000));
  app.add_option("--teacher-steps", c.teacher_steps, "teacher training steps")->check(CLI::Range(1, 10000000));
  app.add_option("--unet-width", c.unet_width, "the teacher UNet's first block width (a multiple of 16)")->check(CLI::Range(16, 512));
  app.add_option("--eval-prompts", c.eval_prompts, "evaluation prompts per half (seen / held-out combinations)")->check(CLI::Range(1, 10000));
  app.add_option("--eval-seeds", c.eval_seeds, "seeds per evaluation prompt")->check(CLI::Range(2, 1000));
  app.add_option("--post-steps", c.post_steps, "training steps of every post-training run")->check(CLI::Range(1, 1000000));
  app.add_option("--batch", c.batch, "batch size of the one-step init and the post-training runs")->check(CLI::Range(1, 4096));
  app.add_option("--seeds", c.seeds, "post-training seeds: every run from the init is repeated with each (the table gives mean ± sd)")
      ->check(CLI::Range(1, 100));
  app.add_option("--jobs", c.jobs, "post-training runs trained side by side, each on --threads threads (jobs × threads ≤ cores)")
      ->check(CLI::Range(1, 256));
  app.add_option("--only", c.only, "train only these post-training runs (comma-separated names: di_star_in, di_plusplus, sim, ...)")->delimiter(',');
  app.add_option("--seed", c.seed, "random seed")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", o.threads, "intra-op threads (0: every core; 1 is fastest for these small models on Debian's LibTorch)")->check(CLI::NonNegativeNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (c.unet_width % 16 != 0) {
    fmt::print(stderr, "error: --unet-width must be a multiple of 16 (GroupNorm groups, 16-channel heads), got {}\n", c.unet_width);
    return 2;
  }
  if (o.quick) c.quick();
  try {
    table_runs(c);  // refuses an unknown --only name before any training
  } catch (const c10::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what_without_backtrace());
    return 2;
  }
  o.threads = di::use_threads(o.threads);
  std::error_code ec;
  fs::create_directories(c.out, ec);
  if (ec || !fs::is_directory(c.out)) {
    fmt::print(stderr, "error: cannot create output folder '{}': {}\n", c.out, ec.message());
    return 2;
  }
  return -1;
}

/// Copies the finished stages into one diffusers pipeline folder (replaced atomically).
fs::path assemble_pipeline(const fs::path& out, const StageResult& tok, dm::ClipTextModel text, const StageResult& vae, const StageResult& unet) {
  const fs::path dir = out / "pipeline", tmp = out / "pipeline.partial";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const auto opts = fs::copy_options::recursive;
  fs::copy(tok.dir, tmp / "tokenizer", opts);
  fs::copy(vae.dir, tmp / "vae", opts);
  fs::copy(unet.dir, tmp / "unet", opts);
  dm::save_pretrained(without_projection(text), (tmp / "text_encoder").string());
  fs::create_directories(tmp / "scheduler");
  di::io::write_text_file_atomically((tmp / "scheduler" / "scheduler_config.json").string(), scheduler_config_json(), "scheduler_config.json");
  di::io::write_text_file_atomically((tmp / "model_index.json").string(), model_index_json(), "model_index.json");
  fs::remove_all(dir);
  fs::rename(tmp, dir);
  return dir;
}

void run(const Options& o) {
  const Config& cfg = o.cfg;
  const fs::path out(cfg.out);
  const auto t_start = std::chrono::steady_clock::now();
  const auto train_bank = ItemBank::from_split(di::data::load_fashion_mnist(cfg.data_dir, "train"));
  const auto test_bank = ItemBank::from_split(di::data::load_fashion_mnist(cfg.data_dir, "test"));
  fmt::print("data: Fashion-MNIST items from {}; {} thread(s)\n", cfg.data_dir, o.threads);

  // 1. The evaluator.
  Scorer scorer;
  const auto rec_stage = cached_stage(out, "recogniser", cfg.recogniser_settings(), [&](const fs::path& tmp) {
    auto net = train_recogniser(train_bank, cfg.recogniser_steps, cfg.seed + 3);
    torch::save(net, (tmp / "recogniser.pt").string());
  });
  scorer.evaluator.recogniser = Recogniser();
  torch::load(scorer.evaluator.recogniser, (rec_stage.dir / "recogniser.pt").string());
  scorer.evaluator.threshold = occupancy_threshold(train_bank);
  const double recogniser_acc = recogniser_accuracy(scorer.evaluator.recogniser, test_bank);
  fmt::print("evaluator: recogniser test accuracy {:.3f}, occupancy threshold {:.4f}\n", recogniser_acc, scorer.evaluator.threshold);

  // 2.-3. Tokenizer and CLIP.
  const auto tok_stage = cached_stage(out, "tokenizer", cfg.tokenizer_settings(), [&](const fs::path& tmp) { make_tokenizer(cfg, tmp); });
  const auto tok = dtext::ClipTokenizer::from_folder(tok_stage.dir.string());
  const auto clip_stage = cached_stage(out, "clip", cfg.clip_settings() + " " + tok_stage.dir.filename().string(), [&](const fs::path& tmp) {
    auto parts = make_clip(cfg, tok);
    train_clip(parts, tok, train_bank, cfg);
    dm::save_pretrained(parts, tmp.string());
    for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json"}) fs::copy_file(tok_stage.dir / f, tmp / f);  // as the Hub's CLIP folders hold it
  });
  scorer.clip = dm::load_clip_model(clip_stage.dir.string());
  scorer.tokenizer = &tok;
  for (auto& p : scorer.clip.text->parameters()) p.requires_grad_(false);
  for (auto& p : scorer.clip.vision->parameters()) p.requires_grad_(false);
  const auto [retrieval_seen, retrieval_held] = clip_retrieval(scorer.clip, tok, test_bank, cfg.seed + 5);
  fmt::print("clip: test-image -> caption top-1 in batches of 64: seen pairs {:.3f}, held-out pairs {:.3f}\n", retrieval_seen, retrieval_held);

  // 4.-5. VAE and teacher.
  const auto vae_stage = cached_stage(out, "vae", cfg.vae_settings(), [&](const fs::path& tmp) { dm::save_pretrained(train_vae(train_bank, cfg), tmp.string()); });
  auto vae = dm::load_vae(vae_stage.dir.string());
  for (auto& p : vae->parameters()) p.requires_grad_(false);
  const di::DiscreteVPSchedule schedule(dm::parse_scheduler_config(scheduler_config_json(), "scheduler_config.json").options);
  auto text = scorer.clip.text;
  const auto teacher_stage = cached_stage(out, "teacher",
                                          cfg.teacher_settings() + " " + tok_stage.dir.filename().string() + " " + clip_stage.dir.filename().string() +
                                              " " + vae_stage.dir.filename().string(),
                                          [&](const fs::path& tmp) {
                                            auto unet = train_teacher(train_bank, text, tok, vae, schedule, cfg, tmp / "train_state.pt");
                                            dm::save_pretrained(unet, tmp.string());
                                            fs::remove(tmp / "train_state.pt");
                                          });
  const fs::path pipeline = assemble_pipeline(out, tok_stage, text, vae_stage, teacher_stage);
  fmt::print("pipeline: {} (a diffusers folder: 05_text_to_image --teacher and di_evaluate read it)\n", pipeline.string());
  auto teacher = dm::load_unet((pipeline / "unet").string());
  for (auto& p : teacher->parameters()) p.requires_grad_(false);

  // 6. Evaluation.
  const EvalSet set = make_eval_set(cfg);
  std::vector<Row> rows;
  {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed + 123);
    scorer.evaluator.set_reference(render(set.scenes, test_bank, gen), set.scenes, set.seeds);  // other test items than the row below
    Row real{"test images", "data", 0};
    const auto x = render(set.scenes, test_bank, gen);
    scorer.score(real, x, set);
    rows.push_back(real);
    write_grid(out / "samples_test_images.png", x, set, "test images (held-out items)");
  }
  const auto empty = encode_captions(text, tok, {""});
  double teacher_ms = 0;
  for (int64_t steps : cfg.teacher_steps_eval)
    for (double g : cfg.teacher_guidance) {
      Row r{fmt::format("teacher, {} steps, CFG {:g}", steps, g), "DDIM", steps, g};
      const auto x = evaluate_row(r, teacher_sampler(teacher, schedule, empty, steps, g), set, text, tok, vae, scorer);
      teacher_ms = std::max(teacher_ms, r.ms_per_image);
      fmt::print("{}: all correct {:.3f} (seen) / {:.3f} (held-out pairs), reward {:.2f}, FD {:.2f}\n", r.name, r.seen.all_correct,
                 r.held.all_correct, r.reward, r.all.fd);
      rows.push_back(r);
      write_grid(out / fmt::format("samples_teacher_{}steps_cfg{:g}.png", steps, g), x, set, r.name);
    }

  // 7. One-step generators: the SIM init, then every post-training run from it.
  const auto prompts = training_prompts(cfg);
  const std::string upstream = " " + teacher_stage.dir.filename().string() + " " + clip_stage.dir.filename().string();
  const PostRun init_run{"one-step init", "SIM distillation", "init", Divergence::kPseudoHuber, CfgPlace::kInside, 0.0, cfg.alpha_cfg,
                         cfg.distill_steps, cfg.seed + 10};
  const auto init_stage = cached_stage(out, "init", init_run.settings(cfg) + upstream, [&](const fs::path& tmp) {
    train_generator(init_run, pipeline, clip_stage.dir, {}, prompts, cfg, tmp);
  });
  auto one_step_row = [&](const PostRun& run, const StageResult& stage) {
    Row r{run.name, run.method, std::max<int64_t>(1, static_cast<int64_t>(run.timesteps.size())), 1 + run.alpha_cfg};
    r.train_seconds = stage.seconds, r.sweep = run.sweep, r.alpha_rew = run.alpha_rew, r.seed_index = run.seed_index;
    const auto x = evaluate_row(r, generator_sampler(stage.dir, schedule, cfg, run.timesteps, cfg.seed + 555), set, text, tok, vae, scorer);
    fmt::print("{} (seed {}): all correct {:.3f} (seen) / {:.3f} (held-out pairs), reward {:.2f}, FD {:.2f}, diversity {:.2f}\n", r.name,
               run.seed_index, r.seen.all_correct, r.held.all_correct, r.reward, r.all.fd, r.all.diversity);
    rows.push_back(r);
    if (run.seed_index == 0) write_grid(out / ("samples_" + run.slug + ".png"), x, set, r.name);
  };
  one_step_row(init_run, init_stage);
  // Every run from the init, `jobs` at a time (each on one core); then evaluated one after the other,
  // so that the times per image are measured alone.
  const auto runs = table_runs(cfg);
  std::vector<StageResult> stages(runs.size());
  std::vector<std::function<void()>> jobs;
  for (size_t i = 0; i < runs.size(); ++i)
    jobs.push_back([&, i] {
      stages[i] = cached_stage(out, runs[i].slug, runs[i].settings(cfg) + " " + init_stage.dir.filename().string(), [&](const fs::path& tmp) {
        train_generator(runs[i], pipeline, clip_stage.dir, init_stage.dir, prompts, cfg, tmp);
      });
    });
  fmt::print("post-training: {} runs ({} seed(s)), {} at a time\n", runs.size(), cfg.seeds, std::min<size_t>(static_cast<size_t>(cfg.jobs), runs.size()));
  examples_common::run_parallel_jobs(jobs, cfg.jobs);
  for (size_t i = 0; i < runs.size(); ++i) one_step_row(runs[i], stages[i]);

  nlohmann::json report;
  report["config"] = {{"recogniser", cfg.recogniser_settings()}, {"tokenizer", cfg.tokenizer_settings()}, {"clip", cfg.clip_settings()},
                      {"vae", cfg.vae_settings()}, {"teacher", cfg.teacher_settings()}, {"eval_prompts_per_half", cfg.eval_prompts},
                      {"eval_seeds", cfg.eval_seeds}, {"post_training_seeds", cfg.seeds}, {"post_steps", cfg.post_steps},
                      {"batch", cfg.batch}, {"jobs", cfg.jobs}, {"threads", o.threads}};
  report["evaluator"] = {{"recogniser_test_accuracy", recogniser_acc}, {"occupancy_threshold", scorer.evaluator.threshold}};
  report["clip"] = {{"retrieval_top1_seen", retrieval_seen}, {"retrieval_top1_held_out", retrieval_held}};
  report["seconds_total"] = seconds_since(t_start);
  const auto lines = summarise(rows);  // one line per name: mean ± sd over the seeds
  const std::string md = fmt::format(
      "# Compositional miniature\n\nRecogniser test accuracy {:.3f}; CLIP test retrieval top-1 (batches of 64) {:.3f} seen / {:.3f} held-out pairs. "
      "{} prompts × {} seeds per half; post-training runs repeated with {} seed(s) (mean ± sd). Total {:.0f} s.\n\n{}",
      recogniser_acc, retrieval_seen, retrieval_held, cfg.eval_prompts, cfg.eval_seeds, cfg.seeds, seconds_since(t_start),
      table(lines, teacher_ms));
  write_sweep_plot(out / "reward_vs_evaluator.png", lines);
  write_reports(out, report, rows, lines, md);
  fmt::print("\n{}\nwrote {}/report.md, metrics.json, metrics.csv and PNGs in {:.0f} s\n", md, cfg.out, seconds_since(t_start));
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines reach a log file as they happen
  Options o;
  if (const int status = parse_flags(argc, argv, o); status >= 0) return status;
  return di::run_program("06_compositional", [&] { run(o); });
}
