// FewStepUNet (text2image/few_step_unet.hpp): with one timestep it is OneStepUNet exactly; with K it
// is the chain it documents (checked against the chain written out here with OneStepUNets); its
// gradient reaches every step's noise and matches a finite difference through the whole chain; it
// trains in the DI* trainer with its own noise and sample shapes; bad settings and inputs are refused.
#include "../test_skip.hpp"
#include "../models/tiny_unet.hpp"

#include <diffinstruct/di_star.hpp>
#include <diffinstruct/text2image/few_step_unet.hpp>
#include <diffinstruct/text2image/one_step_unet.hpp>

#include <catch2/catch.hpp>

namespace di = diffinstruct;
namespace dm = diffinstruct::models;
namespace t2i = diffinstruct::text2image;

TEST_CASE("FewStepUNet: one step is OneStepUNet, K steps are the documented chain", "[text2image][few_step]") {
  torch::manual_seed(11);
  dm::UNet2DConditionModel unet(test_models::tiny_unet_config());
  unet->eval();
  const di::DiscreteVPSchedule schedule;
  const dm::TextCondition c(torch::randn({2, 5, 12}));
  torch::NoGradGuard no_grad;
  const auto z1 = torch::randn({2, 4, 8, 8}), z2 = torch::randn({2, 4, 8, 8}), z3 = torch::randn({2, 4, 8, 8});
  for (auto p : {dm::Prediction::kEpsilon, dm::Prediction::kV}) {
    t2i::FewStepUNet one(unet, schedule, t2i::FewStepUNetOptions().timesteps({999}).prediction(p));
    t2i::OneStepUNet ref(unet, schedule, t2i::OneStepUNetOptions().timestep(999).prediction(p));
    CHECK(torch::equal(one->forward(z1, c), ref->forward(z1, c)));
    // Three steps, written out: denoise, re-noise with the next chunk at the next timestep, denoise...
    t2i::FewStepUNet three(unet, schedule, t2i::FewStepUNetOptions().timesteps({999, 600, 250}).prediction(p));
    auto at = [&](int64_t t, const torch::Tensor& x) { return t2i::OneStepUNet(unet, schedule, t2i::OneStepUNetOptions().timestep(t).prediction(p))->forward(x, c); };
    auto renoise = [&](int64_t t, const torch::Tensor& x0, const torch::Tensor& eps) {
      const auto tt = torch::full({1}, static_cast<double>(t), torch::kDouble);
      return schedule.alpha(tt).item<double>() * x0 + schedule.sigma(tt).item<double>() * eps;
    };
    const auto expected = at(250, renoise(250, at(600, renoise(600, at(999, z1), z2)), z3));
    CHECK(torch::allclose(three->forward(torch::cat({z1, z2, z3}, 1), c), expected, 1e-5, 1e-6));
    CHECK(three->steps() == 3);
  }
}

TEST_CASE("FewStepUNet: gradients go through the whole chain", "[text2image][few_step]") {
  torch::manual_seed(12);
  dm::UNet2DConditionModel unet(test_models::tiny_unet_config());
  unet->to(torch::kDouble);
  unet->eval();
  const di::DiscreteVPSchedule schedule;
  t2i::FewStepUNet two(unet, schedule, t2i::FewStepUNetOptions().timesteps({999, 500}));
  const dm::TextCondition c(torch::randn({1, 5, 12}, torch::kDouble));
  const auto z = torch::randn({1, 8, 8, 8}, torch::kDouble).requires_grad_(true);
  const auto w = torch::randn({1, 4, 8, 8}, torch::kDouble);
  const auto loss = (two->forward(z, c) * w).sum();
  const auto g = torch::autograd::grad({loss}, {z})[0];
  // Both noises matter: the first through the first step's output, the second through the re-noising.
  CHECK(g.slice(1, 0, 4).abs().sum().item<double>() > 0);
  CHECK(g.slice(1, 4, 8).abs().sum().item<double>() > 0);
  // A central difference along a random direction of the first step's noise (float64).
  torch::NoGradGuard no_grad;
  auto d = torch::zeros_like(z);
  d.slice(1, 0, 4).copy_(torch::randn({1, 4, 8, 8}, torch::kDouble));
  const double h = 1e-5;
  const double fd = ((two->forward(z + h * d, c) * w).sum().item<double>() - (two->forward(z - h * d, c) * w).sum().item<double>()) / (2 * h);
  CHECK(fd == Approx((g * d).sum().item<double>()).epsilon(1e-5));
}

TEST_CASE("FewStepUNet: trains in the DI* trainer with noise of K chunks", "[text2image][few_step]") {
  torch::manual_seed(13);
  const auto config = test_models::tiny_unet_config();
  dm::UNet2DConditionModel teacher(config), assistant(config), gen_unet(config);
  const di::DiscreteVPSchedule schedule;
  t2i::FewStepUNet gen(gen_unet, schedule, t2i::FewStepUNetOptions().timesteps({999, 499}));
  using Den = di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>;
  di::ConditionSource<dm::TextCondition> source;
  source.sample = [](int64_t b, at::Generator& g) { return dm::TextCondition(torch::randn({b, 5, 12}, g)); };
  source.null_condition = dm::TextCondition(torch::zeros({1, 5, 12}));
  di::DiStarTrainer<di::Generator<t2i::FewStepUNet>, Den, Den, dm::TextCondition, di::PseudoHuberScore, di::CfgInside, di::NoReward,
                    di::DiscreteVPSchedule>
      trainer(di::Generator<t2i::FewStepUNet>(gen), Den(teacher, "teacher"), Den(assistant, "assistant"),
              {di::PseudoHuberScore(1.0), di::CfgInside(di::AlphaCfg(1.0)), di::NoReward{}, schedule}, source, std::vector<int64_t>{8, 8, 8},
              di::DiStarTrainerOptions().batch_size(2).sample_shape({4, 8, 8}).seed(3));
  const auto before = gen_unet->conv_in->weight.clone();
  const auto s = trainer.step();
  CHECK(std::isfinite(s.generator_loss));
  CHECK_FALSE(torch::equal(before, gen_unet->conv_in->weight));
  CHECK(trainer.sample(torch::randn({3, 8, 8, 8}), dm::TextCondition(torch::randn({3, 5, 12}))).sizes() == torch::IntArrayRef({3, 4, 8, 8}));
}

TEST_CASE("FewStepUNet: refusals", "[text2image][few_step]") {
  dm::UNet2DConditionModel unet(test_models::tiny_unet_config());
  const di::DiscreteVPSchedule schedule;
  CHECK_THROWS_WITH(t2i::FewStepUNet(unet, schedule, t2i::FewStepUNetOptions().timesteps({500, 700})), Catch::Contains("timesteps must decrease"));
  CHECK_THROWS_WITH(t2i::FewStepUNet(unet, schedule, t2i::FewStepUNetOptions().timesteps({1000})), Catch::Contains("outside [0, 999]"));
  CHECK_THROWS_WITH(t2i::FewStepUNet(unet, schedule, t2i::FewStepUNetOptions().timesteps({})), Catch::Contains("expected 1 to 64 timesteps"));
  t2i::FewStepUNet two(unet, schedule, t2i::FewStepUNetOptions().timesteps({999, 499}));
  CHECK_THROWS_WITH(two->forward(torch::randn({1, 4, 8, 8}), dm::TextCondition(torch::randn({1, 5, 12}))), Catch::Contains("expected z [B, 2·4, H, W]"));
}

TEST_CASE("[cuda] FewStepUNet on the GPU matches the CPU", "[text2image][few_step][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  torch::manual_seed(14);
  dm::UNet2DConditionModel unet(test_models::tiny_unet_config());
  unet->eval();
  const di::DiscreteVPSchedule schedule;
  t2i::FewStepUNet cpu(unet, schedule, t2i::FewStepUNetOptions().timesteps({999, 499}));
  const auto z = torch::randn({2, 8, 8, 8});
  const dm::TextCondition c(torch::randn({2, 5, 12}));
  torch::NoGradGuard no_grad;
  const auto expected = cpu->forward(z, c);
  auto gpu_unet = test_models::copy_of_tiny_unet(unet);
  gpu_unet->to(torch::kCUDA);
  gpu_unet->eval();
  t2i::FewStepUNet gpu(gpu_unet, schedule, t2i::FewStepUNetOptions().timesteps({999, 499}));
  const auto got = gpu->forward(z.to(torch::kCUDA), dm::TextCondition(c.encoder_hidden_states.to(torch::kCUDA)));
  CHECK(got.is_cuda());
  CHECK(torch::allclose(got.cpu(), expected, 1e-4, 1e-4));
}
