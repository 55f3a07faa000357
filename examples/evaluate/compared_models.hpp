#pragma once
// di_evaluate's models: the teacher pipeline sampled with N DDIM steps at a guidance scale, and
// one-step generators (a diffusers UNet at t*, optionally with a LoRA). Every model shares the
// teacher pipeline's text encoders, VAE and scheduler, so that they differ only in how latents come
// from noise.
//
// A generator is given as  [NAME=]PATH[,t=T][,prediction=P][,lora=FILE]:
//   PATH        a diffusers UNet folder (config.json + weights); "teacher" for the teacher's UNet; or
//               05_text_to_image's output folder `OUT/generator` (its unet/ and one_step.json, which
//               give t* and the prediction type)
//   t           the UNet's timestep for the one step (default 999, or one_step.json's)
//   prediction  epsilon | v_prediction | sample (default: the teacher scheduler's, or one_step.json's)
//   lora        a LoRA file in diffusers' format on that UNet (05's generator_lora/pytorch_lora_weights.safetensors)
#include <diffinstruct/adapters/lora_file.hpp>
#include <diffinstruct/eval/ddim_sampler.hpp>
#include <diffinstruct/io/json.hpp>
#include <diffinstruct/io/small_file.hpp>
#include <diffinstruct/precision/precision.hpp>
#include <diffinstruct/text2image/one_step_unet.hpp>
#include <diffinstruct/text2image/pipeline_folder.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace evaluate {

namespace di = diffinstruct;
namespace dm = diffinstruct::models;
namespace t2i = diffinstruct::text2image;

/// One model of the comparison.
struct ComparedModel {
  std::string name;      // as the report prints it
  std::string slug;      // its folder under OUT/models
  std::string settings;  // everything that decides its images (checked on resume)
  int64_t steps = 1;
  double guidance = 1;
  bool teacher = false;
  /// Latents x0 [B, C, h, w] (float32) from noise z for the condition c.
  std::function<torch::Tensor(const torch::Tensor& z, const t2i::PromptCondition& c)> sample;
};

struct GeneratorSpec {
  std::string name, path, lora, prediction;
  int64_t t_star = -1;  // −1: one_step.json's, else 999
};

/// A folder name from a model's name: lower-case letters and digits, every other run of characters one '_'.
inline std::string slug_of(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch)) out += static_cast<char>(std::tolower(ch));
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out.empty() ? "model" : out.substr(0, 64);
}

inline GeneratorSpec parse_generator_spec(const std::string& spec) {
  GeneratorSpec g;
  std::vector<std::string> fields;
  std::stringstream ss(spec);
  for (std::string f; std::getline(ss, f, ',');) fields.push_back(f);
  TORCH_CHECK(!fields.empty() && !fields[0].empty(), "di_evaluate: --generator '", spec, "': expected [NAME=]PATH[,t=T][,prediction=P][,lora=FILE]");
  const auto eq = fields[0].find('=');
  g.path = eq == std::string::npos ? fields[0] : fields[0].substr(eq + 1);
  g.name = eq == std::string::npos ? std::string() : fields[0].substr(0, eq);
  for (size_t i = 1; i < fields.size(); ++i) {
    const auto e = fields[i].find('=');
    TORCH_CHECK(e != std::string::npos, "di_evaluate: --generator '", spec, "': '", fields[i], "' is not KEY=VALUE (t, prediction or lora)");
    const std::string key = fields[i].substr(0, e), value = fields[i].substr(e + 1);
    if (key == "t") {
      size_t used = 0;
      try {
        g.t_star = std::stoll(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      TORCH_CHECK(used == value.size() && !value.empty() && g.t_star >= 0, "di_evaluate: --generator '", spec, "': t must be a timestep (0, 1, ...), got '", value, "'");
    } else if (key == "prediction") {
      dm::parse_prediction(value);  // refuses anything else, naming the choices
      g.prediction = value;
    } else if (key == "lora") {
      TORCH_CHECK(std::filesystem::is_regular_file(value), "di_evaluate: --generator '", spec, "': the LoRA file '", value, "' does not exist");
      g.lora = value;
    } else {
      TORCH_CHECK(false, "di_evaluate: --generator '", spec, "': unknown key '", key, "' (expected t, prediction or lora)");
    }
  }
  if (g.path != "teacher")
    TORCH_CHECK(std::filesystem::is_directory(g.path), "di_evaluate: --generator '", spec, "': '", g.path,
                "' is not a folder (expected a diffusers UNet folder, 05_text_to_image's OUT/generator, or 'teacher')");
  return g;
}

/// What loading needs from the run.
struct LoadContext {
  const t2i::PipelineFolder* pipe = nullptr;
  const di::DiscreteVPSchedule* schedule = nullptr;
  dm::PretrainedOptions frozen;  // device and dtype of every model
  di::Precision precision = di::Precision::kFloat32;
  torch::Device device = torch::kCPU;
  std::vector<int64_t> latent_shape;  // [C, h, w] of the teacher
  int64_t cross_attention_dim = 0;    // the text encoders' width, which every UNet must take
  t2i::PromptCondition null_condition;
};

inline void check_unet_fits(const dm::UNet2DConditionModel& unet, const LoadContext& ctx, const std::string& who) {
  const auto& c = unet->config();
  TORCH_CHECK(c.in_channels == ctx.latent_shape[0], "di_evaluate: ", who, " takes ", c.in_channels, "-channel latents; the teacher's VAE makes ",
              ctx.latent_shape[0], " (mismatched models)");
  TORCH_CHECK(c.cross_attention_dim == ctx.cross_attention_dim, "di_evaluate: ", who, " attends to ", c.cross_attention_dim,
              "-wide text states; the teacher's text encoders give ", ctx.cross_attention_dim, " (mismatched models)");
}

inline ComparedModel teacher_model(const dm::UNet2DConditionModel& unet, const LoadContext& ctx, int64_t steps, double guidance) {
  ComparedModel m;
  m.teacher = true;
  m.steps = steps;
  m.guidance = guidance;
  m.name = fmt::format("teacher, {} steps, CFG {:g}", steps, guidance);
  m.slug = fmt::format("teacher_{}steps_cfg{:g}", steps, guidance);
  m.settings = fmt::format("teacher '{}' DDIM {} steps guidance {:.17g}", ctx.pipe->dir(), steps, guidance);
  const auto& schedule = *ctx.schedule;
  const auto null_c = ctx.null_condition;
  const auto range = schedule.full_range();
  const auto precision = ctx.precision;
  dm::with_parameterization(ctx.pipe->scheduler().prediction, [&](auto param) {
    using Param = decltype(param);
    di::Denoiser<dm::UNet2DConditionModel, Param> denoiser(unet, "teacher");
    m.sample = [denoiser, &schedule, null_c, range, steps, guidance, precision](const torch::Tensor& z, const t2i::PromptCondition& c) mutable {
      di::AutocastScope autocast(precision, z.device());
      return di::ddim_sample(denoiser, schedule, z, c, null_c, range, di::DdimOptions().steps(steps).guidance_scale(guidance)).to(torch::kFloat);
    };
  });
  return m;
}

inline ComparedModel generator_model(const GeneratorSpec& g, const dm::UNet2DConditionModel& teacher_unet, const LoadContext& ctx) {
  namespace fs = std::filesystem;
  std::string unet_dir = g.path == "teacher" ? ctx.pipe->path("unet") : g.path;
  int64_t t_star = g.t_star;
  std::string prediction = g.prediction;
  // 05_text_to_image's OUT/generator: one_step.json says how to run the UNet beside it.
  if (g.path != "teacher" && fs::exists(fs::path(g.path) / "one_step.json")) {
    const auto info = di::io::parse_json(di::io::read_small_file((fs::path(g.path) / "one_step.json").string(), 1 << 20, "one_step.json"),
                                         "'" + g.path + "/one_step.json'");
    const auto* t = info.find("t_star");
    const auto* p = info.find("prediction_type");
    TORCH_CHECK(t && t->is_integer() && p && p->is_string(), "di_evaluate: '", g.path, "/one_step.json' lacks t_star or prediction_type");
    if (t_star < 0) t_star = t->integer();
    if (prediction.empty()) prediction = p->string();
    unet_dir = (fs::path(g.path) / "unet").string();
    TORCH_CHECK(fs::exists(fs::path(unet_dir) / "config.json") || !g.lora.empty(), "di_evaluate: '", g.path,
                "' has one_step.json but no unet/ folder: 05_text_to_image trained a LoRA there; give its base and the LoRA (PATH,lora=.../generator_lora/pytorch_lora_weights.safetensors)");
  }
  if (t_star < 0) t_star = 999;
  const auto pred = prediction.empty() ? ctx.pipe->scheduler().prediction : dm::parse_prediction(prediction);
  ComparedModel m;
  m.name = !g.name.empty() ? g.name : fmt::format("{} (one step, t* {})", g.path == "teacher" ? "teacher UNet" : fs::path(g.path).filename().string(), t_star);
  m.slug = slug_of(g.name.empty() ? "gen_" + fs::path(g.path == "teacher" ? "teacher" : g.path).filename().string() : g.name);
  m.settings = fmt::format("one step: UNet '{}' lora '{}' t* {} prediction {}", unet_dir, g.lora, t_star, dm::prediction_name(pred));
  // Its own UNet, even for the teacher's weights: a LoRA on it must not change the teacher's samples.
  auto unet = g.path == "teacher" && g.lora.empty() ? teacher_unet : dm::load_unet(unet_dir, ctx.frozen);
  check_unet_fits(unet, ctx, "generator '" + m.name + "'");
  if (!g.lora.empty()) di::adapters::load_lora(*unet, g.lora, "unet", di::adapters::LoraLoadOptions().trainable(false).dtype(ctx.frozen.dtype()));
  unet->eval();
  t2i::OneStepUNet gen(unet, *ctx.schedule, t2i::OneStepUNetOptions().timestep(t_star).prediction(pred));
  const auto precision = ctx.precision;
  m.sample = [gen, precision](const torch::Tensor& z, const t2i::PromptCondition& c) mutable {
    torch::NoGradGuard no_grad;
    di::AutocastScope autocast(precision, z.device());
    return gen->forward(z, c).to(torch::kFloat);
  };
  return m;
}

}  // namespace evaluate
