// The pre-step weight check (kernels/cpu/adam_check_cpu.hpp, trainer/optimizers.hpp): the fused CPU
// check computes the tensor-op reference's next weights and verdicts (NaN/inf in every lane and the
// tail, overflow from finite inputs), and step_keeps_finite gives the optimizer's verdict on both paths.
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/kernels/cpu/adam_check_cpu.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

namespace di = diffinstruct;

namespace {
// One parameter's inputs to the fused and the tensor-op weight check (kernels/cpu/adam_check_cpu.hpp).
struct AdamCase {
  torch::Tensor p, g, m, v, v_max;
  di::kernels::cpu::AdamStepScalars s;
  torch::Tensor reference() const { return di::detail::adam_next_weights(p, g, m, v, v_max, s); }
  bool fused(const torch::Tensor& out = {}) const { return di::kernels::cpu::adam_step_keeps_finite(p, g, m, v, v_max, s, out); }
};
}  // namespace

TEST_CASE("#14 the fused CPU weight check computes the tensor-op reference's weights and verdicts", "[trainer][hardening][weights]") {
  torch::manual_seed(5);
  // Sizes: below one SSE2 vector, a tail after whole vectors, and more than one parallel chunk (2^15).
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    for (const int64_t n : {int64_t{3}, int64_t{37}, int64_t{70001}}) {
      for (const bool first : {true, false}) {
        for (const bool amsgrad : {false, true}) {
          for (const bool decoupled : {false, true}) {
            const auto o = torch::TensorOptions().dtype(dtype);
            AdamCase c;
            // The weight, its gradient and the first moment share each element's sign, so that neither
            // g + wd·p nor β1·m + (1−β1)·g cancels: a cancellation would amplify a one-ulp difference
            // of a contracted multiply-add without bound, and the comparison below would test the
            // inputs' conditioning instead of the formula. The verdicts are checked on these too.
            c.g = torch::randn({n}, o) * 3;
            c.p = torch::randn({n}, o).abs() * c.g.sign();
            if (!first) {
              c.m = torch::randn({n}, o).abs() * 0.1 * c.g.sign();
              c.v = torch::rand({n}, o) * 0.1;
              if (amsgrad) c.v_max = torch::rand({n}, o) * 0.2;
            }
            c.s.lr = 0.05;
            c.s.weight_decay = 0.1;
            c.s.decoupled = decoupled;
            c.s.amsgrad = amsgrad;
            c.s.step = first ? 1 : 7;
            INFO("dtype " << dtype << " n " << n << " first " << first << " amsgrad " << amsgrad << " decoupled " << decoupled);
            const auto out = torch::empty_like(c.p);
            REQUIRE(c.fused(out));
            const auto ref = c.reference();
            // The same formula; ATen may fuse a multiply-add that the kernel rounds twice. The last
            // operation is p - step, so both round at the scale of |p| + |step|, not of the result
            // (which can cancel to near zero): the tolerance is a few ulps of that scale.
            const double ulp = dtype == torch::kFloat ? 0x1p-23 : 0x1p-52;
            const auto scale = c.p.abs() + (c.p - ref).abs();
            CHECK(((out - ref).abs() <= 8 * ulp * scale).all().item<bool>());
            CHECK_FALSE(torch::equal(out, c.p));  // the step moved the weights: the check is not vacuous
            // One bad element anywhere (a vector lane, the tail) turns the verdict, as in the reference.
            for (const int64_t at : {int64_t{0}, n / 2, n - 1}) {
              for (const double bad : {double(NAN), double(INFINITY)}) {
                AdamCase d = c;
                d.g = c.g.clone();
                d.g[at] = bad;
                CHECK_FALSE(d.fused());
                CHECK_FALSE(torch::isfinite(d.reference()).all().item<bool>());
                d.g = c.g;
                d.p = c.p.clone();
                d.p[at] = bad;
                CHECK_FALSE(d.fused());
                if (!first && amsgrad) {
                  d.p = c.p;
                  d.v_max = c.v_max.clone();
                  d.v_max[at] = NAN;  // torch::max keeps the NaN
                  CHECK_FALSE(d.fused());
                  CHECK_FALSE(torch::isfinite(d.reference()).all().item<bool>());
                }
              }
            }
          }
        }
      }
    }
  }
  // Overflow from finite inputs: weights at 3.39e38 and a step of ±1e37 (float32's largest is 3.40e38).
  AdamCase edge;
  edge.p = torch::full({6}, 3.39e38f);
  edge.g = -torch::ones({6});
  edge.s.lr = 1e37;
  CHECK_FALSE(edge.fused());
  CHECK_FALSE(torch::isfinite(edge.reference()).all().item<bool>());
  edge.g = torch::ones({6});  // the step moves the weights down: finite
  CHECK(edge.fused());
  CHECK(torch::isfinite(edge.reference()).all().item<bool>());
  // What the fused check cannot read goes to the tensor-op check (step_keeps_finite does).
  const auto w = torch::randn({4, 5});
  CHECK(di::kernels::cpu::adam_check_supported(w, torch::randn({4, 5}), {}, {}, {}));
  CHECK_FALSE(di::kernels::cpu::adam_check_supported(w.t(), torch::randn({5, 4}), {}, {}, {}));
  CHECK_FALSE(di::kernels::cpu::adam_check_supported(w.to(torch::kBFloat16), torch::randn({4, 5}).to(torch::kBFloat16), {}, {}, {}));
  CHECK_FALSE(di::kernels::cpu::adam_check_supported(w, torch::randn({4, 5}).to(torch::kDouble), {}, {}, {}));
}

TEST_CASE("#14 step_keeps_finite: the fused and the tensor-op paths give the optimizer's verdict", "[trainer][hardening][weights]") {
  torch::manual_seed(6);
  std::vector<torch::Device> devices{torch::kCPU};
  if (torch::cuda::is_available()) devices.emplace_back(torch::kCUDA);  // the tensor-op path; [cuda] runs it on a GPU
  for (const auto& device : devices) {
    for (const bool contiguous : {true, false}) {
      auto base = torch::randn({6, 9}, torch::TensorOptions().device(device));
      auto p = (contiguous ? base : base.t()).detach().requires_grad_(true);  // a transposed weight takes the tensor-op path
      torch::optim::Adam opt({p}, torch::optim::AdamOptions(0.1));
      for (int step = 0; step < 3; ++step) {
        p.mutable_grad() = torch::randn(p.sizes(), p.options());
        INFO("device " << device << " contiguous " << contiguous << " step " << step);
        CHECK(di::detail::step_keeps_finite(opt, di::detail::OptimizerKind::kAdam));
        opt.step();
      }
      auto bad = torch::randn(p.sizes(), p.options());
      bad[2][3] = NAN;
      p.mutable_grad() = bad;
      CHECK_FALSE(di::detail::step_keeps_finite(opt, di::detail::OptimizerKind::kAdam));
    }
  }
}
