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

#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/util/error_report.hpp>
#include <diffinstruct/util/image_grid_png.hpp>
#include <diffinstruct/util/errorbar_plot_png.hpp>
#include <diffinstruct/util/line_plot_png.hpp>
#include <diffinstruct/util/portable_math.hpp>
#include <diffinstruct/util/threads.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

namespace di = diffinstruct;
namespace fs = std::filesystem;
using namespace fashion;

namespace {

nlohmann::json to_json(const Metrics& m) {
  return {{"name", m.name},           {"method", m.method},       {"steps", m.steps},         {"parameters", m.parameters},
          {"ms_per_image", m.ms_per_image}, {"accuracy", m.accuracy}, {"log_prob", m.log_prob}, {"reward", m.reward},
          {"fd", m.fd},               {"diversity", m.diversity}, {"alpha_rew", m.alpha_rew}, {"alpha_cfg", m.alpha_cfg},
          {"train_seconds", m.train_seconds}};
}

std::string table(const std::vector<Metrics>& rows, double teacher_ms) {
  std::string s =
      "| model | method | steps | params | ms / image | time vs teacher | held-out acc ↑ | held-out log p ↑ | reward ↑ | FD ↓ | diversity |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& m : rows)
    s += fmt::format("| {} | {} | {} | {:.0f}k | {:.3f} | {} | {:.3f} | {:.3f} | {:.3f} | {:.2f} | {:.2f} |\n", m.name, m.method, m.steps,
                     m.parameters / 1e3, m.ms_per_image,
                     teacher_ms > 0 && m.steps > 0 ? fmt::format("{:.1f}%", 100 * m.ms_per_image / teacher_ms) : std::string("–"), m.accuracy,
                     m.log_prob, m.reward, m.fd, m.diversity);
  return s;
}

void write_grid(const fs::path& path, const torch::Tensor& x, const Config& cfg, const std::string& title) {
  const int64_t cols = std::min<int64_t>(8, cfg.eval_per_class);
  const auto grid = x.view({kClasses, cfg.eval_per_class, 1, kSize, kSize}).slice(1, 0, cols);
  std::vector<std::string> names;
  for (const char* n : di::data::fashion_mnist_classes()) names.emplace_back(n);
  di::write_image_grid_png(path.string(), grid, names, di::ImageGridOptions().title(title).label_width(132));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DI* on class-conditional Fashion-MNIST: teacher -> one-step generator -> post-training -> evaluation"};
  Config cfg;
  std::string sweep = "none";
  bool full = false;
  int threads = 1;
  app.add_option("--data", cfg.data_dir, "folder with the four Fashion-MNIST .gz IDX files")->capture_default_str();
  app.add_option("--out", cfg.out, "output folder (created; stages are cached there)")->capture_default_str();
  app.add_flag("--full", full, "wider UNet, longer training, more evaluation samples (better numbers; roughly 10x the default run by step counts, not timed)");
  app.add_option("--train-subset", cfg.train_subset, "use only the first N training images (0: all)")->check(CLI::NonNegativeNumber);
  app.add_option("--channels", cfg.ch, "UNet width (multiple of 8)")->check(CLI::Range(8, 256));
  app.add_option("--teacher-steps", cfg.teacher_steps, "teacher training steps")->check(CLI::Range(1, 10000000));
  app.add_option("--classifier-epochs", cfg.clf_epochs, "epochs for each classifier")->check(CLI::Range(1, 1000));
  app.add_option("--distill-steps", cfg.distill_steps, "steps of the one-step initialisation (SIM)")->check(CLI::Range(1, 10000000));
  app.add_option("--steps", cfg.post_steps, "post-training steps per method")->check(CLI::Range(1, 10000000));
  app.add_option("--batch", cfg.batch, "DI* batch size")->check(CLI::Range(1, 1 << 16));
  app.add_option("--K", cfg.k, "assistant updates per generator update")->check(CLI::Range(1, 100));
  app.add_option("--alpha-cfg", cfg.alpha_cfg, "CFG strength alpha_cfg (guidance scale 1 + alpha_cfg)")->check(CLI::NonNegativeNumber);
  app.add_option("--alpha-rew", cfg.alpha_rew, "reward scale alpha_rew")->check(CLI::NonNegativeNumber);
  app.add_option("--c", cfg.c, "pseudo-Huber c")->check(CLI::PositiveNumber);
  app.add_option("--lr-gen", cfg.lr_gen, "generator learning rate")->check(CLI::PositiveNumber);
  app.add_option("--lr-asst", cfg.lr_asst, "assistant learning rate")->check(CLI::PositiveNumber);
  app.add_option("--eval-per-class", cfg.eval_per_class, "evaluation samples per class")->check(CLI::Range(2, 100000));
  app.add_option("--teacher-scales", cfg.teacher_scales, "guidance scales s of the 50-step teacher rows (comma-separated)")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--sweep", sweep, "run an open question instead of the main table: c, cfg-grid or K; or seeds (run-to-run spread)")
      ->check(CLI::IsMember({"none", "c", "cfg-grid", "K", "seeds"}));
  app.add_option("--seed", cfg.seed, "random seed")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", threads, "intra-op threads (0: every core)")->check(CLI::NonNegativeNumber);
  std::string kernels = "native";
  app.add_option("--kernels", kernels,
                 "native: the CPU's own kernels (fastest); pinned: the kernels scripts/demo.sh pins through the environment "
                 "(OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2), one thread; portable: pinned, and "
                 "oneDNN off (about 2x slower)")
      ->check(CLI::IsMember({"native", "pinned", "portable"}));
  CLI11_PARSE(app, argc, argv);
  if (cfg.ch % 8 != 0) {
    fmt::print(stderr, "error: --channels must be a multiple of 8 (GroupNorm with 8 groups), got {}\n", cfg.ch);
    return 2;
  }
  if (full) {
    cfg.ch = std::max<int64_t>(cfg.ch, 32);
    cfg.teacher_steps = std::max<int64_t>(cfg.teacher_steps, 12000);
    cfg.clf_epochs = std::max<int64_t>(cfg.clf_epochs, 5);
    cfg.distill_steps = std::max<int64_t>(cfg.distill_steps, 2000);
    cfg.post_steps = std::max<int64_t>(cfg.post_steps, 1000);
    cfg.eval_per_class = std::max<int64_t>(cfg.eval_per_class, 200);
  }
  if (kernels != "native") {
    if (threads != 1) {
      fmt::print(stderr, "error: --kernels {} needs --threads 1 (more threads reorder reductions), got {}\n", kernels, threads);
      return 2;
    }
    for (const auto& pin : di::missing_cpu_pins())
      fmt::print(stderr, "warning: --kernels {} without {} in the environment: results may differ on another CPU\n", kernels, pin);
    if (kernels == "portable") di::disable_onednn();
    cfg.cache_tag = "_" + kernels;  // never mixed with stages computed with other kernels
  }
  threads = di::use_threads(threads);
  std::error_code ec;
  fs::create_directories(cfg.out, ec);
  if (ec || !fs::is_directory(cfg.out)) {
    fmt::print(stderr, "error: cannot create output folder '{}': {}\n", cfg.out, ec.message());
    return 2;
  }
  const auto t_start = std::chrono::steady_clock::now();
  try {
    const Data data = load_data(cfg);
    fmt::print("data: {} train / {} test images at 16x16 from {}; {} thread(s)\n", data.train_x.size(0), data.test_x.size(0), cfg.data_dir,
               threads);
    const di::CosineVPSchedule schedule;

    // 1.-2. Teacher and classifiers.
    TinyUNet teacher = train_teacher(data, cfg, schedule);
    for (auto& p : teacher->parameters()) p.requires_grad_(false);
    double reward_acc = 0, eval_acc = 0;
    RewardClassifier reward_model = classifier_stage<RewardClassifier>(data, cfg, "reward_model", cfg.seed + 1, 0.3, reward_acc);
    EvalClassifier evaluator = classifier_stage<EvalClassifier>(data, cfg, "evaluator", cfg.seed + 2, 0.0, eval_acc);
    const Reward reward = log_prob_reward(reward_model);  // declares the classifier: the trainer freezes it
    const Reference ref = make_reference(evaluator, data);
    const EvalSet set = make_eval_set(cfg);

    // 3. One-step initialisation: SIM distillation (pseudo-Huber + CFG inside, no reward).
    const fs::path init_path = fs::path(cfg.out) / fmt::format("init_ch{}_distill{}_cfg{}_c{}_seed{}{}.pt", cfg.ch, cfg.distill_steps,
                                                               cfg.alpha_cfg, cfg.c, cfg.seed, cfg.cache_tag);
    OneStepGenerator init = make_generator(cfg, schedule);
    di::copy_state(teacher, init->net);
    double init_seconds = 0;
    if (load_cached(init, init_path)) {
      fmt::print("one-step init: cached {}\n", init_path.string());
    } else {
      auto run = run_di_star("init (SIM)", di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(cfg.alpha_cfg)), 0.0, cfg.distill_steps, cfg.k, cfg,
                             schedule, teacher, init, teacher, reward, cfg.seed + 10);
      init = run.generator;
      init_seconds = run.seconds;
      save_atomic(init, init_path);
    }
    auto one_step = [](OneStepGenerator g) {
      return [g](const torch::Tensor& z, const torch::Tensor& c) mutable { return g(z, c); };
    };
    const int64_t unet_params = count_parameters(*teacher);
    std::vector<Metrics> rows;
    nlohmann::json report;
    report["config"] = {{"channels", cfg.ch}, {"teacher_steps", cfg.teacher_steps}, {"classifier_epochs", cfg.clf_epochs},
                        {"distill_steps", cfg.distill_steps}, {"post_steps", cfg.post_steps}, {"batch", cfg.batch}, {"K", cfg.k},
                        {"alpha_cfg", cfg.alpha_cfg}, {"alpha_rew", cfg.alpha_rew}, {"c", cfg.c}, {"lr_gen", cfg.lr_gen},
                        {"lr_asst", cfg.lr_asst}, {"t_star", cfg.t_star}, {"eval_per_class", cfg.eval_per_class}, {"seed", cfg.seed},
                        {"threads", threads}, {"train_images", data.train_x.size(0)}, {"sweep", sweep}, {"kernels", kernels}};
    report["classifiers"] = {{"reward_model_test_accuracy", reward_acc}, {"evaluator_test_accuracy", eval_acc},
                             {"test_split_diversity", ref.test_diversity}};

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
    double teacher_ms = 0;
    TeacherDenoiser teacher_d(teacher, "teacher");
    // (A sweep compares one-step runs with each other; the teacher rows are the main table's.)
    for (double s : sweep == "none" ? cfg.teacher_scales : std::vector<double>{}) {
      Metrics m{fmt::format("teacher, s = {}", s), "DDIM 50 + CFG"};
      m.steps = 50;
      m.parameters = unet_params;
      m.alpha_cfg = s - 1;
      const auto x = evaluate(
          m,
          [&](const torch::Tensor& z, const torch::Tensor& c) {
            return di::ddim_sample(teacher_d, schedule, z, c, torch::full({1}, kNullClass, torch::kLong), di::TimeRange{0.0, 0.98},
                                   di::DdimOptions().steps(50).guidance_scale(s));
          },
          set, evaluator, reward_model, ref);
      teacher_ms = std::max(teacher_ms, m.ms_per_image);
      fmt::print("{}: held-out accuracy {:.3f}, FD {:.2f}\n", m.name, m.accuracy, m.fd);
      rows.push_back(m);
      write_grid(fs::path(cfg.out) / fmt::format("samples_teacher_s{}.png", s), x, cfg, m.name + " (50 DDIM steps)");
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

    // 4. Post-training variants (or a sweep), all from the same init and assistant start (the teacher).
    struct Run {
      std::string name, method, file;
      std::function<TrainedGenerator()> train;
      double alpha_rew, alpha_cfg;
    };
    std::vector<Run> runs;
    // `seed_offset` picks the post-training run's own draws (the stages before it keep --seed).
    auto add = [&](std::string name, std::string method, std::string file, double arew, double acfg, auto div, auto guid, int64_t k,
                   uint64_t seed_offset = 20) {
      runs.push_back({name, method, file,
                      [=, &cfg, &schedule, &teacher, &init, &reward] {
                        return run_di_star(name, div, guid, arew, cfg.post_steps, k, cfg, schedule, teacher, init, teacher, reward,
                                           cfg.seed + seed_offset);
                      },
                      arew, acfg});
    };
    const double ar = cfg.alpha_rew, ac = cfg.alpha_cfg;
    if (sweep == "none") {
      add("DI*-in", "PH + reward + CFG inside", "di_star_in", ar, ac, di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(ac)), cfg.k);
      add("DI*-out", "PH + reward + CFG outside", "di_star_out", ar, ac, di::PseudoHuberScore(cfg.c), di::CfgOutside(di::AlphaCfg(ac)), cfg.k);
      add("DI* no CFG", "PH + reward", "di_star_nocfg", ar, 0.0, di::PseudoHuberScore(cfg.c), di::NoGuidance{}, cfg.k);
      add("DI++", "KL + reward + CFG inside", "di_plusplus", ar, ac, di::KL(), di::CfgInside(di::AlphaCfg(ac)), cfg.k);
      add("SIM", "PH + CFG inside", "sim", 0.0, ac, di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(ac)), cfg.k);
      add("DI", "KL + CFG inside", "di", 0.0, ac, di::KL(), di::CfgInside(di::AlphaCfg(ac)), cfg.k);
      for (double a : {ar / 3, 3 * ar}) {  // reward scales for the reward-versus-FD plot
        add(fmt::format("DI*-in, a_rew = {:.3g}", a), "PH + reward + CFG inside", fmt::format("di_star_in_arew{:.3g}", a), a, ac,
            di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(ac)), cfg.k);
        add(fmt::format("DI++, a_rew = {:.3g}", a), "KL + reward + CFG inside", fmt::format("di_plusplus_arew{:.3g}", a), a, ac, di::KL(),
            di::CfgInside(di::AlphaCfg(ac)), cfg.k);
      }
    } else if (sweep == "c") {
      for (double c : {0.03, 0.3, 1.0, 3.0, 30.0})
        add(fmt::format("DI*-in, c = {}", c), "PH + reward + CFG inside", fmt::format("sweep_c{}", c), ar, ac, di::PseudoHuberScore(c),
            di::CfgInside(di::AlphaCfg(ac)), cfg.k);
    } else if (sweep == "cfg-grid") {
      for (double a_cfg : {0.0, 1.0, 2.0, 4.0})
        for (double a_rew : {0.0, ar / 3, ar, 3 * ar})
          add(fmt::format("DI*-in, a_cfg = {}, a_rew = {:.3g}", a_cfg, a_rew), "PH + reward + CFG inside",
              fmt::format("sweep_cfg{}_rew{:.3g}", a_cfg, a_rew), a_rew, a_cfg, di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(a_cfg)), cfg.k);
    } else if (sweep == "seeds") {
      // Run-to-run spread: the same four methods from the same init with three post-training seeds
      // (run 0 is the main table's), and DI*-in / DI++ at the other two reward scales, for the
      // reward-versus-FD plot with error bars.
      for (uint64_t r : {0, 1, 2}) {
        const uint64_t off = 20 + 1000 * r;
        add(fmt::format("DI*-in, run {}", r), "PH + reward + CFG inside", fmt::format("seeds_di_star_in_r{}", r), ar, ac,
            di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(ac)), cfg.k, off);
        add(fmt::format("DI++, run {}", r), "KL + reward + CFG inside", fmt::format("seeds_di_plusplus_r{}", r), ar, ac, di::KL(),
            di::CfgInside(di::AlphaCfg(ac)), cfg.k, off);
        add(fmt::format("DI* no CFG, run {}", r), "PH + reward", fmt::format("seeds_di_star_nocfg_r{}", r), ar, 0.0,
            di::PseudoHuberScore(cfg.c), di::NoGuidance{}, cfg.k, off);
        add(fmt::format("SIM, run {}", r), "PH + CFG inside", fmt::format("seeds_sim_r{}", r), 0.0, ac, di::PseudoHuberScore(cfg.c),
            di::CfgInside(di::AlphaCfg(ac)), cfg.k, off);
        for (double a : {ar / 3, 3 * ar}) {
          add(fmt::format("DI*-in, a_rew = {:.3g}, run {}", a, r), "PH + reward + CFG inside",
              fmt::format("seeds_di_star_in_arew{:.3g}_r{}", a, r), a, ac, di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(ac)), cfg.k,
              off);
          add(fmt::format("DI++, a_rew = {:.3g}, run {}", a, r), "KL + reward + CFG inside", fmt::format("seeds_di_plusplus_arew{:.3g}_r{}", a, r),
              a, ac, di::KL(), di::CfgInside(di::AlphaCfg(ac)), cfg.k, off);
        }
      }
    } else if (sweep == "K") {
      for (int64_t k : {1, 2, 4})
        add(fmt::format("DI*-in, K = {}", k), "PH + reward + CFG inside", fmt::format("sweep_K{}", k), ar, ac, di::PseudoHuberScore(cfg.c),
            di::CfgInside(di::AlphaCfg(ac)), k);
    }
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
      const auto x = evaluate(m, one_step(g), set, evaluator, reward_model, ref);
      fmt::print("{}: held-out accuracy {:.3f}, reward {:.3f}, FD {:.2f}, diversity {:.2f}\n", m.name, m.accuracy, m.reward, m.fd, m.diversity);
      rows.push_back(m);
      write_grid(fs::path(cfg.out) / ("samples_" + run.file + ".png"), x, cfg, m.name);
    }

    // Report: table, json, csv, and the reward-versus-FD plot across reward scales.
    std::vector<nlohmann::json> jrows;
    for (const auto& m : rows) jrows.push_back(to_json(m));
    report["rows"] = jrows;
    report["seconds_total"] = seconds_since(t_start);
    const std::string md = table(rows, teacher_ms);
    std::string report_text;
    const std::string suffix = sweep == "none" ? "" : "_sweep_" + sweep;  // a sweep never overwrites the main report
    {
      // Written atomically: a rerun or a kill never leaves a half-written report beside a complete one.
      const fs::path out(cfg.out);
      di::io::write_text_file_atomically((out / ("metrics" + suffix + ".json")).string(), report.dump(2) + "\n", "metrics.json");
      std::string csv = "name,method,steps,parameters,ms_per_image,accuracy,log_prob,reward,fd,diversity,alpha_rew,alpha_cfg,train_seconds\n";
      for (const auto& m : rows)
        csv += fmt::format("\"{}\",\"{}\",{},{},{},{},{},{},{},{},{},{},{}\n", m.name, m.method, m.steps, m.parameters, m.ms_per_image, m.accuracy,
                           m.log_prob, m.reward, m.fd, m.diversity, m.alpha_rew, m.alpha_cfg, m.train_seconds);
      di::io::write_text_file_atomically((out / ("metrics" + suffix + ".csv")).string(), csv, "metrics.csv");
      report_text = fmt::format("# Fashion-MNIST miniature ({})\n\nReward model test accuracy {:.3f}; held-out evaluator {:.3f}; test split "
                                "diversity {:.2f}. Total {:.0f} s.\n\n",
                                sweep == "none" ? "main table" : "sweep " + sweep, reward_acc, eval_acc, ref.test_diversity, seconds_since(t_start)) +
                    md;
      di::io::write_text_file_atomically((out / ("report" + suffix + ".md")).string(), report_text, "report.md");
    }
    if (sweep == "none" || sweep == "seeds") {
      // Reward against FD across reward scales, one point per (family, alpha_rew): the mean over the
      // runs there are (one in the main table, three in the seeds sweep) with +- one standard
      // deviation as bars, each point labelled with its alpha_rew.
      std::vector<di::ErrorBarSeries> series;
      std::string spread = "\n## Mean and spread over runs\n\n| family | a_rew | runs | held-out acc | held-out log p | reward | FD | diversity |\n"
                           "|---|---|---|---|---|---|---|---|\n";
      for (const std::string family : {"DI*-in", "DI++"}) {
        di::ErrorBarSeries s;
        s.label = family + (sweep == "seeds" ? " (mean +- sd of 3 runs)" : "");
        s.rgb = family == "DI++" ? std::array<float, 3>{0.85f, 0.35f, 0.1f} : std::array<float, 3>{0.12f, 0.35f, 0.75f};
        std::map<double, std::vector<const Metrics*>> by_alpha;
        for (const auto& m : rows)
          if (m.name.rfind(family + ",", 0) == 0 || m.name == family) {
            if (m.alpha_rew > 0 && m.alpha_cfg == ac) by_alpha[m.alpha_rew].push_back(&m);
          }
        for (const auto& [a, ms] : by_alpha) {
          auto stat = [&](auto field) {
            double mean = 0, sq = 0;
            for (auto* m : ms) mean += field(*m);
            mean /= double(ms.size());
            for (auto* m : ms) sq += (field(*m) - mean) * (field(*m) - mean);
            return std::make_pair(mean, ms.size() > 1 ? std::sqrt(sq / double(ms.size() - 1)) : 0.0);
          };
          const auto fd = stat([](const Metrics& m) { return m.fd; }), rew = stat([](const Metrics& m) { return m.reward; });
          const auto acc = stat([](const Metrics& m) { return m.accuracy; }), lp = stat([](const Metrics& m) { return m.log_prob; });
          const auto div = stat([](const Metrics& m) { return m.diversity; });
          s.points.push_back({fd.first, rew.first, fd.second, rew.second, fmt::format("a_rew={:.3g}", a)});
          spread += fmt::format("| {} | {:.3g} | {} | {:.3f} +- {:.3f} | {:.3f} +- {:.3f} | {:.3f} +- {:.3f} | {:.1f} +- {:.1f} | {:.2f} +- {:.2f} |\n",
                                family, a, ms.size(), acc.first, acc.second, lp.first, lp.second, rew.first, rew.second, fd.first, fd.second,
                                div.first, div.second);
        }
        series.push_back(s);
      }
      di::write_errorbar_png((fs::path(cfg.out) / ("reward_vs_fd" + suffix + ".png")).string(), series,
                             di::ErrorBarPlotOptions()
                                 .title(fmt::format("reward vs FD across reward scales (a_cfg = {:.3g})", ac))
                                 .x_title("FD to the test images, evaluator features (lower is better)")
                                 .y_title("reward-model log p(c | x), mean over prompts (higher is better)"));
      if (sweep == "seeds") {
        report_text += spread;
        di::io::write_text_file_atomically((fs::path(cfg.out) / ("report" + suffix + ".md")).string(), report_text, "report.md");
      }
    }
    fmt::print("\n{}\nwrote {}/report{}.md, metrics{}.json, metrics{}.csv and PNGs in {:.0f} s\n", md, cfg.out, suffix, suffix, suffix,
               seconds_since(t_start));
  } catch (const std::exception& e) {
    return di::report_error("03_fashion_mnist", e);
  }
  return 0;
}
