// Fused score-loss kernels against their reference twin (docs/math.md §5, "Fused versus reference").
// Tolerances: float64 1e-10 relative (same math, different summation order); float32 1e-5 relative
// + 1e-6 absolute; bfloat16/half against the float64 reference, 3e-2 (input rounding dominates).
#include <diffinstruct/di_star.hpp>

#include <catch2/catch.hpp>

namespace di = diffinstruct;

namespace {

struct Inputs {
  torch::Tensor a, b, e, sigma, w;
};

Inputs make(std::vector<int64_t> shape, torch::Dtype dtype, uint64_t seed, bool scalar_sw = false) {
  torch::manual_seed(seed);
  const auto o = torch::TensorOptions().dtype(torch::kFloat64);
  const int64_t B = shape[0];
  Inputs in;
  in.e = torch::randn(shape, o).to(dtype);
  in.a = (in.e.to(torch::kFloat64) + 0.3 * torch::randn(shape, o)).to(dtype).requires_grad_(true);
  in.b = (in.e.to(torch::kFloat64) + 0.5 * torch::randn(shape, o)).to(dtype).requires_grad_(true);
  in.sigma = scalar_sw ? torch::tensor(0.7, o).to(dtype) : (torch::rand({B}, o) * 0.9 + 0.05).to(dtype);
  in.w = scalar_sw ? torch::tensor(1.3, o).to(dtype) : (torch::rand({B}, o) + 0.2).to(dtype);
  return in;
}

struct Result {
  torch::Tensor loss, ga, gb;
};

Result run(const Inputs& in, di::ScoreDistanceKind kind, double param, di::KernelBackend backend) {
  const auto loss = di::score_loss(kind, in.a, in.b, in.e, in.sigma, in.w, param, backend);
  const auto upstream = torch::linspace(0.5, 1.5, loss.size(0), loss.options());  // not all ones: tests the chain rule
  const auto grads = torch::autograd::grad({loss}, {in.a, in.b}, {upstream});
  return {loss.detach(), grads[0], grads[1]};
}

void require_close(const Result& f, const Result& r, double rtol, double atol) {
  CHECK(torch::allclose(f.loss.to(torch::kFloat64), r.loss.to(torch::kFloat64), rtol, atol));
  CHECK(torch::allclose(f.ga.to(torch::kFloat64), r.ga.to(torch::kFloat64), rtol, atol));
  CHECK(torch::allclose(f.gb.to(torch::kFloat64), r.gb.to(torch::kFloat64), rtol, atol));
}

const std::vector<std::vector<int64_t>> kShapes{{1, 1}, {1, 7}, {3, 5, 3}, {2, 4, 9, 11}, {5, 1, 28, 28}, {2, 4, 128, 128}};

}  // namespace

TEST_CASE("fused CPU equals the reference: values and both gradients, every shape, c and distance", "[kernels][fused]") {
  for (const auto& shape : kShapes) {
    for (double c : {1e-4, 0.3, 1.0, 100.0}) {
      const auto in = make(shape, torch::kFloat64, 1);
      INFO("shape " << c10::IntArrayRef(shape) << ", c " << c);
      require_close(run(in, di::ScoreDistanceKind::kPseudoHuber, c, di::KernelBackend::kFused),
                    run(in, di::ScoreDistanceKind::kPseudoHuber, c, di::KernelBackend::kReference), 1e-10, 1e-12);
    }
    for (double sid : {1.0, 1.2}) {
      const auto in = make(shape, torch::kFloat64, 2);
      require_close(run(in, di::ScoreDistanceKind::kSquaredL2, sid, di::KernelBackend::kFused),
                    run(in, di::ScoreDistanceKind::kSquaredL2, sid, di::KernelBackend::kReference), 1e-10, 1e-12);
    }
  }
}

TEST_CASE("fused CPU in float32, bfloat16 and half, scalar sigma and w", "[kernels][fused][dtypes]") {
  for (const auto& shape : kShapes) {
    const auto f32 = make(shape, torch::kFloat32, 3);
    require_close(run(f32, di::ScoreDistanceKind::kPseudoHuber, 0.5, di::KernelBackend::kFused),
                  run(f32, di::ScoreDistanceKind::kPseudoHuber, 0.5, di::KernelBackend::kReference), 1e-4, 1e-5);
    const auto f64 = make(shape, torch::kFloat64, 4);
    const auto ref = run(f64, di::ScoreDistanceKind::kPseudoHuber, 0.5, di::KernelBackend::kReference);
    for (auto low : {torch::kBFloat16, torch::kHalf}) {
      const auto in = make(shape, low, 4);
      const auto fused = run(in, di::ScoreDistanceKind::kPseudoHuber, 0.5, di::KernelBackend::kFused);
      CHECK(fused.loss.scalar_type() == low);
      CHECK(fused.ga.scalar_type() == low);
      // Compare against the float64 reference on the same (rounded) inputs.
      Inputs up{in.a.detach().to(torch::kFloat64).requires_grad_(true), in.b.detach().to(torch::kFloat64).requires_grad_(true),
                in.e.to(torch::kFloat64), in.sigma.to(torch::kFloat64), in.w.to(torch::kFloat64)};
      require_close(fused, run(up, di::ScoreDistanceKind::kPseudoHuber, 0.5, di::KernelBackend::kReference), 3e-2, 3e-2);
    }
  }
  const auto sc = make({3, 2, 5}, torch::kFloat64, 5, /*scalar_sw=*/true);
  require_close(run(sc, di::ScoreDistanceKind::kPseudoHuber, 1.0, di::KernelBackend::kFused),
                run(sc, di::ScoreDistanceKind::kPseudoHuber, 1.0, di::KernelBackend::kReference), 1e-10, 1e-12);
}

TEST_CASE("fused CPU handles non-contiguous inputs", "[kernels][fused]") {
  torch::manual_seed(6);
  const auto o = torch::TensorOptions().dtype(torch::kFloat64);
  const auto base_a = torch::randn({6, 9, 5}, o), base_b = torch::randn({6, 9, 5}, o), base_e = torch::randn({6, 9, 5}, o);
  // Transposed and strided views of the same batch of 6 samples.
  Inputs in{base_a.transpose(1, 2).detach().requires_grad_(true), base_b.slice(2, 0, 5).transpose(1, 2).detach().requires_grad_(true),
            base_e.transpose(1, 2), (torch::rand({12}, o) + 0.1).slice(0, 0, 12, 2), torch::rand({6}, o) + 0.5};
  REQUIRE_FALSE(in.a.is_contiguous());
  REQUIRE_FALSE(in.sigma.is_contiguous());
  require_close(run(in, di::ScoreDistanceKind::kPseudoHuber, 0.8, di::KernelBackend::kFused),
                run(in, di::ScoreDistanceKind::kPseudoHuber, 0.8, di::KernelBackend::kReference), 1e-10, 1e-12);
}

TEST_CASE("fused CPU gradients pass central finite differences in float64", "[kernels][fused][gradcheck]") {
  const auto in = make({2, 3, 4}, torch::kFloat64, 7);
  for (auto kind : {di::ScoreDistanceKind::kPseudoHuber, di::ScoreDistanceKind::kSquaredL2}) {
    const auto res = run(in, kind, 0.6, di::KernelBackend::kFused);
    const auto upstream = torch::linspace(0.5, 1.5, 2, torch::kFloat64);
    for (int which = 0; which < 2; ++which) {
      for (int64_t i = 0; i < 24; i += 7) {
        auto value = [&](double h) {
          auto a = in.a.detach().clone(), b = in.b.detach().clone();
          (which == 0 ? a : b).view(-1)[i] += h;
          return (di::score_loss(kind, a, b, in.e, in.sigma, in.w, 0.6, di::KernelBackend::kFused) * upstream).sum().item<double>();
        };
        const double fd = (value(1e-6) - value(-1e-6)) / 2e-6;
        const double ad = (which == 0 ? res.ga : res.gb).reshape(-1)[i].item<double>();
        CHECK_THAT(ad, Catch::Matchers::WithinRel(fd, 1e-6) || Catch::Matchers::WithinAbs(fd, 1e-8));
      }
    }
  }
}

TEST_CASE("dispatch: auto picks the fused kernel on CPU and falls back when gradients of e, sigma or w are needed",
          "[kernels][dispatch]") {
  const auto in = make({4, 3, 7}, torch::kFloat32, 8);
  const auto auto_loss = di::score_loss(di::ScoreDistanceKind::kPseudoHuber, in.a, in.b, in.e, in.sigma, in.w, 1.0);
  const auto fused_loss = di::score_loss(di::ScoreDistanceKind::kPseudoHuber, in.a, in.b, in.e, in.sigma, in.w, 1.0, di::KernelBackend::kFused);
  CHECK(torch::equal(auto_loss, fused_loss));
  // σ needing a gradient: kAuto uses the reference (which provides it), kFused refuses with a reason.
  const auto sigma = in.sigma.detach().clone().requires_grad_(true);
  const auto l = di::score_loss(di::ScoreDistanceKind::kPseudoHuber, in.a, in.b, in.e, sigma, in.w, 1.0);
  const auto gs = torch::autograd::grad({l.sum()}, {sigma})[0];
  CHECK(gs.abs().sum().item<double>() > 0);
  CHECK_THROWS_WITH(di::score_loss(di::ScoreDistanceKind::kPseudoHuber, in.a, in.b, in.e, sigma, in.w, 1.0, di::KernelBackend::kFused),
                    Catch::Contains("no fused kernel") && Catch::Contains("sigma or w require gradients"));
  // Under no-grad the fused kernel applies whatever requires_grad says.
  torch::NoGradGuard no_grad;
  CHECK(torch::equal(di::score_loss(di::ScoreDistanceKind::kPseudoHuber, in.a, in.b, in.e, sigma, in.w, 1.0, di::KernelBackend::kFused),
                     fused_loss));
}

TEST_CASE("the divergences use the fused kernel by default and stay exact", "[kernels][dispatch]") {
  const auto in = make({3, 4, 5}, torch::kFloat64, 9);
  const auto x_t = torch::randn({3, 4, 5}, torch::kFloat64);
  di::DivergenceInputs div_in{in.a, in.b, in.e, x_t, x_t, torch::sqrt(1 - in.sigma * in.sigma), in.sigma, in.w};
  const auto fused = di::PseudoHuberScore(0.7).loss(div_in);
  const auto ref = di::PseudoHuberScore(di::PseudoHuberScoreOptions(0.7).backend(di::KernelBackend::kReference)).loss(div_in);
  CHECK(torch::allclose(fused, ref, 1e-10, 1e-12));
  CHECK(fused.grad_fn() != ref.grad_fn());
}
