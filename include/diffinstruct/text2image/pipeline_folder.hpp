#pragma once
/// \file A diffusers text-to-image pipeline folder (StableDiffusionPipeline, StableDiffusionXLPipeline
/// and their one-step kin: SD-Turbo, SDXL-Turbo, DMD2), read part by part:
///
///   unet/            UNet2DConditionModel           load_unet
///   vae/             AutoencoderKL                  load_vae (a reward needs only the decoder)
///   text_encoder/    CLIPTextModel                  -> a UNetTextEncoder (last layer; SDXL: penultimate)
///   tokenizer/       CLIPTokenizer (vocab + merges)
///   text_encoder_2/  CLIPTextModelWithProjection    SDXL only: its pooled output is the UNet's text_embeds
///   tokenizer_2/
///   scheduler/scheduler_config.json                 the beta table and prediction_type
///
/// `PipelineFolder::open` checks that the parts are there (naming each one missing) and reads the
/// scheduler; the models load only when asked, each on the device and dtype given.
///
/// Example:
///   auto pipe = text2image::PipelineFolder::open("stable-diffusion-v1-5");
///   auto unet = pipe.unet(models::PretrainedOptions().dtype(torch::kBFloat16));
///   auto encoder = std::make_shared<text2image::PromptEncoder>(pipe.text_encoders(), pipe.prompt_options(512, 512));

#include <diffinstruct/models/pretrained.hpp>
#include <diffinstruct/models/scheduler_config.hpp>
#include <diffinstruct/text/clip_tokenizer.hpp>
#include <diffinstruct/text2image/prompt_encoder.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace diffinstruct {
namespace text2image {

class PipelineFolder {
 public:
  static PipelineFolder open(const std::string& dir) {
    namespace fs = std::filesystem;
    TORCH_CHECK(fs::is_directory(dir), "diffinstruct::text2image: '", dir, "' is not a folder (expected a diffusers pipeline folder)");
    PipelineFolder p;
    p.dir_ = dir;
    p.sdxl_ = fs::is_directory(fs::path(dir) / "text_encoder_2");
    std::vector<std::string> parts = {"unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer",
                                      "scheduler/scheduler_config.json"};
    if (p.sdxl_) parts.insert(parts.end(), {"text_encoder_2/config.json", "tokenizer_2"});
    // A tokenizer folder holds vocab.json + merges.txt (the Hub's folders) or tokenizer.json (transformers 5).
    auto has_tokenizer = [&](const std::string& t) {
      const auto d = fs::path(dir) / t;
      return (fs::exists(d / "vocab.json") && fs::exists(d / "merges.txt")) || fs::exists(d / "tokenizer.json");
    };
    std::string missing;
    for (const auto& part : parts) {
      const bool tokenizer = part.rfind("tokenizer", 0) == 0;
      if (tokenizer ? has_tokenizer(part) : fs::exists(fs::path(dir) / part)) continue;
      missing += (missing.empty() ? "" : ", ") + (tokenizer ? part + "/vocab.json or tokenizer.json" : part);
    }
    TORCH_CHECK(missing.empty(), "diffinstruct::text2image: '", dir, "' is not a complete diffusers text-to-image pipeline folder: it lacks ",
                missing);
    p.scheduler_ = models::read_scheduler_config((fs::path(dir) / "scheduler" / "scheduler_config.json").string());
    return p;
  }

  const std::string& dir() const { return dir_; }
  /// Two text encoders (text_encoder_2/ exists): an SDXL pipeline.
  bool is_sdxl() const { return sdxl_; }
  const models::SchedulerConfig& scheduler() const { return scheduler_; }
  std::string path(const std::string& part) const { return (std::filesystem::path(dir_) / part).string(); }

  models::UNet2DConditionModel unet(const models::PretrainedOptions& o = {}, io::LoadReport* report = nullptr) const {
    return models::load_unet(path("unet"), o, report);
  }
  models::AutoencoderKL vae(const models::PretrainedOptions& o = {}, models::VaeParts parts = models::VaeParts::kBoth) const {
    return models::load_vae(path("vae"), o, parts);
  }

  /// The UNet's text encoders with their tokenizers, as the pipeline uses them: SD 1.x/2.x the last
  /// hidden state of one encoder, SDXL the penultimate layer of both.
  std::vector<UNetTextEncoder> text_encoders(const models::PretrainedOptions& o = {}) const {
    std::vector<UNetTextEncoder> out;
    const int layer = sdxl_ ? -2 : -1;
    out.push_back({text::ClipTokenizer::from_folder(path("tokenizer")), models::load_clip_text(path("text_encoder"), o), layer});
    if (sdxl_) out.push_back({text::ClipTokenizer::from_folder(path("tokenizer_2")), models::load_clip_text(path("text_encoder_2"), o), layer});
    return out;
  }

  /// The PromptEncoder's options for images of `height` × `width` pixels: SDXL's time ids are
  /// (original size, crop top-left (0, 0), target size), as its pipeline sets them by default.
  PromptEncoderOptions prompt_options(int64_t height, int64_t width) const {
    PromptEncoderOptions o;
    if (sdxl_) {
      const double h = static_cast<double>(height), w = static_cast<double>(width);
      o.time_ids(torch::tensor({h, w, 0.0, 0.0, h, w}, torch::kFloat));
    }
    return o;
  }

 private:
  PipelineFolder() = default;
  std::string dir_;
  bool sdxl_ = false;
  models::SchedulerConfig scheduler_;
};

}  // namespace text2image
}  // namespace diffinstruct
