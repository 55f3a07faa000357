// Forward + backward of a UNet2DConditionModel (diffusers-compatible, models/) on random inputs; the
// C++ half of scripts/bench_unet.sh, which runs diffusers' twin on the same LibTorch beside it.
//   bench_unet CONFIG.json BATCH SIZE SEQ THREADS ITERS  ->  prints "median_ms <value>"
#include <diffinstruct/models/unet2d_condition.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace dm = diffinstruct::models;

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: bench_unet CONFIG.json BATCH SIZE SEQ THREADS ITERS\n");
    return 2;
  }
  const int64_t batch = std::atoll(argv[2]), size = std::atoll(argv[3]), seq = std::atoll(argv[4]);
  const int threads = std::atoi(argv[5]), iters = std::atoi(argv[6]);
  torch::set_num_threads(threads);
  torch::manual_seed(0);
  dm::UNet2DConditionModel unet(dm::UNet2DConditionConfig::from_file(argv[1]));
  unet->train();
  const auto& c = unet->config();
  const auto x = torch::randn({batch, c.in_channels, size, size});
  const auto t = torch::randint(0, 1000, {batch}, torch::kLong);
  const dm::TextCondition cond(torch::randn({batch, seq, c.cross_attention_dim}));
  std::vector<double> ms;
  for (int i = 0; i < iters + 3; ++i) {
    for (auto& p : unet->parameters()) p.mutable_grad() = torch::Tensor();
    const auto t0 = std::chrono::steady_clock::now();
    unet->forward(x, t, cond).square().mean().backward();
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 3) ms.push_back(dt);  // 3 warm-up iterations
  }
  std::sort(ms.begin(), ms.end());
  std::printf("median_ms %.3f\n", ms[ms.size() / 2]);
  return 0;
}
