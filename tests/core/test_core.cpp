// Parameterizations, conditions and the role wrappers (include/diffinstruct/core).
#include <diffinstruct/di_star.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <string>

namespace di = diffinstruct;

namespace {

torch::Tensor vp_alpha() { return torch::tensor({0.99, 0.8, 0.3, 0.05}, torch::kFloat64); }
torch::Tensor vp_sigma() { return torch::sqrt(1 - vp_alpha() * vp_alpha()); }

template <class P>
void check_round_trip(const torch::Tensor& alpha, const torch::Tensor& sigma) {
  torch::manual_seed(1);
  const auto x_t = torch::randn({4, 3, 5}, torch::kFloat64);
  const auto eps = torch::randn({4, 3, 5}, torch::kFloat64);
  const auto out = P::from_eps(eps, x_t, alpha, sigma);
  CHECK(torch::allclose(P::to_eps(out, x_t, alpha, sigma), eps, 1e-10, 1e-12));
}

// A struct condition, as SDXL has (text embeddings and pooled embeddings).
struct TextCondition {
  torch::Tensor tokens;  // [B, L, E]
  torch::Tensor pooled;  // [B, P]
};

}  // namespace

template <>
struct diffinstruct::ConditionTraits<TextCondition> {
  static int64_t batch_size(const TextCondition& c) { return c.tokens.size(0); }
  static TextCondition concat(const TextCondition& a, const TextCondition& b) {
    return {torch::cat({a.tokens, b.tokens}), torch::cat({a.pooled, b.pooled})};
  }
  static TextCondition broadcast(const TextCondition& c, int64_t batch) {
    return {ConditionTraits<torch::Tensor>::broadcast(c.tokens, batch),
            ConditionTraits<torch::Tensor>::broadcast(c.pooled, batch)};
  }
  static void append_ivalues(const TextCondition& c, std::vector<torch::jit::IValue>& args) {
    args.emplace_back(c.tokens);
    args.emplace_back(c.pooled);
  }
};

namespace {

struct ScaleNetImpl : torch::nn::Module {
  torch::Tensor scale;
  ScaleNetImpl() { scale = register_parameter("scale", torch::full({1}, 2.0, torch::kFloat64)); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels) {
    return scale * x + per_row(labels.to(x.dtype()) + t, x);
  }
  static torch::Tensor per_row(const torch::Tensor& v, const torch::Tensor& like) { return di::per_sample(v, like); }
};
TORCH_MODULE(ScaleNet);

struct TextNetImpl : torch::nn::Module {
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const TextCondition& c) {
    return x + di::per_sample(c.tokens.sum({1, 2}) + c.pooled.sum(1), x);
  }
};
TORCH_MODULE(TextNet);

}  // namespace

TEST_CASE("parameterizations round-trip through eps under VP and EDM", "[core][parameterization]") {
  check_round_trip<di::EpsPrediction>(vp_alpha(), vp_sigma());
  check_round_trip<di::X0Prediction>(vp_alpha(), vp_sigma());
  check_round_trip<di::VPrediction>(vp_alpha(), vp_sigma());
  check_round_trip<di::ScorePrediction>(vp_alpha(), vp_sigma());
  const auto one = torch::ones({4}, torch::kFloat64);
  const auto edm_sigma = torch::tensor({0.002, 0.5, 3.0, 80.0}, torch::kFloat64);
  check_round_trip<di::X0Prediction>(one, edm_sigma);
  check_round_trip<di::VPrediction>(one, edm_sigma);
  check_round_trip<di::ScorePrediction>(one, edm_sigma);
}

TEST_CASE("parameterizations match their defining formulas", "[core][parameterization]") {
  torch::manual_seed(2);
  const auto alpha = vp_alpha(), sigma = vp_sigma();
  const auto x0 = torch::randn({4, 6}, torch::kFloat64);
  const auto eps = torch::randn({4, 6}, torch::kFloat64);
  const auto a = alpha.unsqueeze(1), s = sigma.unsqueeze(1);
  const auto x_t = di::diffuse(x0, alpha, sigma, eps);
  CHECK(torch::allclose(x_t, a * x0 + s * eps));
  // The exact predictions of the true (x0, ε) pair.
  CHECK(torch::allclose(di::X0Prediction::to_eps(x0, x_t, alpha, sigma), eps, 1e-9, 1e-10));
  const auto v = a * eps - s * x0;
  CHECK(torch::allclose(di::VPrediction::to_eps(v, x_t, alpha, sigma), eps, 1e-9, 1e-10));
  CHECK(torch::allclose(di::VPrediction::to_eps(v, x_t, alpha, sigma), s * x_t + a * v, 1e-9, 1e-10));  // VP form
  CHECK(torch::allclose(di::ScorePrediction::from_eps(eps, x_t, alpha, sigma), -eps / s));
  const auto v2 = di::convert_prediction<di::X0Prediction, di::VPrediction>(x0, x_t, alpha, sigma);
  CHECK(torch::allclose(v2, v, 1e-9, 1e-10));
  STATIC_REQUIRE(di::is_parameterization_v<di::VPrediction>);
  STATIC_REQUIRE_FALSE(di::is_parameterization_v<int>);
}

TEST_CASE("per_sample and sum_per_sample follow the reduction convention", "[core]") {
  const auto x = torch::ones({3, 2, 4});
  const auto v = torch::tensor({1.0f, 2.0f, 3.0f});
  CHECK(di::per_sample(v, x).sizes() == torch::IntArrayRef({3, 1, 1}));
  CHECK(torch::equal(di::sum_per_sample(x * di::per_sample(v, x)), torch::tensor({8.0f, 16.0f, 24.0f})));
}

TEST_CASE("tensor and struct conditions batch, broadcast and reject mismatches", "[core][condition]") {
  using Traits = di::ConditionTraits<torch::Tensor>;
  const auto labels = torch::tensor({3, 1, 4}, torch::kLong);
  const auto null = torch::tensor({10}, torch::kLong);
  const auto both = Traits::concat(labels, Traits::broadcast(null, 3));
  CHECK(torch::equal(both, torch::tensor({3, 1, 4, 10, 10, 10}, torch::kLong)));
  CHECK_THROWS_WITH(Traits::broadcast(torch::zeros({2}), 3), Catch::Contains("expected a condition with 1 or 3 rows, got 2"));
  CHECK_THROWS_WITH(Traits::concat(torch::zeros({2, 4}), torch::zeros({2, 5})), Catch::Contains("cannot batch conditions"));
  STATIC_REQUIRE(di::is_condition_v<torch::Tensor>);
  STATIC_REQUIRE(di::is_condition_v<di::NoCondition>);
  STATIC_REQUIRE(di::is_condition_v<TextCondition>);
  STATIC_REQUIRE_FALSE(di::is_condition_v<double>);

  TextCondition c{torch::ones({1, 2, 3}), torch::ones({1, 4})};
  const auto wide = di::ConditionTraits<TextCondition>::broadcast(c, 5);
  CHECK(wide.tokens.sizes() == torch::IntArrayRef({5, 2, 3}));
  CHECK(di::ConditionTraits<TextCondition>::concat(wide, wide).pooled.size(0) == 10);
}

TEST_CASE("a module holder, a shared_ptr, a TorchScript module and a callable all serve as denoisers",
          "[core][adapter]") {
  const auto x = torch::randn({3, 2}, torch::kFloat64);
  const auto t = torch::tensor({0.5, 1.0, 2.0}, torch::kFloat64);
  const auto labels = torch::tensor({1, 2, 3}, torch::kLong);
  const auto alpha = torch::full({3}, 0.6, torch::kFloat64), sigma = torch::full({3}, 0.8, torch::kFloat64);
  const auto expected = 2 * x + (labels.to(torch::kFloat64) + t).unsqueeze(1);

  di::Denoiser<ScaleNet> holder(ScaleNet(), "holder");
  CHECK(torch::allclose(holder.eps(x, t, alpha, sigma, labels), expected));
  CHECK(holder.parameters().size() == 1);

  di::Denoiser<std::shared_ptr<ScaleNetImpl>> ptr(std::make_shared<ScaleNetImpl>(), "ptr");
  CHECK(torch::allclose(ptr.eps(x, t, alpha, sigma, labels), expected));

  torch::jit::Module script("ScaleNet");
  script.register_parameter("scale", torch::full({1}, 2.0, torch::kFloat64), false);
  script.define(R"JIT(
def forward(self, x, t, labels):
    return self.scale * x + (labels.to(x.dtype) + t).unsqueeze(1)
)JIT");
  const std::string path = std::string(DIFFINSTRUCT_TEST_TMPDIR) + "/scale_net.pt";
  script.save(path);
  di::Denoiser<torch::jit::Module> jit(torch::jit::load(path), "jit");
  CHECK(torch::allclose(jit.eps(x, t, alpha, sigma, labels), expected));
  CHECK(jit.parameters().size() == 1);
  std::remove(path.c_str());

  auto fn = [](const torch::Tensor& x_t, const torch::Tensor& tt, const torch::Tensor& c) {
    return 2 * x_t + (c.to(x_t.dtype()) + tt).unsqueeze(1);
  };
  di::Denoiser<decltype(fn)> callable(fn, "callable");
  CHECK(torch::allclose(callable.eps(x, t, alpha, sigma, labels), expected));
  CHECK(callable.parameters().empty());
}

TEST_CASE("adapters convert the model's parameterization to eps", "[core][adapter]") {
  torch::manual_seed(3);
  const auto x0 = torch::randn({4, 5}, torch::kFloat64), eps = torch::randn({4, 5}, torch::kFloat64);
  const auto alpha = vp_alpha(), sigma = vp_sigma();
  const auto x_t = di::diffuse(x0, alpha, sigma, eps);
  // An oracle x0-predictor returns the true x0: its ε̂ must be the true ε.
  auto oracle = [&](const torch::Tensor&, const torch::Tensor&) { return x0; };
  di::Denoiser<decltype(oracle), di::X0Prediction> d(oracle, "oracle");
  CHECK(torch::allclose(d.eps(x_t, torch::zeros({4}, torch::kFloat64), alpha, sigma, di::NoCondition{}), eps, 1e-9, 1e-10));
}

TEST_CASE("struct conditions reach native and TorchScript models and generators take conditions", "[core][adapter]") {
  const auto x = torch::zeros({2, 3});
  const auto t = torch::zeros({2});
  TextCondition c{torch::ones({2, 2, 2}), torch::ones({2, 3})};
  di::Denoiser<TextNet> native(TextNet(), "text");
  CHECK(torch::allclose(native.eps(x, t, t, torch::ones({2}), c), torch::full({2, 3}, 7.0f)));

  torch::jit::Module script("TextNet");
  script.define(R"JIT(
def forward(self, x, t, tokens, pooled):
    return x + (tokens.sum([1, 2]) + pooled.sum(1)).unsqueeze(1)
)JIT");
  di::Denoiser<torch::jit::Module> jit(script, "text-jit");
  CHECK(torch::allclose(jit.eps(x, t, t, torch::ones({2}), c), torch::full({2, 3}, 7.0f)));

  auto g = [](const torch::Tensor& z, const torch::Tensor& labels) { return z + labels.to(z.dtype()).unsqueeze(1); };
  di::Generator<decltype(g)> gen(g);
  CHECK(torch::allclose(gen(torch::zeros({2, 2}), torch::tensor({1, 2})), torch::tensor({{1.0f, 1.0f}, {2.0f, 2.0f}})));
}

TEST_CASE("adapters name the model and what was expected on bad outputs and conditions", "[core][adapter][errors]") {
  const auto x = torch::zeros({3, 4});
  const auto t = torch::zeros({3});
  auto wrong_shape = [](const torch::Tensor& x_t, const torch::Tensor&) { return x_t.sum(1); };
  di::Denoiser<decltype(wrong_shape)> d(wrong_shape, "teacher");
  CHECK_THROWS_WITH(d.eps(x, t, t, torch::ones({3}), di::NoCondition{}),
                    Catch::Contains("Denoiser(teacher)") && Catch::Contains("expected the model to return a prediction of shape [3, 4]") &&
                        Catch::Contains("got [3]"));
  auto ok = [](const torch::Tensor& x_t, const torch::Tensor&, const torch::Tensor&) { return x_t; };
  di::Denoiser<decltype(ok)> d2(ok, "assistant");
  CHECK_THROWS_WITH(d2.eps(x, t, t, torch::ones({3}), torch::zeros({5})),
                    Catch::Contains("assistant") && Catch::Contains("expected a condition with 3 rows") && Catch::Contains("got 5"));
  auto bad_gen = [](const torch::Tensor& z) { return z.slice(0, 0, 1); };
  di::Generator<decltype(bad_gen)> g(bad_gen, "student");
  CHECK_THROWS_WITH(g(torch::zeros({4, 2}), di::NoCondition{}),
                    Catch::Contains("Generator(student)") && Catch::Contains("batch of 4 samples"));
}
