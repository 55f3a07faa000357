// bench_score_loss — forward + backward of the score-divergence surrogate (reference path) at the
// sizes that matter: a 2-D toy, a 28×28 image, an SDXL latent (4×128×128), next to this machine's
// copy bandwidth measured in the same binary.
//
// bytes/s counts the minimum traffic of a one-pass implementation: forward reads a, b, e; backward
// reads a, b, e and writes ∂L/∂a, ∂L/∂b — 8 tensors of the input's size. The copy benchmark moves 2
// (read + write). Their ratio is the fraction of memory bandwidth the loss achieves.
#include <diffinstruct/di_star.hpp>

#include <benchmark/benchmark.h>

#include <filesystem>

namespace di = diffinstruct;

namespace {

void score_loss_fwd_bwd(benchmark::State& state, std::vector<int64_t> sample_shape, di::ScoreDistanceKind kind) {
  torch::NoGradGuard no_grad_outside;  // graph only where we ask for it
  const int64_t batch = state.range(0);
  std::vector<int64_t> shape{batch};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  torch::manual_seed(0);
  const auto e = torch::randn(shape);
  const auto a = (e + 0.1 * torch::randn(shape)).requires_grad_(true);
  const auto b = (e + 0.2 * torch::randn(shape)).requires_grad_(true);
  const auto sigma = torch::rand({batch}) * 0.9 + 0.05;
  const auto w = sigma * sigma;
  for (auto _ : state) {
    torch::AutoGradMode grad(true);
    const auto loss = di::score_loss(kind, a, b, e, sigma, w, 1.0, di::KernelBackend::kReference).mean();
    const auto grads = torch::autograd::grad({loss}, {a, b});
    benchmark::DoNotOptimize(grads[0].data_ptr());
  }
  const double bytes = 8.0 * static_cast<double>(e.numel()) * e.element_size();
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  state.counters["MB_per_call"] = bytes / 1e6;
}

void copy_bandwidth(benchmark::State& state) {
  const auto src = torch::randn({state.range(0)});
  auto dst = torch::empty_like(src);
  for (auto _ : state) {
    dst.copy_(src);
    benchmark::DoNotOptimize(dst.data_ptr());
  }
  state.SetBytesProcessed(2 * src.numel() * src.element_size() * state.iterations());
}

}  // namespace

BENCHMARK_CAPTURE(score_loss_fwd_bwd, huber_toy_2d, std::vector<int64_t>{2}, di::ScoreDistanceKind::kPseudoHuber)
    ->Arg(256)->Arg(4096)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(score_loss_fwd_bwd, huber_image_1x28x28, std::vector<int64_t>{1, 28, 28}, di::ScoreDistanceKind::kPseudoHuber)
    ->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(score_loss_fwd_bwd, huber_sdxl_4x128x128, std::vector<int64_t>{4, 128, 128}, di::ScoreDistanceKind::kPseudoHuber)
    ->Arg(1)->Arg(4)->Arg(16)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(score_loss_fwd_bwd, l2_sdxl_4x128x128, std::vector<int64_t>{4, 128, 128}, di::ScoreDistanceKind::kSquaredL2)
    ->Arg(4)->Unit(benchmark::kMillisecond);
BENCHMARK(copy_bandwidth)->Arg(int64_t{1} << 24)->Unit(benchmark::kMillisecond);  // 64 MB float32

int main(int argc, char** argv) {
  std::error_code ec;
  const auto blas = std::filesystem::canonical("/usr/lib/x86_64-linux-gnu/libblas.so.3", ec);
  benchmark::AddCustomContext("blas", ec ? "unknown" : blas.string());
  benchmark::AddCustomContext("torch_threads", std::to_string(torch::get_num_threads()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
