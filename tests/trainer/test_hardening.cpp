// Issue #11's defects, each with the test that failed before its fix: frozen models in eval mode,
// distinct parameters, the CFG-outside graph, frozen reward modules, checked generator output,
// validated options, refused non-finite updates, bounded skipping.
#include "../tensor_compare.hpp"
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/eval/ddim_sampler.hpp>
#include <diffinstruct/testing/gaussian_mixture.hpp>

#include <catch2/catch.hpp>

namespace di = diffinstruct;

namespace {

struct NetImpl : torch::nn::Module {
  torch::nn::Sequential net;
  NetImpl(int64_t in, int64_t out, bool batch_norm = false, double dropout = 0.0) {
    net->push_back(torch::nn::Linear(in, 32));
    if (batch_norm) net->push_back(torch::nn::BatchNorm1d(32));
    net->push_back(torch::nn::SiLU());
    if (dropout > 0) net->push_back(torch::nn::Dropout(dropout));
    net->push_back(torch::nn::Linear(32, out));
    register_module("net", net);
  }
  torch::Tensor forward(const torch::Tensor& z) { return net->forward(z); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) { return net->forward(torch::cat({x, t.unsqueeze(1)}, 1)); }
};
TORCH_MODULE(Net);

struct RewardNetImpl : torch::nn::Module {
  Net body{nullptr};
  RewardNetImpl() { body = register_module("body", Net(2, 1, false, 0.5)); }
  torch::Tensor forward(const torch::Tensor& x) { return torch::tanh(body->forward(x)).squeeze(1); }
};
TORCH_MODULE(RewardNet);

using Reward = di::ModuleReward<RewardNet>;
using Policies = di::DiStarPolicies<di::PseudoHuberScore, di::NoGuidance, Reward, di::CosineVPSchedule>;
using Trainer = di::DiStarTrainer<di::Generator<Net>, di::Denoiser<Net>, di::Denoiser<Net>, di::NoCondition, di::PseudoHuberScore,
                                  di::NoGuidance, Reward, di::CosineVPSchedule>;

Policies policies(RewardNet reward = RewardNet()) { return {di::PseudoHuberScore(1.0), {}, Reward(reward), di::CosineVPSchedule()}; }

using test_util::identical;
using test_util::snapshot;
bool all_finite(const std::vector<torch::Tensor>& ts) {
  for (const auto& t : ts) {
    if (!torch::isfinite(t).all().item<bool>()) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("#1 frozen teacher and reward run in eval mode, batch-norm statistics never drift, modes are restored",
          "[trainer][hardening][eval-mode]") {
  torch::manual_seed(0);
  Net teacher(3, 2, /*batch_norm=*/true, /*dropout=*/0.3);
  RewardNet reward;
  Net gen(2, 2, false, 0.5), asst(3, 2, false, 0.2);
  asst->train(false);  // the user's choice for a trained model is left alone
  const auto stats_before = teacher->named_buffers()["net.1.running_mean"].clone();
  Trainer trainer(di::Generator<Net>(gen), di::Denoiser<Net>(teacher, "teacher"), di::Denoiser<Net>(asst, "assistant"), policies(reward), {},
                  {2}, di::DiStarTrainerOptions().batch_size(16).alpha_rew(0.1));
  CHECK_FALSE(teacher->is_training());
  CHECK_FALSE(reward->is_training());
  trainer.fit(3);
  CHECK(torch::equal(stats_before, teacher->named_buffers()["net.1.running_mean"]));
  teacher->train(true);  // switched back by someone: the next step puts it back in eval mode
  reward->train(true);
  trainer.step();
  CHECK_FALSE(teacher->is_training());
  CHECK_FALSE(reward->is_training());
  CHECK(torch::equal(stats_before, teacher->named_buffers()["net.1.running_mean"]));
  CHECK(gen->is_training());
  CHECK_FALSE(asst->is_training());
  // sample() runs the generator in eval mode (dropout off: deterministic) and restores its mode.
  const auto z = torch::randn({8, 2});
  CHECK(torch::equal(trainer.sample(z, {}), trainer.sample(z, {})));
  CHECK(gen->is_training());
  // ddim_sample too, for the teacher.
  teacher->train(true);
  di::Denoiser<Net> d(teacher, "teacher");
  const auto stats_now = teacher->named_buffers()["net.1.running_mean"].clone();
  const auto x = di::ddim_sample(d, di::CosineVPSchedule(), torch::randn({8, 2}), di::NoCondition{}, di::NoCondition{}, {0.02, 0.98},
                                 di::DdimOptions().steps(3));
  CHECK(torch::equal(stats_now, teacher->named_buffers()["net.1.running_mean"]));
  CHECK(teacher->is_training());
  CHECK(x.sizes() == torch::IntArrayRef({8, 2}));
  CHECK_THROWS_WITH(di::ddim_sample(d, di::CosineVPSchedule(), torch::randn({8, 2}), di::NoCondition{}, di::NoCondition{}, {0.02, 0.98},
                                    di::DdimOptions().steps(3).guidance_scale(3.0)),
                    Catch::Contains("guidance_scale 3 needs conditions"));
}

TEST_CASE("#2 generator, assistant and frozen models must hold distinct parameters", "[trainer][hardening][sharing]") {
  torch::manual_seed(0);
  Net shared(3, 2);
  Net copy = shared;  // a copied holder shares the module
  CHECK_THROWS_WITH(Trainer(di::Generator<Net>(Net(2, 2)), di::Denoiser<Net>(shared), di::Denoiser<Net>(copy), policies(), {}, {2}),
                    Catch::Contains("4 trained parameter tensor(s) of the assistant are also the teacher or reward's") &&
                        Catch::Contains("'net.0.weight' of the assistant and 'net.0.weight' of the teacher or reward"));
  for (const auto& p : shared->parameters()) CHECK(p.requires_grad());  // the refused trainer froze nothing
  Net gen(3, 2);
  CHECK_THROWS_WITH(Trainer(di::Generator<Net>(gen), di::Denoiser<Net>(gen), di::Denoiser<Net>(Net(3, 2)), policies(), {}, {3}),
                    Catch::Contains("trained parameter tensor(s) of the generator are also the teacher or reward's"));
  CHECK_THROWS_WITH(Trainer(di::Generator<Net>(gen), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(gen), policies(), {}, {3}),
                    Catch::Contains("trained parameter tensor(s) of the generator are also the assistant's"));
  // Distinct copies are fine (copy_state copies values, not storage).
  Net teacher(3, 2), assistant(3, 2);
  di::copy_state(teacher, assistant);
  Trainer ok(di::Generator<Net>(Net(2, 2)), di::Denoiser<Net>(teacher), di::Denoiser<Net>(assistant), policies(), {}, {2},
             di::DiStarTrainerOptions().batch_size(8));
  ok.fit(2);
  for (const auto& p : teacher->parameters()) CHECK_FALSE(p.requires_grad());
}

namespace {
// A conditional network that records (rows, grad mode) for every call.
struct RecorderImpl : torch::nn::Module {
  Net body{nullptr};
  std::vector<std::pair<int64_t, bool>> calls;
  RecorderImpl() { body = register_module("body", Net(4, 2)); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) {
    calls.emplace_back(x.size(0), torch::GradMode::is_enabled());
    return body->net->forward(torch::cat({x, t.unsqueeze(1), c.to(x.dtype()).unsqueeze(1)}, 1));
  }
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& c) {
    return body->net->forward(torch::cat({z, c.to(z.dtype()).unsqueeze(1), torch::zeros_like(c).to(z.dtype()).unsqueeze(1)}, 1));
  }
};
TORCH_MODULE(Recorder);

template <class Divergence, class Guidance>
std::vector<std::pair<int64_t, bool>> teacher_calls(Divergence div, Guidance guid) {
  torch::manual_seed(0);
  Recorder teacher, gen, asst;
  using T = di::DiStarTrainer<di::Generator<Recorder>, di::Denoiser<Recorder>, di::Denoiser<Recorder>, torch::Tensor, Divergence, Guidance,
                              di::NoReward, di::CosineVPSchedule>;
  di::ConditionSource<torch::Tensor> labels{[](int64_t b, at::Generator& g) { return torch::randint(0, 3, {b}, g, torch::kLong); },
                                            torch::full({1}, 3, torch::kLong)};
  T trainer(di::Generator<Recorder>(gen), di::Denoiser<Recorder>(teacher), di::Denoiser<Recorder>(asst), {div, guid, {}, di::CosineVPSchedule()},
            labels, {2}, di::DiStarTrainerOptions().batch_size(8).assistant_steps(0));
  trainer.step();
  return teacher->calls;
}
}  // namespace

TEST_CASE("#5 CFG outside builds no graph through the teacher's unconditional pass", "[trainer][hardening][cfg]") {
  using Calls = std::vector<std::pair<int64_t, bool>>;
  // Pseudo-Huber + CFG outside: the conditional pass with a graph, the unconditional one without.
  CHECK(teacher_calls(di::PseudoHuberScore(1.0), di::CfgOutside(di::AlphaCfg(2.0))) == Calls{{8, true}, {8, false}});
  // CFG inside differentiates through both halves: one batched pass with a graph.
  CHECK(teacher_calls(di::PseudoHuberScore(1.0), di::CfgInside(di::AlphaCfg(2.0))) == Calls{{16, true}});
  // KL builds no graph at all: one batched pass without.
  CHECK(teacher_calls(di::KL(), di::CfgOutside(di::AlphaCfg(2.0))) == Calls{{16, false}});
  STATIC_REQUIRE_FALSE(di::detail::differentiates_unconditional<di::CfgOutside>::value);
  STATIC_REQUIRE(di::detail::differentiates_unconditional<di::CfgInside>::value);
}

TEST_CASE("#7 what a reward holds is frozen: module rewards, weighted sums, callables that declare their modules",
          "[trainer][hardening][reward]") {
  torch::manual_seed(0);
  RewardNet r1, r2;
  using W = di::WeightedSum<Reward, Reward>;
  using TW = di::DiStarTrainer<di::Generator<Net>, di::Denoiser<Net>, di::Denoiser<Net>, di::NoCondition, di::PseudoHuberScore,
                               di::NoGuidance, W, di::CosineVPSchedule>;
  TW weighted(di::Generator<Net>(Net(2, 2)), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(Net(3, 2)),
              {di::PseudoHuberScore(1.0), {}, W({1.0, 0.5}, Reward(r1), Reward(r2)), di::CosineVPSchedule()}, {}, {2},
              di::DiStarTrainerOptions().batch_size(8).alpha_rew(1.0));
  for (const auto& m : {r1, r2}) {
    CHECK_FALSE(m->is_training());
    for (const auto& p : m->parameters()) CHECK_FALSE(p.requires_grad());
  }
  weighted.fit(2);

  using Fn = std::function<torch::Tensor(const torch::Tensor&)>;
  using C = di::CallableReward<Fn>;
  using TC = di::DiStarTrainer<di::Generator<Net>, di::Denoiser<Net>, di::Denoiser<Net>, di::NoCondition, di::PseudoHuberScore,
                               di::NoGuidance, C, di::CosineVPSchedule>;
  RewardNet hidden;
  Fn uses_hidden = [hidden](const torch::Tensor& x) mutable { return hidden->forward(x); };
  // Declared: frozen at construction, and the graph check passes.
  TC declared(di::Generator<Net>(Net(2, 2)), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(Net(3, 2)),
              {di::PseudoHuberScore(1.0), {}, C(uses_hidden).holds(hidden), di::CosineVPSchedule()}, {}, {2},
              di::DiStarTrainerOptions().batch_size(8).alpha_rew(1.0));
  CHECK_FALSE(hidden->is_training());
  for (const auto& p : hidden->parameters()) CHECK_FALSE(p.requires_grad());
  declared.fit(2);
  // Undeclared: the first step finds trainable parameters behind the callable and refuses.
  RewardNet hidden2;
  Fn uses_hidden2 = [hidden2](const torch::Tensor& x) mutable { return hidden2->forward(x); };
  TC undeclared(di::Generator<Net>(Net(2, 2)), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(Net(3, 2)),
                {di::PseudoHuberScore(1.0), {}, C(uses_hidden2), di::CosineVPSchedule()}, {}, {2},
                di::DiStarTrainerOptions().batch_size(8).alpha_rew(1.0));
  const auto before = snapshot(undeclared.generator_parameters());
  CHECK_THROWS_WITH(undeclared.step(), Catch::Contains("the generator loss reaches 4 tensor(s) that require grad") &&
                                           Catch::Contains("holds(module)"));
  CHECK(identical(before, snapshot(undeclared.generator_parameters())));
}

TEST_CASE("#8 the generator's output is checked where it is produced, naming the generator", "[trainer][hardening][generator]") {
  torch::manual_seed(0);
  Trainer wrong(di::Generator<Net>(Net(2, 3), "my_generator"), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(Net(3, 2)), policies(), {},
                {2}, di::DiStarTrainerOptions().batch_size(8));
  CHECK_THROWS_WITH(wrong.step(), Catch::Contains("the generator ('my_generator') returned samples of per-sample shape [3]") &&
                                      Catch::Contains("expected [2] (the noise shape"));
  // A generator whose samples differ from its noise declares their shape.
  Trainer wide_noise(di::Generator<Net>(Net(5, 2)), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(Net(3, 2)), policies(), {}, {5},
                     di::DiStarTrainerOptions().batch_size(8).sample_shape({2}));
  wide_noise.fit(2);
  // Errors inside a model say which model it was.
  Trainer bad_teacher(di::Generator<Net>(Net(2, 2)), di::Denoiser<Net>(Net(4, 2), "my_teacher"), di::Denoiser<Net>(Net(3, 2)), policies(),
                      {}, {2}, di::DiStarTrainerOptions().batch_size(8));
  CHECK_THROWS_WITH(bad_teacher.step(), Catch::Contains("Denoiser('my_teacher'): the model's forward failed on an input of shape [8, 2]"));
  // Non-finite samples: the update is dropped, the message names the generator.
  struct NanGenImpl : torch::nn::Module {
    torch::nn::Linear lin{nullptr};
    int calls = 0;
    NanGenImpl() { lin = register_module("lin", torch::nn::Linear(2, 2)); }
    torch::Tensor forward(const torch::Tensor& z) { return ++calls == 2 ? lin(z) * std::nan("") : lin(z); }
  };
  TORCH_MODULE(NanGen);
  using TN = di::DiStarTrainer<di::Generator<NanGen>, di::Denoiser<Net>, di::Denoiser<Net>, di::NoCondition, di::PseudoHuberScore,
                               di::NoGuidance, Reward, di::CosineVPSchedule>;
  NanGen nan_gen;
  TN t(di::Generator<NanGen>(nan_gen, "nan_gen"), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(Net(3, 2)), policies(), {}, {2},
       di::DiStarTrainerOptions().batch_size(8));
  std::vector<std::string> log;
  t.set_log_sink([&](const std::string& m) { log.push_back(m); });
  const auto before = snapshot(t.generator_parameters());
  const auto s = t.step();  // call 1: assistant phase, call 2: generator phase (NaN)
  CHECK(s.generator_skipped);
  CHECK(identical(before, snapshot(t.generator_parameters())));
  REQUIRE(log.size() == 1);
  CHECK_THAT(log[0], Catch::Contains("the generator ('nan_gen') produced non-finite samples"));
}

TEST_CASE("#10 numeric options are finite and in range", "[trainer][hardening][options]") {
  auto bad = [](di::AdamSettings a) { return di::DiStarTrainerOptions().generator_adam(a); };
  CHECK_THROWS_WITH(bad(di::AdamSettings(1e-3).weight_decay(INFINITY)).validate(), Catch::Contains("weight_decay finite and >= 0, got inf"));
  CHECK_THROWS_WITH(bad(di::AdamSettings(1e-3).weight_decay(NAN)).validate(), Catch::Contains("weight_decay finite"));
  CHECK_THROWS_WITH(bad(di::AdamSettings(1e-3).eps(1e-50)).validate(), Catch::Contains("nonzero in float32"));
  CHECK_THROWS_WITH(bad(di::AdamSettings(1e-3).eps(INFINITY)).validate(), Catch::Contains("generator_adam.eps in"));
  CHECK_THROWS_WITH(bad(di::AdamSettings(INFINITY)).validate(), Catch::Contains("generator_adam.lr > 0 and finite"));
  CHECK_THROWS_WITH(bad(di::AdamSettings(1e39)).validate(), Catch::Contains("finite in float32"));
  CHECK_THROWS_WITH(bad(di::AdamSettings(0.1).weight_decay(20)).validate(), Catch::Contains("lr * weight_decay <= 1"));
  CHECK_NOTHROW(bad(di::AdamSettings(0.1).weight_decay(20).decoupled_weight_decay(false)).validate());
  CHECK_THROWS_WITH(di::DiStarTrainerOptions().generator_max_grad_norm(INFINITY).validate(), Catch::Contains("finite max_grad_norm"));
  CHECK_THROWS_WITH(di::DiStarTrainerOptions().ema_decay(NAN).validate(), Catch::Contains("ema_decay"));
  CHECK_THROWS_WITH(di::DiStarTrainerOptions().max_consecutive_skips(0).validate(), Catch::Contains("max_consecutive_skips >= 1"));
  CHECK_THROWS_WITH(di::DiStarTrainerOptions().keep_checkpoints(0).validate(), Catch::Contains("keep_checkpoints in [1, 1000]"));
  CHECK_THROWS_WITH(di::DiStarTrainerOptions().sample_shape({2, 0}).validate(), Catch::Contains("positive sample_shape"));
}

TEST_CASE("#10 the weight check predicts Adam's and AdamW's step exactly", "[trainer][hardening][weights]") {
  torch::manual_seed(3);
  for (const bool decoupled : {false, true}) {
    for (const bool amsgrad : {false, true}) {
      auto p = torch::randn({5, 7}).requires_grad_(true);
      std::unique_ptr<torch::optim::Optimizer> opt;
      if (decoupled) opt = std::make_unique<torch::optim::AdamW>(std::vector<torch::Tensor>{p},
                                                                 torch::optim::AdamWOptions(0.05).weight_decay(0.1).amsgrad(amsgrad));
      else opt = std::make_unique<torch::optim::Adam>(std::vector<torch::Tensor>{p},
                                                      torch::optim::AdamOptions(0.05).weight_decay(0.1).amsgrad(amsgrad));
      const auto kind = decoupled ? di::detail::OptimizerKind::kAdamW : di::detail::OptimizerKind::kAdam;
      for (int step = 0; step < 4; ++step) {
        p.mutable_grad() = torch::randn({5, 7}) * (step + 1);
        torch::Tensor predicted;
        REQUIRE(di::detail::for_each_update(*opt, kind, [&](const torch::Tensor&, const torch::Tensor& next) { predicted = next.clone(); }));
        opt->step();
        INFO("decoupled " << decoupled << " amsgrad " << amsgrad << " step " << step);
        CHECK(torch::equal(predicted, p.detach()));  // bit for bit: the same arithmetic
      }
    }
  }
}

namespace {
// x0 = z + 1e-30 (p_up + p_down): two weights at ±3.39e38 that barely touch the output, so the loss
// stays finite while Adam's next step (lr 1e37, update ±lr) pushes one of them past float32's range.
struct EdgeGenImpl : torch::nn::Module {
  torch::Tensor up, down;
  EdgeGenImpl() {
    up = register_parameter("up", torch::full({2}, 3.39e38f));
    down = register_parameter("down", torch::full({2}, -3.39e38f));
  }
  torch::Tensor forward(const torch::Tensor& z) { return z + 1e-30 * up + 1e-30 * down; }
};
TORCH_MODULE(EdgeGen);
}  // namespace

TEST_CASE("#10 an optimizer step that would make weights non-finite is refused and counted", "[trainer][hardening][weights]") {
  using TE = di::DiStarTrainer<di::Generator<EdgeGen>, di::Denoiser<Net>, di::Denoiser<Net>, di::NoCondition, di::PseudoHuberScore,
                               di::NoGuidance, Reward, di::CosineVPSchedule>;
  torch::manual_seed(0);
  EdgeGen gen;
  TE t(di::Generator<EdgeGen>(gen), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(Net(3, 2)), policies(), {}, {2},
       di::DiStarTrainerOptions().batch_size(8).generator_adam(di::AdamSettings(1e37).eps(1e-37)).generator_max_grad_norm(0).ema_decay(0.9));
  std::vector<std::string> log;
  t.set_log_sink([&](const std::string& m) { log.push_back(m); });
  const auto before = snapshot(t.generator_parameters());
  const auto s = t.step();
  CHECK(s.generator_skipped);
  CHECK(s.non_finite == 1);
  CHECK(all_finite(t.generator_parameters()));
  CHECK(all_finite(t.ema().shadow()));
  CHECK(identical(before, snapshot(t.generator_parameters())));
  REQUIRE_FALSE(log.empty());
  CHECK_THAT(log.back(), Catch::Contains("the optimizer step would make weights non-finite"));
  // An optimizer the trainer did not build is checked after its step; it cannot be undone, so it throws.
  struct Poison : torch::optim::SGD {
    using torch::optim::SGD::SGD;
    torch::Tensor step(LossClosure = nullptr) override {
      torch::NoGradGuard g;
      for (auto& group : param_groups())
        for (auto& p : group.params()) p.fill_(NAN);
      return {};
    }
  };
  Trainer u(di::Generator<Net>(Net(2, 2)), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(Net(3, 2)), policies(), {}, {2},
            di::DiStarTrainerOptions().batch_size(8));
  u.set_optimizers(std::make_unique<Poison>(u.generator_parameters(), torch::optim::SGDOptions(0.1)),
                   std::make_unique<torch::optim::SGD>(u.assistant_parameters(), torch::optim::SGDOptions(0.1)));
  CHECK_THROWS_WITH(u.step(), Catch::Contains("the generator optimizer (installed with set_optimizers) made weights non-finite") &&
                                  Catch::Contains("resume from the last checkpoint"));
}

TEST_CASE("#10 decoupled weight decay builds AdamW, coupled, Adam", "[trainer][hardening][weights]") {
  torch::manual_seed(0);
  Trainer w(di::Generator<Net>(Net(2, 2)), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(Net(3, 2)), policies(), {}, {2},
            di::DiStarTrainerOptions().batch_size(8).generator_adam(di::AdamSettings(1e-3).weight_decay(0.01)));
  CHECK(dynamic_cast<torch::optim::AdamW*>(&w.generator_optimizer()) != nullptr);
  CHECK(dynamic_cast<torch::optim::AdamW*>(&w.assistant_optimizer()) == nullptr);  // no weight decay: plain Adam
  Trainer c(di::Generator<Net>(Net(2, 2)), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(Net(3, 2)), policies(), {}, {2},
            di::DiStarTrainerOptions().batch_size(8).generator_adam(di::AdamSettings(1e-3).weight_decay(0.01).decoupled_weight_decay(false)));
  CHECK(dynamic_cast<torch::optim::AdamW*>(&c.generator_optimizer()) == nullptr);
  w.fit(3);
  c.fit(3);
}

TEST_CASE("#11 skipping is bounded: max_consecutive_skips dropped updates in a row end the run", "[trainer][hardening][skips]") {
  torch::manual_seed(0);
  using Fn = std::function<torch::Tensor(const torch::Tensor&)>;
  using C = di::CallableReward<Fn>;
  using TC = di::DiStarTrainer<di::Generator<Net>, di::Denoiser<Net>, di::Denoiser<Net>, di::NoCondition, di::PseudoHuberScore,
                               di::NoGuidance, C, di::CosineVPSchedule>;
  auto poisoned = std::make_shared<bool>(true);
  Fn reward = [poisoned](const torch::Tensor& x) { return *poisoned ? x.select(1, 0) * std::nan("") : torch::sigmoid(x.select(1, 0)); };
  TC t(di::Generator<Net>(Net(2, 2)), di::Denoiser<Net>(Net(3, 2)), di::Denoiser<Net>(Net(3, 2)),
       {di::PseudoHuberScore(1.0), {}, C(reward), di::CosineVPSchedule()}, {}, {2},
       di::DiStarTrainerOptions().batch_size(8).alpha_rew(1.0).max_consecutive_skips(4));
  for (int i = 0; i < 3; ++i) CHECK(t.step().generator_skipped);
  *poisoned = false;  // one good update resets the count
  CHECK_FALSE(t.step().generator_skipped);
  *poisoned = true;
  for (int i = 0; i < 3; ++i) CHECK(t.step().generator_skipped);
  CHECK_THROWS_WITH(t.step(), Catch::Contains("4 generator updates in a row were dropped as non-finite (max_consecutive_skips = 4)") &&
                                  Catch::Contains("the run is not training any more"));
}
