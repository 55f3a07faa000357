// 04 — models from Python, post-trained in C++. examples/torchscript/export_models.py trains a small
// diffusion model (the teacher) on the 8-Gaussian ring, regresses a one-step generator onto its
// DDIM samples, defines a reward, and saves all three as TorchScript. This program loads them with
// diffinstruct::load_torchscript, uses a second copy of the teacher as the assistant (trainable),
// runs DI* (pseudo-Huber, reward r(x) = sigmoid(3 x_0)), reports reward and mode coverage before and
// after against the exact ring, and saves the post-trained generator as TorchScript for Python.
//
//   /usr/bin/python3 examples/torchscript/export_models.py --out out/torchscript
//   ./build/examples/04_torchscript_models --models out/torchscript
#include <diffinstruct/util/error_report.hpp>
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/testing/gaussian_mixture.hpp>
#include <diffinstruct/util/progress_bar.hpp>
#include <diffinstruct/util/threads.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>

namespace di = diffinstruct;
namespace fs = std::filesystem;
using Script = torch::jit::Module;

int main(int argc, char** argv) {
  CLI::App app{"DI* post-training of TorchScript models exported from Python"};
  std::string models = "out/torchscript";
  int64_t steps = 600, batch = 256;
  double alpha_rew = 0.3, c = 1.0;
  app.add_option("--models", models, "folder with generator.pt, teacher.pt and reward.pt (export_models.py)")->capture_default_str();
  app.add_option("--steps", steps, "DI* steps")->check(CLI::Range(1, 10000000));
  app.add_option("--batch", batch, "batch size")->check(CLI::Range(1, 1 << 20));
  app.add_option("--alpha-rew", alpha_rew, "reward scale")->check(CLI::NonNegativeNumber);
  app.add_option("--c", c, "pseudo-Huber c")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  di::use_threads(1);
  try {
    const auto path = [&](const char* name) { return (fs::path(models) / name).string(); };
    Script generator = di::load_torchscript(path("generator.pt"), di::ModelRole::kGenerator);
    Script teacher = di::load_torchscript(path("teacher.pt"), di::ModelRole::kDenoiser);
    Script assistant = di::load_torchscript(path("teacher.pt"), di::ModelRole::kDenoiser);  // its own copy: trained online
    Script reward = di::load_torchscript(path("reward.pt"), di::ModelRole::kReward);

    const auto ring = di::testing::GaussianMixture::ring();
    torch::manual_seed(0);
    const auto eval_z = torch::randn({8192, 2});
    auto report = [&](const char* label, const torch::Tensor& x) {
      const auto stats = ring.mode_stats(x);
      const double r = reward.forward({x}).toTensor().mean().item<double>();
      fmt::print("{:<22} reward {:.3f}  modes {}  entropy {:.3f}  off-support {:.1f}%\n", label, r, stats.covered, stats.entropy,
                 100 * stats.off_support);
    };
    {
      torch::NoGradGuard no_grad;
      report("generator (exported)", generator.forward({eval_z}).toTensor());
    }
    using Trainer = di::DiStarTrainer<di::Generator<Script>, di::Denoiser<Script>, di::Denoiser<Script>, di::NoCondition,
                                      di::PseudoHuberScore, di::NoGuidance, di::ModuleReward<Script>, di::CosineVPSchedule>;
    Trainer trainer(di::Generator<Script>(generator), di::Denoiser<Script>(teacher, "teacher"), di::Denoiser<Script>(assistant, "assistant"),
                    {di::PseudoHuberScore(c), di::NoGuidance{}, di::ModuleReward<Script>(reward), di::CosineVPSchedule()}, {},
                    std::vector<int64_t>{2},
                    di::DiStarTrainerOptions().batch_size(batch).alpha_rew(alpha_rew).ema_decay(0).generator_adam(di::AdamSettings(2e-4)));
    di::ProgressBar bar("DI* on TorchScript", steps);
    for (int64_t i = 0; i < steps; ++i) {
      const auto s = trainer.step();
      if (i % 25 == 0 || i + 1 == steps) bar.update(i + 1, fmt::format("reward {:.3f}  L_div {:+.4f}", s.mean_reward, s.divergence_loss));
    }
    bar.finish();
    report("after DI*", trainer.sample(eval_z, di::NoCondition{}));
    const auto out = path("generator_post_trained.pt");
    generator.save(out);
    fmt::print("wrote {} (torch.jit.load it in Python)\n", out);
  } catch (const std::exception& e) {
    return di::report_error("04_torchscript_models", e);
  }
  return 0;
}
