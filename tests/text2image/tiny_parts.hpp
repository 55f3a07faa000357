// Tiny text-to-image parts the tests share: a CLIP vision tower with a projection, an SD-like VAE
// decoder and a text-conditioned UNet config, small enough to train a few steps in a test.
#pragma once
#include <diffinstruct/models/autoencoder_kl.hpp>
#include <diffinstruct/models/clip_vision.hpp>

#include <string>

namespace tiny_t2i {
namespace dm = diffinstruct::models;

inline dm::ClipVisionConfig vision_config() {
  dm::ClipVisionConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.image_size = 16;
  c.patch_size = 8;
  c.projection_dim = 8;
  c.with_projection = true;
  return c;
}
inline dm::AutoencoderKL tiny_vae(const dm::BuildOptions& b = {}) {
  return dm::AutoencoderKL(dm::AutoencoderKLConfig::from_json(
                               R"({"block_out_channels": [8, 16], "latent_channels": 4, "norm_num_groups": 4, "layers_per_block": 1,
                                   "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
                                   "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "scaling_factor": 0.5})"),
                           b, dm::VaeParts::kDecoderOnly);
}
inline std::string tiny_unet_json() {
  return R"({"block_out_channels": [16, 32], "layers_per_block": 1, "cross_attention_dim": 12, "attention_head_dim": 4, "norm_num_groups": 8,
             "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]})";
}

}  // namespace tiny_t2i
