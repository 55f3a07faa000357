// The CUDA extension (diffinstruct::cuda): its dispatcher ops, and the fused CUDA kernels against the
// reference twin. The op tests run wherever the extension is linked (the LibTorch 2.x build, CPU
// only is enough: the ops carry the CPU kernels too); the [cuda] tests need a GPU and skip without one.
// Tolerances: float32 against the float64 reference 1e-4 relative + 1e-5 absolute (float
// accumulation over up to 65 536 features); half/bfloat16 3e-2 (input rounding dominates).
#include "../test_skip.hpp"
#include <diffinstruct/di_star.hpp>

#include <catch2/catch.hpp>

#ifdef DIFFINSTRUCT_WITH_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace di = diffinstruct;

namespace {

struct Inputs {
  torch::Tensor a, b, e, sigma, w;
};

Inputs make(std::vector<int64_t> shape, uint64_t seed, bool scalar_sw = false) {
  torch::manual_seed(seed);
  const auto o = torch::TensorOptions().dtype(torch::kFloat64);
  Inputs in;
  in.e = torch::randn(shape, o);
  in.a = in.e + 0.3 * torch::randn(shape, o);
  in.b = in.e + 0.5 * torch::randn(shape, o);
  in.sigma = scalar_sw ? torch::tensor(0.7, o) : torch::rand({shape[0]}, o) * 0.9 + 0.05;
  in.w = scalar_sw ? torch::tensor(1.3, o) : torch::rand({shape[0]}, o) + 0.2;
  return in;
}

Inputs to(const Inputs& in, torch::Device device, torch::Dtype dtype) {
  auto leaf = [&](const torch::Tensor& t) { return t.to(device, dtype).detach().requires_grad_(true); };
  return {leaf(in.a), leaf(in.b), in.e.to(device, dtype), in.sigma.to(device, dtype), in.w.to(device, dtype)};
}

struct Result {
  torch::Tensor loss, ga, gb;
};

Result run(const Inputs& in, di::ScoreDistanceKind kind, double param, di::KernelBackend backend) {
  const auto loss = di::score_loss(kind, in.a, in.b, in.e, in.sigma, in.w, param, backend);
  const auto upstream = torch::linspace(0.5, 1.5, loss.size(0), loss.options());
  const auto grads = torch::autograd::grad({loss}, {in.a, in.b}, {upstream});
  auto cpu64 = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); };
  return {cpu64(loss), cpu64(grads[0]), cpu64(grads[1])};
}

void require_close(const Result& f, const Result& r, double rtol, double atol) {
  CHECK(torch::allclose(f.loss, r.loss, rtol, atol));
  CHECK(torch::allclose(f.ga, r.ga, rtol, atol));
  CHECK(torch::allclose(f.gb, r.gb, rtol, atol));
}

}  // namespace

TEST_CASE("the fused ops are registered with the dispatcher exactly when diffinstruct::cuda is linked", "[kernels][cuda-extension]") {
#ifdef DIFFINSTRUCT_WITH_CUDA_KERNELS
  CHECK(di::detail::fused_op_registered(c10::DeviceType::CUDA));
  CHECK(di::detail::fused_op_registered(c10::DeviceType::CPU));
  // Through the dispatcher, CPU tensors reach the CPU kernel: same values and gradients as the header.
  const auto in = make({3, 4, 9}, 11);
  for (int64_t d : {0, 1}) {
    const auto [loss, stats] = di::detail::score_loss_forward_op(in.a, in.b, in.e, in.sigma, in.w, 0.8, d);
    const auto [ref_loss, ref_stats] =
        di::kernels::cpu::score_loss_forward(static_cast<di::kernels::cpu::Distance>(d), in.a, in.b, in.e, in.sigma, in.w, 0.8);
    CHECK(torch::equal(loss, ref_loss));
    CHECK(torch::equal(stats, ref_stats));
    const auto g = torch::linspace(0.5, 1.5, 3, torch::kFloat64);
    const auto [ga, gb] = di::detail::score_loss_backward_op(g, in.a, in.b, in.e, in.sigma, in.w, stats, 0.8, d);
    const auto [rga, rgb] = di::kernels::cpu::score_loss_backward(static_cast<di::kernels::cpu::Distance>(d), g, in.a, in.b, in.e,
                                                                  in.sigma, in.w, ref_stats, 0.8);
    CHECK(torch::equal(ga, rga));
    CHECK(torch::equal(gb, rgb));
  }
  // A bad distance code is refused by name.
  CHECK_THROWS_WITH(di::detail::score_loss_forward_op(in.a, in.b, in.e, in.sigma, in.w, 0.8, 7),
                    Catch::Contains("distance must be 0 (pseudo-Huber) or 1 (squared L2), got 7"));
#else
  CHECK_FALSE(di::detail::fused_op_registered(c10::DeviceType::CUDA));
#endif
}

TEST_CASE("[cuda] fused CUDA equals the reference: values and both gradients, shapes, c, distances, dtypes", "[kernels][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  const torch::Device gpu(torch::kCUDA);
#ifndef DIFFINSTRUCT_WITH_CUDA_KERNELS
  // Without the extension, kAuto falls back to the reference and kFused says why.
  const auto in = to(make({2, 3, 5}, 12), gpu, torch::kFloat32);
  CHECK_THROWS_WITH(run(in, di::ScoreDistanceKind::kPseudoHuber, 1.0, di::KernelBackend::kFused),
                    Catch::Contains("not linked with diffinstruct::cuda"));
  require_close(run(in, di::ScoreDistanceKind::kPseudoHuber, 1.0, di::KernelBackend::kAuto),
                run(to(make({2, 3, 5}, 12), torch::kCPU, torch::kFloat64), di::ScoreDistanceKind::kPseudoHuber, 1.0,
                    di::KernelBackend::kReference), 1e-4, 1e-5);
#else
  const std::vector<std::vector<int64_t>> shapes{{1, 1}, {1, 7}, {3, 5, 3}, {2, 4, 9, 11}, {5, 1, 28, 28}, {1, 4, 128, 128}, {4, 4, 128, 128}};
  for (const auto& shape : shapes) {
    for (bool scalar_sw : {false, true}) {
      const auto host = make(shape, 13, scalar_sw);
      const auto ref64 = to(host, torch::kCPU, torch::kFloat64);
      for (double c : {1e-4, 0.3, 1.0, 100.0}) {
        INFO("shape " << c10::IntArrayRef(shape) << ", c " << c << ", scalar sigma/w " << scalar_sw);
        require_close(run(to(host, gpu, torch::kFloat32), di::ScoreDistanceKind::kPseudoHuber, c, di::KernelBackend::kFused),
                      run(ref64, di::ScoreDistanceKind::kPseudoHuber, c, di::KernelBackend::kReference), 1e-4, 1e-5);
      }
      for (double sid : {1.0, 1.2}) {
        require_close(run(to(host, gpu, torch::kFloat32), di::ScoreDistanceKind::kSquaredL2, sid, di::KernelBackend::kFused),
                      run(ref64, di::ScoreDistanceKind::kSquaredL2, sid, di::KernelBackend::kReference), 1e-4, 1e-5);
      }
      for (auto dtype : {torch::kHalf, torch::kBFloat16}) {
        INFO("dtype " << dtype);
        const auto rounded = to(to(host, torch::kCPU, dtype), torch::kCPU, torch::kFloat64);  // same rounded inputs
        const auto f = run(to(host, gpu, dtype), di::ScoreDistanceKind::kPseudoHuber, 1.0, di::KernelBackend::kFused);
        require_close(f, run(rounded, di::ScoreDistanceKind::kPseudoHuber, 1.0, di::KernelBackend::kReference), 3e-2, 3e-2);
      }
    }
  }
#endif
}

#ifdef DIFFINSTRUCT_WITH_CUDA_KERNELS
TEST_CASE("[cuda] fused CUDA: non-contiguous inputs, kAuto picks it, and double falls back", "[kernels][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  const torch::Device gpu(torch::kCUDA);
  const auto host = make({3, 6, 10}, 14);
  const auto ref = run(to(host, torch::kCPU, torch::kFloat64), di::ScoreDistanceKind::kPseudoHuber, 0.5, di::KernelBackend::kReference);
  // Transposed views of the same values.
  auto t = [&](const torch::Tensor& x) { return x.transpose(1, 2).contiguous().transpose(1, 2).to(gpu, torch::kFloat32); };
  Inputs nc{t(host.a).detach().requires_grad_(true), t(host.b).detach().requires_grad_(true), t(host.e), host.sigma.to(gpu, torch::kFloat32),
            host.w.to(gpu, torch::kFloat32)};
  REQUIRE_FALSE(nc.a.is_contiguous());
  require_close(run(nc, di::ScoreDistanceKind::kPseudoHuber, 0.5, di::KernelBackend::kFused), ref, 1e-4, 1e-5);
  // kAuto on float32 GPU tensors is the fused kernel (its node is the custom function, not ATen's).
  const auto f32 = to(host, gpu, torch::kFloat32);
  const auto auto_loss = di::score_loss(di::ScoreDistanceKind::kPseudoHuber, f32.a, f32.b, f32.e, f32.sigma, f32.w, 0.5);
  CHECK(std::string(auto_loss.grad_fn()->name()).find("FusedScoreLoss") != std::string::npos);
  // float64 has no CUDA kernel: kAuto takes the reference, kFused says why.
  const auto f64 = to(host, gpu, torch::kFloat64);
  require_close(run(f64, di::ScoreDistanceKind::kPseudoHuber, 0.5, di::KernelBackend::kAuto), ref, 1e-10, 1e-12);
  CHECK_THROWS_WITH(run(f64, di::ScoreDistanceKind::kPseudoHuber, 0.5, di::KernelBackend::kFused), Catch::Contains("dtype Double on CUDA"));
}

TEST_CASE("[cuda] fused CUDA runs on the current stream and on the inputs' device", "[kernels][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  const auto host = make({4, 4, 64, 64}, 15);
  const auto ref = run(to(host, torch::kCPU, torch::kFloat64), di::ScoreDistanceKind::kPseudoHuber, 1.0, di::KernelBackend::kReference);
  {
    // A side stream: the kernels must queue behind the copies made on it.
    const auto side = c10::cuda::getStreamFromPool();
    const c10::cuda::CUDAStreamGuard stream_guard(side);
    const auto f = run(to(host, torch::kCUDA, torch::kFloat32), di::ScoreDistanceKind::kPseudoHuber, 1.0, di::KernelBackend::kFused);
    side.synchronize();
    require_close(f, ref, 1e-4, 1e-5);
  }
  if (torch::cuda::device_count() > 1) {
    // Inputs on device 1 while device 0 is current: the device guard must switch.
    const c10::cuda::CUDAGuard device_guard(0);
    const auto f = run(to(host, torch::Device(torch::kCUDA, 1), torch::kFloat32), di::ScoreDistanceKind::kPseudoHuber, 1.0,
                       di::KernelBackend::kFused);
    require_close(f, ref, 1e-4, 1e-5);
  } else {
    WARN("one CUDA device: the multi-device guard check skipped");
  }
}
#endif
