#pragma once
/// \file transformers' `CLIPVisionModelWithProjection` (and `CLIPVisionModel`), the image tower of
/// CLIP-score, PickScore and HPSv2 rewards, from a transformers `config.json`, with its parameter
/// names (`vision_model.embeddings.patch_embedding.weight`, ..., `visual_projection.weight`).
///
///   tokens = [class_embedding, patch_embedding(pixels) as P×P patches] + position_embedding
///   h = encoder(pre_layrnorm(tokens))          (not causal)
///   pooled = post_layernorm(h[:, 0]);  image_embeds = visual_projection(pooled)
///
/// `clip_preprocess` is CLIP's image preprocessing (resize the short side, centre crop, normalise)
/// as differentiable tensor operations, so that a reward's gradient reaches the generator's pixels.

#include <diffinstruct/models/blocks/clip_encoder.hpp>
#include <diffinstruct/models/clip_tower_config.hpp>
#include <diffinstruct/models/config_reader.hpp>

#include <string>
#include <vector>

namespace diffinstruct {
namespace models {

struct ClipVisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t projection_dim = 512;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t num_channels = 3;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
  bool with_projection = false;  // from `architectures`

  int64_t num_positions() const { return (image_size / patch_size) * (image_size / patch_size) + 1; }

  void validate(const std::string& what) const {
    auto bad = [&](const std::string& m) { TORCH_CHECK(false, "diffinstruct::models::CLIPVisionModel: ", what, ": ", m); };
    if (hidden_size <= 0 || intermediate_size <= 0 || num_hidden_layers <= 0 || num_channels <= 0) bad("sizes must be positive");
    if (patch_size <= 0 || image_size <= 0 || image_size % patch_size != 0)
      bad("image_size " + std::to_string(image_size) + " is not a positive multiple of patch_size " + std::to_string(patch_size));
    detail::check_clip_tower("CLIPVisionModel", what, hidden_size, num_attention_heads, with_projection, projection_dim, hidden_act);
  }

  static ClipVisionConfig from_json(const std::string& text, const std::string& what = "config.json") {
    ConfigReader r(text, what);
    return read(r, what);
  }
  /// From the `vision_config` of a CLIPModel's config.json (detail::clip_tower_in_model).
  static ClipVisionConfig from_clip_model(const io::JsonValue& sub, int64_t projection_dim, const std::string& what) {
    return detail::clip_tower_in_model<ClipVisionConfig>(sub, projection_dim, what);
  }
  static ClipVisionConfig read(ConfigReader& r, const std::string& what, bool in_clip_model = false) {
    ClipVisionConfig c;
    c.with_projection = detail::read_clip_tower_kind(r, what, "CLIPVisionModel", "clip_vision_model", in_clip_model);
    c.hidden_size = r.integer("hidden_size", c.hidden_size);
    c.intermediate_size = r.integer("intermediate_size", c.intermediate_size);
    c.projection_dim = r.integer("projection_dim", c.projection_dim);
    c.num_hidden_layers = r.integer("num_hidden_layers", c.num_hidden_layers);
    c.num_attention_heads = r.integer("num_attention_heads", c.num_attention_heads);
    c.num_channels = r.integer("num_channels", c.num_channels);
    c.image_size = r.integer("image_size", c.image_size);
    c.patch_size = r.integer("patch_size", c.patch_size);
    c.hidden_act = r.string("hidden_act", c.hidden_act);
    c.layer_norm_eps = r.number("layer_norm_eps", c.layer_norm_eps);
    r.finish();
    c.validate(what);
    return c;
  }
  static ClipVisionConfig from_file(const std::string& path) { return from_json(read_config_text(path), "'" + path + "'"); }
};

struct ClipVisionOutput {
  torch::Tensor last_hidden_state;  ///< [B, 1 + patches, hidden] (not post-normalised, as transformers)
  torch::Tensor pooler_output;      ///< [B, hidden] = post_layernorm(class token)
  torch::Tensor image_embeds;       ///< [B, projection_dim] (with projection only)
};

class ClipVisionModelImpl : public torch::nn::Module {
 public:
  explicit ClipVisionModelImpl(ClipVisionConfig config, const BuildOptions& b = {}) : config_(std::move(config)) {
    const auto& c = config_;
    c.validate("the CLIP vision config");
    vision_model = register_module("vision_model", std::make_shared<torch::nn::Module>());
    embeddings = vision_model->register_module("embeddings", std::make_shared<torch::nn::Module>());
    class_embedding = embeddings->register_parameter("class_embedding", torch::empty({c.hidden_size}, b.tensor_options()));
    patch_embedding = embeddings->register_module("patch_embedding", Conv2d(c.num_channels, c.hidden_size, c.patch_size, c.patch_size, 0, false, b));
    position_embedding = embeddings->register_module("position_embedding", std::make_shared<torch::nn::Module>())
                             ->register_parameter("weight", torch::empty({c.num_positions(), c.hidden_size}, b.tensor_options()));
    pre_layrnorm = vision_model->register_module("pre_layrnorm", LayerNorm(c.hidden_size, c.layer_norm_eps, b));  // transformers' spelling
    auto encoder = vision_model->register_module("encoder", std::make_shared<torch::nn::Module>());
    auto list = encoder->register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      layers_.push_back(
          ClipEncoderLayer(ClipLayerOptions{c.hidden_size, c.num_attention_heads, c.intermediate_size, c.hidden_act == "gelu", c.layer_norm_eps, false}, b));
      list->push_back(layers_.back());
    }
    post_layernorm = vision_model->register_module("post_layernorm", LayerNorm(c.hidden_size, c.layer_norm_eps, b));
    if (c.with_projection) visual_projection = register_module("visual_projection", Linear(c.hidden_size, c.projection_dim, false, b));
    if (b.randomize()) {
      torch::NoGradGuard ng;
      class_embedding.normal_(0, 0.02);
      position_embedding.normal_(0, 0.02);
    }
  }

  /// pixel_values [B, num_channels, image_size, image_size], already preprocessed (clip_preprocess).
  ClipVisionOutput forward(const torch::Tensor& pixel_values) {
    const auto& c = config_;
    TORCH_CHECK(pixel_values.defined() && pixel_values.dim() == 4 && pixel_values.size(1) == c.num_channels &&
                    pixel_values.size(2) == c.image_size && pixel_values.size(3) == c.image_size,
                "diffinstruct::models::CLIPVisionModel: expected pixel_values [B, ", c.num_channels, ", ", c.image_size, ", ", c.image_size,
                "] (run clip_preprocess first), got ", pixel_values.defined() ? c10::str(pixel_values.sizes()) : std::string("none"));
    const int64_t batch = pixel_values.size(0);
    const auto patches = patch_embedding(pixel_values.to(patch_embedding->weight.scalar_type())).flatten(2).transpose(1, 2);
    auto h = torch::cat({class_embedding.expand({batch, 1, c.hidden_size}), patches}, 1) + position_embedding.unsqueeze(0);
    h = pre_layrnorm(h);
    for (auto& layer : layers_) h = layer(h);
    ClipVisionOutput out;
    out.last_hidden_state = h;
    out.pooler_output = post_layernorm(h.select(1, 0));
    if (visual_projection) out.image_embeds = visual_projection(out.pooler_output);
    return out;
  }

  const ClipVisionConfig& config() const { return config_; }

  std::shared_ptr<torch::nn::Module> vision_model, embeddings;
  torch::Tensor class_embedding, position_embedding;
  Conv2d patch_embedding{nullptr};
  LayerNorm pre_layrnorm{nullptr}, post_layernorm{nullptr};
  Linear visual_projection{nullptr};

 private:
  ClipVisionConfig config_;
  std::vector<ClipEncoderLayer> layers_;
};
TORCH_MODULE(ClipVisionModel);

/// transformers 5 names a plain CLIPVisionModel's tensors without `vision_model.`; both load.
inline std::string clip_vision_canonical_name(const std::string& name) {
  if (name.rfind("vision_model.", 0) == 0 || name.rfind("visual_projection.", 0) == 0) return name;
  return "vision_model." + name;
}

/// CLIP's normalisation of images in [0, 1] (OpenAI's mean and std, which BLIP and OpenCLIP share).
inline torch::Tensor clip_normalize(const torch::Tensor& x) {
  const auto mean = torch::tensor({0.48145466, 0.4578275, 0.40821073}, x.options()).view({1, 3, 1, 1});
  const auto std = torch::tensor({0.26862954, 0.26130258, 0.27577711}, x.options()).view({1, 3, 1, 1});
  return (x - mean) / std;
}

/// CLIP's preprocessing, differentiable: images [B, 3, H, W] in [0, 1] -> resize so the short side
/// is `size` (bicubic, antialiased), centre crop `size`×`size`, normalise with CLIP's mean and std.
/// transformers' CLIPImageProcessor does the same steps with PIL on 8-bit images; the two agree
/// to resampling differences, not bit for bit (docs/models.md).
inline torch::Tensor clip_preprocess(const torch::Tensor& images, int64_t size = 224) {
  namespace F = torch::nn::functional;
  TORCH_CHECK(images.defined() && images.dim() == 4 && images.size(1) == 3, "diffinstruct::models::clip_preprocess: expected images [B, 3, H, W] in [0, 1], got ",
              images.defined() ? c10::str(images.sizes()) : std::string("none"));
  const int64_t h = images.size(2), w = images.size(3);
  const double scale = static_cast<double>(size) / static_cast<double>(std::min(h, w));
  const int64_t nh = std::max<int64_t>(size, static_cast<int64_t>(std::lround(h * scale)));
  const int64_t nw = std::max<int64_t>(size, static_cast<int64_t>(std::lround(w * scale)));
  auto x = images;
  if (nh != h || nw != w)
    x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{nh, nw}).mode(torch::kBicubic).align_corners(false).antialias(true));
  const int64_t top = (nh - size) / 2, left = (nw - size) / 2;
  x = x.slice(2, top, top + size).slice(3, left, left + size);
  return clip_normalize(x);
}

/// OpenCLIP's evaluation preprocessing with `resize_longest_max` (HPSv2's, differentiable): images
/// [B, 3, H, W] in [0, 1] -> the long side resized to `size` (bicubic, antialiased, on the float
/// tensor, unclamped), the short side to round(side · scale) with Python's round (half to even),
/// then zero padding to `size`×`size` (left/top get half the padding, rounded down) *before*
/// normalising with CLIP's mean and std, so the padding becomes −mean/std. An image whose long side
/// already equals `size` is neither resized nor padded, as in OpenCLIP; it must then be square.
inline torch::Tensor clip_preprocess_pad(const torch::Tensor& images, int64_t size = 224) {
  namespace F = torch::nn::functional;
  TORCH_CHECK(images.defined() && images.dim() == 4 && images.size(1) == 3, "diffinstruct::models::clip_preprocess_pad: expected images [B, 3, H, W] in [0, 1], got ",
              images.defined() ? c10::str(images.sizes()) : std::string("none"));
  const int64_t h = images.size(2), w = images.size(3);
  const double scale = static_cast<double>(size) / static_cast<double>(std::max(h, w));
  auto x = images;
  if (scale != 1.0) {
    const auto nh = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * scale));  // round half to even, as Python's round
    const auto nw = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) * scale));
    x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{nh, nw}).mode(torch::kBicubic).align_corners(false).antialias(true));
    const int64_t pad_h = size - nh, pad_w = size - nw;
    x = F::pad(x, F::PadFuncOptions({pad_w / 2, pad_w - pad_w / 2, pad_h / 2, pad_h - pad_h / 2}));
  }
  TORCH_CHECK(x.size(2) == size && x.size(3) == size, "diffinstruct::models::clip_preprocess_pad: a ", h, "×", w,
              " image whose long side is already ", size, " is not padded (as in OpenCLIP), so it must be square");
  return clip_normalize(x);
}

} // namespace models
} // namespace diffinstruct
