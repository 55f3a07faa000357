// Noise schedules, weightings and time sampling (include/diffinstruct/schedules).
#include <diffinstruct/di_star.hpp>

#include <catch2/catch.hpp>

#include <cmath>

namespace di = diffinstruct;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {
double value_at(const torch::Tensor& v, int64_t i = 0) { return v.reshape(-1)[i].item<double>(); }
torch::Tensor f64(std::initializer_list<double> v) { return torch::tensor(std::vector<double>(v), torch::kFloat64); }
}  // namespace

TEST_CASE("scaled_linear and linear beta tables give the known cumulative products", "[schedules][vp]") {
  // Reference values computed independently (Python, float64 products of 1 - beta_j).
  const di::DiscreteVPSchedule sd(di::DiscreteVPOptions::scaled_linear());
  CHECK_THAT(value_at(sd.alpha_bar(f64({399}))), WithinRel(0.4260863636023319, 1e-12));
  CHECK_THAT(value_at(sd.alpha_bar(f64({0}))), WithinRel(0.99915, 1e-12));
  CHECK_THAT(value_at(sd.alpha_bar(f64({999}))), WithinRel(0.004660098513077234, 1e-10));
  const di::DiscreteVPSchedule ddpm(di::DiscreteVPOptions::linear());
  CHECK_THAT(value_at(ddpm.alpha_bar(f64({999}))), WithinRel(4.0358297653756754e-05, 1e-9));
  CHECK_THAT(value_at(ddpm.alpha_bar(f64({499}))), WithinRel(0.07858724288177821, 1e-10));
}

TEST_CASE("VP schedules preserve variance, decrease monotonically and accept per-sample t", "[schedules][vp]") {
  const di::DiscreteVPSchedule discrete;
  const di::CosineVPSchedule cosine;
  const auto td = torch::linspace(0, 999, 37, torch::kFloat64);
  const auto tc = torch::linspace(0, 1, 37, torch::kFloat64);
  for (const auto& pair : {std::make_pair(discrete.alpha(td), discrete.sigma(td)), std::make_pair(cosine.alpha(tc), cosine.sigma(tc))}) {
    const auto& [a, s] = pair;
    CHECK(torch::allclose(a * a + s * s, torch::ones_like(a)));
    CHECK((a.slice(0, 1) <= a.slice(0, 0, -1)).all().item<bool>());
  }
  // Fractional timesteps interpolate log ᾱ: exact at integers, between neighbours elsewhere.
  const auto ab = discrete.alpha_bar(f64({10, 10.5, 11}));
  CHECK_THAT(value_at(ab, 1), WithinRel(std::sqrt(value_at(ab, 0) * value_at(ab, 2)), 1e-12));
  // Scalar t works too, and float32 in gives float32 out.
  CHECK(discrete.alpha(torch::tensor(399.0f)).scalar_type() == torch::kFloat32);
  CHECK(discrete.alpha(torch::tensor(399.0f)).dim() == 0);
}

TEST_CASE("cosine VP with offset 0 is exactly cos/sin", "[schedules][cosine]") {
  const di::CosineVPSchedule s(di::CosineVPOptions().offset(0.0));
  const auto t = f64({0.0, 0.25, 0.5, 0.9});
  CHECK(torch::allclose(s.alpha(t), torch::cos(t * M_PI / 2), 1e-12, 1e-12));
  CHECK(torch::allclose(s.sigma(t), torch::sin(t * M_PI / 2), 1e-12, 1e-12));
  const di::CosineVPSchedule nichol;  // offset 0.008: ᾱ(0) = 1 exactly
  CHECK_THAT(value_at(nichol.alpha(f64({0.0}))), WithinAbs(1.0, 1e-12));
}

TEST_CASE("EDM has alpha = 1, sigma = t, a Karras grid and a truncated log-normal", "[schedules][edm]") {
  const di::EdmSchedule s;
  const auto t = f64({0.002, 1.0, 80.0});
  CHECK(torch::equal(s.alpha(t), torch::ones_like(t)));
  CHECK(torch::equal(s.sigma(t), t));
  const auto grid = s.karras_sigmas(18, {0.002, 80.0});
  CHECK_THAT(value_at(grid, 0), WithinRel(80.0, 1e-12));
  CHECK_THAT(value_at(grid, 17), WithinRel(0.002, 1e-12));
  CHECK((grid.slice(0, 1) < grid.slice(0, 0, -1)).all().item<bool>());

  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const auto sig = s.sample_t(200000, {0.002, 80.0}, torch::kFloat64, gen);
  // Median of ln σ is P_mean = −1.2 (the truncation at [0.002, 80] is symmetric enough: ±4.2 std).
  CHECK_THAT(sig.log().median().item<double>(), WithinAbs(-1.2, 0.02));
  CHECK_THAT(sig.log().std().item<double>(), WithinAbs(1.2, 0.02));
  const auto narrow = s.sample_t(5000, {0.5, 2.0}, torch::kFloat64, gen);
  CHECK(narrow.min().item<double>() >= 0.5);
  CHECK(narrow.max().item<double>() <= 2.0);
  const di::EdmSchedule karras(di::EdmOptions().sampling(di::EdmSampling::kKarrasUniform));
  const auto u = karras.sample_t(5000, {0.002, 80.0}, torch::kFloat64, gen);
  CHECK(u.min().item<double>() >= 0.002);
  CHECK(u.max().item<double>() <= 80.0);
}

TEST_CASE("time sampling respects ranges, dtype and the seed", "[schedules][sampling]") {
  const di::DiscreteVPSchedule s;
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(11);
  auto g2 = at::make_generator<at::CPUGeneratorImpl>(11);
  const auto a = s.sample_generator_t(4096, torch::kFloat32, g1);
  const auto b = s.sample_generator_t(4096, torch::kFloat32, g2);
  CHECK(torch::equal(a, b));
  CHECK(a.scalar_type() == torch::kFloat32);
  CHECK(a.min().item<double>() >= 20);
  CHECK(a.max().item<double>() <= 980);
  CHECK(torch::equal(a, a.round()));  // integer timesteps
  CHECK(a.max().item<double>() == 980);
  const auto full = s.sample_assistant_t(20000, torch::kFloat64, g1);
  CHECK(full.min().item<double>() == 0);
  CHECK(full.max().item<double>() == 999);
  const di::CosineVPSchedule c;
  const auto tc = c.sample_generator_t(4096, torch::kFloat64, g1);
  CHECK(tc.min().item<double>() >= 0.02);
  CHECK(tc.max().item<double>() <= 0.98);
  CHECK_THAT(tc.mean().item<double>(), WithinAbs(0.5, 0.02));
}

TEST_CASE("weightings match their formulas", "[schedules][weighting]") {
  const auto a = f64({0.9, 0.5}), s = torch::sqrt(1 - a * a);
  CHECK(torch::allclose(di::weighting(di::Weighting::kUnit, a, s), torch::ones_like(a)));
  CHECK(torch::allclose(di::weighting(di::Weighting::kSigmaSquared, a, s), s * s));
  CHECK(torch::allclose(di::weighting(di::Weighting::kSigmaSquaredOverAlpha, a, s), s * s / a));
  CHECK(torch::allclose(di::weighting(di::Weighting::kInverseSnr, a, s), s * s / (a * a)));
  const auto sve = s / a;
  CHECK(torch::allclose(di::weighting(di::Weighting::kEdm, a, s, 0.5), (sve * sve + 0.25) / 0.25));
  const di::DiscreteVPSchedule sched(di::DiscreteVPOptions().generator_weighting(di::Weighting::kSigmaSquaredOverAlpha));
  const auto t = f64({100, 700});
  CHECK(torch::allclose(sched.w(t), sched.sigma(t).pow(2) / sched.alpha(t)));
  CHECK(torch::allclose(sched.lambda(t), torch::ones_like(t)));
  // The α/σ-reusing forms the trainer uses agree with the plain ones.
  CHECK(torch::allclose(di::generator_weight(sched, t, sched.alpha(t), sched.sigma(t)), sched.w(t)));
  const di::EdmSchedule edm;
  const auto te = f64({0.1, 3.0});
  CHECK(torch::allclose(di::assistant_weight(edm, te, edm.alpha(te), edm.sigma(te)), edm.lambda(te)));
  STATIC_REQUIRE(di::is_schedule_v<di::DiscreteVPSchedule>);
  STATIC_REQUIRE(di::is_schedule_v<di::CosineVPSchedule>);
  STATIC_REQUIRE(di::is_schedule_v<di::EdmSchedule>);
  STATIC_REQUIRE_FALSE(di::is_schedule_v<di::KL>);
}

TEST_CASE("schedules reject invalid options and out-of-range times with clear messages", "[schedules][errors]") {
  CHECK_THROWS_WITH(di::DiscreteVPSchedule(di::DiscreteVPOptions().beta_start(0.02).beta_end(0.01)),
                    Catch::Contains("DiscreteVPSchedule") && Catch::Contains("beta_start=0.02"));
  CHECK_THROWS_WITH(di::DiscreteVPSchedule(di::DiscreteVPOptions().generator_range({20, 1200})),
                    Catch::Contains("generator_range inside [0, 999]") && Catch::Contains("[20, 1200]"));
  CHECK_THROWS_WITH(di::CosineVPSchedule(di::CosineVPOptions().offset(-1)), Catch::Contains("offset"));
  CHECK_THROWS_WITH(di::EdmSchedule(di::EdmOptions().sigma_min(0)), Catch::Contains("sigma_min"));
  const di::DiscreteVPSchedule s;
  CHECK_THROWS_WITH(s.alpha(f64({-1, 5})), Catch::Contains("expected t in [0, 999]") && Catch::Contains("[-1, 5]"));
  CHECK_THROWS_WITH(s.alpha(torch::tensor({1, 2})), Catch::Contains("floating-point `t`"));
  CHECK_THROWS_WITH(s.sample_t(0, {0, 10}, torch::kFloat32), Catch::Contains("positive batch size"));
  CHECK_THROWS_WITH(s.sample_t(4, {10.2, 10.8}, torch::kFloat32), Catch::Contains("no integer timestep"));
}
