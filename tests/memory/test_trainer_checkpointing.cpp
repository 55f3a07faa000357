// Activation checkpointing where DI* spends its memory: the diffusers-compatible UNet per block
// (set_gradient_checkpointing), and the trainer's options that checkpoint the generator's, teacher's,
// assistant's and reward's forwards. Gradients and trained weights equal the plain run's; the bytes
// kept for backward drop (counting allocator, exact).
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/memory/counting_allocator.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>
#include "../models/one_step_unet.hpp"
#include "../models/tiny_unet.hpp"
#include "../tensor_compare.hpp"

#include <catch2/catch.hpp>
#include <torch/torch.h>

namespace di = diffinstruct;
namespace dm = diffinstruct::models;

namespace {

dm::UNet2DConditionConfig tiny_config() { return test_models::tiny_unet_config(); }

struct UNetGrads {
  std::vector<torch::Tensor> params;
  torch::Tensor dx, dcontext, out;
  int64_t peak_bytes = 0;  // CPU tensor bytes live at once during forward + backward, above the start
};

UNetGrads unet_grads(dm::UNet2DConditionModel& unet, bool checkpointed, bool params_trainable, bool bf16) {
  torch::manual_seed(11);
  const auto dtype = unet->parameters().front().scalar_type();  // float32, or float64 for the reference
  const auto x = torch::randn({2, 4, 16, 16}).to(dtype).requires_grad_(true);
  const auto ctx = torch::randn({2, 5, 12}).to(dtype).requires_grad_(true);
  const auto t = torch::tensor({10.0, 700.0});
  for (auto& p : unet->parameters()) p.requires_grad_(params_trainable);
  unet->set_gradient_checkpointing(checkpointed);
  UNetGrads g;
  // Never destroyed: tensors it counted (the gradients returned) must be able to free through it.
  static auto& counter = *new di::CountingCpuAllocator();
  {
    di::CpuAllocationScope scope(counter);
    counter.reset_peak();
    const int64_t start = counter.live_bytes();
  torch::Tensor y;
    {
      di::compat::AutocastState s;
      s.cpu = bf16;
      s.cpu_dtype = torch::kBFloat16;
      di::compat::AutocastStateGuard autocast(s);
      y = unet->forward(x, t, dm::TextCondition(ctx));
    }
    const auto loss = (y.to(dtype) * y.to(dtype)).sum();
    std::vector<torch::Tensor> wrt{x, ctx};
    if (params_trainable)
      for (const auto& p : unet->parameters()) wrt.push_back(p);
    auto d = torch::autograd::grad({loss}, wrt);
    g.peak_bytes = counter.peak_bytes() - start;
    g.out = y.detach().clone();
    g.dx = d[0].clone();
    g.dcontext = d[1].clone();
    for (size_t i = 2; i < d.size(); ++i) g.params.push_back(d[i].clone());
  }
  unet->set_gradient_checkpointing(false);
  for (auto& p : unet->parameters()) p.requires_grad_(true);
  return g;
}

using test_util::identical;
using test_util::relative_difference;  // ‖a − b‖ / ‖b‖: a gradient's error relative to the gradient

}  // namespace

TEST_CASE("UNet per-block checkpointing: parameter, input and context gradients equal the plain pass, fewer bytes kept",
          "[memory][checkpoint][unet]") {
  torch::manual_seed(3);
  dm::UNet2DConditionModel unet(tiny_config());
  // The reference: the same UNet in float64. Checkpointing changes the order in which autograd sums
  // the contributions of a tensor used in several blocks (the time embedding, the text context, the
  // skips), so the checkpointed gradients are not bit-identical to the plain pass's; how far they may
  // be is set by the plain pass's own error against float64, not by a constant: bf16 round-off (and
  // the CPU's kernels: oneDNN's bf16 convolutions on AVX-512, ATen's elsewhere) sets it there, float32
  // round-off (and the thread count) here.
  auto reference = test_models::copy_of_tiny_unet(unet);
  reference->to(torch::kDouble);
  for (bool trainable : {true, false}) {  // false: the frozen teacher's input-gradient-only graph
    const auto exact = unet_grads(reference, false, trainable, false);
    for (bool bf16 : {false, true}) {
      INFO("bf16 autocast " << bf16 << ", trainable parameters " << trainable);
      const auto plain = unet_grads(unet, false, trainable, bf16);
      const auto ckpt = unet_grads(unet, true, trainable, bf16);
      CHECK(torch::equal(plain.out, ckpt.out));  // the forward is the same computation
      CHECK(plain.params.empty() != trainable);
      auto grads = [&](const UNetGrads& g) {
        std::vector<torch::Tensor> all{g.dx, g.dcontext};
        all.insert(all.end(), g.params.begin(), g.params.end());
        return all;
      };
      const double err_plain = relative_difference(grads(plain), grads(exact));
      const double err_ckpt = relative_difference(grads(ckpt), grads(exact));
      const double apart = relative_difference(grads(ckpt), grads(plain));
      const bool bitwise = identical(grads(plain), grads(ckpt));
      WARN("UNet (16/32 channels, 16x16, batch 2" << (bf16 ? ", bf16 autocast" : "") << (trainable ? "" : ", frozen")
                                                << "): peak bytes in forward + backward " << plain.peak_bytes << " plain, " << ckpt.peak_bytes
                                                << " checkpointed per block; gradients against float64: plain " << err_plain << ", checkpointed "
                                                << err_ckpt << "; apart " << apart << (bitwise ? " (bit-identical)" : ""));
      // The checkpointed pass is as accurate as the plain one (a factor of 2 for the summation order's
      // share of the same round-off), and the two are no further apart than their errors allow.
      CHECK(err_plain > 0);
      CHECK(err_ckpt <= 2 * err_plain);
      CHECK(apart <= 3 * err_plain);
      CHECK(ckpt.peak_bytes < plain.peak_bytes);
    }
  }
  // Under no-grad the switch does nothing (no graph to save memory on).
  unet->set_gradient_checkpointing(true);
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({1, 4, 8, 8});
  const auto c = dm::TextCondition(torch::randn({1, 3, 12}));
  const auto y1 = unet->forward(x, torch::tensor({5.0}), c);
  unet->set_gradient_checkpointing(false);
  CHECK(torch::equal(y1, unet->forward(x, torch::tensor({5.0}), c)));
}

namespace {

using Reward = di::CallableReward<std::function<torch::Tensor(const torch::Tensor&, const dm::TextCondition&)>>;
using UNetDenoiser = di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>;
template <class Guidance>
using UNetTrainer = di::DiStarTrainer<di::Generator<test_models::OneStepUNet>, UNetDenoiser, UNetDenoiser, dm::TextCondition,
                                      di::PseudoHuberScore, Guidance, Reward, di::DiscreteVPSchedule>;

struct Run {
  std::vector<torch::Tensor> generator_grads, assistant_grads, generator, assistant;
  std::vector<int64_t> peak_bytes;  // per step
};

template <class Guidance>
Run run_unet_trainer(bool checkpointed, int steps, int64_t assistant_steps) {
  torch::manual_seed(3);
  const auto config = tiny_config();
  dm::UNet2DConditionModel teacher(config), assistant(config), gen_unet(config);
  {
    torch::NoGradGuard ng;
    for (auto& [dst, src] : {std::make_pair(assistant, teacher), std::make_pair(gen_unet, teacher)})
      for (const auto& p : src->named_parameters()) dst->named_parameters()[p.key()].copy_(p.value());
  }
  for (auto* u : {&teacher, &assistant, &gen_unet}) (*u)->set_gradient_checkpointing(checkpointed);
  di::DiscreteVPSchedule schedule;
  const auto t999 = torch::full({1}, 999.0);
  test_models::OneStepUNet generator(gen_unet, schedule.alpha(t999).item<double>(), schedule.sigma(t999).item<double>());
  di::ConditionSource<dm::TextCondition> prompts{
      [](int64_t b, at::Generator& g) { return dm::TextCondition(at::randn({b, 3, 12}, g, torch::TensorOptions())); },
      dm::TextCondition(torch::zeros({1, 3, 12}))};
  UNetTrainer<Guidance> trainer(
      di::Generator<test_models::OneStepUNet>(generator), UNetDenoiser(teacher, "teacher"), UNetDenoiser(assistant, "assistant"),
      {di::PseudoHuberScore(1.0), Guidance(di::GuidanceScale(3.0)),
       Reward([](const torch::Tensor& x, const dm::TextCondition&) { return -torch::tanh(x).square().mean({1, 2, 3}); }), schedule},
      prompts, std::vector<int64_t>{4, 16, 16},
      di::DiStarTrainerOptions()
          .batch_size(2)
          .assistant_steps(assistant_steps)
          .alpha_rew(0.1)
          .seed(5)
          .generator_max_grad_norm(0)  // compare the gradients themselves
          .assistant_max_grad_norm(0)
          .release_gradients(false)    // kept after the step, to be compared
          .checkpoint_generator(checkpointed)
          .checkpoint_teacher(checkpointed)
          .checkpoint_assistant(checkpointed)
          .checkpoint_reward(checkpointed)
          .measure_memory(true));
  Run run;
  // A second count around the trainer's own (the two must agree); never destroyed, since tensors it
  // counted (Adam's moments) outlive this function's trainer only just.
  static auto& counter = *new di::CountingCpuAllocator();
  for (int i = 0; i < steps; ++i) {
    di::CpuAllocationScope scope(counter);
    counter.reset_peak();
    const int64_t start = counter.live_bytes();
    const auto s = trainer.step();
    REQUIRE(std::isfinite(s.generator_loss));
    REQUIRE_FALSE(s.generator_skipped);
    CHECK(s.peak_bytes == counter.peak_bytes() - start);
    CHECK(s.peak_bytes > 0);
    run.peak_bytes.push_back(s.peak_bytes);
    if (i == 0) {  // the first step's gradients, which the trainer leaves in .grad
      for (const auto& p : trainer.generator_parameters()) run.generator_grads.push_back(p.grad().clone());
      for (const auto& p : trainer.assistant_parameters())
        if (p.grad().defined()) run.assistant_grads.push_back(p.grad().clone());
    }
  }
  for (const auto& p : trainer.generator_parameters()) run.generator.push_back(p.detach().clone());
  for (const auto& p : trainer.assistant_parameters()) run.assistant.push_back(p.detach().clone());
  return run;
}

template <class Guidance>
void check_same_training(const char* name) {
  // The generator's gradient at the first step (no assistant update before it, so both runs
  // differentiate the very same networks), and the assistant's at its first update.
  const auto plain_g = run_unet_trainer<Guidance>(false, 1, 0), ckpt_g = run_unet_trainer<Guidance>(true, 1, 0);
  const auto plain = run_unet_trainer<Guidance>(false, 3, 1), ckpt = run_unet_trainer<Guidance>(true, 3, 1);
  REQUIRE(plain.assistant_grads.size() == plain.assistant.size());
  const double rel_g = relative_difference(ckpt_g.generator_grads, plain_g.generator_grads);
  const double rel_a = relative_difference(ckpt.assistant_grads, plain.assistant_grads);
  const double rel_w = std::max(relative_difference(ckpt.generator, plain.generator), relative_difference(ckpt.assistant, plain.assistant));
  WARN(name << ", every forward checkpointed (trainer options + UNet per block): first-step gradients of the generator within " << rel_g
            << " and of the assistant within " << rel_a << " (relative) of the plain run's; weights after 3 Adam steps within " << rel_w
            << "; peak bytes of step 3: " << plain.peak_bytes.back() << " plain, " << ckpt.peak_bytes.back() << " checkpointed");
  // The assistant's gradient is one network's; the generator's goes through the score difference
  // ε̂_assistant − ε̂_teacher (guided), two nearly equal outputs at the start (the assistant is the
  // teacher's copy), so the round-off of the summation order is relatively larger there: 8e-6 was
  // measured under CFG inside (guidance 3 amplifies it), 3e-7 under CFG outside.
  CHECK(rel_g <= 2e-5);
  CHECK(rel_a <= 1e-6);
  CHECK(ckpt.peak_bytes.back() < plain.peak_bytes.back());
}

}  // namespace

TEST_CASE("the trainer's checkpointing options (generator, teacher, assistant, reward) train the same weights with less memory, CFG inside",
          "[memory][checkpoint][trainer]") {
  check_same_training<di::CfgInside>("CFG inside");
}

TEST_CASE("the trainer's checkpointing options train the same weights with less memory, CFG outside (detached unconditional pass)",
          "[memory][checkpoint][trainer]") {
  check_same_training<di::CfgOutside>("CFG outside");
}
