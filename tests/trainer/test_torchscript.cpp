// TorchScript models in every role: the same DI* steps on scripted modules (defined from TorchScript
// source here, saved and loaded like files exported from Python) and on equivalent native modules
// give the same losses and the same trained weights; load errors name the role and the problem.
#include "../test_files.hpp"
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/testing/gaussian_mixture.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

namespace di = diffinstruct;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) { return test_util::scratch_path("torchscript_tests", name); }

// in -> 32 -> 2 with SiLU; the assistant sees (x_t, t).
struct TinyMlpImpl : torch::nn::Module {
  torch::nn::Linear l1{nullptr}, l2{nullptr};
  explicit TinyMlpImpl(int64_t in) {
    l1 = register_module("l1", torch::nn::Linear(in, 32));
    l2 = register_module("l2", torch::nn::Linear(32, 2));
  }
  torch::Tensor forward(const torch::Tensor& z) { return l2(torch::silu(l1(z))); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) { return forward(torch::cat({x, t.unsqueeze(1)}, 1)); }
};
TORCH_MODULE(TinyMlp);

// The same network as TorchScript source, with the native module's weights copied in.
torch::jit::Module scripted_copy(const TinyMlp& net, bool denoiser, const std::string& file) {
  torch::jit::Module m(denoiser ? "ScriptedDenoiser" : "ScriptedGenerator");
  m.register_parameter("w1", net->l1->weight.detach().clone(), false);
  m.register_parameter("b1", net->l1->bias.detach().clone(), false);
  m.register_parameter("w2", net->l2->weight.detach().clone(), false);
  m.register_parameter("b2", net->l2->bias.detach().clone(), false);
  const std::string body = R"JIT(
    h = torch.silu(torch.matmul(h, self.w1.t()) + self.b1)
    return torch.matmul(h, self.w2.t()) + self.b2
)JIT";
  m.define(denoiser ? "def forward(self, x, t):\n    h = torch.cat([x, t.unsqueeze(1)], 1)" + body
                    : "def forward(self, z):\n    h = z" + body);
  m.save(scratch(file).string());
  auto loaded = di::load_torchscript(scratch(file).string(), denoiser ? di::ModelRole::kDenoiser : di::ModelRole::kGenerator);
  // The copies were registered detached; a role trains the parameters that require grad.
  for (auto p : loaded.parameters()) p.requires_grad_(true);
  return loaded;
}

struct MixtureTeacher {
  di::testing::GaussianMixture mixture = di::testing::GaussianMixture::ring();
  di::CosineVPSchedule schedule = di::CosineVPSchedule();
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& t) const {
    return mixture.eps(x, schedule.alpha(t), schedule.sigma(t)).to(x.scalar_type());
  }
};

torch::jit::Module scripted_reward(const std::string& file) {
  torch::jit::Module m("Reward");
  m.define(R"JIT(
def forward(self, x):
    return torch.sigmoid(3.0 * x[:, 0])
)JIT");
  m.save(scratch(file).string());
  return di::load_torchscript(scratch(file).string(), di::ModelRole::kReward);
}

template <class Gen, class Teacher, class Asst, class Reward>
std::pair<std::vector<di::StepStats>, std::vector<torch::Tensor>> train(Gen gen, Teacher teacher, Asst asst, Reward reward) {
  using Trainer = di::DiStarTrainer<di::Generator<Gen>, di::Denoiser<Teacher>, di::Denoiser<Asst>, di::NoCondition, di::PseudoHuberScore,
                                    di::NoGuidance, di::ModelReward<Reward>, di::CosineVPSchedule>;
  Trainer trainer(di::Generator<Gen>(gen), di::Denoiser<Teacher>(teacher, "teacher"), di::Denoiser<Asst>(asst, "assistant"),
                  {di::PseudoHuberScore(1.0), di::NoGuidance{}, di::ModelReward<Reward>(reward), di::CosineVPSchedule()}, {},
                  std::vector<int64_t>{2}, di::DiStarTrainerOptions().batch_size(64).alpha_rew(0.5).ema_decay(0).seed(3));
  std::vector<di::StepStats> stats;
  for (int i = 0; i < 4; ++i) stats.push_back(trainer.step());
  std::vector<torch::Tensor> weights;
  for (const auto& p : trainer.generator_parameters()) weights.push_back(p.detach().clone());
  for (const auto& p : trainer.assistant_parameters()) weights.push_back(p.detach().clone());
  return {stats, weights};
}

}  // namespace

TEST_CASE("scripted generator, assistant and reward train exactly like their native twins", "[trainer][torchscript]") {
  torch::manual_seed(0);
  TinyMlp gen(2), asst(3);
  // Scripted twins first (they copy the starting weights), then both runs from the same start.
  auto gen_script = scripted_copy(gen, false, "generator.pt");
  auto asst_script = scripted_copy(asst, true, "assistant.pt");
  auto reward_script = scripted_reward("reward.pt");
  const auto start = gen->l1->weight.detach().clone();
  const auto native = train(gen, MixtureTeacher{}, asst, std::function<torch::Tensor(const torch::Tensor&)>([](const torch::Tensor& x) {
                              return torch::sigmoid(3.0 * x.select(1, 0));
                            }));
  const auto scripted = train(gen_script, MixtureTeacher{}, asst_script, reward_script);
  for (size_t i = 0; i < native.first.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(scripted.first[i].generator_loss == Approx(native.first[i].generator_loss).epsilon(1e-5));
    CHECK(scripted.first[i].divergence_loss == Approx(native.first[i].divergence_loss).epsilon(1e-5));
    CHECK(scripted.first[i].assistant_loss == Approx(native.first[i].assistant_loss).epsilon(1e-5));
    CHECK(scripted.first[i].mean_reward == Approx(native.first[i].mean_reward).epsilon(1e-5));
  }
  // Same parameter order (w1, b1, w2, b2 / weight, bias, weight, bias): same trained weights, and they moved.
  REQUIRE(native.second.size() == scripted.second.size());
  for (size_t i = 0; i < native.second.size(); ++i) CHECK(torch::allclose(scripted.second[i], native.second[i], 1e-5, 1e-6));
  CHECK_FALSE(torch::allclose(scripted.second[0], start));
}

TEST_CASE("a scripted teacher is frozen but passes gradients to its input", "[trainer][torchscript]") {
  torch::manual_seed(1);
  TinyMlp net(3);
  auto teacher = scripted_copy(net, true, "teacher.pt");
  di::Denoiser<torch::jit::Module> d(teacher, "teacher");
  const auto x = torch::randn({5, 2}, torch::requires_grad());
  const auto t = torch::rand({5});
  const di::CosineVPSchedule s;
  d.eps(x, t, s.alpha(t), s.sigma(t), di::NoCondition{}).sum().backward();
  CHECK(x.grad().abs().sum().item<double>() > 0);
}

TEST_CASE("load_torchscript names the role and the problem", "[trainer][torchscript]") {
  CHECK_THROWS_WITH(di::load_torchscript(scratch("nope.pt").string(), di::ModelRole::kGenerator),
                    Catch::Contains("no TorchScript file for the generator") && Catch::Contains("nope.pt"));
  std::ofstream(scratch("garbage.pt")) << "not a zip archive";
  CHECK_THROWS_WITH(di::load_torchscript(scratch("garbage.pt").string(), di::ModelRole::kDenoiser),
                    Catch::Contains("garbage.pt' (the denoiser, a TorchScript archive) is corrupt or truncated") &&
                        Catch::Contains("zip archive"));
  torch::jit::Module no_forward("Empty");
  no_forward.define("def helper(self, x):\n    return x\n");
  no_forward.save(scratch("no_forward.pt").string());
  CHECK_THROWS_WITH(di::load_torchscript(scratch("no_forward.pt").string(), di::ModelRole::kReward),
                    Catch::Contains("reward module") && Catch::Contains("has no forward method"));
  torch::jit::Module one_arg("OneArg");
  one_arg.define("def forward(self, x):\n    return x\n");
  one_arg.save(scratch("one_arg.pt").string());
  CHECK_THROWS_WITH(di::load_torchscript(scratch("one_arg.pt").string(), di::ModelRole::kDenoiser, 1),
                    Catch::Contains("has forward with 1 argument(s); expected 3 (x_t, t, then the condition)"));
  // Loads, but returns the wrong shape: the adapter says so at the first call.
  torch::jit::Module wrong("Wrong");
  wrong.define("def forward(self, x, t):\n    return x[:, :1]\n");
  wrong.save(scratch("wrong.pt").string());
  di::Denoiser<torch::jit::Module> d(di::load_torchscript(scratch("wrong.pt").string(), di::ModelRole::kDenoiser), "assistant");
  const auto t = torch::rand({4});
  const di::CosineVPSchedule s;
  CHECK_THROWS_WITH(d.eps(torch::randn({4, 2}), t, s.alpha(t), s.sigma(t), di::NoCondition{}),
                    Catch::Contains("expected the model to return a prediction of shape [4, 2]"));
}

TEST_CASE("copy_state copies one model into another of the same architecture and names a mismatch", "[trainer][model_state]") {
  torch::manual_seed(2);
  TinyMlp a(2), b(2), other(3);
  REQUIRE_FALSE(torch::equal(a->l1->weight, b->l1->weight));
  di::copy_state(a, b);
  CHECK(torch::equal(a->l1->weight, b->l1->weight));
  CHECK(torch::equal(a->l2->bias, b->l2->bias));
  CHECK_THROWS_WITH(di::copy_state(a, other), Catch::Contains("tensor 0 is 'l1.weight' [32, 2] in the source but 'l1.weight' [32, 3]"));
  // Scripted target: its names (w1, b1, ...) are not the native ones.
  CHECK_THROWS_WITH(di::copy_state(a, scripted_copy(a, false, "copy_target.pt")), Catch::Contains("in the target"));
}
