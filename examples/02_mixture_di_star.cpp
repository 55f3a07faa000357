// 02 — DI* end to end on a problem whose teacher is known exactly: a mixture of 8 Gaussians
// (radius 2, std 0.1) whose diffused score is exact at every t (docs/math.md §5).
//
//   1. teacher:    the exact mixture score; reference samples by 50-step DDIM
//   2. init:       a one-step MLP generator regressed onto (z, x0) DDIM pairs (DMD's ODE pairs), then
//                  distilled with pseudo-Huber score distillation and no reward (SIM)
//   3. post-train: from that start, DI* with a bounded reward r(x) = sigmoid(3 x₀) (prefers the right
//                  half-plane), for pseudo-Huber, squared L2 and KL, at several reward scales α_rew
//   4. report:     mean reward, mass per mode, modes covered, mode entropy, off-support fraction;
//                  scatter plots (PNG) of teacher, init and every variant; metrics.json and .csv
// With --reward linear the reward is r(x) = x₀ (unbounded), which shows the runaway of bounded
// regularisers (docs/findings.md §4): runaway.png tracks the mean distance from the origin per step.

#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/util/error_report.hpp>
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/util/threads.hpp>
#include <diffinstruct/eval/ddim_sampler.hpp>
#include <diffinstruct/testing/gaussian_mixture.hpp>
#include <diffinstruct/trainer/regression.hpp>
#include <diffinstruct/util/line_plot_png.hpp>
#include <diffinstruct/util/progress_bar.hpp>
#include <diffinstruct/util/scatter_png.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace di = diffinstruct;
namespace dt = diffinstruct::testing;
namespace fs = std::filesystem;

namespace {

struct MlpImpl : torch::nn::Module {
  torch::nn::Sequential net;
  MlpImpl(int64_t in, int64_t out, int64_t hidden)
      : net(torch::nn::Linear(in, hidden), torch::nn::SiLU(), torch::nn::Linear(hidden, hidden), torch::nn::SiLU(),
            torch::nn::Linear(hidden, hidden), torch::nn::SiLU(), torch::nn::Linear(hidden, out)) {
    register_module("net", net);
  }
  torch::Tensor forward(const torch::Tensor& z) { return net->forward(z); }                                   // generator
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t) {                                   // assistant
    return net->forward(torch::cat({x_t, torch::sin(M_PI * t).unsqueeze(1), torch::cos(M_PI * t).unsqueeze(1)}, 1));
  }
};
TORCH_MODULE(Mlp);

struct ExactTeacher {
  dt::GaussianMixture mixture;
  di::CosineVPSchedule schedule = di::CosineVPSchedule();
  torch::Tensor operator()(const torch::Tensor& x_t, const torch::Tensor& t) const {
    return mixture.eps(x_t, schedule.alpha(t), schedule.sigma(t));
  }
};

using RewardFn = std::function<torch::Tensor(const torch::Tensor&)>;
using Teacher = di::Denoiser<ExactTeacher, di::EpsPrediction>;

struct Config {
  int64_t regression_steps = 2000, distill_steps = 1500, steps = 1500, batch = 256, hidden = 128, k = 1, eval = 8192, seed = 0;
  double c = 1.0, lr_gen = 2e-4, lr_asst = 1e-3;
  std::vector<double> alphas{0.1, 0.3, 1.0};
  std::vector<std::string> divergences{"pseudo_huber", "squared_l2", "kl"};
  std::string reward = "sigmoid", out = "out/mixture";
};

struct Variant {
  std::string name, divergence;
  double alpha_rew = 0;
  double mean_reward = 0;
  dt::GaussianMixture::ModeStats stats;
  double seconds = 0;
  std::vector<double> runaway;  // mean ‖x‖ per step (linear reward only)
};

template <class Divergence>
Variant post_train(const std::string& label, Divergence div, double alpha_rew, const Config& cfg, const Mlp& init_gen,
                   const Mlp& init_asst, const ExactTeacher& exact, const RewardFn& reward, const torch::Tensor& eval_z,
                   const std::string& progress_label) {
  Mlp gen(2, 2, cfg.hidden), asst(4, 2, cfg.hidden);
  di::copy_state(init_gen, gen);
  di::copy_state(init_asst, asst);
  using Trainer = di::DiStarTrainer<di::Generator<Mlp>, Teacher, di::Denoiser<Mlp>, di::NoCondition, Divergence, di::NoGuidance,
                                    di::CallableReward<RewardFn>, di::CosineVPSchedule>;
  Trainer trainer(di::Generator<Mlp>(gen), Teacher(exact, "teacher"), di::Denoiser<Mlp>(asst, "assistant"),
                  {div, di::NoGuidance{}, di::CallableReward<RewardFn>(reward), exact.schedule}, {}, std::vector<int64_t>{2},
                  di::DiStarTrainerOptions()
                      .batch_size(cfg.batch)
                      .assistant_steps(cfg.k)
                      .alpha_rew(alpha_rew)
                      .generator_adam(di::AdamSettings(cfg.lr_gen))
                      .assistant_adam(di::AdamSettings(cfg.lr_asst))
                      .ema_decay(0)
                      .seed(static_cast<uint64_t>(cfg.seed) + 17));
  Variant v;
  v.name = label;
  v.divergence = Divergence::name;
  v.alpha_rew = alpha_rew;
  di::ProgressBar bar(progress_label, cfg.steps);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < cfg.steps; ++i) {
    const di::StepStats s = trainer.step();
    if (cfg.reward == "linear") {
      const torch::Tensor probe = trainer.sample(eval_z.slice(0, 0, 512), di::NoCondition{});
      v.runaway.push_back(probe.norm(2, 1).mean().item<double>());
    }
    if (i % 25 == 0 || i + 1 == cfg.steps)
      bar.update(i + 1, fmt::format("reward {:+.3f}  L_div {:+.4f}  DSM {:.3f}  |g| {:.2f}  skipped {}", s.mean_reward, s.divergence_loss,
                                    s.assistant_loss, s.generator_grad_norm, trainer.non_finite_total()));
  }
  bar.finish();
  v.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const torch::Tensor x = trainer.sample(eval_z, di::NoCondition{});
  const torch::Tensor r = reward(x);
  v.mean_reward = r.mean().item<double>();
  v.stats = exact.mixture.mode_stats(x);
  di::write_scatter_png((fs::path(cfg.out) / (label + ".png")).string(), {{x}},
                        di::ScatterPlotOptions().title(fmt::format("{} a_rew={} reward {:.3f}", Divergence::name, alpha_rew, v.mean_reward)));
  return v;
}

nlohmann::json to_json(const Variant& v) {
  return {{"name", v.name},           {"divergence", v.divergence},         {"alpha_rew", v.alpha_rew},
          {"mean_reward", v.mean_reward}, {"mass_per_mode", v.stats.mass},   {"modes_covered", v.stats.covered},
          {"mode_entropy", v.stats.entropy}, {"off_support", v.stats.off_support}, {"seconds", v.seconds}};
}

}  // namespace

static int run(int argc, char** argv) {
  CLI::App app{"DI* end to end on an 8-Gaussian mixture with an exact teacher"};
  Config cfg;
  app.add_option("--regression-steps", cfg.regression_steps, "steps regressing the generator onto DDIM (z, x0) pairs")->check(CLI::Range(0, 1000000));
  app.add_option("--distill-steps", cfg.distill_steps, "steps of reward-free pseudo-Huber distillation (SIM) after regression")->check(CLI::Range(0, 1000000));
  app.add_option("--steps", cfg.steps, "DI* post-training steps per variant")->check(CLI::Range(1, 1000000));
  app.add_option("--batch", cfg.batch, "batch size")->check(CLI::Range(1, 1 << 20));
  app.add_option("--hidden", cfg.hidden, "MLP width")->check(CLI::Range(4, 4096));
  app.add_option("--c", cfg.c, "pseudo-Huber c")->check(CLI::PositiveNumber);
  app.add_option("--alpha-rew", cfg.alphas, "reward scales to post-train at (comma-separated)")->delimiter(',')->check(CLI::NonNegativeNumber);
  app.add_option("--divergences", cfg.divergences, "divergences to compare (pseudo_huber, squared_l2, kl)")
      ->delimiter(',')
      ->check(CLI::IsMember({"pseudo_huber", "squared_l2", "kl"}));
  app.add_option("--K", cfg.k, "assistant updates per generator update")->check(CLI::Range(1, 100));
  app.add_option("--lr-gen", cfg.lr_gen, "generator learning rate")->check(CLI::PositiveNumber);
  app.add_option("--lr-asst", cfg.lr_asst, "assistant learning rate")->check(CLI::PositiveNumber);
  app.add_option("--reward", cfg.reward, "sigmoid (bounded) or linear (unbounded, shows runaway)")->check(CLI::IsMember({"sigmoid", "linear"}));
  app.add_option("--eval-samples", cfg.eval, "samples for the metrics and plots")->check(CLI::Range(256, 1 << 22));
  app.add_option("--seed", cfg.seed, "random seed")->check(CLI::NonNegativeNumber);
  app.add_option("--out", cfg.out, "output folder (created)");
  // One thread by default: these models are tiny, and OpenMP's per-op synchronisation costs more than it
  // saves (measured here: 65 s with 1 thread, 253 s with 2, same run).
  int threads = 1;
  app.add_option("--threads", threads, "intra-op threads (0: OMP_NUM_THREADS if set, else every core)")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  threads = di::use_threads(threads);

  std::error_code ec;
  fs::create_directories(cfg.out, ec);
  if (ec || !fs::is_directory(cfg.out)) {
    fmt::print(stderr, "error: cannot create output folder '{}': {}\n", cfg.out, ec.message());
    return 2;
  }
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  const ExactTeacher exact{dt::GaussianMixture::ring(), di::CosineVPSchedule()};
  Teacher teacher(exact, "teacher");
  const RewardFn reward = cfg.reward == "sigmoid" ? RewardFn([](const torch::Tensor& x) { return torch::sigmoid(3 * x.select(1, 0)); })
                                                  : RewardFn([](const torch::Tensor& x) { return x.select(1, 0); });
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(cfg.seed));
  const auto eval_z = torch::randn({cfg.eval, 2}, gen);
  const di::TimeRange range{0.0, 0.98};
  nlohmann::json report;
  report["config"] = {{"regression_steps", cfg.regression_steps}, {"distill_steps", cfg.distill_steps}, {"steps", cfg.steps},
                      {"batch", cfg.batch}, {"hidden", cfg.hidden}, {"c", cfg.c}, {"K", cfg.k}, {"lr_gen", cfg.lr_gen},
                      {"lr_asst", cfg.lr_asst}, {"reward", cfg.reward}, {"seed", cfg.seed}, {"eval_samples", cfg.eval}, {"threads", threads}};

  // 1. Teacher: 50-step DDIM from the exact score.
  const auto teacher_x = di::ddim_sample(teacher, exact.schedule, eval_z, di::NoCondition{}, di::NoCondition{}, range);
  const auto teacher_stats = exact.mixture.mode_stats(teacher_x);
  di::write_scatter_png((fs::path(cfg.out) / "teacher.png").string(), {{teacher_x}},
                        di::ScatterPlotOptions().title("teacher: 50-step DDIM, exact score"));
  fmt::print("threads: {}\n", threads);
  fmt::print("teacher (DDIM 50): reward {:.3f}, modes {}, off-support {:.1f}%\n", reward(teacher_x).mean().item<double>(),
             teacher_stats.covered, 100 * teacher_stats.off_support);

  // 2. Initial generator: regression onto ODE pairs, then reward-free distillation (SIM).
  Mlp init_gen(2, 2, cfg.hidden), init_asst(4, 2, cfg.hidden);
  {
    const auto pairs_z = torch::randn({16384, 2}, gen);
    const auto pairs_x0 = di::ddim_sample(teacher, exact.schedule, pairs_z, di::NoCondition{}, di::NoCondition{}, range);
    di::Generator<Mlp> g(init_gen);
    di::ProgressBar bar("regression", cfg.regression_steps);
    di::regress_generator(g, pairs_z, di::NoCondition{}, pairs_x0,
                          di::RegressionOptions().steps(cfg.regression_steps).batch_size(cfg.batch).seed(static_cast<uint64_t>(cfg.seed)),
                          [&](int64_t step, double loss) {
                            if (step % 50 == 0 || step + 1 == cfg.regression_steps) bar.update(step + 1, fmt::format("mse {:.4f}", loss));
                          });
    bar.finish();
  }
  const auto regressed_x = [&] {
    torch::NoGradGuard ng;
    return init_gen->forward(eval_z);
  }();
  di::write_scatter_png((fs::path(cfg.out) / "regressed.png").string(), {{regressed_x}},
                        di::ScatterPlotOptions().title("generator after ODE-pair regression"));
  // Reward-free pseudo-Huber distillation (SIM) from the regressed generator; the assistant starts
  // fresh and tracks the generator online.
  Mlp start_gen(2, 2, cfg.hidden), start_asst(4, 2, cfg.hidden);
  di::copy_state(init_gen, start_gen);
  di::copy_state(init_asst, start_asst);
  {
    using Trainer = di::DiStarTrainer<di::Generator<Mlp>, Teacher, di::Denoiser<Mlp>, di::NoCondition, di::PseudoHuberScore,
                                      di::NoGuidance, di::NoReward, di::CosineVPSchedule>;
    Trainer t(di::Generator<Mlp>(start_gen), Teacher(exact, "teacher"), di::Denoiser<Mlp>(start_asst, "assistant"),
              {di::PseudoHuberScore(cfg.c), di::NoGuidance{}, di::NoReward{}, exact.schedule}, {}, std::vector<int64_t>{2},
              di::DiStarTrainerOptions()
                  .batch_size(cfg.batch)
                  .assistant_steps(cfg.k)
                  .ema_decay(0)
                  .generator_adam(di::AdamSettings(cfg.lr_gen))
                  .assistant_adam(di::AdamSettings(cfg.lr_asst))
                  .seed(static_cast<uint64_t>(cfg.seed) + 17));
    struct Progress {
      di::ProgressBar bar;
      int64_t total;
      void on_step_end(const di::StepStats& s) {
        if (s.step % 25 == 0 || s.step == total)
          bar.update(s.step, fmt::format("L_div {:+.4f}  DSM {:.3f}  |g| {:.2f}", s.divergence_loss, s.assistant_loss, s.generator_grad_norm));
      }
    } progress{di::ProgressBar("distill (SIM)", cfg.distill_steps), cfg.distill_steps};
    t.fit(cfg.distill_steps, progress);
    progress.bar.finish();
  }
  const auto init_x = [&] {
    torch::NoGradGuard ng;
    return start_gen->forward(eval_z);
  }();
  Variant init;
  init.name = "initial";
  init.divergence = "-";
  init.mean_reward = reward(init_x).mean().item<double>();
  init.stats = exact.mixture.mode_stats(init_x);
  report["teacher"] = {{"mean_reward", reward(teacher_x).mean().item<double>()}, {"mass_per_mode", teacher_stats.mass},
                       {"modes_covered", teacher_stats.covered}, {"mode_entropy", teacher_stats.entropy},
                       {"off_support", teacher_stats.off_support}};
  report["initial"] = to_json(init);

  // 3. Post-training variants.
  std::vector<Variant> variants;
  for (const auto& name : cfg.divergences) {
    for (double a : cfg.alphas) {
      const auto label = fmt::format("{}_a{}", name, a);
      const auto tag = fmt::format("{} a={}", name, a);
      if (name == "pseudo_huber") variants.push_back(post_train(label, di::PseudoHuberScore(cfg.c), a, cfg, start_gen, start_asst, exact, reward, eval_z, tag));
      else if (name == "squared_l2") variants.push_back(post_train(label, di::SquaredL2Score(), a, cfg, start_gen, start_asst, exact, reward, eval_z, tag));
      else variants.push_back(post_train(label, di::KL(), a, cfg, start_gen, start_asst, exact, reward, eval_z, tag));
    }
  }
  di::write_scatter_png((fs::path(cfg.out) / "initial.png").string(), {{init_x}},
                        di::ScatterPlotOptions().title(fmt::format("initial generator  reward {:.3f}", init.mean_reward)));

  // 4. Report.
  fmt::print("\n{:<22} {:>8} {:>8} {:>7} {:>8} {:>9}   mass per mode (%)\n", "model", "alpha", "reward", "modes", "entropy", "off-supp");
  auto row = [&](const std::string& name, const std::string& alpha, double r, const dt::GaussianMixture::ModeStats& s) {
    std::string mass;
    for (double m : s.mass) mass += fmt::format("{:5.1f}", 100 * m);
    fmt::print("{:<22} {:>8} {:>8.3f} {:>7} {:>8.3f} {:>8.1f}%  {}\n", name, alpha, r, s.covered, s.entropy, 100 * s.off_support, mass);
  };
  row("teacher (DDIM 50)", "-", report["teacher"]["mean_reward"].get<double>(), teacher_stats);
  row("initial (reg.+SIM)", "0", init.mean_reward, init.stats);
  report["variants"] = nlohmann::json::array();
  std::string csv = "name,divergence,alpha_rew,mean_reward,modes_covered,mode_entropy,off_support,seconds\n";
  for (const auto& v : variants) {
    row(v.name, fmt::format("{}", v.alpha_rew), v.mean_reward, v.stats);
    report["variants"].push_back(to_json(v));
    csv += fmt::format("{},{},{},{:.5f},{},{:.5f},{:.5f},{:.2f}\n", v.name, v.divergence, v.alpha_rew, v.mean_reward, v.stats.covered,
                       v.stats.entropy, v.stats.off_support, v.seconds);
  }
  di::io::write_text_file_atomically((fs::path(cfg.out) / "metrics.csv").string(), csv, "metrics.csv");
  di::io::write_text_file_atomically((fs::path(cfg.out) / "metrics.json").string(), report.dump(2) + "\n", "metrics.json");

  // Reward versus mode entropy across α_rew, one curve per divergence: compare at matched reward.
  std::vector<di::LineSeries> curves;
  const std::array<std::array<float, 3>, 6> colors{{{0.85f, 0.2f, 0.15f}, {0.15f, 0.5f, 0.2f}, {0.15f, 0.3f, 0.8f},
                                                    {0.9f, 0.6f, 0.1f}, {0.55f, 0.2f, 0.7f}, {0.1f, 0.65f, 0.7f}}};
  for (size_t d = 0; d < cfg.divergences.size(); ++d) {
    di::LineSeries s;
    s.label = cfg.divergences[d];
    s.rgb = colors[d % 3];
    for (const auto& v : variants)
      if (v.name.rfind(cfg.divergences[d] + "_", 0) == 0) {
        s.x.push_back(v.mean_reward);
        s.y.push_back(v.stats.entropy);
      }
    curves.push_back(s);
  }
  di::write_line_png((fs::path(cfg.out) / "reward_vs_entropy.png").string(), curves,
                     di::LinePlotOptions().title("mode entropy (y) vs mean reward (x), across alpha_rew"));
  if (cfg.reward == "linear") {
    std::vector<di::LineSeries> runs;
    for (size_t i = 0; i < variants.size(); ++i) {
      di::LineSeries s;
      s.label = variants[i].name;
      s.rgb = colors[i % colors.size()];
      for (size_t k = 0; k < variants[i].runaway.size(); ++k) {
        s.x.push_back(double(k + 1));
        s.y.push_back(variants[i].runaway[k]);
      }
      runs.push_back(s);
    }
    di::write_line_png((fs::path(cfg.out) / "runaway.png").string(), runs,
                       di::LinePlotOptions().title("linear reward: mean |x| per step (log)").log_y(true));
  }
  fmt::print("\nwrote {}/: teacher.png regressed.png initial.png <variant>.png reward_vs_entropy.png metrics.json metrics.csv{}\n", cfg.out,
             cfg.reward == "linear" ? " runaway.png" : "");
  return 0;
}

int main(int argc, char** argv) {
  return diffinstruct::run_program("02_mixture_di_star", [&] { return run(argc, argv); });
}
