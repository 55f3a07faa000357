// 03 — the paper in miniature, on real data: class-conditional Fashion-MNIST (16×16), a multi-step
// guided teacher, a one-step generator distilled from it, then post-trained with DI* and its rivals,
// all evaluated on the same prompts and seeds by a held-out classifier.
//
//   1. teacher      a small class-conditional UNet (ε-prediction, cosine VP), condition dropout for CFG
//   2. classifiers  the reward model r(x, c) = log p(c | x) (used in training) and a held-out evaluator
//                   of another architecture and seed (used only to score)
//   3. one-step     the teacher's architecture at a fixed t*, initialised from the teacher, distilled
//                   with the library (pseudo-Huber + CFG, no reward: SIM)
//   4. post-train   from that start: DI* (CFG inside / outside), DI++ (KL + reward), SIM, DI (KL), DI*
//                   without CFG
//   5. evaluate     the teacher at 50 DDIM steps and several guidance scales, and every one-step model:
//                   held-out accuracy and log-probability, reward-model score, Fréchet distance in the
//                   evaluator's feature space, within-class diversity, time per image
// --sweep c | cfg-grid | K runs the open questions (docs/math.md §6) instead of step 4's table; --sweep seeds
// repeats four methods with three post-training seeds to measure the run-to-run spread.
// Writes report.md, metrics.json/.csv, sample grids and a reward-versus-FD plot into --out.

#include "fashion_mnist/pipeline.hpp"
#include "fashion_mnist/report.hpp"
#include "fashion_mnist/runs.hpp"

#include <diffinstruct/util/error_report.hpp>
#include <diffinstruct/util/image_grid_png.hpp>
#include <diffinstruct/util/portable_math.hpp>
#include <diffinstruct/util/threads.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace di = diffinstruct;
namespace fs = std::filesystem;
using namespace fashion;

namespace {

struct Options {
  Config cfg;
  std::string sweep = "none", kernels = "native";
  bool full = false;
  int threads = 1;
};

/// The command line into `o`. Returns the exit status when the program should stop here (--help, a
/// bad flag or combination), or -1 to go on.
int parse_flags(int argc, char** argv, Options& o) {
  CLI::App app{"DI* on class-conditional Fashion-MNIST: teacher -> one-step generator -> post-training -> evaluation"};
  app.add_option("--data", o.cfg.data_dir, "folder with the four Fashion-MNIST .gz IDX files")->capture_default_str();
  app.add_option("--out", o.cfg.out, "output folder (created; stages are cached there)")->capture_default_str();
  app.add_flag("--full", o.full, "wider UNet, longer training, more evaluation samples (better numbers; roughly 10x the default run by step counts, not timed)");
  app.add_option("--train-subset", o.cfg.train_subset, "use only the first N training images (0: all)")->check(CLI::NonNegativeNumber);
  app.add_option("--channels", o.cfg.ch, "UNet width (multiple of 8)")->check(CLI::Range(8, 256));
  app.add_option("--teacher-steps", o.cfg.teacher_steps, "teacher training steps")->check(CLI::Range(1, 10000000));
  app.add_option("--classifier-epochs", o.cfg.clf_epochs, "epochs for each classifier")->check(CLI::Range(1, 1000));
  app.add_option("--distill-steps", o.cfg.distill_steps, "steps of the one-step initialisation (SIM)")->check(CLI::Range(1, 10000000));
  app.add_option("--steps", o.cfg.post_steps, "post-training steps per method")->check(CLI::Range(1, 10000000));
  app.add_option("--batch", o.cfg.batch, "DI* batch size")->check(CLI::Range(1, 1 << 16));
  app.add_option("--K", o.cfg.k, "assistant updates per generator update")->check(CLI::Range(1, 100));
  app.add_option("--alpha-cfg", o.cfg.alpha_cfg, "CFG strength alpha_cfg (guidance scale 1 + alpha_cfg)")->check(CLI::NonNegativeNumber);
  app.add_option("--alpha-rew", o.cfg.alpha_rew, "reward scale alpha_rew")->check(CLI::NonNegativeNumber);
  app.add_option("--c", o.cfg.c, "pseudo-Huber c")->check(CLI::PositiveNumber);
  app.add_option("--lr-gen", o.cfg.lr_gen, "generator learning rate")->check(CLI::PositiveNumber);
  app.add_option("--lr-asst", o.cfg.lr_asst, "assistant learning rate")->check(CLI::PositiveNumber);
  app.add_option("--eval-per-class", o.cfg.eval_per_class, "evaluation samples per class")->check(CLI::Range(2, 100000));
  app.add_option("--teacher-scales", o.cfg.teacher_scales, "guidance scales s of the 50-step teacher rows (comma-separated)")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--sweep", o.sweep, "run an open question instead of the main table: c, cfg-grid or K; or seeds (run-to-run spread)")
      ->check(CLI::IsMember({"none", "c", "cfg-grid", "K", "seeds"}));
  app.add_option("--seed", o.cfg.seed, "random seed")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", o.threads, "intra-op threads (0: every core)")->check(CLI::NonNegativeNumber);
  app.add_option("--kernels", o.kernels,
                 "native: the CPU's own kernels (fastest); pinned: the kernels scripts/demo.sh pins through the environment "
                 "(OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2), one thread; portable: pinned, and "
                 "oneDNN off (about 2x slower)")
      ->check(CLI::IsMember({"native", "pinned", "portable"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto& cfg = o.cfg;
  if (cfg.ch % 8 != 0) {
    fmt::print(stderr, "error: --channels must be a multiple of 8 (GroupNorm with 8 groups), got {}\n", cfg.ch);
    return 2;
  }
  if (o.full) {
    cfg.ch = std::max<int64_t>(cfg.ch, 32);
    cfg.teacher_steps = std::max<int64_t>(cfg.teacher_steps, 12000);
    cfg.clf_epochs = std::max<int64_t>(cfg.clf_epochs, 5);
    cfg.distill_steps = std::max<int64_t>(cfg.distill_steps, 2000);
    cfg.post_steps = std::max<int64_t>(cfg.post_steps, 1000);
    cfg.eval_per_class = std::max<int64_t>(cfg.eval_per_class, 200);
  }
  if (o.kernels != "native") {
    if (o.threads != 1) {
      fmt::print(stderr, "error: --kernels {} needs --threads 1 (more threads reorder reductions), got {}\n", o.kernels, o.threads);
      return 2;
    }
    for (const auto& pin : di::missing_cpu_pins())
      fmt::print(stderr, "warning: --kernels {} without {} in the environment: results may differ on another CPU\n", o.kernels, pin);
    if (o.kernels == "portable") di::disable_onednn();
    cfg.cache_tag = "_" + o.kernels;  // never mixed with stages computed with other kernels
  }
  o.threads = di::use_threads(o.threads);
  std::error_code ec;
  fs::create_directories(cfg.out, ec);
  if (ec || !fs::is_directory(cfg.out)) {
    fmt::print(stderr, "error: cannot create output folder '{}': {}\n", cfg.out, ec.message());
    return 2;
  }
  return -1;
}

void write_grid(const fs::path& path, const torch::Tensor& x, const Config& cfg, const std::string& title) {
  const int64_t cols = std::min<int64_t>(8, cfg.eval_per_class);
  const auto grid = x.view({kClasses, cfg.eval_per_class, 1, kSize, kSize}).slice(1, 0, cols);
  std::vector<std::string> names;
  for (const char* n : di::data::fashion_mnist_classes()) names.emplace_back(n);
  di::write_image_grid_png(path.string(), grid, names, di::ImageGridOptions().title(title).label_width(132));
}

/// Stages 1 and 2: the data, the teacher, the reward model and the held-out evaluator (each cached),
/// and what evaluation compares with.
struct Stage12 {
  Data data;
  TinyUNet teacher{nullptr};
  RewardClassifier reward_model{nullptr};
  EvalClassifier evaluator{nullptr};
  double reward_acc = 0, eval_acc = 0;
  Reference ref;
  EvalSet set;
};

Stage12 teacher_and_classifiers(const Options& o, const di::CosineVPSchedule& schedule) {
  const Config& cfg = o.cfg;
  Stage12 s;
  s.data = load_data(cfg);
  fmt::print("data: {} train / {} test images at 16x16 from {}; {} thread(s)\n", s.data.train_x.size(0), s.data.test_x.size(0), cfg.data_dir,
             o.threads);
  s.teacher = train_teacher(s.data, cfg, schedule);
  for (auto& p : s.teacher->parameters()) p.requires_grad_(false);
  s.reward_model = classifier_stage<RewardClassifier>(s.data, cfg, "reward_model", cfg.seed + 1, 0.3, s.reward_acc);
  s.evaluator = classifier_stage<EvalClassifier>(s.data, cfg, "evaluator", cfg.seed + 2, 0.0, s.eval_acc);
  s.ref = make_reference(s.evaluator, s.data);
  s.set = make_eval_set(cfg);
  return s;
}

/// Stage 3: the one-step initialisation, SIM distillation (pseudo-Huber + CFG inside, no reward),
/// cached. Returns the generator and its training time (0 when cached).
std::pair<OneStepGenerator, double> one_step_init(const Config& cfg, const di::CosineVPSchedule& schedule, const Stage12& s,
                                                  const Reward& reward) {
  const fs::path init_path = fs::path(cfg.out) / fmt::format("init_ch{}_distill{}_cfg{}_c{}_seed{}{}.pt", cfg.ch, cfg.distill_steps,
                                                             cfg.alpha_cfg, cfg.c, cfg.seed, cfg.cache_tag);
  OneStepGenerator init = make_generator(cfg, schedule);
  di::copy_state(s.teacher, init->net);
  if (load_cached(init, init_path)) {
    fmt::print("one-step init: cached {}\n", init_path.string());
    return {init, 0.0};
  }
  auto run = run_di_star("init (SIM)", di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(cfg.alpha_cfg)), 0.0, cfg.distill_steps, cfg.k, cfg,
                         schedule, s.teacher, init, s.teacher, reward, cfg.seed + 10);
  save_atomic(run.generator, init_path);
  return {run.generator, run.seconds};
}

std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)> one_step(OneStepGenerator g) {
  return [g](const torch::Tensor& z, const torch::Tensor& c) mutable { return g(z, c); };
}

/// The rows every table compares with: the real test images (the ceiling of every column), the
/// 50-step teacher at each guidance scale (the main table only), the one-step init. Sets teacher_ms.
std::vector<Metrics> reference_rows(const Options& o, const di::CosineVPSchedule& schedule, Stage12& st, const OneStepGenerator& init,
                                    double init_seconds, int64_t unet_params, double& teacher_ms) {
  const Config& cfg = o.cfg;
  const auto& sweep = o.sweep;
  auto& data = st.data;
  auto& teacher = st.teacher;
  auto& evaluator = st.evaluator;
  auto& reward_model = st.reward_model;
  const auto& ref = st.ref;
  const auto& set = st.set;
  std::vector<Metrics> rows;
  // Real test images through the same metrics: the ceiling of every column.
  {
    Metrics m{"test images", "data"};
    m.steps = 0;
    const auto idx = torch::cat([&] {
      std::vector<torch::Tensor> parts;
      for (int64_t c = 0; c < kClasses; ++c) parts.push_back((data.test_y == c).nonzero().squeeze(1).slice(0, 0, cfg.eval_per_class));
      return parts;
    }());
    const auto x = data.test_x.index_select(0, idx);
    score(m, x, set, evaluator, reward_model, ref);
    rows.push_back(m);
    write_grid(fs::path(cfg.out) / "samples_test_images.png", x, cfg, "test images");
  }

  // The teacher at 50 steps, several guidance scales.
  TeacherDenoiser teacher_d(teacher, "teacher");
  // (A sweep compares one-step runs with each other; the teacher rows are the main table's.)
  for (double scale : sweep == "none" ? cfg.teacher_scales : std::vector<double>{}) {
    Metrics m{fmt::format("teacher, s = {}", scale), "DDIM 50 + CFG"};
    m.steps = 50;
    m.parameters = unet_params;
    m.alpha_cfg = scale - 1;
    const auto x = evaluate(
        m,
        [&](const torch::Tensor& z, const torch::Tensor& c) {
          return di::ddim_sample(teacher_d, schedule, z, c, torch::full({1}, kNullClass, torch::kLong), di::TimeRange{0.0, 0.98},
                                 di::DdimOptions().steps(50).guidance_scale(scale));
        },
        set, evaluator, reward_model, ref);
    teacher_ms = std::max(teacher_ms, m.ms_per_image);
    fmt::print("{}: held-out accuracy {:.3f}, FD {:.2f}\n", m.name, m.accuracy, m.fd);
    rows.push_back(m);
    write_grid(fs::path(cfg.out) / fmt::format("samples_teacher_s{}.png", scale), x, cfg, m.name + " (50 DDIM steps)");
  }
  {
    Metrics m{"one-step init", "SIM distillation"};
    m.parameters = unet_params;
    m.alpha_cfg = cfg.alpha_cfg;
    m.train_seconds = init_seconds;
    const auto x = evaluate(m, one_step(init), set, evaluator, reward_model, ref);
    rows.push_back(m);
    write_grid(fs::path(cfg.out) / "samples_init.png", x, cfg, "one-step init (SIM)");
  }
  return rows;
}

/// Stage 4: each post-training run trained (or loaded from its cache file) and scored.
void post_train_and_score(const std::vector<Run>& runs, const Config& cfg, const di::CosineVPSchedule& schedule, Stage12& s,
                          int64_t unet_params, std::vector<Metrics>& rows) {
  for (const auto& run : runs) {
    const fs::path path = fs::path(cfg.out) / fmt::format("{}_steps{}_bs{}_c{}_lr{}_seed{}{}.pt", run.file, cfg.post_steps, cfg.batch, cfg.c,
                                                          cfg.lr_gen, cfg.seed, cfg.cache_tag);
    Metrics m{run.name, run.method};
    m.parameters = unet_params;
    m.alpha_rew = run.alpha_rew;
    m.alpha_cfg = run.alpha_cfg;
    OneStepGenerator g = make_generator(cfg, schedule);
    if (load_cached(g, path)) {
      fmt::print("{}: cached {}\n", run.name, path.string());
    } else {
      auto trained = run.train();
      g = trained.generator;
      m.train_seconds = trained.seconds;
      save_atomic(g, path);
    }
    const auto x = evaluate(m, one_step(g), s.set, s.evaluator, s.reward_model, s.ref);
    fmt::print("{}: held-out accuracy {:.3f}, reward {:.3f}, FD {:.2f}, diversity {:.2f}\n", m.name, m.accuracy, m.reward, m.fd, m.diversity);
    rows.push_back(m);
    write_grid(fs::path(cfg.out) / ("samples_" + run.file + ".png"), x, cfg, m.name);
  }
}

/// The whole job: stages 1-5 (the file's header).
void run(const Options& o) {
  const Config& cfg = o.cfg;
  const auto t_start = std::chrono::steady_clock::now();
  const di::CosineVPSchedule schedule;
  Stage12 s = teacher_and_classifiers(o, schedule);                                 // 1.-2.
  const Reward reward = log_prob_reward(s.reward_model);  // declares the classifier: the trainer freezes it
  const auto [init, init_seconds] = one_step_init(cfg, schedule, s, reward);         // 3.
  const int64_t unet_params = count_parameters(*s.teacher);
  double teacher_ms = 0;
  std::vector<Metrics> rows = reference_rows(o, schedule, s, init, init_seconds, unet_params, teacher_ms);
  const auto runs = post_training_runs(o.sweep, cfg, schedule, s.teacher, init, reward);  // 4.
  post_train_and_score(runs, cfg, schedule, s, unet_params, rows);

  // 5. The report: table, json, csv, and the reward-versus-FD plot across reward scales.
  nlohmann::json report;
  report["config"] = {{"channels", cfg.ch}, {"teacher_steps", cfg.teacher_steps}, {"classifier_epochs", cfg.clf_epochs},
                      {"distill_steps", cfg.distill_steps}, {"post_steps", cfg.post_steps}, {"batch", cfg.batch}, {"K", cfg.k},
                      {"alpha_cfg", cfg.alpha_cfg}, {"alpha_rew", cfg.alpha_rew}, {"c", cfg.c}, {"lr_gen", cfg.lr_gen},
                      {"lr_asst", cfg.lr_asst}, {"t_star", cfg.t_star}, {"eval_per_class", cfg.eval_per_class}, {"seed", cfg.seed},
                      {"threads", o.threads}, {"train_images", s.data.train_x.size(0)}, {"sweep", o.sweep}, {"kernels", o.kernels}};
  report["classifiers"] = {{"reward_model_test_accuracy", s.reward_acc}, {"evaluator_test_accuracy", s.eval_acc},
                           {"test_split_diversity", s.ref.test_diversity}};
  const std::string md = table(rows, teacher_ms);
  const std::string suffix = o.sweep == "none" ? "" : "_sweep_" + o.sweep;  // a sweep never overwrites the main report
  const fs::path out(cfg.out);
  std::string spread;
  if (o.sweep == "none" || o.sweep == "seeds") {
    spread = reward_vs_fd(rows, cfg.alpha_cfg, o.sweep == "seeds", out / ("reward_vs_fd" + suffix + ".png"));
    if (o.sweep != "seeds") spread.clear();  // the main table's one run has no spread to show
  }
  report["seconds_total"] = seconds_since(t_start);
  const std::string heading = fmt::format("# Fashion-MNIST miniature ({})\n\nReward model test accuracy {:.3f}; held-out evaluator {:.3f}; test "
                                          "split diversity {:.2f}. Total {:.0f} s.\n\n",
                                          o.sweep == "none" ? "main table" : "sweep " + o.sweep, s.reward_acc, s.eval_acc, s.ref.test_diversity,
                                          seconds_since(t_start));
  write_reports(out, suffix, report, rows, heading, md, spread);
  fmt::print("\n{}\nwrote {}/report{}.md, metrics{}.json, metrics{}.csv and PNGs in {:.0f} s\n", md, cfg.out, suffix, suffix, suffix,
             seconds_since(t_start));
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const int status = parse_flags(argc, argv, o); status >= 0) return status;
  return di::run_program("03_fashion_mnist", [&] { run(o); });
}
