#pragma once
/// \file diffusers folders in and out: `load_unet` / `load_vae` read `config.json` and the weights
/// (`diffusion_pytorch_model[.variant].safetensors`, or its sharded `.safetensors.index.json`) into a
/// model built straight on the target device and dtype; `save_pretrained` writes a folder that
/// diffusers' `from_pretrained` loads.
///
/// Strict loading (the default) builds the model without initialising it (the checkpoint overwrites
/// every parameter, and a mismatch is refused before anything is copied); non-strict loading
/// initialises it randomly first, so a parameter the checkpoint lacks is random, never garbage.
///
/// Example:
///   io::LoadReport report;
///   auto unet = models::load_unet("sdxl/unet", models::PretrainedOptions().dtype(torch::kBFloat16).device(torch::kCUDA), &report);
///   ... train ...
///   models::save_pretrained(unet, "out/unet", torch::kHalf);

#include <diffinstruct/io/module_state.hpp>
#include <diffinstruct/models/autoencoder_kl.hpp>
#include <diffinstruct/models/clip_model.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>

namespace diffinstruct {
namespace models {

struct PretrainedOptions {
  TORCH_ARG(c10::ScalarType, dtype) = torch::kFloat;
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  TORCH_ARG(bool, strict) = true;
  /// diffusers' weight variant: "fp16" reads diffusion_pytorch_model.fp16.safetensors.
  TORCH_ARG(std::string, variant) = "";
};

/// The weights file of a diffusers model folder: the single file if present, else the index.
namespace detail {

/// `<stem>[.variant].safetensors` in `dir`, else its sharded index; a pickled `bin_name` there is
/// named in the error with the advice to convert it with `library`'s save_pretrained.
inline std::string weights_path(const std::string& dir, const std::string& stem_base, const std::string& variant, const std::string& bin_name,
                                const char* library) {
  namespace fs = std::filesystem;
  const std::string stem = stem_base + (variant.empty() ? std::string() : "." + variant);
  const fs::path single = fs::path(dir) / (stem + ".safetensors"), index = fs::path(dir) / (stem + ".safetensors.index.json");
  if (fs::exists(single)) return single.string();
  if (fs::exists(index)) return index.string();
  const std::string hint = fs::exists(fs::path(dir) / bin_name)
                               ? c10::str(" (it has a pickled ", bin_name, ", which is not read: convert it to safetensors with ", library,
                                          "' save_pretrained)")
                               : std::string();
  TORCH_CHECK(false, "diffinstruct::models: '", dir, "' has neither ", single.filename().string(), " nor ", index.filename().string(), hint);
  return {};  // not reached: TORCH_CHECK(false) throws, but the sanitizer build does not know it
}

} // namespace detail

inline std::string diffusers_weights_path(const std::string& dir, const std::string& variant = "") {
  return detail::weights_path(dir, "diffusion_pytorch_model", variant, "diffusion_pytorch_model.bin", "diffusers");
}

namespace detail {

inline BuildOptions build_options_for(const PretrainedOptions& o) {
  return BuildOptions().dtype(o.dtype()).device(o.device()).init(o.strict() ? Init::kEmpty : Init::kRandom);
}

/// diffusers before 0.14 named the VAE's attention query/key/value/proj_attn; its loader renames
/// them, and so does this one.
inline std::string rename_deprecated_vae_attention(const std::string& name) {
  static const std::pair<const char*, const char*> table[] = {
      {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
  for (const auto& [from, to] : table) {
    const auto at = name.find(from);
    if (at != std::string::npos && name.find("attentions.") != std::string::npos)
      return name.substr(0, at) + to + name.substr(at + std::strlen(from));
  }
  return name;
}

} // namespace detail

namespace detail {

/// Loads `ckpt` into a model made by `build(BuildOptions)`. Strict: the checkpoint is first compared
/// with the model built on the meta device, so a config whose model the file does not hold (a
/// hostile or mismatched config.json asking for 10^12 parameters, say) is refused before anything
/// is allocated. `expected_unexpected` says which file names are not the model's on purpose.
template <class Model, class Build, class Skip>
Model load_checked(const std::string& dir, const PretrainedOptions& o, const io::SafetensorsCheckpoint& ckpt, const io::LoadOptions& lo,
                   Build build, Skip expected_unexpected, io::LoadReport* report) {
  auto clean = [&](io::LoadReport r) {
    std::vector<std::string> keep;
    for (const auto& n : r.unexpected)
      if (!expected_unexpected(n)) keep.push_back(n);
    r.unexpected = keep;
    return r;
  };
  if (o.strict()) {
    Model probe = build(BuildOptions().device(torch::kMeta).init(Init::kEmpty));
    const auto r = clean(io::compare_safetensors(*probe, ckpt, lo, "'" + dir + "'"));
    TORCH_CHECK(r.clean(), "diffinstruct::models: '", dir, "' does not hold the model its config.json describes (nothing was allocated or loaded): ",
                r.summary());
  }
  Model model = build(build_options_for(o));
  auto r = clean(io::load_safetensors(*model, ckpt, io::LoadOptions(lo).strict(false), "'" + dir + "'"));
  if (report) *report = r;
  model->eval();
  return model;
}

} // namespace detail

/// A diffusers UNet2DConditionModel folder (config.json + weights) -> the model, in eval mode.
inline UNet2DConditionModel load_unet(const std::string& dir, const PretrainedOptions& o = {}, io::LoadReport* report = nullptr) {
  const auto config = UNet2DConditionConfig::from_file((std::filesystem::path(dir) / "config.json").string());
  const io::SafetensorsCheckpoint ckpt(diffusers_weights_path(dir, o.variant()));
  return detail::load_checked<UNet2DConditionModel>(
      dir, o, ckpt, io::LoadOptions(), [&](const BuildOptions& b) { return UNet2DConditionModel(config, b); },
      [](const std::string&) { return false; }, report);
}

/// A diffusers AutoencoderKL folder -> the model, in eval mode; VaeParts::kDecoderOnly skips the
/// encoder's weights (a reward needs only the decoder).
inline AutoencoderKL load_vae(const std::string& dir, const PretrainedOptions& o = {}, VaeParts parts = VaeParts::kBoth,
                              io::LoadReport* report = nullptr) {
  const auto config = AutoencoderKLConfig::from_file((std::filesystem::path(dir) / "config.json").string());
  const io::SafetensorsCheckpoint ckpt(diffusers_weights_path(dir, o.variant()));
  const bool decoder_only = parts == VaeParts::kDecoderOnly;
  return detail::load_checked<AutoencoderKL>(
      dir, o, ckpt, io::LoadOptions().rename(detail::rename_deprecated_vae_attention),
      [&](const BuildOptions& b) { return AutoencoderKL(config, b, parts); },
      // Decoder only: the encoder's tensors in the file are expected, not unexpected.
      [decoder_only](const std::string& n) { return decoder_only && (n.rfind("encoder.", 0) == 0 || n.rfind("quant_conv.", 0) == 0); },
      report);
}

/// The weights file of a transformers model folder: model[.variant].safetensors, else its index.
inline std::string transformers_weights_path(const std::string& dir, const std::string& variant = "") {
  return detail::weights_path(dir, "model", variant, "pytorch_model.bin", "transformers");
}

/// A transformers CLIPTextModel[WithProjection] folder (config.json + model.safetensors, or its
/// sharded index) -> the model, in eval mode. Names with or without the `text_model.` prefix load.
inline ClipTextModel load_clip_text(const std::string& dir, const PretrainedOptions& o = {}, io::LoadReport* report = nullptr) {
  const auto config = ClipTextConfig::from_file((std::filesystem::path(dir) / "config.json").string());
  const io::SafetensorsCheckpoint ckpt(transformers_weights_path(dir, o.variant()));
  return detail::load_checked<ClipTextModel>(
      dir, o, ckpt, io::LoadOptions().rename(clip_text_canonical_name), [&](const BuildOptions& b) { return ClipTextModel(config, b); },
      [](const std::string&) { return false; }, report);
}

/// A transformers CLIPVisionModel[WithProjection] folder -> the model, in eval mode.
inline ClipVisionModel load_clip_vision(const std::string& dir, const PretrainedOptions& o = {}, io::LoadReport* report = nullptr) {
  const auto config = ClipVisionConfig::from_file((std::filesystem::path(dir) / "config.json").string());
  const io::SafetensorsCheckpoint ckpt(transformers_weights_path(dir, o.variant()));
  return detail::load_checked<ClipVisionModel>(
      dir, o, ckpt, io::LoadOptions().rename(clip_vision_canonical_name), [&](const BuildOptions& b) { return ClipVisionModel(config, b); },
      [](const std::string&) { return false; }, report);
}

/// A transformers CLIPModel folder (OpenAI's CLIP, PickScore, ...) -> both towers with their
/// projections and logit_scale, in eval mode. `parts`: text only, vision only, or both; the other
/// tower's tensors in the file are skipped, not refused.
enum class ClipTowers { kBoth, kText, kVision };
inline ClipModelParts load_clip_model(const std::string& dir, const PretrainedOptions& o = {}, ClipTowers towers = ClipTowers::kBoth) {
  const auto config = ClipModelConfig::from_file((std::filesystem::path(dir) / "config.json").string());
  const io::SafetensorsCheckpoint ckpt(transformers_weights_path(dir, o.variant()));
  auto starts = [](const std::string& n, const char* p) { return n.rfind(p, 0) == 0; };
  auto vision_name = [&](const std::string& n) { return starts(n, "vision_model.") || starts(n, "visual_projection."); };
  auto text_name = [&](const std::string& n) { return starts(n, "text_model.") || starts(n, "text_projection."); };
  // position_ids: a buffer transformers 4.x wrote into some checkpoints; it is arange, never a weight.
  auto bookkeeping = [&](const std::string& n) { return n == "logit_scale" || n.find("position_ids") != std::string::npos; };
  ClipModelParts parts;
  if (towers != ClipTowers::kVision) {
    parts.text = detail::load_checked<ClipTextModel>(
        dir, o, ckpt, io::LoadOptions(), [&](const BuildOptions& b) { return ClipTextModel(config.text, b); },
        [&](const std::string& n) { return vision_name(n) || bookkeeping(n); }, nullptr);
  }
  if (towers != ClipTowers::kText) {
    parts.vision = detail::load_checked<ClipVisionModel>(
        dir, o, ckpt, io::LoadOptions(), [&](const BuildOptions& b) { return ClipVisionModel(config.vision, b); },
        [&](const std::string& n) { return text_name(n) || bookkeeping(n); }, nullptr);
  }
  const auto* entry = ckpt.find("logit_scale");
  TORCH_CHECK(entry != nullptr, "diffinstruct::models: '", dir, "' has no logit_scale: not a CLIPModel checkpoint");
  parts.logit_scale = ckpt.read("logit_scale").to(torch::kFloat).reshape({});
  TORCH_CHECK(std::isfinite(parts.logit_scale.item<float>()), "diffinstruct::models: '", dir, "': logit_scale is not finite");
  return parts;
}

/// Writes `config.json` and `diffusion_pytorch_model.safetensors` (floating-point tensors as
/// `dtype`), each atomically, into `dir` (created if missing): a folder diffusers' `from_pretrained`
/// and load_unet read.
inline void save_pretrained(const UNet2DConditionModel& unet, const std::string& dir, c10::optional<c10::ScalarType> dtype = c10::nullopt,
                            uint64_t max_shard_bytes = 0) {
  std::filesystem::create_directories(dir);
  io::SaveOptions so;
  so.dtype = dtype;
  so.max_shard_bytes = max_shard_bytes;
  io::save_safetensors(*unet, (std::filesystem::path(dir) / "diffusion_pytorch_model.safetensors").string(), so);
  io::write_text_file_atomically((std::filesystem::path(dir) / "config.json").string(), unet->config().to_json(), "the UNet config");
}

/// The number of parameter elements of a module (on any device, kMeta included).
inline int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters(true)) n += p.numel();
  return n;
}

} // namespace models
} // namespace diffinstruct
