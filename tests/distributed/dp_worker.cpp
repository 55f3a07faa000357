// One rank of a small data-parallel DI* run (class-conditional 2-D mixture, MLPs, exact teacher),
// driven by the distributed tests through scripts/launch_local.sh. Rank 0 writes the final
// generator and assistant weights; --compare checks two such files against a tolerance.
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/distributed/data_parallel.hpp>
#include <diffinstruct/testing/gaussian_mixture.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdlib>

namespace di = diffinstruct;

namespace {

struct MlpImpl : torch::nn::Module {
  torch::nn::Sequential net;
  explicit MlpImpl(int64_t in)
      : net(torch::nn::Linear(in, 32), torch::nn::SiLU(), torch::nn::Linear(32, 32), torch::nn::SiLU(), torch::nn::Linear(32, 2)) {
    register_module("net", net);
  }
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& c) {  // generator
    return net->forward(torch::cat({z, torch::one_hot(c, 3).to(z.scalar_type())}, 1));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) {  // assistant
    return net->forward(torch::cat({x, t.unsqueeze(1), torch::one_hot(c, 3).to(x.scalar_type())}, 1));
  }
};
TORCH_MODULE(Mlp);

struct Teacher {  // the exact mixture score; the label shifts it so that CFG has something to do
  di::testing::GaussianMixture mixture = di::testing::GaussianMixture::ring();
  di::CosineVPSchedule schedule = di::CosineVPSchedule();
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) const {
    const auto shift = (c.to(x.scalar_type()) - 1).clamp(-1, 1).unsqueeze(1) * 0.3;
    return mixture.eps(x + shift, schedule.alpha(t), schedule.sigma(t));
  }
};

torch::Tensor flat_weights(Mlp& g, Mlp& a) {
  std::vector<torch::Tensor> all;
  for (auto& p : g->parameters()) all.push_back(p.detach().reshape(-1));
  for (auto& p : a->parameters()) all.push_back(p.detach().reshape(-1));
  return torch::cat(all);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"data-parallel DI* test worker"};
  int64_t steps = 6, batch = 8, save_at = -1, die_at = -1, timeout_ms = 20000, micro_batches = 1;
  std::string out, resume, checkpoint, file_store, backend = "gloo", resume_mode = "strict";
  std::vector<std::string> compare;
  double tol = 1e-5;
  app.add_option("--steps", steps);
  app.add_option("--batch", batch, "per-rank batch");
  app.add_option("--micro-batches", micro_batches, "gradient accumulation: micro-batches per update");
  app.add_option("--out", out, "rank 0 writes the final weights here");
  app.add_option("--checkpoint", checkpoint, "checkpoint path for --save-at");
  app.add_option("--save-at", save_at, "write a checkpoint after this many steps");
  app.add_option("--resume", resume, "resume from this checkpoint");
  app.add_option("--resume-mode", resume_mode, "strict, or live (keep this run's settings, e.g. another world size)")
      ->check(CLI::IsMember({"strict", "live"}));
  app.add_option("--die-at", die_at, "rank 1 exits abruptly before this step");
  app.add_option("--timeout-ms", timeout_ms);
  app.add_option("--file-store", file_store, "rendezvous through this file instead of TCP");
  app.add_option("--backend", backend, "gloo or nccl")->check(CLI::IsMember({"gloo", "nccl"}));
  app.add_option("--compare", compare, "two weight files to compare")->expected(2);
  app.add_option("--tol", tol);
  CLI11_PARSE(app, argc, argv);
  try {
    if (!compare.empty()) {
      torch::Tensor a, b;
      torch::load(a, compare[0]);
      torch::load(b, compare[1]);
      const double diff = (a - b).abs().max().item<double>();
      fmt::print("max |difference| = {:.3e} over {} weights (tolerance {:.1e})\n", diff, a.numel(), tol);
      return diff <= tol ? 0 : 1;
    }
    torch::manual_seed(1);
    Mlp gen(2 + 3), asst(2 + 1 + 3);
    using Trainer = di::DiStarTrainer<di::Generator<Mlp>, di::Denoiser<Teacher, di::EpsPrediction>, di::Denoiser<Mlp>, torch::Tensor,
                                      di::PseudoHuberScore, di::CfgInside, di::CallableReward<std::function<torch::Tensor(torch::Tensor, torch::Tensor)>>,
                                      di::CosineVPSchedule>;
    di::ConditionSource<torch::Tensor> conditions;
    conditions.sample = [](int64_t n, at::Generator& g) { return torch::randint(2, {n}, g, torch::kLong); };
    conditions.null_condition = torch::full({1}, 2, torch::kLong);
    Trainer trainer(di::Generator<Mlp>(gen), di::Denoiser<Teacher, di::EpsPrediction>(Teacher{}, "teacher"),
                    di::Denoiser<Mlp>(asst, "assistant"),
                    {di::PseudoHuberScore(1.0), di::CfgInside(di::AlphaCfg(1.0)),
                     di::CallableReward<std::function<torch::Tensor(torch::Tensor, torch::Tensor)>>(
                         [](torch::Tensor x, torch::Tensor) { return torch::sigmoid(3 * x.select(1, 0)); }),
                     di::CosineVPSchedule()},
                    conditions, std::vector<int64_t>{2},
                    di::DiStarTrainerOptions().batch_size(batch).micro_batches(micro_batches).alpha_rew(0.3).ema_decay(0.9).seed(7).generator_adam(
                        di::AdamSettings(1e-3)));
    auto dp = di::DataParallel::from_env(di::DataParallelOptions()
                                             .timeout(std::chrono::milliseconds(timeout_ms))
                                             .file_store(file_store)
                                             .backend(backend == "nccl" ? di::DistributedBackend::kNccl : di::DistributedBackend::kGloo));
    trainer.set_data_parallel(dp);
    if (!resume.empty()) trainer.load(resume, resume_mode == "live" ? di::ResumeMode::kKeepLiveOptions : di::ResumeMode::kRequireMatch);
    while (trainer.step_count() < steps) {
      if (dp->rank() == 1 && trainer.step_count() + 1 == die_at) {
        fmt::print(stderr, "rank 1: exiting abruptly before step {}\n", die_at);
        std::_Exit(3);
      }
      const auto s = trainer.step();
      if (dp->rank() == 0) fmt::print("step {}: L_div {:+.6f} DSM {:.6f} reward {:.6f}\n", s.step, s.divergence_loss, s.assistant_loss, s.mean_reward);
      if (s.step == save_at) trainer.save(checkpoint);
    }
    if (dp->rank() == 0 && !out.empty()) {
      auto w = flat_weights(gen, asst);
      torch::save(w, out);
    }
    fmt::print("rank {} of {}: done after {} steps, {:.3f} s in collectives\n", dp->rank(), dp->world_size(), trainer.step_count(),
               dp->collective_seconds());
  } catch (const c10::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
