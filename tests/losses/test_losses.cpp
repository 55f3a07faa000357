// The composed generator loss (docs/math.md §2, §4) and the assistant's DSM loss (§3).
#include <diffinstruct/di_star.hpp>

#include <catch2/catch.hpp>

namespace di = diffinstruct;

namespace {

di::GeneratorLossInputs make_inputs(uint64_t seed = 0) {
  torch::manual_seed(seed);
  const auto o = torch::TensorOptions().dtype(torch::kFloat64);
  di::GeneratorLossInputs in;
  in.x0 = torch::randn({4, 3}, o).requires_grad_(true);
  in.noise = torch::randn({4, 3}, o);
  in.alpha = torch::rand({4}, o) * 0.8 + 0.1;
  in.sigma = torch::sqrt(1 - in.alpha * in.alpha);
  in.w = in.sigma * in.sigma;
  in.x_t = di::diffuse(in.x0, in.alpha, in.sigma, in.noise);
  in.assistant_eps = 0.9 * in.x_t;
  in.eps_cond = 0.6 * in.x_t + 0.1;
  in.eps_uncond = 0.4 * in.x_t;
  return in;
}

struct TinyDenoiserImpl : torch::nn::Module {
  torch::nn::Linear net{nullptr};
  TinyDenoiserImpl() { net = register_module("net", torch::nn::Linear(torch::nn::LinearOptions(4, 3))); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) {
    return net(torch::cat({x, t.unsqueeze(1) / 1000}, 1));
  }
};
TORCH_MODULE(TinyDenoiser);

}  // namespace

TEST_CASE("generator loss = divergence + guidance + reward, each per sample", "[losses][generator]") {
  auto in = make_inputs();
  in.reward = torch::sigmoid(in.x0.select(1, 0));
  in.alpha_rew = 4.0;
  const auto terms = di::generator_loss(di::PseudoHuberScore(1.0), di::CfgOutside(di::AlphaCfg(1.5)), in);
  CHECK(terms.total.sizes() == torch::IntArrayRef({4}));
  CHECK(torch::allclose(terms.total, terms.divergence + terms.guidance + terms.reward));
  CHECK(torch::allclose(terms.reward, -4.0 * in.reward));
  di::DivergenceInputs div_in{in.assistant_eps, in.eps_cond, in.noise, in.x_t, in.x0, in.alpha, in.sigma, in.w};
  CHECK(torch::allclose(terms.divergence, di::PseudoHuberScore(1.0).loss(div_in)));
  CHECK(torch::allclose(terms.guidance, di::CfgOutside(di::AlphaCfg(1.5)).loss(in.eps_cond, in.eps_uncond, in.x_t, in.sigma, in.w)));
  // Without a reward the reward term is zero; without guidance no unconditional pass is needed.
  auto plain = make_inputs();
  plain.eps_uncond = torch::Tensor();
  const auto t2 = di::generator_loss(di::KL(), di::NoGuidance{}, plain);
  CHECK(torch::equal(t2.reward, torch::zeros({4}, torch::kFloat64)));
  CHECK(torch::equal(t2.guidance, torch::zeros({4}, torch::kFloat64)));
}

TEST_CASE("generator loss reports non-finite inputs by name, or lets them through when asked", "[losses][errors]") {
  auto in = make_inputs();
  in.eps_cond = in.eps_cond.detach().clone();
  in.eps_cond[1][2] = NAN;
  CHECK_THROWS_WITH(di::generator_loss(di::PseudoHuberScore(), di::NoGuidance{}, in),
                    Catch::Contains("generator_loss: expected finite values in `target_eps`, got 1 NaN and 0 infinite"));
  const auto terms = di::generator_loss(di::PseudoHuberScore(), di::NoGuidance{}, in, /*check_values=*/false);
  CHECK(torch::isnan(terms.total[1]).item<bool>());
  auto neg = make_inputs();
  neg.sigma = neg.sigma.clone();
  neg.sigma[0] = 0.0;
  CHECK_THROWS_WITH(di::generator_loss(di::KL(), di::NoGuidance{}, neg), Catch::Contains("generator_loss: expected sigma > 0"));
  auto rew = make_inputs();
  rew.reward = torch::full({4}, INFINITY, torch::kFloat64);
  CHECK_THROWS_WITH(di::generator_loss(di::KL(), di::NoGuidance{}, rew), Catch::Contains("finite values in `reward`"));
  rew.reward = torch::zeros({5}, torch::kFloat64);
  CHECK_THROWS_WITH(di::generator_loss(di::KL(), di::NoGuidance{}, rew), Catch::Contains("reward of shape [4] or [4, 1], got [5]"));
  rew.reward = torch::zeros({4}, torch::kFloat64);
  rew.alpha_rew = NAN;
  CHECK_THROWS_WITH(di::generator_loss(di::KL(), di::NoGuidance{}, rew), Catch::Contains("finite alpha_rew"));
}

TEST_CASE("dsm_loss is lambda |eps_hat - eps|^2 summed per sample", "[losses][assistant]") {
  const auto eps = torch::tensor({{1.0, 2.0}, {0.0, -1.0}});
  const auto pred = torch::tensor({{1.5, 2.0}, {1.0, 1.0}});
  const auto lambda = torch::tensor({2.0, 0.5});
  CHECK(torch::allclose(di::dsm_loss(pred, eps, lambda), torch::tensor({0.5, 2.5})));
  CHECK_THROWS_WITH(di::dsm_loss(pred, eps, torch::ones({3})), Catch::Contains("dsm_loss: expected `lambda` of shape [2]"));
}

TEST_CASE("the assistant loss trains the assistant only: generator samples are detached", "[losses][assistant]") {
  torch::manual_seed(5);
  TinyDenoiser model;
  model->to(torch::kFloat64);
  di::Denoiser<TinyDenoiser> assistant(model, "assistant");
  const di::DiscreteVPSchedule schedule;
  auto gen_param = torch::randn({3}, torch::kFloat64).requires_grad_(true);
  const auto z = torch::randn({8, 3}, torch::kFloat64);
  const auto x0 = z + gen_param;  // a "generator" with one parameter
  auto g = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto t = schedule.sample_assistant_t(8, torch::kFloat64, g);
  const auto noise = torch::randn({8, 3}, g, torch::kFloat64);
  const auto loss = di::assistant_loss(assistant, schedule, x0, di::NoCondition{}, t, noise);
  // Same value as the formula written out.
  const auto alpha = schedule.alpha(t), sigma = schedule.sigma(t);
  const auto x_t = di::diffuse(x0.detach(), alpha, sigma, noise);
  const auto expect = di::sum_per_sample((model->forward(x_t, t) - noise).pow(2)) * schedule.lambda(t);
  CHECK(torch::allclose(loss, expect));
  loss.mean().backward();
  CHECK_FALSE(gen_param.grad().defined());
  CHECK(model->net->weight.grad().defined());
  CHECK(model->net->weight.grad().abs().sum().item<double>() > 0);
}
