// bench_memory — the memory of one DI* iteration on diffusers-compatible UNets with cross-attention,
// measured exactly on the CPU (counting allocator), for the configurations that trade compute or
// precision for memory:
//   fp32             float32 everywhere
//   bf16             bf16 autocast, float32 master weights, the frozen teacher stored in bf16
//   checkpoint       every UNet block checkpointed (set_gradient_checkpointing): each block's forward
//                    runs twice. The trainer's whole-forward options on top of it would run each
//                    forward a third time for little more saving (docs/memory.md), so they are off.
//   bf16+checkpoint  both
//   lora             one base for teacher and assistant (adapters/shared_base.hpp): the assistant is
//                    the teacher's UNet plus a LoRA, the teacher's pass the base with it disabled; the
//                    generator a LoRA on its own copy of the UNet. Adapters of rank --lora-rank (16)
//                    on the attention projections (to_q, to_k, to_v, to_out.0), alpha = rank.
//   all              bf16 + checkpoint + lora, the two frozen bases stored in bf16
//   one-base         three roles on one base (adapters/shared_base.hpp): teacher, LoRA assistant and
//                    LoRA generator are one module with two named adapters, each pass switching the
//                    others' off; float32, no checkpointing
//   all-one-base     bf16 + checkpoint + one-base, the one frozen base stored in bf16
// The UNets have SD 1.5's shape scaled by width w: block_out_channels [w, 2w, 4w, 4w], 2 layers per
// block, cross-attention in the first three levels, 8 heads, cross_attention_dim 768; w = 320 is
// SD 1.5's UNet itself (859.5M parameters). Teacher, assistant (a copy of the teacher) and a one-step
// generator (the teacher's UNet at t = 999) train with CFG inside (scale 4.5), pseudo-Huber, no reward.
//
//   bench_memory [--widths 32,64,96] [--sizes 16,32] [--batch 1] [--seq 77] [--configs LIST] [--steps 2]
//                [--threads N] [--lora-rank 16] [--keep-gradients] [--json FILE]
// --keep-gradients keeps each network's gradients after its update (release_gradients(false)), to
// measure what releasing them saves.
//
// For each run it reports the parameters of one UNet, peak_bytes: the most bytes live at once over the
// whole run (the three UNets, gradients, Adam's moments, the step's activations: everything allocated
// after the run starts), step_peak_bytes: the peak of the last step alone above what was live at its
// start, and the median time of the steps after the first. --json writes them as a list of objects {"config", "params",
// "peak_bytes", "step_peak_bytes", "step_ms", ...}; scripts/fit_memory.py fits docs/memory.md's model.
#include <diffinstruct/adapters/lora.hpp>
#include <diffinstruct/adapters/shared_base.hpp>
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/memory/counting_allocator.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace di = diffinstruct;
namespace dm = diffinstruct::models;

namespace {

struct OneStepImpl : torch::nn::Module {
  dm::UNet2DConditionModel unet;
  double alpha, sigma;
  OneStepImpl(dm::UNet2DConditionModel u, double a, double s) : unet(register_module("unet", std::move(u))), alpha(a), sigma(s) {}
  torch::Tensor forward(const torch::Tensor& z, const dm::TextCondition& c) {
    return (z - sigma * unet->forward(z, torch::full({z.size(0)}, 999, torch::kLong), c)) / alpha;
  }
};
TORCH_MODULE(OneStep);

dm::UNet2DConditionConfig sd15_shaped(int64_t w) {
  dm::UNet2DConditionConfig c;
  c.block_out_channels = {w, 2 * w, 4 * w, 4 * w};
  c.cross_attention_dim = 768;
  c.attention_head_dim = {8, 8, 8, 8};
  c.sample_size = 64;
  c.validate("bench_memory's config");
  return c;
}

struct Result {
  std::string config;
  int64_t width = 0, size = 0, batch = 0, params = 0;
  int64_t run_peak_bytes = 0, step_peak_bytes = 0;
  double step_ms = 0;
};

int64_t g_lora_rank = 16;
bool g_keep_gradients = false;  // --keep-gradients: release_gradients(false), the trainer's behaviour before it existed

using Denoiser = di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>;
using SharedTeacher = di::Denoiser<di::adapters::SharedBaseTeacher<dm::UNet2DConditionModel>, di::EpsPrediction>;

// Trains `steps` DI* steps and records the step peak and the median step time (after the first).
template <class Generator, class Teacher, class Assistant>
void train(Result& r, Generator generator, Teacher teacher, Assistant assistant, bool bf16, int64_t size, int64_t batch, int64_t seq, int steps) {
  di::DiscreteVPSchedule schedule;
  di::ConditionSource<dm::TextCondition> prompts{
      [seq](int64_t b, at::Generator& g) { return dm::TextCondition(at::randn({b, seq, 768}, g, torch::TensorOptions())); },
      dm::TextCondition(torch::zeros({1, seq, 768}))};
  di::DiStarTrainer<Generator, Teacher, Assistant, dm::TextCondition, di::PseudoHuberScore, di::CfgInside, di::NoReward, di::DiscreteVPSchedule>
      trainer(std::move(generator), std::move(teacher), std::move(assistant),
              {di::PseudoHuberScore(1.0), di::CfgInside(di::GuidanceScale(4.5)), di::NoReward{}, schedule}, prompts, {4, size, size},
              di::DiStarTrainerOptions()
                  .batch_size(batch)
                  .ema_decay(0)
                  .precision(bf16 ? di::Precision::kBFloat16 : di::Precision::kFloat32)
                  .measure_memory(true)
                  .release_gradients(!g_keep_gradients));
  std::vector<double> ms;
  for (int i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto s = trainer.step();
    // The first step also allocates Adam's moments: time the others (when there are any).
    if (i > 0 || steps == 1) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    r.step_peak_bytes = s.peak_bytes;
    if (!std::isfinite(s.generator_loss)) std::fprintf(stderr, "bench_memory: non-finite loss in %s w=%lld\n", r.config.c_str(), (long long)r.width);
  }
  std::sort(ms.begin(), ms.end());
  r.step_ms = ms[ms.size() / 2];
}

Result run(const std::string& config, int64_t width, int64_t size, int64_t batch, int64_t seq, int steps) {
  const bool one_base = config.find("one-base") != std::string::npos;
  const bool all = config == "all" || config == "all-one-base";
  const bool bf16 = all || config.find("bf16") != std::string::npos;
  const bool ckpt = all || config.find("checkpoint") != std::string::npos;
  const bool lora = all || config == "lora" || one_base;
  static auto& counter = *new di::CountingCpuAllocator();  // never destroyed (tensors it counted may outlive a run)
  Result r;
  r.config = config;
  r.width = width;
  r.size = size;
  r.batch = batch;
  {
    di::CpuAllocationScope scope(counter);
    counter.reset_peak();
    const int64_t start = counter.live_bytes();
    torch::manual_seed(0);
    const auto cfg = sd15_shaped(width);
    // `all` builds the two frozen bases in bf16 from the start, as a load with PretrainedOptions().dtype(kBFloat16)
    // would: building them in float32 and casting after would make that transient the run's peak.
    const auto build = dm::BuildOptions().dtype(all ? torch::kBFloat16 : torch::kFloat);
    dm::UNet2DConditionModel teacher(cfg, build);
    dm::UNet2DConditionModel gen_unet = one_base ? teacher : dm::UNet2DConditionModel(cfg, build);  // one-base: the teacher's module
    dm::UNet2DConditionModel assistant = lora ? teacher : dm::UNet2DConditionModel(cfg);  // lora: one module, the shared base
    for (const auto& p : teacher->parameters()) r.params += p.numel();
    {
      torch::NoGradGuard ng;
      for (auto* dst : {&assistant, &gen_unet}) {
        if (dst->ptr() == teacher.ptr()) continue;
        auto named = (*dst)->named_parameters();
        for (const auto& p : teacher->named_parameters()) named[p.key()].copy_(p.value());
      }
    }
    for (auto* u : {&teacher, &assistant, &gen_unet}) (*u)->set_gradient_checkpointing(ckpt);
    di::DiscreteVPSchedule schedule;
    const auto t999 = torch::full({1}, 999.0);
    OneStep generator(gen_unet, schedule.alpha(t999).item<double>(), schedule.sigma(t999).item<double>());
    if (one_base) {
      namespace da = di::adapters;
      const auto options = da::LoraOptions().rank(g_lora_rank).alpha(static_cast<double>(g_lora_rank));
      auto assistant_lora = da::add_lora(*teacher, da::LoraOptions(options).adapter_name("assistant"));
      auto generator_lora = da::add_lora(*teacher, da::LoraOptions(options).adapter_name("generator"));
      if (bf16) da::store_base_in(torch::kBFloat16, *teacher);
      train(r, da::shared_base_generator(generator, {assistant_lora}), da::shared_base_teacher<di::EpsPrediction>(teacher),
            da::shared_base_denoiser<di::EpsPrediction>(teacher, {generator_lora}), bf16, size, batch, seq, steps);
    } else if (lora) {
      const auto options = di::adapters::LoraOptions().rank(g_lora_rank).alpha(static_cast<double>(g_lora_rank));
      auto assistant_lora = di::adapters::add_lora(*teacher, options);
      di::adapters::add_lora(*gen_unet, options);
      if (bf16) {
        di::adapters::store_base_in(torch::kBFloat16, *teacher);
        di::adapters::store_base_in(torch::kBFloat16, *gen_unet);
      }
      train(r, di::Generator<OneStep>(generator), di::adapters::shared_base_teacher<di::EpsPrediction>(teacher, assistant_lora),
            Denoiser(teacher, "assistant"), bf16, size, batch, seq, steps);
    } else {
      Denoiser teacher_role(teacher, "teacher");
      if (bf16) di::store_frozen_in(torch::kBFloat16, teacher_role);
      train(r, di::Generator<OneStep>(generator), teacher_role, Denoiser(assistant, "assistant"), bf16, size, batch, seq, steps);
    }
    r.run_peak_bytes = counter.peak_bytes() - start;
  }
  return r;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string widths = "32,64,96", sizes = "16,32", configs = "fp32,bf16,checkpoint,bf16+checkpoint,lora,all,one-base,all-one-base", json;
  int64_t batch = 1, seq = 77;
  int steps = 2, threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_memory: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--widths") widths = next();
    else if (a == "--sizes") sizes = next();
    else if (a == "--configs") configs = next();
    else if (a == "--batch") batch = std::atoll(next().c_str());
    else if (a == "--seq") seq = std::atoll(next().c_str());
    else if (a == "--steps") steps = std::atoi(next().c_str());
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--json") json = next();
    else if (a == "--lora-rank") g_lora_rank = std::atoll(next().c_str());
    else if (a == "--keep-gradients") g_keep_gradients = true;
    else {
      std::fprintf(stderr, "usage: bench_memory [--widths 32,64,96] [--sizes 16,32] [--batch 1] [--seq 77] [--configs %s] [--steps 2] "
                   "[--threads N] [--lora-rank 16] [--keep-gradients] [--json FILE]\n", configs.c_str());
      return 2;
    }
  }
  for (const auto& c : split(configs)) {
    if (c != "fp32" && c != "bf16" && c != "checkpoint" && c != "bf16+checkpoint" && c != "lora" && c != "all" && c != "one-base" &&
        c != "all-one-base") {
      std::fprintf(stderr, "bench_memory: unknown configuration '%s' (fp32, bf16, checkpoint, bf16+checkpoint, lora, all, one-base, "
                   "all-one-base)\n", c.c_str());
      return 2;
    }
  }
  if (batch < 1 || steps < 1 || g_lora_rank < 1) {
    std::fprintf(stderr, "bench_memory: --batch, --steps and --lora-rank must be >= 1\n");
    return 2;
  }
  if (threads > 0) torch::set_num_threads(threads);
  std::vector<Result> results;
  std::printf("%-16s %6s %5s %6s %12s %16s %16s %10s\n", "config", "width", "size", "batch", "params", "run_peak_bytes", "step_peak_bytes",
              "step_ms");
  for (const auto& ws : split(widths)) {
    for (const auto& ss : split(sizes)) {
      for (const auto& c : split(configs)) {
        const auto r = run(c, std::atoll(ws.c_str()), std::atoll(ss.c_str()), batch, seq, steps);
        std::printf("%-16s %6lld %5lld %6lld %12lld %16lld %16lld %10.1f\n", r.config.c_str(), (long long)r.width, (long long)r.size,
                    (long long)r.batch, (long long)r.params, (long long)r.run_peak_bytes, (long long)r.step_peak_bytes, r.step_ms);
        std::fflush(stdout);
        results.push_back(r);
      }
    }
  }
  if (!json.empty()) {
    std::ofstream out(json);
    out << "[\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      out << "  {\"config\": \"" << r.config << "\", \"width\": " << r.width << ", \"size\": " << r.size << ", \"batch\": " << r.batch
          << ", \"params\": " << r.params << ", \"peak_bytes\": " << r.run_peak_bytes << ", \"step_peak_bytes\": " << r.step_peak_bytes
          << ", \"step_ms\": " << r.step_ms << ", \"device\": \"cpu\", \"torch\": \"" << TORCH_VERSION << "\"}"
          << (i + 1 < results.size() ? ",\n" : "\n");
    }
    out << "]\n";
    if (!out) {
      std::fprintf(stderr, "bench_memory: cannot write %s\n", json.c_str());
      return 1;
    }
  }
  return 0;
}
