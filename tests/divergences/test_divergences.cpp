// Divergence policies: closed-form values and gradients, equivalences, limits, dtypes, bad input.
#include <diffinstruct/di_star.hpp>

#include <catch2/catch.hpp>

namespace di = diffinstruct;
using Catch::Matchers::WithinRel;

namespace {

struct Batch {
  torch::Tensor a, b, e, x_t, x0, alpha, sigma, w;
  di::DivergenceInputs inputs() const { return {a, b, e, x_t, x0, alpha, sigma, w}; }
};

// Random inputs of a given sample shape; a and b require grad (they stand for network outputs).
Batch random_batch(std::vector<int64_t> shape, torch::Dtype dtype = torch::kFloat64, uint64_t seed = 0) {
  torch::manual_seed(seed);
  const auto o = torch::TensorOptions().dtype(dtype);
  const int64_t batch = shape[0];
  Batch r;
  r.alpha = torch::rand({batch}, o) * 0.8 + 0.1;
  r.sigma = torch::sqrt(1 - r.alpha * r.alpha);
  r.w = torch::rand({batch}, o) + 0.5;
  r.x0 = torch::randn(shape, o);
  r.e = torch::randn(shape, o);
  r.x_t = di::diffuse(r.x0, r.alpha, r.sigma, r.e).requires_grad_(true);
  r.a = (r.e + 0.3 * torch::randn(shape, o)).requires_grad_(true);
  r.b = (r.e + 0.5 * torch::randn(shape, o)).requires_grad_(true);
  return r;
}

torch::Tensor flat(const torch::Tensor& t) { return t.reshape({t.size(0), -1}); }

}  // namespace

TEST_CASE("pseudo-Huber score surrogate equals w<y,g>/sqrt(|y|^2+c^2) and its closed-form gradients", "[divergences][huber]") {
  for (double c : {1e-3, 0.3, 1.0, 25.0}) {
    const auto B = random_batch({5, 3, 7});
    const auto loss = di::PseudoHuberScore(c).loss(B.inputs());
    const auto s = B.sigma.unsqueeze(1);
    const auto y = flat(B.b - B.a) / s, g = flat(B.a - B.e) / s;
    const auto yg = (y * g).sum(1), yy = (y * y).sum(1);
    const auto r = torch::sqrt(yy + c * c);
    CHECK(torch::allclose(loss, B.w * yg / r, 1e-12, 1e-14));
    // docs/math.md §2.1: ∂L/∂a = (w/σ)[(y − g)/r + <y,g> y / r³],  ∂L/∂b = (w/σ)[g/r − <y,g> y / r³].
    const auto grads = torch::autograd::grad({loss.sum()}, {B.a, B.b});
    const auto k = (B.w / B.sigma).unsqueeze(1);
    const auto r1 = r.unsqueeze(1), yg1 = yg.unsqueeze(1);
    const auto da = k * ((y - g) / r1 + yg1 * y / r1.pow(3));
    const auto db = k * (g / r1 - yg1 * y / r1.pow(3));
    CHECK(torch::allclose(flat(grads[0]), da, 1e-10, 1e-12));
    CHECK(torch::allclose(flat(grads[1]), db, 1e-10, 1e-12));
  }
}

TEST_CASE("central finite differences agree with autograd through every divergence", "[divergences][gradcheck]") {
  const auto B = random_batch({3, 4});
  auto check = [&](auto&& loss_of) {
    const torch::Tensor loss = loss_of(B.a, B.b, B.x_t).sum();
    const std::vector<torch::Tensor> grads = torch::autograd::grad({loss}, {B.a, B.b, B.x_t}, {}, false, false, true);
    const double h = 1e-6;
    const std::vector<torch::Tensor> leaves{B.a, B.b, B.x_t};
    for (size_t which = 0; which < leaves.size(); ++which) {
      for (int64_t i = 0; i < 12; i += 5) {
        auto bumped = [&](double d) {
          std::vector<torch::Tensor> v;
          for (const auto& l : leaves) v.push_back(l.detach().clone());
          v[which].view(-1)[i] += d;
          const torch::Tensor value = loss_of(v[0], v[1], v[2]).sum();
          return value.item<double>();
        };
        const double fd = (bumped(h) - bumped(-h)) / (2 * h);
        const double ad = grads[which].defined() ? grads[which].reshape(-1)[i].item<double>() : 0.0;
        CHECK_THAT(ad, WithinRel(fd, 1e-6) || Catch::Matchers::WithinAbs(fd, 1e-8));
      }
    }
  };
  auto make = [&](auto div) {
    return [&B, div](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& x_t) {
      return div.loss({a, b, B.e, x_t, B.x0, B.alpha, B.sigma, B.w});
    };
  };
  check(make(di::PseudoHuberScore(0.7)));
  check(make(di::SquaredL2Score(di::SquaredL2ScoreOptions().sid_alpha(1.2))));
  check(make(di::ScoreDivergence<di::PseudoHuberDistance>({0.7})));
}

TEST_CASE("the generic ScoreDivergence reproduces the shipped score divergences", "[divergences][distance]") {
  const auto B = random_batch({4, 2, 5, 5});
  const auto ph = di::PseudoHuberScore(0.5).loss(B.inputs());
  const auto ph_generic = di::ScoreDivergence<di::PseudoHuberDistance>({0.5}).loss(B.inputs());
  CHECK(torch::allclose(ph, ph_generic, 1e-12, 1e-14));
  const auto g1 = torch::autograd::grad({ph.sum()}, {B.a, B.b});
  const auto g2 = torch::autograd::grad({ph_generic.sum()}, {B.a, B.b});
  CHECK(torch::allclose(g1[0], g2[0], 1e-12, 1e-14));
  CHECK(torch::allclose(g1[1], g2[1], 1e-12, 1e-14));
  const auto l2 = di::SquaredL2Score().loss(B.inputs());
  CHECK(torch::allclose(l2, di::ScoreDivergence<di::SquaredL2Distance>().loss(B.inputs()), 1e-12, 1e-14));
  STATIC_REQUIRE(di::is_distance_v<di::PseudoHuberDistance>);
  STATIC_REQUIRE(di::is_divergence_v<di::ScoreDivergence<di::SquaredL2Distance>>);
}

TEST_CASE("pseudo-Huber limits: large c is squared L2 / (2c), small c the unit direction", "[divergences][huber]") {
  const auto B = random_batch({6, 9});
  const double big = 1e6;
  const auto ph = di::PseudoHuberScore(big).loss(B.inputs());
  const auto l2 = di::SquaredL2Score().loss(B.inputs());
  CHECK(torch::allclose(ph * (2 * big), l2, 1e-6, 1e-12));
  const auto tiny = di::PseudoHuberScore(1e-9).loss(B.inputs());
  const auto s = B.sigma.unsqueeze(1);
  const auto y = (B.b - B.a) / s, g = (B.a - B.e) / s;
  const auto unit = y / y.norm(2, 1, true);
  CHECK(torch::allclose(tiny, B.w * (unit * g).sum(1), 1e-8, 1e-12));
  // Each sample's push d'(y) is bounded by 1 in norm, whatever the score difference.
  const auto huge = random_batch({6, 9});
  const auto dist = di::PseudoHuberDistance{1.0}.grad(1e6 * (huge.b - huge.a));
  CHECK((dist.norm(2, 1) < 1.0).all().item<bool>());
}

TEST_CASE("squared L2 surrogate is 2w<y,g> plus SiD's (1 - alpha) w |y|^2", "[divergences][l2]") {
  const auto B = random_batch({5, 3, 4});
  const auto s = B.sigma.unsqueeze(1).unsqueeze(2);
  const auto y = (B.b - B.a) / s, g = (B.a - B.e) / s;
  const auto yg = di::sum_per_sample(y * g), yy = di::sum_per_sample(y * y);
  CHECK(torch::allclose(di::SquaredL2Score().loss(B.inputs()), 2 * B.w * yg, 1e-12, 1e-14));
  const auto sid = di::SquaredL2Score(di::SquaredL2ScoreOptions().sid_alpha(1.2)).loss(B.inputs());
  CHECK(torch::allclose(sid, 2 * B.w * yg - 0.2 * B.w * yy, 1e-12, 1e-14));
}

TEST_CASE("KL pushes x_t by w*sg[y] and never differentiates the networks", "[divergences][kl]") {
  const auto B = random_batch({4, 6});
  const auto loss = di::KL().loss(B.inputs());
  const auto s = B.sigma.unsqueeze(1);
  const auto y = (B.b - B.a).detach() / s;
  CHECK(torch::allclose(loss, B.w * (y * B.x_t).sum(1), 1e-12, 1e-14));
  const auto grads = torch::autograd::grad({loss.sum()}, {B.a, B.b, B.x_t}, {}, false, false, true);
  CHECK_FALSE(grads[0].defined());
  CHECK_FALSE(grads[1].defined());
  CHECK(torch::allclose(grads[2], B.w.unsqueeze(1) * y, 1e-12, 1e-14));
  STATIC_REQUIRE_FALSE(di::KL::needs_input_grad);
  STATIC_REQUIRE(di::PseudoHuberScore::needs_input_grad);
  STATIC_REQUIRE(di::SquaredL2Score::needs_input_grad);
}

// DMD2's distribution-matching gradient, written out as its authors' training code computes it:
// p_real = x0 - D_real(x_t), p_fake = x0 - D_fake(x_t), grad = (p_real - p_fake) / mean|p_real|,
// loss = 0.5 ||x0 - sg[x0 - grad]||^2 (summed over a sample's dims, the library's convention).
torch::Tensor dmd2_reference_grad(const torch::Tensor& x0, const torch::Tensor& x_t, const torch::Tensor& alpha, const torch::Tensor& sigma,
                                  const torch::Tensor& eps_fake, const torch::Tensor& eps_real) {
  const auto A = di::per_sample(alpha, x_t), S = di::per_sample(sigma, x_t);
  const auto d_fake = (x_t.detach() - S * eps_fake.detach()) / A;
  const auto d_real = (x_t.detach() - S * eps_real.detach()) / A;
  const auto p_real = x0.detach() - d_real, p_fake = x0.detach() - d_fake;
  const auto grad = (p_real - p_fake) / p_real.abs().reshape({x0.size(0), -1}).mean(1).reshape(di::per_sample(sigma, x_t).sizes());
  auto leaf = x0.detach().clone().requires_grad_(true);
  const auto loss = 0.5 * (leaf - (leaf - grad).detach()).pow(2).sum();
  return torch::autograd::grad({loss}, {leaf})[0];
}

template <class Schedule>
void check_dmd2(const Schedule& sched, const torch::Tensor& t, const char* label) {
  INFO(label);
  torch::manual_seed(1);
  const auto o = torch::TensorOptions().dtype(torch::kFloat64);
  auto x0 = torch::randn({t.size(0), 3, 4}, o).requires_grad_(true);
  const auto noise = torch::randn_like(x0);
  const auto alpha = sched.alpha(t), sigma = sched.sigma(t);
  const auto x_t = di::diffuse(x0, alpha, sigma, noise);
  const auto fake = 0.3 * x_t.detach() + 0.1 * torch::randn_like(x0), real = 0.5 * x_t.detach() - 0.2;
  di::DivergenceInputs in{fake, real, noise, x_t, x0, alpha, sigma, sched.w(t)};
  const auto g = torch::autograd::grad({di::KL(di::KLOptions().dmd_normalizer(true)).loss(in).sum()}, {x0})[0];
  const auto expected = dmd2_reference_grad(x0, x_t, alpha, sigma, fake, real);
  CHECK(torch::allclose(g, expected, 1e-10, 1e-12));
  // The weighting does not enter: any w gives DMD2's gradient.
  in.w = torch::rand_like(in.w) * 5;
  const auto g2 = torch::autograd::grad({di::KL(di::KLOptions().dmd_normalizer(true)).loss(in).sum()}, {x0})[0];
  CHECK(torch::allclose(g2, expected, 1e-10, 1e-12));
  // Without the normaliser, w = sigma^2/alpha^2 (inverse SNR) is DMD's unnormalised gradient D_fake - D_real.
  in.w = sigma * sigma / (alpha * alpha);
  const auto g3 = torch::autograd::grad({di::KL().loss(in).sum()}, {x0})[0];
  const auto A = di::per_sample(alpha, x_t), S = di::per_sample(sigma, x_t);
  CHECK(torch::allclose(g3, (S * (real - fake)) / A, 1e-10, 1e-12));
}

TEST_CASE("KL with the DMD2 normaliser has DMD2's gradient under every schedule and weighting", "[divergences][kl][dmd2]") {
  const auto o = torch::TensorOptions().dtype(torch::kFloat64);
  check_dmd2(di::DiscreteVPSchedule(), torch::tensor({25., 250., 500., 750., 975.}, o), "discrete VP, default w = sigma^2");
  check_dmd2(di::DiscreteVPSchedule(di::DiscreteVPOptions::linear()), torch::tensor({25., 975.}, o), "discrete VP linear");
  check_dmd2(di::CosineVPSchedule(), torch::tensor({0.05, 0.5, 0.95}, o), "cosine VP");
  check_dmd2(di::EdmSchedule(), torch::tensor({0.01, 1.0, 40.0}, o), "EDM (alpha = 1)");
  const auto B = random_batch({4, 6});
  auto in = B.inputs();
  in.x0 = torch::Tensor();
  CHECK_THROWS_WITH(di::KL(di::KLOptions().dmd_normalizer(true)).loss(in), Catch::Contains("dmd_normalizer needs `x0`"));
}

TEST_CASE("a divergence called directly validates the values it divides by", "[divergences][errors]") {
  const auto B = random_batch({3, 4});
  auto in = B.inputs();
  in.sigma = in.sigma.detach().clone();
  in.sigma[1] = 0.0;
  CHECK_THROWS_WITH(di::PseudoHuberScore(1.0).loss(in), Catch::Contains("PseudoHuberScore: expected sigma > 0"));
  CHECK_THROWS_WITH(di::SquaredL2Score().loss(in), Catch::Contains("SquaredL2Score: expected sigma > 0"));
  CHECK_THROWS_WITH(di::KL().loss(in), Catch::Contains("KL: expected sigma > 0"));
  CHECK_THROWS_WITH(di::ScoreDivergence<di::PseudoHuberDistance>().loss(in), Catch::Contains("expected sigma > 0"));
  auto nan_alpha = B.inputs();
  nan_alpha.alpha = torch::full_like(nan_alpha.alpha, NAN);
  CHECK_THROWS_WITH(di::KL(di::KLOptions().dmd_normalizer(true)).loss(nan_alpha), Catch::Contains("alpha > 0"));
  in.check_values = false;  // the hot path skips the read-backs and gets what it asked for
  CHECK_FALSE(torch::isfinite(di::PseudoHuberScore(1.0).loss(in)[1]).item<bool>());
}

TEST_CASE("divergences agree across dtypes and odd shapes, batch of one included", "[divergences][dtypes]") {
  for (const auto& shape : std::vector<std::vector<int64_t>>{{1, 1}, {1, 7}, {3, 5, 3}, {2, 4, 9, 11}}) {
    const auto B64 = random_batch(shape, torch::kFloat64, 5);
    auto to = [](const di::DivergenceInputs& in, torch::Dtype d) {
      return di::DivergenceInputs{in.assistant_eps.detach().to(d), in.target_eps.detach().to(d), in.noise.to(d),
                                  in.x_t.detach().to(d),           in.x0.to(d),                  in.alpha.to(d),
                                  in.sigma.to(d),                  in.w.to(d)};
    };
    const auto ref_ph = di::PseudoHuberScore(0.8).loss(B64.inputs()).detach();
    const auto ref_kl = di::KL().loss(B64.inputs()).detach();
    const auto f32 = to(B64.inputs(), torch::kFloat32);
    CHECK(torch::allclose(di::PseudoHuberScore(0.8).loss(f32).to(torch::kFloat64), ref_ph, 1e-4, 1e-5));
    CHECK(torch::allclose(di::KL().loss(f32).to(torch::kFloat64), ref_kl, 1e-4, 1e-4));
    const auto bf16 = to(B64.inputs(), torch::kBFloat16);
    const auto ph16 = di::PseudoHuberScore(0.8).loss(bf16);
    CHECK(ph16.scalar_type() == torch::kBFloat16);
    CHECK(torch::allclose(ph16.to(torch::kFloat64), ref_ph, 5e-2, 5e-2));
  }
}

TEST_CASE("divergences reject malformed input with the component, the expected and the actual value", "[divergences][errors]") {
  const auto B = random_batch({4, 3});
  CHECK_THROWS_WITH(di::PseudoHuberScore(0.0), Catch::Contains("PseudoHuberScore: expected c > 0, got 0"));
  CHECK_THROWS_WITH(di::PseudoHuberScore(-1.0), Catch::Contains("expected c > 0, got -1"));
  CHECK_THROWS_WITH(di::PseudoHuberScore(std::nan("")), Catch::Contains("expected c > 0"));
  CHECK_THROWS_WITH(di::SquaredL2Score(di::SquaredL2ScoreOptions().sid_alpha(INFINITY)), Catch::Contains("finite sid_alpha"));

  auto in = B.inputs();
  in.target_eps = torch::zeros({4, 5}, torch::kFloat64);
  CHECK_THROWS_WITH(di::PseudoHuberScore().loss(in),
                    Catch::Contains("PseudoHuberScore") && Catch::Contains("`target_eps` to have the shape of `x_t` [4, 3], got [4, 5]"));
  in = B.inputs();
  in.noise = in.noise.to(torch::kFloat32);
  CHECK_THROWS_WITH(di::KL().loss(in), Catch::Contains("KL") && Catch::Contains("`noise` to have dtype Double") &&
                                           Catch::Contains("got Float"));
  in = B.inputs();
  in.assistant_eps = torch::zeros({4, 3}, torch::TensorOptions().dtype(torch::kFloat64).device(torch::kMeta));
  CHECK_THROWS_WITH(di::SquaredL2Score().loss(in), Catch::Contains("`assistant_eps` on device cpu") && Catch::Contains("got meta"));
  in = B.inputs();
  in.sigma = torch::ones({3}, torch::kFloat64);
  CHECK_THROWS_WITH(di::PseudoHuberScore().loss(in), Catch::Contains("`sigma` of shape [4] (one value per sample)") &&
                                                         Catch::Contains("got [3]"));
  di::DivergenceInputs empty{torch::zeros({0, 3}), torch::zeros({0, 3}), torch::zeros({0, 3}), torch::zeros({0, 3}),
                             torch::zeros({0, 3}), torch::ones({0}),     torch::ones({0}),     torch::ones({0})};
  CHECK_THROWS_WITH(di::PseudoHuberScore().loss(empty), Catch::Contains("non-empty batch for `x_t`, got shape [0, 3]"));
  in = B.inputs();
  in.x_t = torch::zeros({4, 3}, torch::kLong);
  CHECK_THROWS_WITH(di::KL().loss(in), Catch::Contains("floating-point `x_t`, got dtype Long"));
}

#include <diffinstruct/kernels/score_math.hpp>

TEST_CASE("the kernels' per-sample coefficient math reproduces the reference losses and autograd gradients",
          "[divergences][kernels]") {
  const auto B = random_batch({5, 2, 7}, torch::kFloat64, 9);
  for (int which = 0; which < 2; ++which) {
    const double param = which == 0 ? 0.6 : 1.2;  // c, or SiD's α
    const auto loss = which == 0 ? di::PseudoHuberScore(param).loss(B.inputs())
                                 : di::SquaredL2Score(di::SquaredL2ScoreOptions().sid_alpha(param)).loss(B.inputs());
    const auto grads = torch::autograd::grad({loss.sum()}, {B.a, B.b});
    const auto s = B.sigma.reshape({5, 1, 1});
    const auto y = ((B.b - B.a) / s).detach(), g = ((B.a - B.e) / s).detach();
    for (int64_t i = 0; i < 5; ++i) {
      const double yy = (y[i] * y[i]).sum().item<double>(), yg = (y[i] * g[i]).sum().item<double>();
      const double sig = B.sigma[i].item<double>(), w = B.w[i].item<double>();
      const auto k = which == 0 ? di::kernels::pseudo_huber_coefficients(yy, yg, sig, w, param)
                                : di::kernels::squared_l2_coefficients(yy, yg, sig, w, param);
      CHECK_THAT(k.loss, WithinRel(loss[i].item<double>(), 1e-12));
      CHECK(torch::allclose(grads[0][i], k.ya * y[i] + k.ga * g[i], 1e-10, 1e-12));
      CHECK(torch::allclose(grads[1][i], k.yb * y[i] + k.gb * g[i], 1e-10, 1e-12));
    }
  }
}
