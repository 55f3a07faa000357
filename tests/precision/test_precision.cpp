// Mixed precision (precision/precision.hpp, precision/grad_scaler.hpp, the trainer's precision
// option): a bf16-autocast run follows the fp32 run and converges where it does; the loop's numbers
// stay float32 (10^6 time draws never leave the range, where bf16 draws would); the EMA moves at
// decay 0.9999 where a bf16 EMA would not; a forced overflow under loss scaling skips the step,
// halves the scale and leaves everything bit-identical; the scaler's state resumes exactly; frozen
// models stored in bf16; errors for what cannot work. [cuda] twins skip without a GPU.
#include "../test_skip.hpp"
#include "../tensor_compare.hpp"
#include "../trainer/tiny_trainer.hpp"

#include <diffinstruct/testing/gaussian_mixture.hpp>

#include <catch2/catch.hpp>

#include <filesystem>

namespace di = diffinstruct;
namespace dt = diffinstruct::testing;

namespace {

// An MLP that records the dtype its hidden layer computed in (what autocast did).
struct MlpImpl : torch::nn::Module {
  torch::nn::Linear a{nullptr}, b{nullptr}, c{nullptr};
  c10::ScalarType last_hidden = torch::kDouble;
  MlpImpl(int64_t in, int64_t out, int64_t hidden = 64) {
    a = register_module("a", torch::nn::Linear(in, hidden));
    b = register_module("b", torch::nn::Linear(hidden, hidden));
    c = register_module("c", torch::nn::Linear(hidden, out));
  }
  torch::Tensor body(const torch::Tensor& x) {
    const auto h = torch::silu(a(x));
    last_hidden = h.scalar_type();
    return c(torch::silu(b(h)));
  }
  torch::Tensor forward(const torch::Tensor& z) { return body(z); }
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t) { return body(torch::cat({x_t, t.unsqueeze(1).to(x_t.dtype())}, 1)); }
};
TORCH_MODULE(Mlp);

// The exact 8-Gaussian teacher under the cosine schedule; records the dtype of the times it is given.
struct MixtureTeacher {
  dt::GaussianMixture mixture = dt::GaussianMixture::ring();
  di::CosineVPSchedule schedule = di::CosineVPSchedule();
  std::shared_ptr<c10::ScalarType> t_dtype = std::make_shared<c10::ScalarType>(torch::kDouble);
  torch::Tensor operator()(const torch::Tensor& x_t, const torch::Tensor& t) const {
    *t_dtype = t.scalar_type();
    return mixture.eps(x_t, schedule.alpha(t), schedule.sigma(t));
  }
};

using Reward = di::ModelReward<std::function<torch::Tensor(const torch::Tensor&)>>;
using Teacher = di::Denoiser<MixtureTeacher, di::EpsPrediction>;
using Trainer = di::DiStarTrainer<di::Generator<Mlp>, Teacher, di::Denoiser<Mlp>, di::NoCondition, di::PseudoHuberScore, di::NoGuidance,
                                  Reward, di::CosineVPSchedule>;

torch::Tensor right_half(const torch::Tensor& x0) { return torch::sigmoid(3 * x0.select(1, 0)); }

std::unique_ptr<Trainer> make_trainer(uint64_t init_seed, di::DiStarTrainerOptions options, torch::Device device = torch::kCPU,
                                      MixtureTeacher teacher = MixtureTeacher()) {
  torch::manual_seed(init_seed);
  Mlp gen(2, 2), asst(3, 2);
  gen->to(device);
  asst->to(device);
  di::DiStarPolicies<di::PseudoHuberScore, di::NoGuidance, Reward, di::CosineVPSchedule> policies{
      di::PseudoHuberScore(1.0), di::NoGuidance{}, Reward(right_half), di::CosineVPSchedule()};
  return std::make_unique<Trainer>(di::Generator<Mlp>(gen), Teacher(teacher, "teacher"), di::Denoiser<Mlp>(asst, "assistant"),
                                   std::move(policies), di::ConditionSource<di::NoCondition>{}, std::vector<int64_t>{2}, options);
}

using test_util::identical;
using test_util::relative_difference;
using test_util::snapshot;

std::string tmp_path(const std::string& name) { return std::string(DIFFINSTRUCT_TEST_TMPDIR) + "/" + name; }

struct RunSummary {
  double dist_before = 0, dist_after = 0, reward_before = 0, reward_after = 0;
};

}  // namespace

TEST_CASE("bf16 autocast on the CPU follows the fp32 run and converges where it does (8-Gaussian DI*, 300 steps)",
          "[precision][learning]") {
  const auto opts = di::DiStarTrainerOptions().batch_size(256).alpha_rew(0.3).seed(3).ema_decay(0);
  auto fp32 = make_trainer(1, opts);
  auto bf16 = make_trainer(1, di::DiStarTrainerOptions(opts).precision(di::Precision::kBFloat16));
  REQUIRE(identical(fp32->generator_parameters(), bf16->generator_parameters()));
  const auto mixture = dt::GaussianMixture::ring();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
  const auto z = torch::randn({2048, 2}, gen);
  auto measure = [&](Trainer& t) {
    const auto x = t.sample(z, di::NoCondition{});
    return std::make_pair(mixture.nearest(x).second.mean().item<double>(), right_half(x).mean().item<double>());
  };
  RunSummary a, b;
  std::tie(a.dist_before, a.reward_before) = measure(*fp32);
  std::tie(b.dist_before, b.reward_before) = measure(*bf16);
  for (int i = 0; i < 10; ++i) {
    fp32->step();
    const auto s = bf16->step();
    REQUIRE(std::isfinite(s.generator_loss));
  }
  const double after_10 = relative_difference(bf16->generator_parameters(), fp32->generator_parameters());
  // The networks did run in bf16 and handed float32 back to the loop.
  CHECK(bf16->generator().model()->last_hidden == torch::kBFloat16);
  CHECK(bf16->assistant().model()->last_hidden == torch::kBFloat16);
  CHECK(fp32->generator().model()->last_hidden == torch::kFloat);
  CHECK(*bf16->teacher().model().t_dtype == torch::kFloat);
  CHECK(bf16->loop_dtype() == torch::kFloat);
  for (const auto& p : bf16->generator_parameters()) CHECK(p.scalar_type() == torch::kFloat);
  for (int i = 10; i < 300; ++i) {
    fp32->step();
    bf16->step();
  }
  std::tie(a.dist_after, a.reward_after) = measure(*fp32);
  std::tie(b.dist_after, b.reward_after) = measure(*bf16);
  WARN("fp32: distance to the nearest mode " << a.dist_before << " -> " << a.dist_after << ", reward " << a.reward_before << " -> "
                                             << a.reward_after << "; bf16: " << b.dist_before << " -> " << b.dist_after << ", reward "
                                             << b.reward_before << " -> " << b.reward_after << "; weights after 10 steps differ by "
                                             << after_10 << " (relative)");
  CHECK(after_10 < 0.02);                              // the same trajectory at first, up to bf16 round-off
  CHECK(b.dist_after < 0.5 * b.dist_before);           // it converges where fp32 does ...
  CHECK(a.dist_after < 0.5 * a.dist_before);
  CHECK(std::abs(b.dist_after - a.dist_after) < 0.1);  // ... to the same place (0.1 of a mode's spread)
  CHECK(std::abs(b.reward_after - a.reward_after) < 0.05);
  CHECK(b.reward_after > b.reward_before + 0.05);
  CHECK(fp32->non_finite_total() == 0);
  CHECK(bf16->non_finite_total() == 0);
}

TEST_CASE("the loop's numbers stay float32 under bf16: 10^6 discrete-VP time draws never leave the range, where bf16 draws would",
          "[precision][schedules]") {
  auto trainer = tiny::make(1, di::DiStarTrainerOptions().batch_size(8).precision(di::Precision::kBFloat16));
  REQUIRE(trainer->loop_dtype() == torch::kFloat);
  const di::DiscreteVPSchedule sched;
  const auto hi = sched.full_range().hi;  // 999
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto loop = torch::TensorOptions().dtype(trainer->loop_dtype());
  // The whole range [0, 999], as a schedule configured to train at every timestep draws it.
  const auto tg = sched.sample_t(1000000, sched.full_range(), loop, gen), ta = sched.sample_assistant_t(1000000, loop, gen);
  CHECK(tg.max().item<double>() <= hi);
  CHECK(ta.max().item<double>() <= hi);
  CHECK(tg.min().item<double>() >= 0);
  CHECK_NOTHROW(sched.alpha(tg));
  // The negative control: the same draws in bfloat16 round 998 and 999 to 1000, past the last timestep.
  const auto bf = sched.sample_t(1000000, sched.full_range(), loop.dtype(torch::kBFloat16), gen);
  const int64_t outside = (bf.to(torch::kFloat) > hi).sum().item<int64_t>();
  WARN("bf16 draws past timestep " << hi << ": " << outside << " of 10^6; float32 draws: 0");
  CHECK(outside > 0);
  CHECK_THROWS(sched.alpha(bf));
}

TEST_CASE("under bf16 the EMA is float32 and moves at decay 0.9999, where a bf16 EMA of the same weights would not", "[precision][ema]") {
  auto trainer = tiny::make(2, di::DiStarTrainerOptions().batch_size(16).ema_decay(0.9999).precision(di::Precision::kBFloat16));
  const auto start = snapshot(trainer->ema().shadow());
  std::vector<torch::Tensor> bf16_ema;
  for (const auto& s : start) bf16_ema.push_back(s.to(torch::kBFloat16));
  const auto bf16_start = snapshot(bf16_ema);
  for (int i = 0; i < 30; ++i) {
    trainer->step();
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < bf16_ema.size(); ++k)
      bf16_ema[k].mul_(0.9999).add_(trainer->generator_parameters()[k].detach().to(torch::kBFloat16), 1 - 0.9999);
  }
  int64_t moved = 0, moved_bf16 = 0, total = 0;
  for (size_t k = 0; k < start.size(); ++k) {
    CHECK(trainer->ema().shadow()[k].scalar_type() == torch::kFloat);
    moved += trainer->ema().shadow()[k].ne(start[k]).sum().item<int64_t>();
    moved_bf16 += bf16_ema[k].ne(bf16_start[k]).sum().item<int64_t>();
    total += start[k].numel();
  }
  WARN("EMA entries moved after 30 steps at decay 0.9999: float32 " << moved << " of " << total << ", bfloat16 " << moved_bf16);
  CHECK(moved > total * 9 / 10);
  CHECK(moved_bf16 < total / 20);
}

TEST_CASE("a forced overflow under loss scaling skips both updates, halves the scale and leaves weights, optimizer and EMA bit-identical",
          "[precision][scaler]") {
  const double huge = std::numeric_limits<float>::max();  // loss · S overflows float32 at once
  auto trainer = tiny::make(3, di::DiStarTrainerOptions()
                                   .batch_size(16)
                                   .ema_decay(0.9)
                                   .alpha_rew(1e4)  // gradients well above 1: times S, they overflow float32
                                   .non_finite(di::NonFinitePolicy::kThrow)  // an overflow is not an error
                                   .loss_scaling(di::LossScaling::kOn)
                                   .grad_scaler(di::GradScalerOptions().init_scale(huge)));
  REQUIRE(trainer->generator_scaler().enabled());
  const auto g0 = snapshot(trainer->generator_parameters()), a0 = snapshot(trainer->assistant_parameters());
  const auto e0 = snapshot(trainer->ema().shadow());
  const auto s = trainer->step();
  CHECK(s.overflows == 2);  // the assistant's update and the generator's
  CHECK(s.generator_skipped);
  CHECK(s.non_finite == 0);
  CHECK(identical(g0, trainer->generator_parameters()));
  CHECK(identical(a0, trainer->assistant_parameters()));
  CHECK(identical(e0, trainer->ema().shadow()));
  CHECK(trainer->generator_optimizer().state().empty());  // Adam never stepped
  CHECK(trainer->assistant_optimizer().state().empty());
  CHECK(trainer->generator_scaler().scale_value() == static_cast<double>(static_cast<float>(huge * 0.5)));
  CHECK(trainer->assistant_scaler().scale_value() == static_cast<double>(static_cast<float>(huge * 0.5)));
  // The scale backs off until the updates fit, then training goes on with finite weights.
  int64_t overflows = s.overflows;
  di::StepStats last;
  for (int i = 0; i < 60; ++i) {
    last = trainer->step();
    overflows += last.overflows;
  }
  WARN("overflows until the scale fit: " << overflows << "; generator loss scale now " << last.generator_loss_scale);
  CHECK(last.overflows == 0);
  CHECK_FALSE(last.generator_skipped);
  CHECK(last.generator_loss_scale <= huge / 2);  // it backed off (by 2^13 here)
  CHECK_FALSE(identical(g0, trainer->generator_parameters()));
}

TEST_CASE("loss scaling with a finite scale gives the unscaled update (powers of two are exact) and grows after growth_interval",
          "[precision][scaler]") {
  const auto base = di::DiStarTrainerOptions().batch_size(16).seed(4);
  auto plain = tiny::make(4, base);
  auto scaled = tiny::make(4, di::DiStarTrainerOptions(base).loss_scaling(di::LossScaling::kOn).grad_scaler(
                                  di::GradScalerOptions().init_scale(1024).growth_interval(3)));
  for (int i = 0; i < 7; ++i) {
    plain->step();
    scaled->step();
  }
  // Scaling by 2^k and unscaling by 2^-k is exact in float32 unless something under/overflows.
  CHECK(identical(plain->generator_parameters(), scaled->generator_parameters()));
  CHECK(identical(plain->assistant_parameters(), scaled->assistant_parameters()));
  // 7 finite updates each: the scale doubled after updates 3 and 6.
  CHECK(scaled->generator_scaler().scale_value() == 4096);
  CHECK(scaled->generator_scaler().growth_tracker() == 1);
}

TEST_CASE("GradScaler: ATen's kernels and the plain fallback agree (unscale, overflow, back-off, growth)", "[precision][scaler]") {
  std::vector<torch::Device> devices{torch::kCPU};
  if (torch::cuda::is_available()) devices.emplace_back(torch::kCUDA);
  for (const auto& device : devices) {
    if (!di::compat::has_amp_scaler_ops(device)) {
      WARN("no ATen loss-scaling kernels on " << device << " in this LibTorch: the plain path alone is tested there");
      CHECK_THROWS_WITH(di::GradScaler(di::GradScalerOptions(), device, di::ScalerKernels::kAten),
                        Catch::Contains("not available on"));
    }
    std::vector<di::ScalerKernels> kinds{di::ScalerKernels::kPlain};
    if (di::compat::has_amp_scaler_ops(device)) kinds.push_back(di::ScalerKernels::kAten);
    std::vector<std::vector<double>> traces;
    for (auto kind : kinds) {
      di::GradScaler scaler(di::GradScalerOptions().init_scale(8).growth_interval(2), device, kind);
      std::vector<double> trace;
      torch::manual_seed(0);
      for (int step = 0; step < 8; ++step) {
        std::vector<torch::Tensor> grads{torch::randn({5}, torch::TensorOptions().device(device)) * 8, torch::Tensor(),
                                         torch::randn({2, 3}, torch::TensorOptions().device(device)) * 8};
        if (step == 3) grads[2][1][1] = std::numeric_limits<float>::infinity();
        if (step == 5) grads[0][0] = std::numeric_limits<float>::quiet_NaN();
        const bool overflow = scaler.unscale(grads);
        CHECK(overflow == (step == 3 || step == 5));
        trace.push_back(overflow ? -1.0 : grads[0].sum().item<double>() + grads[2].sum().item<double>());
        scaler.update(overflow);
        trace.push_back(scaler.scale_value());
        trace.push_back(static_cast<double>(scaler.growth_tracker()));
      }
      traces.push_back(trace);
    }
    // scale: 8 -> 16 (2 finite) -> 8 (overflow at 3) -> ... ; the same in both implementations
    CHECK(traces[0][3 * 1 + 1] == 16);
    CHECK(traces[0][3 * 3 + 1] == 8);
    if (traces.size() == 2) CHECK(traces[0] == traces[1]);
  }
}

TEST_CASE("the loss scale is checkpointed: save mid-run, load into a fresh trainer, continue bit-identically", "[precision][scaler][checkpoint]") {
  const auto opts = di::DiStarTrainerOptions().batch_size(8).loss_scaling(di::LossScaling::kOn).grad_scaler(
      di::GradScalerOptions().init_scale(std::numeric_limits<float>::max()).growth_interval(4));
  auto a = tiny::make(6, opts);
  a->fit(5);  // a few overflows, then growth steps: the tracker is mid-interval
  const auto path = tmp_path("scaler.ckpt");
  a->save(path);
  const double saved_scale = a->generator_scaler().scale_value();
  auto b = tiny::make(6, opts);  // the same frozen teacher (a checkpoint holds only what trains), fresh state
  b->fit(1);                      // ... and not a's: the load must replace it
  b->load(path);
  CHECK(b->generator_scaler().scale_value() == a->generator_scaler().scale_value());
  CHECK(b->generator_scaler().growth_tracker() == a->generator_scaler().growth_tracker());
  CHECK(b->assistant_scaler().scale_value() == a->assistant_scaler().scale_value());
  a->fit(6);
  b->fit(6);
  CHECK(identical(a->generator_parameters(), b->generator_parameters()));
  CHECK(a->generator_scaler().scale_value() == b->generator_scaler().scale_value());
  // A run without loss scaling refuses the checkpoint's options unless asked to take them.
  auto c = tiny::make(7, di::DiStarTrainerOptions().batch_size(8));
  CHECK_THROWS_WITH(c->load(path), Catch::Contains("options.loss_scaling: checkpoint on, this trainer auto"));
  c->load(path, di::ResumeMode::kUseCheckpointOptions);
  CHECK(c->generator_scaler().enabled());
  CHECK(c->generator_scaler().scale_value() == saved_scale);
  std::filesystem::remove(path);
}

TEST_CASE("frozen models stored in bf16 with store_frozen_in: integer buffers kept, trained weights float32, a bf16 step is finite",
          "[precision][frozen]") {
  struct WithIdsImpl : torch::nn::Module {
    torch::nn::Linear lin{nullptr};
    torch::Tensor ids, scale;
    WithIdsImpl() {
      lin = register_module("lin", torch::nn::Linear(3, 2));
      ids = register_buffer("ids", torch::arange(4));
      scale = register_buffer("scale", torch::ones({2}));
    }
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) { return lin(torch::cat({x, t.unsqueeze(1)}, 1)) * scale; }
  };
  TORCH_MODULE(WithIds);
  using T = di::DiStarTrainer<di::Generator<tiny::Net>, di::Denoiser<WithIds>, di::Denoiser<tiny::Net>, di::NoCondition, di::PseudoHuberScore,
                              di::NoGuidance, di::NoReward, di::CosineVPSchedule>;
  torch::manual_seed(8);
  WithIds teacher;
  tiny::Net gen(2, 2, 16), asst(3, 2, 16);
  di::Denoiser<WithIds> teacher_role(teacher, "teacher");
  di::store_frozen_in(torch::kBFloat16, teacher_role);
  CHECK(teacher->lin->weight.scalar_type() == torch::kBFloat16);
  CHECK(teacher->scale.scalar_type() == torch::kBFloat16);
  CHECK(teacher->ids.scalar_type() == torch::kLong);
  CHECK_FALSE(teacher->is_training());
  CHECK_FALSE(teacher->lin->weight.requires_grad());
  const auto teacher_before = snapshot(teacher->parameters());
  T trainer(di::Generator<tiny::Net>(gen), teacher_role, di::Denoiser<tiny::Net>(asst, "assistant"), {}, {}, {2},
            di::DiStarTrainerOptions().batch_size(8).precision(di::Precision::kBFloat16));
  for (int i = 0; i < 3; ++i) {
    const auto s = trainer.step();
    CHECK(std::isfinite(s.generator_loss));
    CHECK(std::isfinite(s.assistant_loss));
  }
  CHECK(identical(teacher_before, teacher->parameters()));
  for (const auto& p : trainer.generator_parameters()) CHECK(p.scalar_type() == torch::kFloat);
  CHECK_THROWS_WITH(di::cast_floating_point(di::ModuleRef::of(teacher), torch::kLong), Catch::Contains("floating-point dtype"));
}

TEST_CASE("precision errors: fp16 on the CPU, reduced-precision trained weights, float64 under autocast, bad scaler options",
          "[precision][errors]") {
  CHECK_THROWS_WITH(tiny::make(1, di::DiStarTrainerOptions().precision(di::Precision::kFloat16)),
                    Catch::Contains("precision fp16 needs a CUDA device") && Catch::Contains("cpu"));
  CHECK_THROWS_WITH(tiny::make(1, di::DiStarTrainerOptions(), 8, torch::kBFloat16),
                    Catch::Contains("the generator's parameter 'net.0.weight' is BFloat16") && Catch::Contains("master weights"));
  CHECK_THROWS_WITH(tiny::make(1, di::DiStarTrainerOptions().precision(di::Precision::kBFloat16), 8, torch::kFloat64),
                    Catch::Contains("is Double") && Catch::Contains("float32 under mixed precision"));
  CHECK_NOTHROW(tiny::make(1, di::DiStarTrainerOptions(), 8, torch::kFloat64));  // float64 without autocast: as before
  CHECK_THROWS_WITH(tiny::make(1, di::DiStarTrainerOptions().grad_scaler(di::GradScalerOptions().backoff_factor(1.5))),
                    Catch::Contains("backoff_factor"));
  CHECK_THROWS_WITH(tiny::make(1, di::DiStarTrainerOptions().grad_scaler(di::GradScalerOptions().init_scale(0))),
                    Catch::Contains("init_scale"));
  CHECK_THROWS_WITH(di::parse_precision("fp8"), Catch::Contains("fp32, bf16 or fp16") && Catch::Contains("fp8"));
  CHECK(di::parse_precision("bfloat16") == di::Precision::kBFloat16);
}

TEST_CASE("[cuda] bf16 and fp16 autocast on the GPU: float32 loop, ATen scaler kernels, a forced fp16 overflow skips bit-identically",
          "[precision][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  const torch::Device cuda(torch::kCUDA);
  for (auto p : {di::Precision::kBFloat16, di::Precision::kFloat16}) {
    auto trainer = make_trainer(1, di::DiStarTrainerOptions().batch_size(64).alpha_rew(0.3).precision(p), cuda);
    CHECK(trainer->loop_dtype() == torch::kFloat);
    CHECK(trainer->generator_scaler().enabled() == (p == di::Precision::kFloat16));
    if (p == di::Precision::kFloat16) CHECK(trainer->generator_scaler().uses_aten_kernels());
    for (int i = 0; i < 20; ++i) {
      const auto s = trainer->step();
      CHECK(std::isfinite(s.generator_loss));
    }
    CHECK(trainer->generator().model()->last_hidden == di::compute_dtype(p));
    CHECK(*trainer->teacher().model().t_dtype == torch::kFloat);
    CHECK(trainer->non_finite_total() == 0);
  }
  auto forced = make_trainer(2, di::DiStarTrainerOptions().batch_size(64).precision(di::Precision::kFloat16).grad_scaler(
                                   di::GradScalerOptions().init_scale(std::numeric_limits<float>::max())), cuda);
  const auto g0 = snapshot(forced->generator_parameters());
  const auto s = forced->step();
  CHECK(s.overflows == 2);
  CHECK(identical(g0, forced->generator_parameters()));
  CHECK(forced->generator_scaler().scale_value() == static_cast<double>(static_cast<float>(std::numeric_limits<float>::max() * 0.5)));
}
