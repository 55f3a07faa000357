// A user's program: includes the public header, computes DI*'s loss and its gradient, and builds a
// trainer with the README's set-up, as written there (tests/consumer/run_consumer.cmake checks that
// the README shows the lines between the readme-setup markers).
#include <diffinstruct/di_star.hpp>

#include <iostream>

// Class-conditional toy networks in the roles the README names.
struct OneStepNetImpl : torch::nn::Module {
  torch::nn::Conv2d conv{nullptr};
  torch::nn::Embedding label{nullptr};
  OneStepNetImpl() : conv(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 4, 3).padding(1)))),
                     label(register_module("label", torch::nn::Embedding(10, 4))) {}
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& c) { return conv(z) + label(c).view({-1, 4, 1, 1}); }
};
TORCH_MODULE(OneStepNet);
struct UNetImpl : OneStepNetImpl {
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) {
    return OneStepNetImpl::forward(x, c) * (1 + t.view({-1, 1, 1, 1}) / 1000);
  }
};
TORCH_MODULE(UNet);
struct RewardNetImpl : torch::nn::Module {
  torch::Tensor forward(const torch::Tensor& x0, const torch::Tensor&) { return -x0.square().mean({1, 2, 3}); }
};
TORCH_MODULE(RewardNet);

bool readme_setup_runs() {
  namespace di = diffinstruct;
  OneStepNet student;
  UNet teacher_unet, assistant_unet;
  RewardNet reward_net;
  auto sample_labels = [](int64_t batch, at::Generator& g) { return at::randint(0, 10, {batch}, g, torch::kLong); };
  const auto null_label = torch::zeros({1}, torch::kLong);
  // readme-setup-begin
  auto trainer = di::make_trainer(di::Generator(student), di::Denoiser(teacher_unet, "teacher"), di::Denoiser(assistant_unet, "assistant"),
                                  di::CfgInside(di::GuidanceScale(8.5)), di::ModelReward(reward_net), di::NoiseShape{4, 8, 8},
                                  di::ConditionSource<torch::Tensor>{sample_labels, null_label}, di::DiStarTrainerOptions().batch_size(4));
  // readme-setup-end
  const auto stats = trainer.step();
  return std::isfinite(stats.generator_loss) && trainer.step_count() == 1;
}

int main() {
  namespace di = diffinstruct;
  torch::manual_seed(0);
  const auto x0 = torch::randn({4, 3}, torch::requires_grad());
  const auto noise = torch::randn({4, 3});
  const auto t = torch::tensor({100.0f, 300.0f, 500.0f, 900.0f});
  const di::DiscreteVPSchedule schedule;
  const auto alpha = schedule.alpha(t), sigma = schedule.sigma(t);
  const auto x_t = di::diffuse(x0, alpha, sigma, noise);
  di::GeneratorLossInputs in;
  in.assistant_eps = 0.5 * x_t;
  in.eps_cond = 0.4 * x_t;
  in.eps_uncond = 0.3 * x_t;
  in.noise = noise;
  in.x_t = x_t;
  in.x0 = x0;
  in.alpha = alpha;
  in.sigma = sigma;
  in.w = schedule.w(t);
  const auto terms = di::generator_loss(di::PseudoHuberScore(1.0), di::CfgInside(di::AlphaCfg(7.5)), in);
  terms.total.mean().backward();
  const bool ok = x0.grad().defined() && torch::isfinite(x0.grad()).all().item<bool>();
  // Linked with diffinstruct::cuda (CONSUMER_LINKS_CUDA_KERNELS), the fused CUDA ops must be registered.
#ifdef CONSUMER_LINKS_CUDA_KERNELS
  const bool cuda_expected = true;
#else
  const bool cuda_expected = false;
#endif
  const bool cuda_ok = di::detail::fused_op_registered(c10::DeviceType::CUDA) == cuda_expected;
  std::cout << "diffinstruct " << di::kVersion << " consumer: loss " << terms.total.mean().item<double>()
            << (ok ? ", gradient finite" : ", GRADIENT BROKEN") << ", CUDA kernels " << (cuda_expected ? "linked" : "not linked")
            << (cuda_ok ? "" : " BUT THEIR REGISTRATION DISAGREES") << "\n";
  const bool trainer_ok = readme_setup_runs();
  std::cout << "the README's trainer set-up " << (trainer_ok ? "runs a step" : "FAILED") << "\n";
  return ok && cuda_ok && trainer_ok ? 0 : 1;
}
