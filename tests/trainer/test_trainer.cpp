// The DI* trainer (docs/math.md §4): it learns, it is deterministic, it resumes exactly, it never touches
// frozen models, it drops non-finite updates, it validates its options.
#include "../tensor_compare.hpp"
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/testing/gaussian_mixture.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>

namespace di = diffinstruct;
namespace dt = diffinstruct::testing;

namespace {

struct MlpImpl : torch::nn::Module {
  torch::nn::Sequential net;
  MlpImpl(int64_t in, int64_t out, int64_t hidden = 64)
      : net(torch::nn::Linear(in, hidden), torch::nn::SiLU(), torch::nn::Linear(hidden, hidden), torch::nn::SiLU(),
            torch::nn::Linear(hidden, out)) {
    register_module("net", net);
  }
  int64_t generator_calls = 0;  // forwards as a generator (one input)
  torch::Tensor forward(const torch::Tensor& z) {
    ++generator_calls;
    return net->forward(z);
  }
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t) {
    return net->forward(torch::cat({x_t, t.unsqueeze(1)}, 1));
  }
};
TORCH_MODULE(Mlp);

// The exact mixture teacher under the cosine schedule; t ∈ [0, 1].
struct MixtureTeacher {
  dt::GaussianMixture mixture = dt::GaussianMixture::ring();
  di::CosineVPSchedule schedule = di::CosineVPSchedule();
  torch::Tensor operator()(const torch::Tensor& x_t, const torch::Tensor& t) const {
    return mixture.eps(x_t, schedule.alpha(t), schedule.sigma(t));
  }
};

struct SigmoidReward {  // bounded: prefers the right half-plane
  torch::Tensor operator()(const torch::Tensor& x0) const { return torch::sigmoid(3 * x0.select(1, 0)); }
};

using Teacher = di::Denoiser<MixtureTeacher, di::EpsPrediction>;
using Reward = di::ModelReward<std::function<torch::Tensor(const torch::Tensor&)>>;
using Trainer = di::DiStarTrainer<di::Generator<Mlp>, Teacher, di::Denoiser<Mlp>, di::NoCondition, di::PseudoHuberScore,
                                  di::NoGuidance, Reward, di::CosineVPSchedule>;

std::unique_ptr<Trainer> make_trainer(uint64_t init_seed, di::DiStarTrainerOptions options,
                                      std::function<torch::Tensor(const torch::Tensor&)> reward = SigmoidReward{}) {
  torch::manual_seed(init_seed);
  Mlp gen(2, 2), asst(3, 2);
  di::DiStarPolicies<di::PseudoHuberScore, di::NoGuidance, Reward, di::CosineVPSchedule> policies{
      di::PseudoHuberScore(1.0), di::NoGuidance{}, Reward(std::move(reward)), di::CosineVPSchedule()};
  return std::make_unique<Trainer>(di::Generator<Mlp>(gen), Teacher(MixtureTeacher{}, "teacher"), di::Denoiser<Mlp>(asst, "assistant"),
                                   std::move(policies), di::ConditionSource<di::NoCondition>{}, std::vector<int64_t>{2}, options);
}

using test_util::identical;
using test_util::snapshot;
std::string tmp_path(const std::string& name) { return std::string(DIFFINSTRUCT_TEST_TMPDIR) + "/" + name; }

}  // namespace

TEST_CASE("DI* on the 8-Gaussian mixture: the generator approaches the teacher, reward rises, the assistant tracks",
          "[trainer][learning]") {
  auto trainer = make_trainer(1, di::DiStarTrainerOptions().batch_size(256).alpha_rew(0.3).seed(3).ema_decay(0));
  const auto mixture = dt::GaussianMixture::ring();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
  const auto z = torch::randn({2048, 2}, gen);
  const auto before = trainer->sample(z, di::NoCondition{});
  const double dist_before = mixture.nearest(before).second.mean().item<double>();
  const double reward_before = SigmoidReward{}(before).mean().item<double>();
  std::vector<double> dsm;
  for (int i = 0; i < 400; ++i) dsm.push_back(trainer->step().assistant_loss);
  const auto after = trainer->sample(z, di::NoCondition{});
  const double dist_after = mixture.nearest(after).second.mean().item<double>();
  const double reward_after = SigmoidReward{}(after).mean().item<double>();
  auto mean = [](const std::vector<double>& v, size_t lo, size_t hi) {
    double s = 0;
    for (size_t i = lo; i < hi; ++i) s += v[i];
    return s / static_cast<double>(hi - lo);
  };
  INFO("distance to nearest mode " << dist_before << " -> " << dist_after << ", reward " << reward_before << " -> " << reward_after
                                   << ", DSM " << mean(dsm, 0, 20) << " -> " << mean(dsm, 380, 400));
  WARN("distance to nearest mode " << dist_before << " -> " << dist_after << ", reward " << reward_before << " -> " << reward_after);
  CHECK(dist_after < 0.5 * dist_before);
  CHECK(reward_after > reward_before + 0.05);
  CHECK(mean(dsm, 380, 400) < 0.8 * mean(dsm, 0, 20));
  CHECK(trainer->non_finite_total() == 0);
  CHECK(trainer->step_count() == 400);
}

TEST_CASE("reuse_generator_samples (DMD2's arrangement): one generator forward per iteration, and the 8-Gaussian run still converges",
          "[trainer][learning][reuse]") {
  const auto mixture = dt::GaussianMixture::ring();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
  const auto z = torch::randn({2048, 2}, gen);
  double dist[2], reward[2], ms[2];
  for (int reuse = 0; reuse < 2; ++reuse) {
    auto trainer = make_trainer(1, di::DiStarTrainerOptions().batch_size(256).alpha_rew(0.3).seed(3).ema_decay(0).reuse_generator_samples(reuse));
    const double dist_before = mixture.nearest(trainer->sample(z, di::NoCondition{})).second.mean().item<double>();
    trainer->generator().model()->generator_calls = 0;
    ms[reuse] = 0;
    for (int i = 0; i < 400; ++i) {
      const auto s = trainer->step();
      ms[reuse] += s.generator_ms + s.assistant_ms;
    }
    CHECK(trainer->generator().model()->generator_calls == (reuse ? 400 : 800));
    const auto after = trainer->sample(z, di::NoCondition{});
    dist[reuse] = mixture.nearest(after).second.mean().item<double>();
    reward[reuse] = SigmoidReward{}(after).mean().item<double>();
    CHECK(dist[reuse] < 0.5 * dist_before);
    CHECK(trainer->non_finite_total() == 0);
  }
  WARN("8-Gaussian, 400 steps, K = 1: distance to the nearest mode " << dist[0] << " (fresh samples) vs " << dist[1]
       << " (reused), reward " << reward[0] << " vs " << reward[1] << ", time in the phases " << ms[0] << " ms vs " << ms[1] << " ms");
  CHECK(reward[1] > 0.8 * reward[0]);
}

TEST_CASE("two runs with the same seed give bit-identical weights on CPU", "[trainer][determinism]") {
  const auto options = di::DiStarTrainerOptions().batch_size(64).seed(5).assistant_steps(2);
  auto a = make_trainer(7, options);
  auto b = make_trainer(7, options);
  a->fit(15);
  b->fit(15);
  CHECK(identical(a->generator_parameters(), b->generator_parameters()));
  CHECK(identical(a->assistant_parameters(), b->assistant_parameters()));
  CHECK(identical(a->ema().shadow(), b->ema().shadow()));
  auto c = make_trainer(7, di::DiStarTrainerOptions(options).seed(6));
  c->fit(15);
  CHECK_FALSE(identical(a->generator_parameters(), c->generator_parameters()));
}

TEST_CASE("exact resume: N steps equal N/2, save, restore into a fresh trainer, N/2 more", "[trainer][checkpoint]") {
  const auto options = di::DiStarTrainerOptions().batch_size(64).seed(11).assistant_steps(2);
  auto straight = make_trainer(3, options);
  straight->fit(20);

  const auto path = tmp_path("resume.ckpt");
  {
    auto first = make_trainer(3, options);
    first->fit(10);
    first->save(path);
  }  // everything destroyed
  auto resumed = make_trainer(1234, di::DiStarTrainerOptions().seed(999));  // other weights, other options
  CHECK_THROWS_WITH(resumed->load(path), Catch::Contains("options.assistant_steps: checkpoint 2, this trainer 1") &&
                                             Catch::Contains("options.seed: checkpoint 11, this trainer 999"));
  CHECK(resumed->step_count() == 0);
  resumed->load(path, di::ResumeMode::kUseCheckpointOptions);
  CHECK(resumed->step_count() == 10);
  CHECK(resumed->options().batch_size() == 64);
  CHECK(resumed->options().seed() == 11);
  resumed->fit(10);
  CHECK(identical(straight->generator_parameters(), resumed->generator_parameters()));
  CHECK(identical(straight->assistant_parameters(), resumed->assistant_parameters()));
  CHECK(identical(straight->ema().shadow(), resumed->ema().shadow()));
  std::filesystem::remove(path);
}

TEST_CASE("a truncated or corrupt checkpoint is refused clearly and changes nothing", "[trainer][checkpoint][errors]") {
  auto trainer = make_trainer(2, di::DiStarTrainerOptions().batch_size(32));
  trainer->fit(3);
  const auto good = tmp_path("good.ckpt"), bad = tmp_path("bad.ckpt");
  trainer->save(good);
  const auto size = std::filesystem::file_size(good);
  {
    std::ifstream in(good, std::ios::binary);
    std::string bytes(size / 2, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::ofstream(bad, std::ios::binary) << bytes;
  }
  trainer->fit(2);
  const auto before = snapshot(trainer->generator_parameters());
  CHECK_THROWS_WITH(trainer->load(bad), Catch::Contains("cannot restore checkpoint") && Catch::Contains("bad.ckpt") &&
                                           Catch::Contains("truncated"));
  CHECK_THROWS_WITH(trainer->load(tmp_path("missing.ckpt")), Catch::Contains("no checkpoint file at"));
  {
    std::ofstream(bad, std::ios::binary) << "not a checkpoint at all";
  }
  CHECK_THROWS_WITH(trainer->load(bad), Catch::Contains("cannot restore checkpoint") && Catch::Contains("not a valid safetensors file"));
  CHECK(identical(before, snapshot(trainer->generator_parameters())));
  CHECK(trainer->step_count() == 5);
  CHECK(std::filesystem::file_size(good) == size);  // the previous checkpoint is intact and loads
  trainer->load(good);
  CHECK(trainer->step_count() == 3);
  // A checkpoint of a different architecture is refused by name.
  torch::manual_seed(0);
  di::DiStarPolicies<di::PseudoHuberScore, di::NoGuidance, Reward, di::CosineVPSchedule> policies{
      di::PseudoHuberScore(1.0), di::NoGuidance{}, Reward(SigmoidReward{}), di::CosineVPSchedule()};
  Trainer wide(di::Generator<Mlp>(Mlp(2, 2, 32)), Teacher(MixtureTeacher{}), di::Denoiser<Mlp>(Mlp(3, 2)), policies, {},
               std::vector<int64_t>{2});
  CHECK_THROWS_WITH(wide.load(good, di::ResumeMode::kKeepLiveOptions),
                    Catch::Contains("generator tensor") && Catch::Contains("has shape [64, 2], expected [32, 2]"));
  std::filesystem::remove(good);
  std::filesystem::remove(bad);
}

TEST_CASE("a non-finite reward drops the update, leaves the weights unchanged and is counted", "[trainer][non-finite]") {
  auto calls = std::make_shared<int>(0);
  auto poisoned = [calls](const torch::Tensor& x0) {
    auto r = torch::sigmoid(x0.select(1, 0));
    return ++*calls == 3 ? r * std::nan("") : r;
  };
  auto trainer = make_trainer(4, di::DiStarTrainerOptions().batch_size(32).alpha_rew(1.0), poisoned);
  std::vector<std::string> log;
  trainer->set_log_sink([&](const std::string& m) { log.push_back(m); });
  trainer->fit(2);
  const auto gen_before = snapshot(trainer->generator_parameters());
  const auto ema_before = snapshot(trainer->ema().shadow());
  const auto stats = trainer->step();
  CHECK(stats.generator_skipped);
  CHECK(stats.non_finite == 1);
  CHECK(std::isnan(stats.generator_loss));
  CHECK(trainer->non_finite_total() == 1);
  CHECK(identical(gen_before, snapshot(trainer->generator_parameters())));
  CHECK(identical(ema_before, snapshot(trainer->ema().shadow())));
  REQUIRE(log.size() == 1);
  CHECK_THAT(log[0], Catch::Contains("non-finite generator update at step 3"));
  const auto next = trainer->step();  // training goes on
  CHECK_FALSE(next.generator_skipped);
  CHECK_FALSE(identical(gen_before, snapshot(trainer->generator_parameters())));

  *calls = 0;
  auto strict = make_trainer(4, di::DiStarTrainerOptions().batch_size(32).alpha_rew(1.0).non_finite(di::NonFinitePolicy::kThrow),
                             poisoned);
  strict->fit(2);
  const auto strict_before = snapshot(strict->generator_parameters());
  CHECK_THROWS_WITH(strict->step(), Catch::Contains("non-finite generator update at step 3") &&
                                        Catch::Contains("the update was not applied"));
  CHECK(identical(strict_before, snapshot(strict->generator_parameters())));
}

namespace {
struct TeacherNetImpl : torch::nn::Module {  // a conditional teacher with parameters, counting its calls
  Mlp body{nullptr};
  int64_t calls = 0, rows = 0;
  bool saw_grad_mode = false;
  TeacherNetImpl() { body = register_module("body", Mlp(4, 2)); }
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& labels) {
    ++calls;
    rows += x_t.size(0);
    saw_grad_mode = saw_grad_mode || torch::GradMode::is_enabled();
    return body->net->forward(torch::cat({x_t, t.unsqueeze(1), labels.to(x_t.dtype()).unsqueeze(1)}, 1));
  }
};
TORCH_MODULE(TeacherNet);

struct CondMlpImpl : torch::nn::Module {  // generator / assistant taking labels
  Mlp body{nullptr};
  CondMlpImpl(int64_t in) { body = register_module("body", Mlp(in + 1, 2)); }
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& labels) {
    return body->net->forward(torch::cat({z, labels.to(z.dtype()).unsqueeze(1)}, 1));
  }
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& labels) {
    return body->net->forward(torch::cat({x_t, t.unsqueeze(1), labels.to(x_t.dtype()).unsqueeze(1)}, 1));
  }
};
TORCH_MODULE(CondMlp);

struct LinearRewardImpl : torch::nn::Module {
  torch::nn::Linear head{nullptr};
  LinearRewardImpl() { head = register_module("head", torch::nn::Linear(2, 1)); }
  torch::Tensor forward(const torch::Tensor& x0, const torch::Tensor&) { return torch::tanh(head(x0)).squeeze(1); }
};
TORCH_MODULE(LinearReward);

template <class Divergence, class Guidance>
void run_frozen_check(Divergence div, Guidance guid, bool expect_grad_mode) {
  torch::manual_seed(8);
  TeacherNet teacher;
  LinearReward reward;
  const auto teacher_before = snapshot(teacher->parameters());
  const auto reward_before = snapshot(reward->parameters());
  using T = di::DiStarTrainer<di::Generator<CondMlp>, di::Denoiser<TeacherNet>, di::Denoiser<CondMlp>, torch::Tensor, Divergence,
                              Guidance, di::ModuleReward<LinearReward>, di::CosineVPSchedule>;
  di::ConditionSource<torch::Tensor> labels{
      [](int64_t b, at::Generator& g) { return torch::randint(0, 10, {b}, g, torch::kLong); }, torch::full({1}, 10, torch::kLong)};
  T trainer(di::Generator<CondMlp>(CondMlp(2)), di::Denoiser<TeacherNet>(teacher), di::Denoiser<CondMlp>(CondMlp(3)),
            {div, guid, di::ModuleReward<LinearReward>(reward), di::CosineVPSchedule()}, labels, std::vector<int64_t>{2},
            di::DiStarTrainerOptions().batch_size(16).alpha_rew(0.5).assistant_steps(1));
  trainer.fit(5);
  CHECK(identical(teacher_before, snapshot(teacher->parameters())));
  CHECK(identical(reward_before, snapshot(reward->parameters())));
  for (const auto& p : teacher->parameters()) CHECK_FALSE(p.grad().defined());
  for (const auto& p : reward->parameters()) CHECK_FALSE(p.grad().defined());
  // The teacher ran once per generator update, on the conditional and unconditional rows together.
  CHECK(teacher->calls == 5);
  CHECK(teacher->rows == 5 * (Guidance::needs_unconditional ? 32 : 16));
  CHECK(teacher->saw_grad_mode == expect_grad_mode);
}
}  // namespace

TEST_CASE("frozen teacher and reward are never updated and receive no gradient, CFG batches one teacher pass",
          "[trainer][frozen]") {
  run_frozen_check(di::PseudoHuberScore(1.0), di::CfgInside(di::AlphaCfg(2.0)), /*expect_grad_mode=*/true);
  run_frozen_check(di::KL(), di::CfgOutside(di::AlphaCfg(2.0)), /*expect_grad_mode=*/false);  // KL builds no graph through the networks
  run_frozen_check(di::SquaredL2Score(), di::NoGuidance{}, /*expect_grad_mode=*/true);
}

TEST_CASE("callbacks see every step and can stop training", "[trainer][callbacks]") {
  struct Recorder {
    std::vector<int64_t> begins;
    std::vector<double> rewards;
    void on_step_begin(int64_t s) { begins.push_back(s); }
    bool on_step_end(const di::StepStats& s) {
      rewards.push_back(s.mean_reward);
      return s.step < 4;
    }
  } recorder;
  struct EndOnly {
    int seen = 0;
    void on_step_end(const di::StepStats&) { ++seen; }
  } end_only;
  auto trainer = make_trainer(1, di::DiStarTrainerOptions().batch_size(16));
  const auto last = trainer->fit(100, recorder, end_only);
  CHECK(last.step == 4);
  CHECK(recorder.begins == std::vector<int64_t>{0, 1, 2, 3});
  CHECK(recorder.rewards.size() == 4);
  CHECK(end_only.seen == 4);
  CHECK(last.assistant_ms >= 0);
  CHECK(last.generator_ms > 0);
}

TEST_CASE("trainer options are validated with the option's name and value", "[trainer][errors]") {
  CHECK_THROWS_WITH(make_trainer(0, di::DiStarTrainerOptions().batch_size(0)), Catch::Contains("batch_size > 0, got 0"));
  CHECK_THROWS_WITH(make_trainer(0, di::DiStarTrainerOptions().assistant_steps(-1)), Catch::Contains("assistant_steps >= 0, got -1"));
  CHECK_THROWS_WITH(make_trainer(0, di::DiStarTrainerOptions().generator_adam(di::AdamSettings(-1.0))),
                    Catch::Contains("generator_adam.lr > 0 and finite in float32, got -1"));
  CHECK_THROWS_WITH(make_trainer(0, di::DiStarTrainerOptions().ema_decay(1.0)), Catch::Contains("0 <= ema_decay < 1, got 1"));
  CHECK_THROWS_WITH(make_trainer(0, di::DiStarTrainerOptions().alpha_rew(NAN)), Catch::Contains("finite alpha_rew"));
  CHECK_THROWS_WITH(make_trainer(0, di::DiStarTrainerOptions().assistant_adam(di::AdamSettings(1e-3).beta1(1.0))),
                    Catch::Contains("assistant_adam betas in [0, 1), got (1, 0.999)"));
  CHECK_THROWS_WITH(make_trainer(0, di::DiStarTrainerOptions()).get()->fit(-1), Catch::Contains("steps >= 0"));
}

TEST_CASE("user-supplied optimizers are checkpointed and restored in place", "[trainer][checkpoint]") {
  auto trainer = make_trainer(5, di::DiStarTrainerOptions().batch_size(32).seed(2));
  trainer->set_optimizers(
      std::make_unique<torch::optim::SGD>(trainer->generator_parameters(), torch::optim::SGDOptions(1e-3).momentum(0.9)),
      std::make_unique<torch::optim::SGD>(trainer->assistant_parameters(), torch::optim::SGDOptions(1e-2).momentum(0.9)));
  trainer->fit(4);
  const auto path = tmp_path("sgd.ckpt");
  trainer->save(path);
  trainer->fit(4);
  const auto straight = snapshot(trainer->generator_parameters());
  trainer->load(path);
  CHECK(trainer->step_count() == 4);
  trainer->fit(4);
  CHECK(identical(straight, snapshot(trainer->generator_parameters())));
  CHECK_THROWS_WITH(trainer->set_optimizers(nullptr, nullptr), Catch::Contains("expected two optimizers"));
  std::filesystem::remove(path);
}
