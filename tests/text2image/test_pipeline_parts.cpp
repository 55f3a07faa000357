// The parts of a diffusers pipeline folder the text-to-image path reads: scheduler_config.json (the
// beta table and the prediction type), the one-step UNet at t* (epsilon, v or x0 to x0), and the
// folder itself (every missing part named, SDXL told from SD), with the one-step UNet's [cuda] twin.
#include "../test_skip.hpp"
#include "../models/tiny_unet.hpp"

#include <diffinstruct/di_star.hpp>
#include <diffinstruct/models/scheduler_config.hpp>
#include <diffinstruct/text2image/one_step_unet.hpp>
#include <diffinstruct/text2image/pipeline_folder.hpp>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace di = diffinstruct;
namespace dm = diffinstruct::models;
namespace t2i = diffinstruct::text2image;
namespace fs = std::filesystem;

TEST_CASE("text2image: a scheduler_config.json gives the beta table and the prediction type, and refuses what is not implemented",
          "[text2image][io]") {
  // SD 1.5's scheduler config, as the Hub has it (PNDM; the sampler's keys are ignored).
  const auto sd15 = dm::parse_scheduler_config(
      R"({"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012, "beta_schedule": "scaled_linear",
          "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
          "trained_betas": null, "clip_sample": false})",
      "sd15");
  CHECK(sd15.class_name == "PNDMScheduler");
  CHECK(sd15.prediction == dm::Prediction::kEpsilon);
  CHECK(sd15.options.beta_schedule() == di::BetaSchedule::kScaledLinear);
  CHECK(sd15.options.num_train_timesteps() == 1000);
  CHECK(sd15.options.generator_range().lo == 20);
  CHECK(sd15.options.generator_range().hi == 980);
  {  // the same table as the library's SD default, to the bit
    di::DiscreteVPSchedule a(sd15.options), b(di::DiscreteVPOptions::scaled_linear());
    const auto t = torch::arange(0, 1000, torch::kDouble);
    CHECK(a.alpha(t).equal(b.alpha(t)));
  }
  const auto sd2 = dm::parse_scheduler_config(
      R"({"_class_name": "EulerDiscreteScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
          "prediction_type": "v_prediction", "timestep_spacing": "trailing", "rescale_betas_zero_snr": false})",
      "sd2");
  CHECK(sd2.prediction == dm::Prediction::kV);
  // Missing keys take diffusers' defaults: DDPM's linear table, epsilon.
  const auto ddpm = dm::parse_scheduler_config(R"({"num_train_timesteps": 500})", "ddpm");
  CHECK(ddpm.options.beta_schedule() == di::BetaSchedule::kLinear);
  CHECK(ddpm.options.beta_start() == 1e-4);
  CHECK(ddpm.options.beta_end() == 0.02);
  CHECK(ddpm.options.assistant_range().hi == 499);
  CHECK(ddpm.options.generator_range().hi == Approx(490));
  CHECK(ddpm.prediction == dm::Prediction::kEpsilon);
  auto refuses = [](const std::string& json, const std::string& message) {
    CHECK_THROWS_WITH(dm::parse_scheduler_config(json, "the config"), Catch::Contains(message));
  };
  refuses(R"({"beta_schedule": "squaredcos_cap_v2"})", "beta_schedule 'squaredcos_cap_v2' is not implemented");
  refuses(R"({"trained_betas": [0.1, 0.2]})", "trained_betas (an explicit beta table) is not implemented");
  refuses(R"({"rescale_betas_zero_snr": true})", "rescale_betas_zero_snr = true");
  refuses(R"({"prediction_type": "flow"})", "unknown prediction_type 'flow'");
  refuses(R"({"beta_start": "0.1"})", "'beta_start' must be a number, got a string");
  refuses(R"({"num_train_timesteps": 1e12})", "num_train_timesteps must be an integer in [2, 100000]");
  refuses(R"({"num_train_timesteps": 10.5})", "num_train_timesteps must be an integer in [2, 100000]");
  refuses(R"({"beta_start": 0.5, "beta_end": 0.1})", "beta_start <= beta_end");
  refuses("[1]", "is not a JSON object");
  CHECK_THROWS_WITH(dm::read_scheduler_config("/nonexistent/scheduler_config.json"), Catch::Contains("/nonexistent/scheduler_config.json"));
}

TEST_CASE("text2image: a OneStepUNet turns the UNet's epsilon, v or x0 at t* into x0, and its UNet is the submodule unet",
          "[text2image]") {
  torch::manual_seed(5);
  const auto config = test_models::tiny_unet_config();
  dm::UNet2DConditionModel unet(config);
  unet->eval();
  di::DiscreteVPSchedule schedule;
  const auto z = torch::randn({2, 4, 8, 8});
  dm::TextCondition c(torch::randn({2, 5, 12}));
  torch::NoGradGuard ng;
  const auto out = unet->forward(z, torch::full({2}, 399, torch::kLong), c);
  const double a = schedule.alpha(torch::full({1}, 399.0, torch::kDouble)).item<double>();
  const double s = schedule.sigma(torch::full({1}, 399.0, torch::kDouble)).item<double>();
  for (const auto p : {dm::Prediction::kEpsilon, dm::Prediction::kV, dm::Prediction::kSample}) {
    t2i::OneStepUNet gen(unet, schedule, t2i::OneStepUNetOptions().timestep(399).prediction(p));
    CHECK(gen->alpha() == Approx(a).epsilon(1e-12));
    const auto x0 = gen->forward(z, c);
    const auto expected = p == dm::Prediction::kEpsilon ? (z - s * out) / a : p == dm::Prediction::kV ? a * z - s * out : out;
    INFO(dm::prediction_name(p));
    CHECK(torch::allclose(x0, expected, 1e-5, 1e-5));
  }
  t2i::OneStepUNet gen(unet, schedule);
  CHECK(gen->named_parameters().contains("unet.conv_in.weight"));
  CHECK(gen->describe() == "one-step UNet (t* = 999, epsilon)");
  CHECK_THROWS_WITH(t2i::OneStepUNet(unet, schedule, t2i::OneStepUNetOptions().timestep(1000)), Catch::Contains("expected a timestep in [0, 999]"));
  CHECK_THROWS_WITH(gen->forward(torch::randn({2, 4, 8}), c), Catch::Contains("expected z [B, C, H, W]"));
}

TEST_CASE("text2image: a PipelineFolder names every part a pipeline folder lacks, and tells SDXL from SD", "[text2image][io]") {
  const auto dir = fs::path(DIFFINSTRUCT_TEST_TMPDIR) / "pipeline_folder";
  fs::remove_all(dir);
  CHECK_THROWS_WITH(t2i::PipelineFolder::open(dir.string()), Catch::Contains("is not a folder"));
  fs::create_directories(dir / "unet");
  std::ofstream(dir / "unet" / "config.json") << "{}";
  CHECK_THROWS_WITH(t2i::PipelineFolder::open(dir.string()),
                    Catch::Contains("lacks vae/config.json, text_encoder/config.json, tokenizer/vocab.json or tokenizer.json, "
                                    "scheduler/scheduler_config.json"));
  for (const char* part : {"vae", "text_encoder", "tokenizer", "scheduler"}) fs::create_directories(dir / part);
  for (const char* file : {"vae/config.json", "text_encoder/config.json", "tokenizer/tokenizer.json"}) std::ofstream(dir / file) << "{}";
  std::ofstream(dir / "scheduler" / "scheduler_config.json") << R"({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
                                                                     "prediction_type": "v_prediction"})";
  const auto sd = t2i::PipelineFolder::open(dir.string());
  CHECK_FALSE(sd.is_sdxl());
  CHECK(sd.scheduler().prediction == dm::Prediction::kV);
  CHECK_FALSE(sd.prompt_options(512, 512).time_ids().defined());
  fs::create_directories(dir / "text_encoder_2");
  CHECK_THROWS_WITH(t2i::PipelineFolder::open(dir.string()), Catch::Contains("lacks text_encoder_2/config.json, tokenizer_2/vocab.json or tokenizer.json"));
  fs::create_directories(dir / "tokenizer_2");
  std::ofstream(dir / "text_encoder_2" / "config.json") << "{}";
  std::ofstream(dir / "tokenizer_2" / "tokenizer.json") << "{}";
  const auto xl = t2i::PipelineFolder::open(dir.string());
  CHECK(xl.is_sdxl());
  CHECK(xl.prompt_options(768, 1024).time_ids().equal(torch::tensor({768.f, 1024.f, 0.f, 0.f, 768.f, 1024.f})));
}

TEST_CASE("[cuda] a OneStepUNet on the GPU matches the CPU, in float32 and under bfloat16 autocast", "[text2image][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  torch::manual_seed(6);
  const auto config = test_models::tiny_unet_config();
  dm::UNet2DConditionModel unet(config);
  di::DiscreteVPSchedule schedule;
  t2i::OneStepUNet cpu(unet, schedule, t2i::OneStepUNetOptions().prediction(dm::Prediction::kV));
  cpu->eval();
  const auto z = torch::randn({2, 4, 8, 8});
  dm::TextCondition c(torch::randn({2, 5, 12}));
  torch::NoGradGuard ng;
  const auto expected = cpu->forward(z, c);
  dm::UNet2DConditionModel gpu_unet(config);
  for (const auto& p : unet->named_parameters()) gpu_unet->named_parameters()[p.key()].copy_(p.value());
  gpu_unet->to(torch::kCUDA);
  t2i::OneStepUNet gpu(gpu_unet, schedule, t2i::OneStepUNetOptions().prediction(dm::Prediction::kV));
  gpu->eval();
  dm::TextCondition gc(c.encoder_hidden_states.to(torch::kCUDA));
  const auto got = gpu->forward(z.to(torch::kCUDA), gc);
  CHECK(got.is_cuda());
  CHECK(torch::allclose(got.cpu(), expected, 1e-4, 1e-4));
  di::AutocastScope autocast(di::Precision::kBFloat16, torch::Device(torch::kCUDA));
  const auto bf = gpu->forward(z.to(torch::kCUDA), gc);
  CHECK(bf.scalar_type() == torch::kFloat);  // x0 in z's dtype: only the UNet ran in bfloat16
  CHECK(((bf.cpu() - expected).abs().max() / expected.abs().max()).item<double>() < 5e-2);
}

TEST_CASE("text2image: with_parameterization turns a scheduler's prediction type into the Denoiser's parameterization",
          "[text2image]") {
  auto name = [](dm::Prediction p) {
    return dm::with_parameterization(p, [](auto param) -> std::string {
      using P = decltype(param);
      if (std::is_same_v<P, di::EpsPrediction>) return "eps";
      if (std::is_same_v<P, di::VPrediction>) return "v";
      if (std::is_same_v<P, di::X0Prediction>) return "x0";
      return "other";
    });
  };
  CHECK(name(dm::Prediction::kEpsilon) == "eps");
  CHECK(name(dm::Prediction::kV) == "v");
  CHECK(name(dm::Prediction::kSample) == "x0");
  CHECK(name(dm::parse_prediction("v_prediction")) == "v");
}
