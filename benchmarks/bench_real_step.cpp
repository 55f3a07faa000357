// bench_real_step — one DI* iteration at real size, the library's side of benchmarks/real_size/run.sh
// (the PyTorch side is benchmarks/real_size/pytorch_step.py). It loads a diffusers pipeline folder
// and a transformers CLIPModel folder exactly as 05_text_to_image does (text2image/di_star_models.hpp),
// builds the same trainer (pseudo-Huber c = 1, CFG inside with α_cfg 3.5, the CLIP reward α_rew 1,
// K = 1, Adam, clipping at 1) and times `--steps` iterations.
//
//   bench_real_step --teacher DIR --reward DIR [--config all|full] [--separate-generator] [--precision fp32|bf16]
//                   [--steps 3] [--threads 0] [--resolution 256] [--lora-rank 16] [--measure-memory]
//                   [--reuse-samples] [--channels-last] [--draws FILE] [--json FILE]
//   all    LoRA generator and LoRA assistant on the teacher's base (one base for the three roles),
//          every UNet block checkpointed
//   full   the whole generator trained (its own float32 copy), the LoRA assistant on the teacher's
//          base, every UNet block checkpointed
//   --separate-generator   the LoRA generator on its own copy of the base (the layout before one base)
//   --reuse-samples        the assistant's update trains on the generator update's samples (DMD2's order;
//                          DiStarTrainerOptions::reuse_generator_samples): one generator forward fewer
//   --channels-last        every 4-D weight (UNets, VAE) stored channels-last (NHWC), so that the
//                          convolutions run in that memory format: a lever measured, not a default
//   --draws FILE           writes the first iteration's draws (z, t, ε of both updates) and prompt, so
//                          that the PyTorch side computes the same first iteration
// Prints one JSON object: per-step seconds, the median after the first, each phase's seconds
// (StepStats::phases, summed over the timed steps), user and system CPU seconds of the steps, the
// process's peak RSS, the counting allocator's step peak (--measure-memory), the first step's losses.
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/text2image/di_star_models.hpp>
#include <diffinstruct/util/error_report.hpp>
#include <diffinstruct/util/threads.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace di = diffinstruct;
namespace t2i = diffinstruct::text2image;

namespace {

struct Args {
  std::string teacher, reward, config = "all", precision = "fp32", draws, json;
  bool separate_generator = false, measure_memory = false, reuse_samples = false, channels_last = false;
  int steps = 3, threads = 0;
  int64_t resolution = 256, lora_rank = 16;
};

const char* kPrompt = "a photograph of an astronaut riding a horse";

double cpu_seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; }

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

template <class Trainer>
void write_draws(Trainer& trainer, const t2i::DiStarModels& m, const std::string& path) {
  // The trainer's draws of its first iteration, replayed on a copy of its generator in the same
  // order (trainer/draws.hpp): the assistant's update (z, c, t, ε), then the generator's.
  auto g = trainer.rng().clone();
  std::vector<int64_t> shape{1};
  shape.insert(shape.end(), m.latent_shape.begin(), m.latent_shape.end());
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const char* phase : {"assistant", "generator"}) {
    auto z = torch::randn(shape, g, f32);
    (void)(*m.prompts)(1, g);
    auto t = std::string(phase) == "assistant" ? m.schedule->sample_assistant_t(1, f32, g) : m.schedule->sample_generator_t(1, f32, g);
    auto eps = torch::randn(shape, g, f32);
    out.emplace_back(std::string(phase) + ".z", z);
    out.emplace_back(std::string(phase) + ".t", t.contiguous());
    out.emplace_back(std::string(phase) + ".eps", eps);
  }
  di::io::write_safetensors(path, out, {{"prompt", kPrompt}});
  // The initial adapters (B = 0; A as drawn here), for the PyTorch side to start from.
  const auto dir = std::filesystem::path(path).parent_path();
  di::adapters::save_lora(m.assistant_lora, (dir / "assistant_lora.safetensors").string());
  if (!m.generator_lora.empty()) di::adapters::save_lora(m.generator_lora, (dir / "generator_lora.safetensors").string());
}

template <class Trainer>
void run(const Args& a, t2i::DiStarModels& m, Trainer& trainer) {
  if (!a.draws.empty()) write_draws(trainer, m, a.draws);
  std::vector<double> seconds;
  di::StepStats first, sum;
  int64_t step_peak = -1;
  rusage before{}, after{};
  for (int i = 0; i < a.steps; ++i) {
    if (i == (a.steps > 1 ? 1 : 0)) getrusage(RUSAGE_SELF, &before);  // the timed steps: all but the first
    const auto t0 = std::chrono::steady_clock::now();
    const auto s = trainer.step();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (i == 0) first = s;
    if (i > 0 || a.steps == 1) {
      auto& p = sum.phases;
      p.generator_forward += s.phases.generator_forward, p.assistant_forward += s.phases.assistant_forward;
      p.teacher_forward += s.phases.teacher_forward, p.reward += s.phases.reward, p.backward += s.phases.backward, p.update += s.phases.update;
    }
    step_peak = std::max(step_peak, s.peak_bytes);
    std::fprintf(stderr, "step %d: %.2f s, loss %.6g\n", i + 1, seconds.back(), s.generator_loss);
  }
  getrusage(RUSAGE_SELF, &after);
  std::vector<double> timed(seconds.begin() + (a.steps > 1 ? 1 : 0), seconds.end());
  std::sort(timed.begin(), timed.end());
  const double n = static_cast<double>(timed.size());
  const auto& p = sum.phases;
  std::ostringstream j;
  j << "{\"side\": \"library\", \"torch\": \"" << TORCH_VERSION << "\", \"config\": \"" << a.config << (a.separate_generator ? "-separate" : "")
    << (a.reuse_samples ? "-reuse" : "") << (a.channels_last ? "-channels-last" : "") << "\", \"precision\": \"" << a.precision << "\", \"threads\": " << at::get_num_threads() << ", \"steps\": " << a.steps << ", \"step_seconds\": [";
  for (size_t i = 0; i < seconds.size(); ++i) j << (i ? ", " : "") << number(seconds[i]);
  const size_t h = timed.size() / 2;
  const double median = timed.size() % 2 ? timed[h] : (timed[h - 1] + timed[h]) / 2;
  j << "], \"median_seconds\": " << number(median) << ", \"user_seconds_per_step\": "
    << number((cpu_seconds(after.ru_utime) - cpu_seconds(before.ru_utime)) / n)
    << ", \"system_seconds_per_step\": " << number((cpu_seconds(after.ru_stime) - cpu_seconds(before.ru_stime)) / n)
    << ", \"peak_rss_bytes\": " << after.ru_maxrss * 1024L << ", \"step_peak_bytes\": " << step_peak << ", \"phases_seconds_per_step\": {"
    << "\"generator_forward\": " << number(p.generator_forward / n / 1e3) << ", \"assistant_forward\": " << number(p.assistant_forward / n / 1e3)
    << ", \"teacher_forward\": " << number(p.teacher_forward / n / 1e3) << ", \"reward\": " << number(p.reward / n / 1e3)
    << ", \"backward\": " << number(p.backward / n / 1e3) << ", \"update\": " << number(p.update / n / 1e3) << "}, \"first_step\": {"
    << "\"generator_loss\": " << number(first.generator_loss) << ", \"divergence_loss\": " << number(first.divergence_loss)
    << ", \"reward_loss\": " << number(first.reward_loss) << ", \"mean_reward\": " << number(first.mean_reward)
    << ", \"assistant_loss\": " << number(first.assistant_loss) << "}, \"trained_parameters\": {\"generator\": ";
  int64_t g = 0, as = 0;
  for (const auto& t : trainer.generator_parameters()) g += t.numel();
  for (const auto& t : trainer.assistant_parameters()) as += t.numel();
  j << g << ", \"assistant\": " << as << "}}";
  std::printf("%s\n", j.str().c_str());
  if (!a.json.empty()) std::ofstream(a.json) << j.str() << "\n";
}

// Every 4-D parameter and buffer of `module` in the channels-last layout (values unchanged). The
// convolutions then pick that memory format for their outputs, and the gradients follow the weights.
void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  for (auto& b : module.buffers())
    if (b.dim() == 4) b.set_data(b.contiguous(at::MemoryFormat::ChannelsLast));
}

int main_checked(const Args& a) {
  di::use_threads(a.threads);
  TORCH_CHECK(a.config == "all" || a.config == "full", "bench_real_step: --config is all or full, got '", a.config, "'");
  const auto precision = di::parse_precision(a.precision);
  torch::manual_seed(0);  // the LoRAs' initial A
  auto options = t2i::DiStarModelsOptions(a.teacher, a.reward)
                     .assistant_lora(a.lora_rank)
                     .generator_lora(a.config == "all" ? a.lora_rank : 0)
                     .resolution(a.resolution)
                     .precision(precision)
                     .gradient_checkpointing(true);
  if (a.separate_generator) options.generator(a.teacher + "/unet");  // the same weights, their own copy
  auto m = t2i::load_di_star_models(options, {kPrompt}, [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
  if (a.channels_last) {
    for (torch::nn::Module* module : std::vector<torch::nn::Module*>{m.teacher_unet.get(), m.assistant_unet.get(), m.generator_unet.get(), m.vae.get()})
      if (module) to_channels_last(*module);
  }
  const auto train_options = di::DiStarTrainerOptions()
                                 .batch_size(1)
                                 .assistant_steps(1)
                                 .alpha_rew(1.0)
                                 .generator_adam(di::AdamSettings(a.config == "all" ? 1e-4 : 1e-5))
                                 .assistant_adam(di::AdamSettings(1e-4))
                                 .generator_max_grad_norm(1.0)
                                 .assistant_max_grad_norm(1.0)
                                 .ema_decay(0)
                                 .seed(0)
                                 .precision(precision)
                                 .measure_memory(a.measure_memory)
                                 .reuse_generator_samples(a.reuse_samples);
  TORCH_CHECK(m.pipeline->scheduler().prediction == di::models::Prediction::kEpsilon, "bench_real_step: expected an epsilon-prediction teacher");
  t2i::with_roles<di::EpsPrediction>(m, [&](auto generator, auto teacher, auto assistant) {
    using Trainer = di::DiStarTrainer<decltype(generator), decltype(teacher), decltype(assistant), t2i::PromptCondition, di::PseudoHuberScore,
                                      di::CfgInside, t2i::ClipReward, di::DiscreteVPSchedule>;
    Trainer trainer(std::move(generator), std::move(teacher), std::move(assistant),
                    {di::PseudoHuberScore(1.0), di::CfgInside(di::AlphaCfg(3.5)), *m.reward, *m.schedule},
                    di::ConditionSource<t2i::PromptCondition>{*m.prompts, m.prompts->null_condition()}, m.latent_shape, train_options);
    run(a, m, trainer);
  });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_real_step: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--teacher") a.teacher = next();
    else if (k == "--reward") a.reward = next();
    else if (k == "--config") a.config = next();
    else if (k == "--precision") a.precision = next();
    else if (k == "--steps") a.steps = std::max(1, std::atoi(next().c_str()));
    else if (k == "--threads") a.threads = std::atoi(next().c_str());
    else if (k == "--resolution") a.resolution = std::atoll(next().c_str());
    else if (k == "--lora-rank") a.lora_rank = std::atoll(next().c_str());
    else if (k == "--draws") a.draws = next();
    else if (k == "--json") a.json = next();
    else if (k == "--separate-generator") a.separate_generator = true;
    else if (k == "--measure-memory") a.measure_memory = true;
    else if (k == "--reuse-samples") a.reuse_samples = true;
    else if (k == "--channels-last") a.channels_last = true;
    else {
      std::fprintf(stderr, "usage: bench_real_step --teacher DIR --reward DIR [--config all|full] [--separate-generator] [--precision fp32|bf16] "
                   "[--steps 3] [--threads 0] [--resolution 256] [--lora-rank 16] [--measure-memory] [--reuse-samples] [--channels-last] "
                   "[--draws FILE] [--json FILE]\n");
      return 2;
    }
  }
  if (a.teacher.empty() || a.reward.empty()) {
    std::fprintf(stderr, "bench_real_step: --teacher and --reward are required\n");
    return 2;
  }
  try {
    return main_checked(a);
  } catch (const std::exception& e) {
    return di::report_error("bench_real_step", e);
  }
}
