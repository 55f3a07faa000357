#pragma once
/// \file ImageReward v1.0 (`ImageReward.py`): BLIP's ViT-L/16 encodes the image, BLIP's BERT encodes the
/// prompt with cross-attention to every image token, and an affine head scores the [CLS] output:
///
///   r = (mlp(bert(ids, mask, vit(pixels))[:, 0]) − 0.16717362830052426) / 1.0333394966054072
///
/// The two constants are in ImageReward's code, not in its checkpoint. The head is the same affine
/// chain as the LAION aesthetic head (`mlp.layers.0/2/4/6/7`, 768 → 1024 → 128 → 64 → 16 → 1, no
/// activations), so it is an AestheticHead here. Parameter names are the checkpoint's:
/// `blip.visual_encoder.*` (models/blip_vision.hpp), `blip.text_encoder.*` (models/bert.hpp), `mlp.*`.
///
/// `load_image_reward` reads `ImageReward.pt` (a torch.save'd state dict) natively. ImageReward loads
/// it with strict=False: the BLIP projections (`blip.vision_proj`, `blip.text_proj`) and the position
/// ids buffer are in the file but unused, and are skipped here; any other name, and any weight the
/// model needs that the file lacks, is an error.
///
/// Example:
///   auto ir = models::load_image_reward("ImageReward.pt");                 // ViT-L/16 + BLIP's med_config
///   auto r = ir->forward(pixel_values, input_ids, attention_mask);        // [B]

#include <diffinstruct/io/torch_checkpoint.hpp>
#include <diffinstruct/models/aesthetic_head.hpp>
#include <diffinstruct/models/bert.hpp>
#include <diffinstruct/models/blip_vision.hpp>
#include <diffinstruct/models/clip_vision.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace diffinstruct {
namespace models {

struct ImageRewardConfig {
  BlipVisionConfig vision = BlipVisionConfig::large();
  BertConfig text;  ///< BLIP's med_config.json; its encoder_width is set to the vision width, as BLIP does
  double mean = 0.16717362830052426, std = 1.0333394966054072;
};

class ImageRewardModelImpl : public torch::nn::Module {
 public:
  /// `head`: the Sequential index and [out, in] of each linear layer of `mlp` (read from the file).
  ImageRewardModelImpl(ImageRewardConfig config, const std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>>& head, const BuildOptions& b = {})
      : config_(std::move(config)) {
    config_.text = config_.text.with_encoder_width(config_.vision.hidden_size);
    auto blip = register_module("blip", std::make_shared<torch::nn::Module>());
    visual_encoder = blip->register_module("visual_encoder", BlipVisionModel(config_.vision, b));
    text_encoder = blip->register_module("text_encoder", BertModel(config_.text, b));
    mlp = register_module("mlp", AestheticHead(head, b));
    TORCH_CHECK(mlp->input_size() == config_.text.hidden_size, "diffinstruct::models::ImageReward: the head takes ", mlp->input_size(),
                " features, the text encoder gives ", config_.text.hidden_size);
  }

  /// pixel_values [B, 3, 224, 224] (preprocessed: blip_preprocess), input_ids and attention_mask
  /// [B, L] (BERT's WordPiece, [CLS] ... [SEP], padded to 35) -> the score [B], float32.
  torch::Tensor forward(const torch::Tensor& pixel_values, const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
    const auto image = visual_encoder(pixel_values);
    const auto text = text_encoder(input_ids, attention_mask, image);
    const auto raw = mlp(text.select(1, 0)).squeeze(-1);
    return (raw.to(raw.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat) - config_.mean) / config_.std;
  }
  const ImageRewardConfig& config() const { return config_; }

  BlipVisionModel visual_encoder{nullptr};
  BertModel text_encoder{nullptr};
  AestheticHead mlp{nullptr};

 private:
  ImageRewardConfig config_;
};
TORCH_MODULE(ImageRewardModel);

/// ImageReward's preprocessing on float images [B, 3, H, W] in [0, 1], differentiable: CLIP's resize
/// of the short side to 224 (bicubic, antialiased), centre crop, CLIP's normalisation (BLIP uses the
/// same mean and std). ImageReward itself resizes the 8-bit image with PIL; see docs/evaluation.md.
inline torch::Tensor blip_preprocess(const torch::Tensor& images, int64_t size = 224) { return clip_preprocess(images, size); }

/// ImageReward's checkpoint (`ImageReward.pt`, a torch.save'd state dict, or a `.safetensors` with
/// the same names). `config` gives the architecture (the published one by default: ViT-L/16 at 224 and
/// BLIP's med_config.json); the head's sizes come from the file, and so do the vision encoder's width,
/// depth, patch and image size (its head count stays the config's when the width is the config's,
/// else width / 64, BLIP's head size).
inline ImageRewardModel load_image_reward(const std::string& path, const ImageRewardConfig& config = {}, const PretrainedOptions& o = {}) {
  auto starts = [](const std::string& s, const char* p) { return s.rfind(p, 0) == 0; };
  std::vector<io::TensorSource> used;
  for (const auto& s : io::state_dict_sources(path, "the ImageReward checkpoint"))
    if (s.name != "blip.text_encoder.embeddings.position_ids" && !starts(s.name, "blip.vision_proj.") && !starts(s.name, "blip.text_proj."))
      used.push_back(s);
  const auto layers = detail::linear_chain(used, "mlp.layers.", path, "an ImageReward checkpoint");
  ImageRewardConfig c = config;  // the vision encoder's sizes, from the file
  int64_t blocks = 0;
  for (const auto& s : used) {
    if (s.name == "blip.visual_encoder.patch_embed.proj.weight" && s.shape.size() == 4 && s.shape[2] == s.shape[3] && s.shape[2] > 0) {
      if (s.shape[0] != c.vision.hidden_size) c.vision.num_heads = std::max<int64_t>(1, s.shape[0] / 64);
      c.vision.hidden_size = s.shape[0], c.vision.patch_size = s.shape[2];
    }
    const std::string b = "blip.visual_encoder.blocks.", n = ".norm1.weight";
    if (starts(s.name, b.c_str()) && s.name.size() > b.size() + n.size() && s.name.compare(s.name.size() - n.size(), n.size(), n) == 0) ++blocks;
  }
  for (const auto& s : used)
    if (s.name == "blip.visual_encoder.pos_embed" && s.shape.size() == 3 && s.shape[1] > 1) {
      const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(s.shape[1] - 1))));
      if (side * side == s.shape[1] - 1) c.vision.image_size = side * c.vision.patch_size;
    }
  if (blocks > 0) c.vision.num_layers = blocks;
  const std::string what = "'" + path + "'";
  if (o.strict()) {  // names and shapes first, on a model without storage
    ImageRewardModel probe(c, layers, BuildOptions().device(torch::kMeta).init(Init::kEmpty));
    const auto report = io::compare_tensor_sources(*probe, used);
    TORCH_CHECK(report.clean(), "diffinstruct::models: ", what, " does not hold the ImageReward model its configuration describes (nothing was loaded): ",
                report.summary());
  }
  ImageRewardModel model(c, layers, detail::build_options_for(o));
  io::load_tensor_sources(*model, used, io::LoadOptions().strict(o.strict()), what);
  model->eval();
  return model;
}

}  // namespace models
}  // namespace diffinstruct
