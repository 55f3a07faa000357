// bench_trainer_step — one DI* iteration (one assistant update + one generator update; pseudo-Huber,
// c = 1, bounded reward, α_rew = 0.3, Adam, clipping at 1, no EMA) for the 2-D demo's MLPs
// (batch 256) and a small conv model (1×16×16, batch 64):
//   library     DiStarTrainer::step()
//   handwritten the same math written directly against LibTorch, no library abstractions
// bench_trainer_step.py runs this binary and the same loop in plain PyTorch (Python), side by side.
#include "trainer_step_models.hpp"

#include <diffinstruct/util/threads.hpp>

#include <benchmark/benchmark.h>

namespace di = diffinstruct;

namespace {

constexpr double kAlphaRew = 0.3, kC = 1.0;
const di::CosineVPSchedule kSchedule;

using RewardFn = std::function<torch::Tensor(const torch::Tensor&)>;

std::vector<torch::Tensor> teacher_parameters(const bench::MixtureTeacher&) { return {}; }
std::vector<torch::Tensor> teacher_parameters(const bench::Conv& c) { return c->parameters(); }
torch::Tensor call_teacher(bench::MixtureTeacher& t, const torch::Tensor& x, const torch::Tensor& tt) { return t(x, tt); }
torch::Tensor call_teacher(bench::Conv& c, const torch::Tensor& x, const torch::Tensor& tt) { return c->forward(x, tt); }

template <class Gen, class Asst, class Teacher>
void library_step(benchmark::State& state, Gen gen, Asst asst, Teacher teacher, RewardFn reward, std::vector<int64_t> noise, int64_t batch,
                  bool check_weights = true) {
  using Trainer = di::DiStarTrainer<di::Generator<Gen>, di::Denoiser<Teacher>, di::Denoiser<Asst>, di::NoCondition, di::PseudoHuberScore,
                                    di::NoGuidance, di::CallableReward<RewardFn>, di::CosineVPSchedule>;
  Trainer trainer(di::Generator<Gen>(gen), di::Denoiser<Teacher>(teacher), di::Denoiser<Asst>(asst),
                  {di::PseudoHuberScore(kC), di::NoGuidance{}, di::CallableReward<RewardFn>(reward), kSchedule}, {}, noise,
                  di::DiStarTrainerOptions().batch_size(batch).alpha_rew(kAlphaRew).ema_decay(0).check_weights(check_weights));
  for (int i = 0; i < 3; ++i) trainer.step();  // warm-up
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step().generator_loss);
}

// The same iteration by hand: what a user would write without the library.
template <class Gen, class Asst, class Teacher>
void handwritten_step(benchmark::State& state, Gen gen, Asst asst, Teacher teacher, RewardFn reward, std::vector<int64_t> noise, int64_t batch) {
  for (auto& p : teacher_parameters(teacher)) p.requires_grad_(false);
  torch::optim::Adam opt_g(gen->parameters(), torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}));
  torch::optim::Adam opt_a(asst->parameters(), torch::optim::AdamOptions(1e-3).betas({0.5, 0.999}));
  std::vector<int64_t> shape{batch};
  shape.insert(shape.end(), noise.begin(), noise.end());
  auto view = [&](const torch::Tensor& v) {
    std::vector<int64_t> s(shape.size(), 1);
    s[0] = batch;
    return v.view(s);
  };
  auto one = [&] {
    {  // assistant
      torch::Tensor x0;
      {
        torch::NoGradGuard ng;
        x0 = gen->forward(torch::randn(shape));
      }
      const auto t = torch::rand({batch}) * 0.96 + 0.02;
      const auto eps = torch::randn(shape);
      const auto x_t = view(kSchedule.alpha(t)) * x0 + view(kSchedule.sigma(t)) * eps;
      const auto loss = (asst->forward(x_t, t) - eps).pow(2).reshape({batch, -1}).sum(1).mean();
      opt_a.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(asst->parameters(), 1.0);
      opt_a.step();
    }
    {  // generator
      const auto x0 = gen->forward(torch::randn(shape));
      const auto t = torch::rand({batch}) * 0.96 + 0.02;
      const auto eps = torch::randn(shape);
      const auto s = view(kSchedule.sigma(t));
      const auto x_t = view(kSchedule.alpha(t)) * x0 + s * eps;
      const auto a = asst->forward(x_t, t);
      const auto b = call_teacher(teacher, x_t, t);
      const auto y = (b - a) / s, g = (a - eps) / s;
      const auto w = kSchedule.sigma(t).pow(2);
      const auto div = w * (y * g).reshape({batch, -1}).sum(1) / torch::sqrt(y.pow(2).reshape({batch, -1}).sum(1) + kC * kC);
      const torch::Tensor loss = (div - kAlphaRew * reward(x0)).mean();
      const auto params = gen->parameters();
      const auto grads = torch::autograd::grad({loss}, params);
      for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = grads[i];
      torch::nn::utils::clip_grad_norm_(params, 1.0);
      opt_g.step();
      return loss.item<double>();
    }
  };
  for (int i = 0; i < 3; ++i) one();
  for (auto _ : state) benchmark::DoNotOptimize(one());
}

void mlp_library(benchmark::State& s) {
  torch::manual_seed(0);
  library_step(s, bench::Mlp(2, 2), bench::Mlp(4, 2), bench::MixtureTeacher{}, bench::mlp_reward, {2}, 256);
}
void mlp_handwritten(benchmark::State& s) {
  torch::manual_seed(0);
  handwritten_step(s, bench::Mlp(2, 2), bench::Mlp(4, 2), bench::MixtureTeacher{}, bench::mlp_reward, {2}, 256);
}
void conv_library(benchmark::State& s) {
  torch::manual_seed(0);
  library_step(s, bench::Conv(1), bench::Conv(2), bench::Conv(2), bench::conv_reward, {1, 16, 16}, 64);
}
// The same library step without the pre-step weight check (check_weights(false)): its cost, side by side.
void mlp_library_unchecked(benchmark::State& s) {
  torch::manual_seed(0);
  library_step(s, bench::Mlp(2, 2), bench::Mlp(4, 2), bench::MixtureTeacher{}, bench::mlp_reward, {2}, 256, false);
}
void conv_library_unchecked(benchmark::State& s) {
  torch::manual_seed(0);
  library_step(s, bench::Conv(1), bench::Conv(2), bench::Conv(2), bench::conv_reward, {1, 16, 16}, 64, false);
}
void conv_handwritten(benchmark::State& s) {
  torch::manual_seed(0);
  handwritten_step(s, bench::Conv(1), bench::Conv(2), bench::Conv(2), bench::conv_reward, {1, 16, 16}, 64);
}

}  // namespace

BENCHMARK(mlp_library)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(mlp_library_unchecked)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(mlp_handwritten)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(conv_library)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(conv_library_unchecked)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(conv_handwritten)->Unit(benchmark::kMillisecond)->MinTime(2.0);

int main(int argc, char** argv) {
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--threads=", 0) == 0) threads = std::stoi(arg.substr(10));
  }
  benchmark::AddCustomContext("torch_threads", std::to_string(di::use_threads(threads)));
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i)
    if (std::string(argv[i]).rfind("--threads=", 0) != 0) rest.push_back(argv[i]);
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
