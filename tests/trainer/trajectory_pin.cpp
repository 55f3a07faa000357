// The pinned trajectory: short DI* runs whose every number is written out exactly, to be compared
// with a record made by an earlier version of the trainer (tests/trainer/golden/). Any change of one
// bit in a loss, a statistic, a weight, an optimizer moment, the EMA or a checkpoint's bytes is a
// failure: a refactor of the trainer must not change what it computes.
//
// The record depends on the CPU kernels, so the test runs with them pinned (run_trajectory_pin.cmake:
// OpenBLAS Haswell, ATen AVX2, MKL's AVX2 path, one thread; oneDNN off), which every x86-64 CPU with
// AVX2 runs alike, and there is one record per LibTorch major version (their kernels differ).
//
// Usage: trajectory_pin <output file> <scratch folder>
#include <diffinstruct/adapters/lora.hpp>
#include <diffinstruct/adapters/shared_base.hpp>
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/io/crc32c.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>
#include "../models/one_step_unet.hpp"
#include "../models/tiny_unet.hpp"
#include "tiny_trainer.hpp"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

namespace {

namespace di = diffinstruct;
namespace da = diffinstruct::adapters;
namespace dm = diffinstruct::models;

std::ostringstream out;

std::string hex(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

/// CRC-32C of a tensor's bytes (contiguous, on the CPU), with its dtype and shape.
std::string digest(const torch::Tensor& t) {
  const auto c = t.detach().cpu().contiguous();
  const auto crc = di::io::crc32c(0, c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", crc);
  return c10::str(c.scalar_type(), c.sizes(), " ", buf);
}

std::string file_digest(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", di::io::crc32c(0, bytes.data(), bytes.size()));
  return c10::str(bytes.size(), " bytes ", buf);
}

void record_stats(const std::string& run, const di::StepStats& s) {
  out << run << " step " << s.step << ": generator_loss " << hex(s.generator_loss) << " divergence " << hex(s.divergence_loss)
      << " guidance " << hex(s.guidance_loss) << " reward_loss " << hex(s.reward_loss) << " mean_reward " << hex(s.mean_reward)
      << " assistant_loss " << hex(s.assistant_loss) << " generator_grad_norm " << hex(s.generator_grad_norm) << " assistant_grad_norm "
      << hex(s.assistant_grad_norm) << " non_finite " << s.non_finite << " overflows " << s.overflows << " skipped " << s.generator_skipped
      << " scales " << hex(s.generator_loss_scale) << " " << hex(s.assistant_loss_scale) << "\n";
}

template <class Trainer>
void record_state(const std::string& run, Trainer& trainer, const std::string& scratch) {
  int i = 0;
  for (const auto& p : trainer.generator_parameters()) out << run << " generator[" << i++ << "] " << digest(p) << "\n";
  i = 0;
  for (const auto& p : trainer.assistant_parameters()) out << run << " assistant[" << i++ << "] " << digest(p) << "\n";
  i = 0;
  for (const auto& e : trainer.ema().shadow()) out << run << " ema[" << i++ << "] " << digest(e) << "\n";
  const std::string path = scratch + "/" + run + ".safetensors";
  trainer.save(path);
  out << run << " checkpoint " << file_digest(path) << "\n";
}

template <class Trainer>
void run_steps(const std::string& run, Trainer& trainer, int steps, const std::string& scratch) {
  for (int i = 0; i < steps; ++i) record_stats(run, trainer.step());
  record_state(run, trainer, scratch);
}

using Reward = di::CallableReward<std::function<torch::Tensor(const torch::Tensor&, const dm::TextCondition&)>>;
using UNetDenoiser = di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>;

di::ConditionSource<dm::TextCondition> prompts() {
  return {[](int64_t b, at::Generator& g) { return dm::TextCondition(at::randn({b, 3, 12}, g, torch::TensorOptions())); },
          dm::TextCondition(torch::zeros({1, 3, 12}))};
}
Reward reward() {
  return Reward([](const torch::Tensor& x, const dm::TextCondition&) { return -torch::tanh(x).square().mean({1, 2, 3}); });
}

struct UNets {
  dm::UNet2DConditionModel teacher{nullptr}, assistant{nullptr}, generator{nullptr};
  test_models::OneStepUNet one_step{nullptr};
};
UNets unets(bool per_block_checkpointing) {
  torch::manual_seed(3);
  UNets u;
  u.teacher = dm::UNet2DConditionModel(test_models::tiny_unet_config());
  u.assistant = test_models::copy_of_tiny_unet(u.teacher);
  u.generator = test_models::copy_of_tiny_unet(u.teacher);
  for (auto* m : {&u.teacher, &u.assistant, &u.generator}) (*m)->set_gradient_checkpointing(per_block_checkpointing);
  di::DiscreteVPSchedule schedule;
  const auto t999 = torch::full({1}, 999.0);
  u.one_step = test_models::OneStepUNet(u.generator, schedule.alpha(t999).item<double>(), schedule.sigma(t999).item<double>());
  return u;
}

// 1. A text-conditioned UNet run with everything on: CFG inside, a reward, K = 2, two micro-batches,
//    the EMA, every forward checkpointed (the trainer's options and the UNet per block).
void unet_cfg_inside(const std::string& scratch) {
  auto u = unets(true);
  di::DiStarTrainer<di::Generator<test_models::OneStepUNet>, UNetDenoiser, UNetDenoiser, dm::TextCondition, di::PseudoHuberScore,
                    di::CfgInside, Reward, di::DiscreteVPSchedule>
      trainer(di::Generator<test_models::OneStepUNet>(u.one_step), UNetDenoiser(u.teacher, "teacher"), UNetDenoiser(u.assistant, "assistant"),
              {di::PseudoHuberScore(1.0), di::CfgInside(di::GuidanceScale(3.0)), reward(), di::DiscreteVPSchedule()}, prompts(),
              std::vector<int64_t>{4, 16, 16},
              di::DiStarTrainerOptions()
                  .batch_size(4)
                  .micro_batches(2)
                  .assistant_steps(2)
                  .alpha_rew(0.1)
                  .ema_decay(0.9)
                  .seed(5)
                  .checkpoint_generator(true)
                  .checkpoint_teacher(true)
                  .checkpoint_assistant(true)
                  .checkpoint_reward(true));
  run_steps("unet-cfg-inside", trainer, 3, scratch);
}

// 2. bf16 autocast with loss scaling, squared L2 with CFG outside, the generator's samples reused
//    by the assistant (DMD2's order), clipping on.
void unet_bf16_outside(const std::string& scratch) {
  auto u = unets(false);
  di::DiStarTrainer<di::Generator<test_models::OneStepUNet>, UNetDenoiser, UNetDenoiser, dm::TextCondition, di::SquaredL2Score,
                    di::CfgOutside, Reward, di::DiscreteVPSchedule>
      trainer(di::Generator<test_models::OneStepUNet>(u.one_step), UNetDenoiser(u.teacher, "teacher"), UNetDenoiser(u.assistant, "assistant"),
              {di::SquaredL2Score(), di::CfgOutside(di::GuidanceScale(2.0)), reward(), di::DiscreteVPSchedule()}, prompts(),
              std::vector<int64_t>{4, 16, 16},
              di::DiStarTrainerOptions()
                  .batch_size(2)
                  .assistant_steps(1)
                  .alpha_rew(0.5)
                  .seed(7)
                  .precision(di::Precision::kBFloat16)
                  .loss_scaling(di::LossScaling::kOn)
                  .reuse_generator_samples(true)
                  .generator_max_grad_norm(0.5));
  run_steps("unet-bf16-outside", trainer, 2, scratch);
}

// 3. One base for the teacher and a LoRA assistant, a LoRA generator, KL (no input gradients).
void unet_lora_shared_base(const std::string& scratch) {
  auto u = unets(false);
  torch::manual_seed(21);
  auto lora = da::add_lora(*u.teacher, da::LoraOptions().rank(4).alpha(4));
  auto gen_lora = da::add_lora(*u.generator, da::LoraOptions().rank(4).alpha(8));
  auto teacher = da::shared_base_teacher<di::EpsPrediction>(u.teacher, lora);
  using Shared = decltype(teacher);
  di::DiStarTrainer<di::Generator<test_models::OneStepUNet>, Shared, UNetDenoiser, dm::TextCondition, di::KL, di::CfgInside, Reward,
                    di::DiscreteVPSchedule>
      trainer(di::Generator<test_models::OneStepUNet>(u.one_step), teacher, UNetDenoiser(u.teacher, "assistant"),
              {di::KL(), di::CfgInside(di::GuidanceScale(2.5)), reward(), di::DiscreteVPSchedule()}, prompts(),
              std::vector<int64_t>{4, 16, 16}, di::DiStarTrainerOptions().batch_size(2).assistant_steps(1).alpha_rew(0.2).seed(9).ema_decay(0.5));
  run_steps("unet-lora-shared-base", trainer, 2, scratch);
}

// 4. The 2-D MLP trainer of the checkpoint tests, in float64, without conditions: many small steps.
void mlp_float64(const std::string& scratch) {
  auto trainer = tiny::make(1, di::DiStarTrainerOptions().batch_size(16).seed(11).ema_decay(0.99).alpha_rew(1.0), 32, torch::kFloat64);
  run_steps("mlp-float64", *trainer, 8, scratch);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: trajectory_pin <output file> <scratch folder>\n";
    return 2;
  }
  at::set_num_threads(1);
  // oneDNN chooses its convolution kernels per CPU (and has no bfloat16 kernels without AVX-512):
  // off, convolutions go through im2col and the pinned GEMM, which every AVX2 CPU runs alike.
  at::globalContext().setUserEnabledMkldnn(false);
  std::filesystem::create_directories(argv[2]);
  try {
    mlp_float64(argv[2]);
    unet_cfg_inside(argv[2]);
    unet_bf16_outside(argv[2]);
    unet_lora_shared_base(argv[2]);
  } catch (const c10::Error& e) {
    std::cerr << "trajectory_pin: " << e.what_without_backtrace() << "\n";
    return 1;
  }
  std::ofstream f(argv[1]);
  f << out.str();
  return f ? 0 : 1;
}
