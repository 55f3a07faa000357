// bench_score_loss — forward + backward of the score-divergence surrogate, fused kernel versus the
// reference ATen composition, side by side in one run, at the sizes that matter: a 2-D toy, a 28×28
// image, an SDXL latent (4×128×128); next to this machine's copy bandwidth measured in the same
// binary.
//
// bytes/s is the *effective* bandwidth: the minimum traffic of a one-pass implementation divided by
// the time — forward reads a, b, e; backward reads a, b, e and writes ∂L/∂a, ∂L/∂b: 8 tensors of the
// input's size. A copy moves 2 (read + write). At the end a table gives, per size, the fused/reference
// speed-up and the fused kernel's effective bandwidth as a fraction of the copy bandwidth. On a shared
// machine run with --benchmark_repetitions=5 --benchmark_report_aggregates_only=true: the table then
// uses the medians.
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/util/threads.hpp>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <filesystem>
#include <cstdlib>
#include <map>
#include <thread>

namespace di = diffinstruct;

namespace {

// On CUDA every iteration ends with a device synchronisation, so wall time covers the kernels.
void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

void score_loss_fwd_bwd(benchmark::State& state, std::vector<int64_t> sample_shape, di::ScoreDistanceKind kind, di::KernelBackend backend,
                        torch::Device device) {
  const int64_t batch = state.range(0);
  std::vector<int64_t> shape{batch};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  torch::manual_seed(0);
  const auto e = torch::randn(shape).to(device);
  const auto a = (e + 0.1 * torch::randn(shape).to(device)).requires_grad_(true);
  const auto b = (e + 0.2 * torch::randn(shape).to(device)).requires_grad_(true);
  const auto sigma = (torch::rand({batch}) * 0.9 + 0.05).to(device);
  const auto w = sigma * sigma;
  sync(device);
  for (auto _ : state) {
    const auto loss = di::score_loss(kind, a, b, e, sigma, w, 1.0, backend).sum();
    const auto grads = torch::autograd::grad({loss}, {a, b});
    benchmark::DoNotOptimize(grads[0].data_ptr());
    sync(device);
  }
  const double bytes = 8.0 * static_cast<double>(e.numel()) * static_cast<double>(e.element_size());
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  state.counters["MB_per_call"] = bytes / 1e6;
}

void copy_bandwidth(benchmark::State& state, torch::Device device) {
  const auto src = torch::randn({state.range(0)}).to(device);
  auto dst = torch::empty_like(src);
  sync(device);
  for (auto _ : state) {
    dst.copy_(src);
    benchmark::DoNotOptimize(dst.data_ptr());
    sync(device);
  }
  state.SetBytesProcessed(2 * src.numel() * src.element_size() * state.iterations());
}

// Prints the usual console output, then the side-by-side table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      const auto name = r.benchmark_name();
      seconds_[name] = r.GetAdjustedRealTime() * 1e-9 * unit_scale(r.time_unit);  // per iteration
      const auto it = r.counters.find("bytes_per_second");
      if (it != r.counters.end()) bandwidth_[name] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    double copy = 0, copy_cuda = 0;
    for (const auto& [name, bw] : bandwidth_) {
      if (name.find("_mean") != std::string::npos || name.find("_stddev") != std::string::npos || name.find("_cv") != std::string::npos)
        continue;
      if (name.rfind("copy_bandwidth", 0) == 0) copy = bw;
      if (name.rfind("cuda_copy_bandwidth", 0) == 0) copy_cuda = bw;
    }
    fmt::print("\n{:<34} {:>12} {:>12} {:>9} {:>12} {:>9}\n", "size / batch", "reference", "fused", "speed-up", "fused GB/s", "of copy");
    for (const auto& [name, t_ref] : seconds_) {
      const auto pos = name.find("/reference/");
      if (pos == std::string::npos) continue;
      auto ends_with = [&](const char* suffix) {
        const std::string sfx(suffix);
        return name.size() >= sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0;
      };
      if (ends_with("_mean") || ends_with("_stddev") || ends_with("_cv")) continue;  // with repetitions: medians only
      const std::string fused = name.substr(0, pos) + "/fused/" + name.substr(pos + 11);
      if (!seconds_.count(fused)) continue;
      const double bw = bandwidth_[fused];
      const double base = name.rfind("cuda_", 0) == 0 ? copy_cuda : copy;  // each device against its own copy
      fmt::print("{:<34} {:>10.3f}ms {:>10.3f}ms {:>8.2f}x {:>12.2f} {:>8.0f}%\n", name.substr(0, pos) + "/" + name.substr(pos + 11), 1e3 * t_ref,
                 1e3 * seconds_[fused], t_ref / seconds_[fused], bw / 1e9, base > 0 ? 100 * bw / base : 0.0);
    }
    fmt::print("copy bandwidth: {:.2f} GB/s (64 MB float32 tensor, read + write)\n", copy / 1e9);
    if (copy_cuda > 0) fmt::print("CUDA device copy bandwidth: {:.2f} GB/s (256 MB float32 tensor, read + write)\n", copy_cuda / 1e9);
  }

 private:
  static double unit_scale(benchmark::TimeUnit u) {
    switch (u) {
      case benchmark::kNanosecond: return 1;
      case benchmark::kMicrosecond: return 1e3;
      case benchmark::kMillisecond: return 1e6;
      default: return 1e9;
    }
  }
  std::map<std::string, double> seconds_, bandwidth_;
};

struct Size {
  const char* name;
  std::vector<int64_t> shape;
  std::vector<int64_t> batches;
};

// Reference and fused rows of every size on one device; names carry `prefix` ("" or "cuda_").
void register_sizes(const std::string& prefix, const std::vector<Size>& sizes, torch::Device device) {
  for (const auto& size : sizes) {
    for (auto backend : {di::KernelBackend::kReference, di::KernelBackend::kFused}) {
      const std::string name =
          fmt::format("{}pseudo_huber_{}/{}", prefix, size.name, backend == di::KernelBackend::kFused ? "fused" : "reference");
      auto* b = benchmark::RegisterBenchmark(name.c_str(), score_loss_fwd_bwd, size.shape, di::ScoreDistanceKind::kPseudoHuber, backend, device);
      for (auto batch : size.batches) b->Arg(batch);
      b->Unit(benchmark::kMillisecond);
      if (device.is_cuda()) b->UseRealTime();
    }
  }
}

void register_all() {
  register_sizes("", {{"toy_2d", {2}, {256, 4096}}, {"image_1x28x28", {1, 28, 28}, {64, 256}}, {"sdxl_4x128x128", {4, 128, 128}, {1, 4, 16, 64}}},
                 torch::Device(torch::kCPU));
  benchmark::RegisterBenchmark("copy_bandwidth", copy_bandwidth, torch::Device(torch::kCPU))->Arg(int64_t{1} << 24)->Unit(benchmark::kMillisecond);
  // On a GPU (fused only where the program links diffinstruct::cuda; kAuto would fall back otherwise).
  if (!torch::cuda::is_available() || !di::detail::fused_op_registered(c10::DeviceType::CUDA)) return;
  register_sizes("cuda_", {{"image_1x28x28", {1, 28, 28}, {256, 4096}}, {"sdxl_4x128x128", {4, 128, 128}, {1, 4, 16, 64}}},
                 torch::Device(torch::kCUDA));
  benchmark::RegisterBenchmark("cuda_copy_bandwidth", copy_bandwidth, torch::Device(torch::kCUDA))
      ->Arg(int64_t{1} << 26)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  di::use_threads();  // every core unless OMP_NUM_THREADS says otherwise
  std::error_code ec;
  const auto blas = std::filesystem::canonical("/usr/lib/x86_64-linux-gnu/libblas.so.3", ec);
  benchmark::AddCustomContext("blas", ec ? "unknown" : blas.string());
  benchmark::AddCustomContext("torch_threads", std::to_string(at::get_num_threads()));
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
