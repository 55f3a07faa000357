// bench_trainer_step — one DI* iteration (one assistant update + one generator update; pseudo-Huber,
// c = 1, bounded reward, α_rew = 0.3, Adam, clipping at 1, no EMA) for the 2-D demo's MLPs
// (batch 256) and a small conv model (1×16×16, batch 64):
//   library     DiStarTrainer::step()
//   handwritten the same math written directly against LibTorch, no library abstractions
// bench_trainer_step.py runs this binary and the same loop in plain PyTorch (Python), side by side.
//
// Besides Google Benchmark's runs, two modes for finding where a step's time goes:
//   --case=NAME --steps=N           N steps of one case after 3 warm-up steps (for perf or callgrind:
//                                   run it at two N and subtract, and the set-up cancels)
//   --compare=A,B --rounds=R --steps=K
//                                   R rounds of K steps of A then K of B (the order alternating per
//                                   round), and the median of the per-round ratios A/B: a drift of the
//                                   machine's speed hits both cases of a round alike
#include "trainer_step_models.hpp"

#include <diffinstruct/util/error_report.hpp>
#include <diffinstruct/util/threads.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

namespace di = diffinstruct;

namespace {

constexpr double kAlphaRew = 0.3, kC = 1.0;
const di::CosineVPSchedule kSchedule;

using RewardFn = std::function<torch::Tensor(const torch::Tensor&)>;
using StepFn = std::function<double()>;  // one iteration; returns the generator's loss

std::vector<torch::Tensor> teacher_parameters(const bench::MixtureTeacher&) { return {}; }
std::vector<torch::Tensor> teacher_parameters(const bench::Conv& c) { return c->parameters(); }
torch::Tensor call_teacher(bench::MixtureTeacher& t, const torch::Tensor& x, const torch::Tensor& tt) { return t(x, tt); }
torch::Tensor call_teacher(bench::Conv& c, const torch::Tensor& x, const torch::Tensor& tt) { return c->forward(x, tt); }

template <class Gen, class Asst, class Teacher>
StepFn library_step(Gen gen, Asst asst, Teacher teacher, RewardFn reward, std::vector<int64_t> noise, int64_t batch,
                    bool check_weights = true) {
  using Trainer = di::DiStarTrainer<di::Generator<Gen>, di::Denoiser<Teacher>, di::Denoiser<Asst>, di::NoCondition, di::PseudoHuberScore,
                                    di::NoGuidance, di::CallableReward<RewardFn>, di::CosineVPSchedule>;
  auto trainer = std::make_shared<Trainer>(
      di::Generator<Gen>(gen), di::Denoiser<Teacher>(teacher), di::Denoiser<Asst>(asst),
      typename Trainer::Policies{di::PseudoHuberScore(kC), di::NoGuidance{}, di::CallableReward<RewardFn>(reward), kSchedule},
      di::ConditionSource<di::NoCondition>{}, noise,
      di::DiStarTrainerOptions().batch_size(batch).alpha_rew(kAlphaRew).ema_decay(0).check_weights(check_weights));
  return [trainer] { return trainer->step().generator_loss; };
}

// The same iteration by hand: what a user would write without the library.
template <class Gen, class Asst, class Teacher>
struct HandLoop {
  Gen gen;
  Asst asst;
  Teacher teacher;
  RewardFn reward;
  std::vector<int64_t> shape;
  torch::optim::Adam opt_g, opt_a;

  HandLoop(Gen g, Asst a, Teacher te, RewardFn r, const std::vector<int64_t>& noise, int64_t batch)
      : gen(g), asst(a), teacher(te), reward(std::move(r)), shape{batch},
        opt_g(gen->parameters(), torch::optim::AdamOptions(2e-4).betas({0.5, 0.999})),
        opt_a(asst->parameters(), torch::optim::AdamOptions(1e-3).betas({0.5, 0.999})) {
    for (auto& p : teacher_parameters(teacher)) p.requires_grad_(false);
    shape.insert(shape.end(), noise.begin(), noise.end());
  }
  torch::Tensor view(const torch::Tensor& v) const {
    std::vector<int64_t> s(shape.size(), 1);
    s[0] = shape[0];
    return v.view(s);
  }
  double operator()() {
    const int64_t batch = shape[0];
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
    // generator
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

template <class Gen, class Asst, class Teacher>
StepFn handwritten_step(Gen gen, Asst asst, Teacher teacher, RewardFn reward, std::vector<int64_t> noise, int64_t batch) {
  auto loop = std::make_shared<HandLoop<Gen, Asst, Teacher>>(gen, asst, teacher, std::move(reward), noise, batch);
  return [loop] { return (*loop)(); };
}

// Every case builds its models from seed 0. The *_unchecked cases are the library step without the
// pre-step weight check (check_weights(false)): its cost, side by side.
const std::vector<std::pair<std::string, std::function<StepFn()>>>& cases() {
  static const std::vector<std::pair<std::string, std::function<StepFn()>>> all = {
      {"mlp_library", [] { return library_step(bench::Mlp(2, 2), bench::Mlp(4, 2), bench::MixtureTeacher{}, bench::mlp_reward, {2}, 256); }},
      {"mlp_library_unchecked",
       [] { return library_step(bench::Mlp(2, 2), bench::Mlp(4, 2), bench::MixtureTeacher{}, bench::mlp_reward, {2}, 256, false); }},
      {"mlp_handwritten",
       [] { return handwritten_step(bench::Mlp(2, 2), bench::Mlp(4, 2), bench::MixtureTeacher{}, bench::mlp_reward, {2}, 256); }},
      {"conv_library", [] { return library_step(bench::Conv(1), bench::Conv(2), bench::Conv(2), bench::conv_reward, {1, 16, 16}, 64); }},
      {"conv_library_unchecked",
       [] { return library_step(bench::Conv(1), bench::Conv(2), bench::Conv(2), bench::conv_reward, {1, 16, 16}, 64, false); }},
      {"conv_handwritten",
       [] { return handwritten_step(bench::Conv(1), bench::Conv(2), bench::Conv(2), bench::conv_reward, {1, 16, 16}, 64); }},
  };
  return all;
}

StepFn make_case(const std::string& name) {
  for (const auto& [n, make] : cases()) {
    if (n == name) {
      torch::manual_seed(0);
      auto step = make();
      for (int i = 0; i < 3; ++i) step();  // warm-up
      return step;
    }
  }
  std::string known;
  for (const auto& c : cases()) known += " " + c.first;
  throw std::invalid_argument("bench_trainer_step: no case '" + name + "'; expected one of:" + known);
}

double time_steps(const StepFn& step, int64_t steps) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) benchmark::DoNotOptimize(step());
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / static_cast<double>(steps);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int run_steps(const std::string& name, int64_t steps) {
  auto step = make_case(name);
  std::printf("%s: %.3f ms per step over %lld steps\n", name.c_str(), time_steps(step, steps), static_cast<long long>(steps));
  return 0;
}

int run_compare(const std::string& a, const std::string& b, int64_t rounds, int64_t steps) {
  auto step_a = make_case(a), step_b = make_case(b);
  std::vector<double> ms_a, ms_b, ratio;
  for (int64_t r = 0; r < rounds; ++r) {
    double ta = 0, tb = 0;
    if (r % 2 == 0) {
      ta = time_steps(step_a, steps);
      tb = time_steps(step_b, steps);
    } else {
      tb = time_steps(step_b, steps);
      ta = time_steps(step_a, steps);
    }
    ms_a.push_back(ta);
    ms_b.push_back(tb);
    ratio.push_back(ta / tb);
  }
  const auto [lo, hi] = std::minmax_element(ratio.begin(), ratio.end());
  std::printf("{\"a\": \"%s\", \"b\": \"%s\", \"rounds\": %lld, \"steps_per_round\": %lld, \"a_ms\": %.4f, \"b_ms\": %.4f, "
              "\"ratio_median\": %.4f, \"ratio_min\": %.4f, \"ratio_max\": %.4f}\n",
              a.c_str(), b.c_str(), static_cast<long long>(rounds), static_cast<long long>(steps), median(ms_a), median(ms_b), median(ratio),
              *lo, *hi);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  int64_t steps = 0, rounds = 20;
  std::string one_case, compare;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) { return arg.substr(std::string(flag).size()); };
    if (arg.rfind("--threads=", 0) == 0) threads = std::stoi(value("--threads="));
    else if (arg.rfind("--steps=", 0) == 0) steps = std::stoll(value("--steps="));
    else if (arg.rfind("--rounds=", 0) == 0) rounds = std::stoll(value("--rounds="));
    else if (arg.rfind("--case=", 0) == 0) one_case = value("--case=");
    else if (arg.rfind("--compare=", 0) == 0) compare = value("--compare=");
    else rest.push_back(argv[i]);
  }
  const int used = di::use_threads(threads);
  try {
    if (!one_case.empty()) return run_steps(one_case, steps > 0 ? steps : 20);
    if (!compare.empty()) {
      const auto comma = compare.find(',');
      if (comma == std::string::npos) throw std::invalid_argument("bench_trainer_step: --compare expects A,B; got '" + compare + "'");
      return run_compare(compare.substr(0, comma), compare.substr(comma + 1), rounds, steps > 0 ? steps : 10);
    }
  } catch (const std::exception& e) {
    di::report_error("bench_trainer_step", e);
    return 2;
  }
  benchmark::AddCustomContext("torch_threads", std::to_string(used));
  for (const auto& [name, make] : cases()) {
    benchmark::RegisterBenchmark(name.c_str(), [name = name](benchmark::State& state) {
      auto step = make_case(name);
      for (auto _ : state) benchmark::DoNotOptimize(step());
    })->Unit(benchmark::kMillisecond)->MinTime(2.0);
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
