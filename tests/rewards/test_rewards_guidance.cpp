// Guidance placements (docs/math.md §2.3) and explicit rewards (§2.4).
#include <diffinstruct/di_star.hpp>

#include <catch2/catch.hpp>

#include <type_traits>

namespace di = diffinstruct;

namespace {

struct Setup {
  torch::Tensor x0, noise, x_t, alpha, sigma, w, a, eps_c, eps_u;
};

// Network outputs are smooth functions of x_t, so gradients reach x0 through every prediction.
Setup make_setup(uint64_t seed = 0) {
  torch::manual_seed(seed);
  Setup s;
  const auto o = torch::TensorOptions().dtype(torch::kFloat64);
  s.x0 = torch::randn({6, 4}, o).requires_grad_(true);
  s.noise = torch::randn({6, 4}, o);
  s.alpha = torch::rand({6}, o) * 0.8 + 0.1;
  s.sigma = torch::sqrt(1 - s.alpha * s.alpha);
  s.w = s.sigma * s.sigma;
  s.x_t = di::diffuse(s.x0, s.alpha, s.sigma, s.noise);
  s.a = torch::tanh(0.7 * s.x_t) + 0.1;
  s.eps_c = 0.5 * s.x_t + 0.2 * torch::sin(s.x_t);
  s.eps_u = 0.3 * s.x_t - 0.1;
  return s;
}

template <class Div, class Guid>
di::GeneratorLossTerms loss_of(const Setup& s, const Div& div, const Guid& guid) {
  di::GeneratorLossInputs in;
  in.assistant_eps = s.a;
  in.eps_cond = s.eps_c;
  in.eps_uncond = s.eps_u;
  in.noise = s.noise;
  in.x_t = s.x_t;
  in.x0 = s.x0;
  in.alpha = s.alpha;
  in.sigma = s.sigma;
  in.w = s.w;
  return di::generator_loss(div, guid, in);
}

torch::Tensor grad_x0(const Setup& s, const torch::Tensor& loss) {
  return torch::autograd::grad({loss.sum()}, {s.x0}, {}, true)[0];
}

}  // namespace

TEST_CASE("CFG inside guides the target: b = eps_c + alpha (eps_c - eps_u)", "[guidance]") {
  const auto s = make_setup();
  const di::CfgInside inside(di::AlphaCfg(7.5));
  CHECK(torch::allclose(inside.target(s.eps_c, s.eps_u), s.eps_c + 7.5 * (s.eps_c - s.eps_u)));
  CHECK(torch::equal(inside.loss(s.eps_c, s.eps_u, s.x_t, s.sigma, s.w), torch::zeros({6}, torch::kFloat64)));
  CHECK(torch::equal(di::NoGuidance{}.target(s.eps_c, torch::Tensor()), s.eps_c));
}

TEST_CASE("#4 one guidance convention per name: AlphaCfg is the paper's, GuidanceScale is diffusers'", "[guidance][hardening]") {
  const auto s = make_setup();
  // A bare number is not a guidance strength: it would be read in one convention or the other.
  STATIC_REQUIRE_FALSE(std::is_constructible_v<di::CfgInside, double>);
  STATIC_REQUIRE_FALSE(std::is_constructible_v<di::CfgOutside, double>);
  STATIC_REQUIRE_FALSE(std::is_convertible_v<double, di::CfgOptions>);
  CHECK(di::CfgOptions().guidance_scale(7.5).alpha_cfg() == 6.5);
  CHECK(di::CfgOptions(di::AlphaCfg(7.5)).guidance_scale() == 8.5);
  CHECK(di::CfgOptions(di::GuidanceScale(8.5)).alpha_cfg() == 7.5);
  // diffusers' guided prediction eps_u + s (eps_c - eps_u) with s = 7.5 is GuidanceScale(7.5)'s target.
  const auto diffusers = s.eps_u + 7.5 * (s.eps_c - s.eps_u);
  CHECK(torch::allclose(di::CfgInside(di::GuidanceScale(7.5)).target(s.eps_c, s.eps_u), diffusers, 1e-12, 1e-12));
  CHECK(torch::allclose(di::CfgInside(di::AlphaCfg(6.5)).target(s.eps_c, s.eps_u), diffusers, 1e-12, 1e-12));
  CHECK_THROWS_WITH(di::CfgInside(di::GuidanceScale(0.5)), Catch::Contains("got alpha_cfg -0.5 (guidance scale 0.5)"));
  CHECK(di::CfgInside(di::GuidanceScale(3.0)).describe() == "cfg_inside(alpha_cfg=2)");
}

TEST_CASE("CFG outside adds alpha w <sg[(eps_c - eps_u)/sigma], x_t>", "[guidance]") {
  const auto s = make_setup();
  const di::CfgOutside outside(di::AlphaCfg(3.0));
  CHECK(torch::equal(outside.target(s.eps_c, s.eps_u), s.eps_c));
  const auto l = outside.loss(s.eps_c, s.eps_u, s.x_t, s.sigma, s.w);
  const auto push = ((s.eps_c - s.eps_u) / s.sigma.unsqueeze(1)).detach();
  CHECK(torch::allclose(l, 3.0 * s.w * (push * s.x_t).sum(1)));
  // Its gradient is the push alone: the teacher's predictions are not differentiated.
  CHECK(torch::allclose(grad_x0(s, l), 3.0 * (s.w * s.alpha).unsqueeze(1) * push));
}

TEST_CASE("CFG placements: identical gradients for KL, different for pseudo-Huber", "[guidance][placement]") {
  const auto s = make_setup(1);
  const auto kl_in = loss_of(s, di::KL(), di::CfgInside(di::AlphaCfg(2.0)));
  const auto kl_out = loss_of(s, di::KL(), di::CfgOutside(di::AlphaCfg(2.0)));
  CHECK(torch::allclose(grad_x0(s, kl_in.total), grad_x0(s, kl_out.total), 1e-12, 1e-14));
  CHECK(torch::allclose(kl_in.total, kl_out.total, 1e-12, 1e-14));
  CHECK(kl_out.guidance.abs().sum().item<double>() > 0);

  const auto ph_in = loss_of(s, di::PseudoHuberScore(1.0), di::CfgInside(di::AlphaCfg(2.0)));
  const auto ph_out = loss_of(s, di::PseudoHuberScore(1.0), di::CfgOutside(di::AlphaCfg(2.0)));
  const auto diff = (grad_x0(s, ph_in.total) - grad_x0(s, ph_out.total)).abs().max().item<double>();
  CHECK(diff > 1e-3);
  // And each equals its own formula: inside = pseudo-Huber towards the guided target.
  di::DivergenceInputs guided{s.a, s.eps_c + 2.0 * (s.eps_c - s.eps_u), s.noise, s.x_t, s.x0, s.alpha, s.sigma, s.w};
  CHECK(torch::allclose(ph_in.total, di::PseudoHuberScore(1.0).loss(guided)));
  di::DivergenceInputs plain{s.a, s.eps_c, s.noise, s.x_t, s.x0, s.alpha, s.sigma, s.w};
  CHECK(torch::allclose(ph_out.total, di::PseudoHuberScore(1.0).loss(plain) +
                                          di::CfgOutside(di::AlphaCfg(2.0)).loss(s.eps_c, s.eps_u, s.x_t, s.sigma, s.w)));
}

TEST_CASE("guidance policies validate their scale and inputs", "[guidance][errors]") {
  CHECK_THROWS_WITH(di::CfgInside(di::AlphaCfg(-1.0)), Catch::Contains("cfg_inside: expected a finite alpha_cfg >= 0 (guidance scale s = 1 + alpha_cfg >= 1), got alpha_cfg -1"));
  CHECK_THROWS_WITH(di::CfgOutside(di::AlphaCfg(NAN)), Catch::Contains("alpha_cfg"));
  const auto s = make_setup();
  CHECK_THROWS_WITH(di::CfgInside(di::AlphaCfg(7.5)).target(s.eps_c, s.eps_c.slice(0, 0, 3)),
                    Catch::Contains("CfgInside") && Catch::Contains("`eps_uncond` to have the shape of `eps_cond`"));
  di::GeneratorLossInputs in;
  in.eps_cond = s.eps_c;
  CHECK_THROWS_WITH(di::generator_loss(di::KL(), di::CfgInside(di::AlphaCfg(7.5)), in), Catch::Contains("cfg_inside' needs the teacher's unconditional"));
  STATIC_REQUIRE(di::is_guidance_v<di::CfgOutside>);
  STATIC_REQUIRE_FALSE(di::is_guidance_v<di::KL>);
}

namespace {
struct RewardNetImpl : torch::nn::Module {
  torch::nn::Linear head{nullptr};
  RewardNetImpl() { head = register_module("head", torch::nn::Linear(4, 1)); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& labels) {
    return head(x).squeeze(1) + labels.to(x.dtype());
  }
};
TORCH_MODULE(RewardNet);
}  // namespace

TEST_CASE("rewards from modules, TorchScript and callables, weighted sums and no reward", "[rewards]") {
  torch::manual_seed(4);
  const auto x0 = torch::randn({5, 4}).requires_grad_(true);
  const auto labels = torch::arange(5);

  RewardNet net;
  auto module_reward = di::make_reward(net);
  const auto r = module_reward(x0, labels);
  CHECK(torch::allclose(r, net->head(x0).squeeze(1) + labels.to(torch::kFloat32)));

  torch::jit::Module script("Sigmoid");
  script.define(R"JIT(
def forward(self, x, labels):
    return torch.sigmoid(3.0 * x[:, 0]).unsqueeze(1)
)JIT");
  di::ModuleReward<torch::jit::Module> jit_reward(script);
  const auto rj = jit_reward(x0, labels);
  CHECK(rj.sizes() == torch::IntArrayRef({5}));  // [B, 1] is accepted and flattened
  CHECK(torch::allclose(rj, torch::sigmoid(3 * x0.select(1, 0))));

  auto bounded = di::make_reward([](const torch::Tensor& x) { return torch::sigmoid(3 * x.select(1, 0)); });
  const auto rb = bounded(x0, di::NoCondition{});
  CHECK(torch::allclose(rb, rj));

  auto sum = di::WeightedSum<decltype(module_reward), decltype(jit_reward)>({0.5, 2.0}, module_reward, jit_reward);
  const auto rs = sum(x0, labels);
  CHECK(torch::allclose(rs, 0.5 * r + 2.0 * rj));
  const auto parts = sum.components(x0, labels);
  CHECK(torch::allclose(parts[1], rj));

  // The reward's gradient reaches x0 (and therefore the generator).
  const auto g = torch::autograd::grad({di::reward_loss(rj, 10.0).sum()}, {x0})[0];
  const auto s = torch::sigmoid(3 * x0.select(1, 0));
  CHECK(torch::allclose(g.select(1, 0), -10.0 * 3 * s * (1 - s)));
  CHECK(torch::equal(g.slice(1, 1), torch::zeros({5, 3})));

  CHECK(torch::equal(di::NoReward{}(x0, labels), torch::zeros({5})));
  STATIC_REQUIRE(di::NoReward::is_null);
  STATIC_REQUIRE(di::is_reward_v<di::NoReward, torch::Tensor>);
  STATIC_REQUIRE(di::is_reward_v<decltype(sum), torch::Tensor>);
  STATIC_REQUIRE_FALSE(di::is_reward_v<di::KL, torch::Tensor>);
}

TEST_CASE("rewards reject outputs of the wrong shape or dtype and mismatched conditions", "[rewards][errors]") {
  const auto x0 = torch::randn({3, 2});
  auto wrong = di::make_reward([](const torch::Tensor& x) { return x; }, "aesthetic");
  CHECK_THROWS_WITH(wrong(x0, di::NoCondition{}),
                    Catch::Contains("aesthetic: expected a per-sample reward of shape [3] or [3, 1], got [3, 2]"));
  auto ints = di::make_reward([](const torch::Tensor& x) { return torch::zeros({x.size(0)}, torch::kLong); }, "counts");
  CHECK_THROWS_WITH(ints(x0, di::NoCondition{}), Catch::Contains("counts: expected the reward to be a floating-point tensor, got Long"));
  auto cond = di::make_reward([](const torch::Tensor& x, const torch::Tensor&) { return x.sum(1); });
  CHECK_THROWS_WITH(cond(x0, torch::zeros({2})), Catch::Contains("ModelReward: expected a condition with 3 rows"));
  CHECK_THROWS_WITH((di::WeightedSum<di::NoReward>({NAN}, di::NoReward{})), Catch::Contains("finite weights"));
}
