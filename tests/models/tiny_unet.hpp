#pragma once
// A tiny text-conditioned UNet for tests (16/32 channels, cross-attention at the first level,
// context width 12), and a second UNet holding the same weights.
#include <diffinstruct/models/unet2d_condition.hpp>

#include <torch/torch.h>

namespace test_models {

inline diffinstruct::models::UNet2DConditionConfig tiny_unet_config() {
  return diffinstruct::models::UNet2DConditionConfig::from_json(
      R"({"_class_name": "UNet2DConditionModel", "block_out_channels": [16, 32], "layers_per_block": 1,
          "cross_attention_dim": 12, "attention_head_dim": 4, "norm_num_groups": 8,
          "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]})");
}

/// A new tiny UNet with `src`'s weights (every parameter of the same name; adapters are not copied).
inline diffinstruct::models::UNet2DConditionModel copy_of_tiny_unet(const diffinstruct::models::UNet2DConditionModel& src) {
  diffinstruct::models::UNet2DConditionModel out(tiny_unet_config());
  torch::NoGradGuard no_grad;
  auto dst = out->named_parameters();
  for (const auto& p : src->named_parameters()) {
    if (auto* d = dst.find(p.key())) d->copy_(p.value());
  }
  return out;
}

}  // namespace test_models
