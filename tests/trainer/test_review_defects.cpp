// The defects the code review of 2026-12 found (issue #26, point 3), one test each. Each failed on the
// trainer before the redesign and passes after it (the note records the failures; built
// against the earlier headers with -DDIFFINSTRUCT_REVIEW_BEFORE, which leaves out what could not compile).
#include "../test_files.hpp"
#include "../tensor_compare.hpp"
#include "../test_skip.hpp"
#include "tiny_trainer.hpp"

#include <diffinstruct/memory/activation_checkpoint.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <limits>

namespace review_defects {

namespace di = diffinstruct;
namespace fs = std::filesystem;

fs::path scratch(const std::string& name) { return test_util::scratch_path("review_defects", name); }

// y = x Wᵀ, with a backward that counts how often it computes the weight's gradient: what the
// recompute of a checkpoint differentiates.
std::atomic<int> weight_gradients{0};
struct CountingMatmul : torch::autograd::Function<CountingMatmul> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w) {
    ctx->save_for_backward({x, w});
    return x.matmul(w.t());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list g) {
    const auto saved = ctx->get_saved_variables();
    torch::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) dx = g[0].matmul(saved[1]);
    if (ctx->needs_input_grad(1)) {
      dw = g[0].t().matmul(saved[0]);
      ++weight_gradients;
    }
    return {dx, dw};
  }
};
struct CountingNetImpl : torch::nn::Module {
  torch::Tensor w;
  CountingNetImpl() { w = register_parameter("w", torch::randn({3, 3})); }
  torch::Tensor forward(const torch::Tensor& x) { return torch::tanh(CountingMatmul::apply(x, w)); }
};
TORCH_MODULE(CountingNet);

TEST_CASE("review: a parameter switched off for a checkpointed forward gets no weight gradient in the recompute",
          "[review][memory][checkpoint]") {
  // The generator's update freezes the assistant's weights for its forward (requires_grad(false))
  // and restores them before backward; the recompute must decide from the forward's flags, or it
  // computes a whole weight backward of the assistant per step and throws it away.
  torch::manual_seed(1);
  CountingNet net;
  const auto x = torch::randn({4, 3}).requires_grad_(true);
  torch::Tensor y;
  {
    net->w.requires_grad_(false);
    y = di::checkpoint([&](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{net->forward(in[0])}; }, {x},
                       net->parameters())[0];
    net->w.requires_grad_(true);  // restored before backward, as the trainer's scope does
  }
  weight_gradients = 0;
  const auto dx = torch::autograd::grad({y.sum()}, {x})[0];
  CHECK(weight_gradients == 0);
  // The same pass without the switch computes it (the counter can count).
  y = di::checkpoint([&](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{net->forward(in[0])}; }, {x},
                     net->parameters())[0];
  weight_gradients = 0;
  const auto grads = torch::autograd::grad({y.sum()}, {x, net->w});
  CHECK(weight_gradients == 1);
  CHECK(torch::allclose(dx, grads[0]));
}

TEST_CASE("review: the checkpoint's recompute runs each module in the train/eval mode of its forward", "[review][memory][checkpoint]") {
  // A pass that switches a module to evaluation mode for its duration (a shared-base teacher) has
  // put it back in training mode before backward: the recompute must not see dropout switched on.
  torch::manual_seed(2);
  torch::nn::Sequential net(torch::nn::Linear(6, 6), torch::nn::Dropout(0.5), torch::nn::Linear(6, 6));
  const auto x = torch::randn({5, 6}).requires_grad_(true);
  net->eval();
  const auto plain = torch::autograd::grad({net->forward(x).square().sum()}, {x})[0];
  // checkpoint_module, and checkpoint(f, inputs, params, modules) with the modules named.
  torch::Tensor y = di::checkpoint_module(net, x);
  net->train();  // the pass's scope ends before backward
  const auto ckpt = torch::autograd::grad({y.square().sum()}, {x})[0];
  CHECK(torch::equal(plain, ckpt));
  net->eval();
#ifndef DIFFINSTRUCT_REVIEW_BEFORE
  y = di::checkpoint([&](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{net->forward(in[0])}; }, {x},
                     net->parameters(), {di::ModuleRef::of(net)})[0];
  net->train();
  CHECK(torch::equal(plain, torch::autograd::grad({y.square().sum()}, {x})[0]));
#else
  net->train();
#endif
  CHECK(net->is_training());  // the mode of the moment is back after the recompute
  CHECK(net[1]->is_training());
}

TEST_CASE("review: load(kUseCheckpointOptions) takes the checkpoint's EMA into a trainer built without one, and keeps release_gradients",
          "[review][checkpoint]") {
  const auto path = scratch("ema.ckpt").string();
  auto a = tiny::make(1, di::DiStarTrainerOptions().batch_size(8).ema_decay(0.9));
  for (int i = 0; i < 3; ++i) a->step();
  a->save(path);
  auto b = tiny::make(1, di::DiStarTrainerOptions().batch_size(8).ema_decay(0).release_gradients(false));  // the same teacher
  b->load(path, di::ResumeMode::kUseCheckpointOptions);
  REQUIRE(b->ema().shadow().size() == a->ema().shadow().size());
  CHECK(test_util::identical(b->ema().shadow(), a->ema().shadow()));  // the checkpoint's EMA, not a copy of the generator
  CHECK_FALSE(test_util::identical(b->ema().shadow(), b->generator_parameters()));
  CHECK(b->options().ema_decay() == 0.9);
  CHECK_FALSE(b->options().release_gradients());  // how this run computes stays this trainer's choice
  // And the two continue alike.
  a->step();
  b->step();
  CHECK(test_util::identical(b->ema().shadow(), a->ema().shadow()));
}

TEST_CASE("review: a seed of 2^63 or more is saved and read back", "[review][checkpoint]") {
  const auto path = scratch("seed.ckpt").string();
  const uint64_t seed = std::numeric_limits<uint64_t>::max() - 6;
  auto a = tiny::make(1, di::DiStarTrainerOptions().batch_size(8).seed(seed));
  a->step();
  a->save(path);
  auto b = tiny::make(1, di::DiStarTrainerOptions().batch_size(8).seed(3));
  REQUIRE_NOTHROW(b->load(path, di::ResumeMode::kUseCheckpointOptions));
  CHECK(b->options().seed() == seed);
  auto c = tiny::make(1, di::DiStarTrainerOptions().batch_size(8).seed(seed));
  REQUIRE_NOTHROW(c->load(path));
}

// A class-conditional MLP: g(z, y) and f(x, t, y) with labels y.
struct LabelNetImpl : torch::nn::Module {
  torch::nn::Linear lin{nullptr};
  torch::nn::Embedding emb{nullptr};
  explicit LabelNetImpl(int64_t in) {
    lin = register_module("lin", torch::nn::Linear(in, 2));
    emb = register_module("emb", torch::nn::Embedding(4, 2));
  }
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& y) { return lin(z) + emb(y); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
    return lin(torch::cat({x, t.unsqueeze(1)}, 1)) + emb(y);
  }
};
TORCH_MODULE(LabelNet);
using LabelTrainer = di::DiStarTrainer<di::Generator<LabelNet>, di::Denoiser<LabelNet>, di::Denoiser<LabelNet>, torch::Tensor,
                                       di::PseudoHuberScore, di::CfgInside, di::NoReward, di::CosineVPSchedule>;
std::unique_ptr<LabelTrainer> label_trainer(torch::Tensor null, const torch::Device& device = torch::kCPU) {
  torch::manual_seed(4);
  LabelNet gen(2), teacher(3), asst(3);
  for (auto* m : {&gen, &teacher, &asst}) (*m)->to(device);
  di::ConditionSource<torch::Tensor> labels{[](int64_t b, at::Generator& g) { return at::randint(0, 4, {b}, g, torch::kLong); }, null};
  return std::make_unique<LabelTrainer>(di::Generator<LabelNet>(gen), di::Denoiser<LabelNet>(teacher, "teacher"),
                                        di::Denoiser<LabelNet>(asst, "assistant"),
                                        LabelTrainer::Policies{di::PseudoHuberScore(1.0), di::CfgInside(di::GuidanceScale(2.0)), di::NoReward(),
                                                               di::CosineVPSchedule()},
                                        labels, std::vector<int64_t>{2}, di::DiStarTrainerOptions().batch_size(4));
}

TEST_CASE("review: the null condition is checked when the trainer is built, not at the first guided step", "[review][trainer]") {
  // No null condition at all (a default ConditionSource's): refused when the trainer is built.
  CHECK_THROWS_WITH(label_trainer(torch::Tensor()), Catch::Contains("the null condition") && Catch::Contains("cannot be batched"));
  // Two rows for a batch of four: neither one row nor a full batch.
  CHECK_THROWS_WITH(label_trainer(torch::zeros({2}, torch::kLong)), Catch::Contains("the null condition"));
  // One row is fine, and the trainer runs.
  auto t = label_trainer(torch::zeros({1}, torch::kLong));
  CHECK(std::isfinite(t->step().generator_loss));
}

TEST_CASE("[cuda] review: conditions sampled on the CPU and a CPU null condition reach a trainer on the GPU", "[review][trainer][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  auto t = label_trainer(torch::zeros({1}, torch::kLong), torch::kCUDA);
  CHECK(t->data_parallel() == nullptr);
  const auto s = t->step();
  CHECK(std::isfinite(s.generator_loss));
  CHECK(std::isfinite(s.assistant_loss));
}

struct CountSteps {
  int* seen;
  void on_step_end(const di::StepStats&) { ++*seen; }
};

#ifndef DIFFINSTRUCT_REVIEW_BEFORE  // before: a compile error (fit took Callbacks&...)
TEST_CASE("review: fit accepts temporary callbacks", "[review][trainer]") {
  auto t = tiny::make(1, di::DiStarTrainerOptions().batch_size(8));
  int seen = 0;
  t->fit(2, CountSteps{&seen});
  CHECK(seen == 2);
}
#endif

}  // namespace review_defects
