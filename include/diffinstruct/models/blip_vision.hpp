#pragma once
/// \file BLIP's vision transformer (the image encoder of ImageReward; `models/BLIP/vit.py`), with the
/// published parameter names, which ImageReward's checkpoint keeps under `blip.visual_encoder.`:
///
///   tokens = [cls_token, patch_embed.proj(pixels) as P×P patches] + pos_embed   (the conv has a bias)
///   h += attn.proj(attention(norm1(h)))      attn.qkv: one Linear to q, k, v (with bias)
///   h += mlp.fc2(gelu(mlp.fc1(norm2(h))))    exact GELU
///   out = norm(h)                            every token, LayerNorm eps 1e-6; no norm before the blocks
///
/// ImageReward uses ViT-L/16 at 224 (`BlipVisionConfig::large()`: width 1024, 24 blocks, 16 heads).

#include <diffinstruct/core/torch_compat.hpp>
#include <diffinstruct/models/layers.hpp>

#include <string>
#include <vector>

namespace diffinstruct {
namespace models {

struct BlipVisionConfig {
  int64_t image_size = 224, patch_size = 16, hidden_size = 768, num_layers = 12, num_heads = 12;
  double mlp_ratio = 4.0, layer_norm_eps = 1e-6;

  /// BLIP's `create_vit('large', 224)`, ImageReward's encoder.
  static BlipVisionConfig large() {
    BlipVisionConfig c;
    c.hidden_size = 1024, c.num_layers = 24, c.num_heads = 16;
    return c;
  }
  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
  int64_t mlp_size() const { return static_cast<int64_t>(static_cast<double>(hidden_size) * mlp_ratio); }
  void validate() const {
    TORCH_CHECK(patch_size > 0 && image_size > 0 && image_size % patch_size == 0, "diffinstruct::models::BlipVisionModel: image_size ", image_size,
                " is not a positive multiple of patch_size ", patch_size);
    TORCH_CHECK(hidden_size > 0 && num_layers > 0 && num_heads > 0 && hidden_size % num_heads == 0, "diffinstruct::models::BlipVisionModel: width ",
                hidden_size, " is not a positive multiple of ", num_heads, " heads (", num_layers, " layers)");
  }
};

class BlipVisionBlockImpl : public torch::nn::Module {
 public:
  BlipVisionBlockImpl(const BlipVisionConfig& c, const BuildOptions& b) : heads_(c.num_heads) {
    norm1 = register_module("norm1", LayerNorm(c.hidden_size, c.layer_norm_eps, b));
    auto attn = register_module("attn", std::make_shared<torch::nn::Module>());
    qkv = attn->register_module("qkv", Linear(c.hidden_size, 3 * c.hidden_size, true, b));
    proj = attn->register_module("proj", Linear(c.hidden_size, c.hidden_size, true, b));
    norm2 = register_module("norm2", LayerNorm(c.hidden_size, c.layer_norm_eps, b));
    auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
    fc1 = mlp->register_module("fc1", Linear(c.hidden_size, c.mlp_size(), true, b));
    fc2 = mlp->register_module("fc2", Linear(c.mlp_size(), c.hidden_size, true, b));
  }
  torch::Tensor forward(torch::Tensor h) {
    const int64_t batch = h.size(0), len = h.size(1), dim = h.size(2), head = dim / heads_;
    const auto qkv_out = qkv(norm1(h)).view({batch, len, 3, heads_, head}).permute({2, 0, 3, 1, 4});  // [3, B, heads, L, head]
    const auto o = compat::scaled_dot_product_attention(qkv_out[0], qkv_out[1], qkv_out[2], /*upcast=*/true);
    h = h + proj(o.transpose(1, 2).reshape({batch, len, dim}));
    return h + fc2(torch::gelu(fc1(norm2(h))));
  }
  LayerNorm norm1{nullptr}, norm2{nullptr};
  Linear qkv{nullptr}, proj{nullptr}, fc1{nullptr}, fc2{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(BlipVisionBlock);

class BlipVisionModelImpl : public torch::nn::Module {
 public:
  explicit BlipVisionModelImpl(BlipVisionConfig config, const BuildOptions& b = {}) : config_(config) {
    const auto& c = config_;
    c.validate();
    auto patch_embed = register_module("patch_embed", std::make_shared<torch::nn::Module>());
    proj = patch_embed->register_module("proj", Conv2d(3, c.hidden_size, c.patch_size, c.patch_size, 0, true, b));
    cls_token = register_parameter("cls_token", torch::empty({1, 1, c.hidden_size}, b.tensor_options()));
    pos_embed = register_parameter("pos_embed", torch::empty({1, c.num_patches() + 1, c.hidden_size}, b.tensor_options()));
    auto list = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_layers; ++i) {
      blocks_.push_back(BlipVisionBlock(c, b));
      list->push_back(blocks_.back());
    }
    norm = register_module("norm", LayerNorm(c.hidden_size, c.layer_norm_eps, b));
    if (b.randomize()) {  // vit.py: trunc_normal_(std=.02) for both
      torch::NoGradGuard ng;
      cls_token.normal_(0, 0.02);
      pos_embed.normal_(0, 0.02);
    }
  }

  /// pixel_values [B, 3, image_size, image_size] (preprocessed) -> every token [B, 1 + patches, width].
  torch::Tensor forward(const torch::Tensor& pixel_values) {
    const auto& c = config_;
    TORCH_CHECK(pixel_values.defined() && pixel_values.dim() == 4 && pixel_values.size(1) == 3 && pixel_values.size(2) == c.image_size &&
                    pixel_values.size(3) == c.image_size,
                "diffinstruct::models::BlipVisionModel: expected pixel_values [B, 3, ", c.image_size, ", ", c.image_size, "], got ",
                pixel_values.defined() ? c10::str(pixel_values.sizes()) : std::string("none"));
    const auto patches = proj(pixel_values.to(proj->weight.scalar_type())).flatten(2).transpose(1, 2);
    auto h = torch::cat({cls_token.expand({pixel_values.size(0), 1, c.hidden_size}), patches}, 1) + pos_embed;
    for (auto& block : blocks_) h = block(h);
    return norm(h);
  }
  const BlipVisionConfig& config() const { return config_; }

  Conv2d proj{nullptr};
  torch::Tensor cls_token, pos_embed;
  LayerNorm norm{nullptr};

 private:
  BlipVisionConfig config_;
  std::vector<BlipVisionBlock> blocks_;
};
TORCH_MODULE(BlipVisionModel);

}  // namespace models
}  // namespace diffinstruct
