// A user's program: includes the public header, computes DI*'s loss and its gradient.
#include <diffinstruct/di_star.hpp>

#include <iostream>

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
  return ok && cuda_ok ? 0 : 1;
}
