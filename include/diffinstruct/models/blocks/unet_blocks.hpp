#pragma once
/// \file The UNet's levels, with diffusers' names: `CrossAttnDownBlock2D` / `DownBlock2D`
/// (one class, `DownBlock2D`, with or without attention), `UNetMidBlock2DCrossAttn`,
/// `CrossAttnUpBlock2D` / `UpBlock2D` (`UpBlock2D`, with or without attention). The VAE's
/// `DownEncoderBlock2D` is a DownBlock2D without time embedding and with downsample padding 0.
///
/// Down level: (resnet [, transformer]) × layers, then a stride-2 conv; every intermediate output
/// is kept as a skip. Up level: (concat a skip, resnet [, transformer]) × (layers + 1), then ×2.

#include <diffinstruct/models/blocks/resnet.hpp>
#include <diffinstruct/models/blocks/transformer.hpp>

#include <vector>

namespace diffinstruct {
namespace models {

/// What every level of one UNet shares (from the UNet's config).
struct LevelOptions {
  int64_t temb_channels = 0;
  int64_t groups = 32;
  double eps = 1e-5;
  Activation act = Activation::kSilu;
  double output_scale_factor = 1.0;
  bool scale_shift = false;
  bool skip_time_act = false;
  double dropout = 0.0;
  // attention levels only
  int64_t heads = 8;
  int64_t cross_attention_dim = 0;
  bool use_linear_projection = false;
  bool upcast_attention = false;

  ResnetBlock2DOptions resnet(int64_t in, int64_t out) const {
    return ResnetBlock2DOptions(in, out).temb_channels(temb_channels).groups(groups).eps(eps).act(act).output_scale_factor(
        output_scale_factor).scale_shift(scale_shift).skip_time_act(skip_time_act).dropout(dropout);
  }
  Transformer2DOptions transformer(int64_t channels, int64_t layers) const {
    return Transformer2DOptions(channels, heads, cross_attention_dim).num_layers(layers).norm_groups(groups).use_linear_projection(
        use_linear_projection).upcast_attention(upcast_attention).dropout(dropout);
  }
};

class DownBlock2DImpl : public torch::nn::Module {
 public:
  /// `transformer_layers` has one entry per resnet for a cross-attention level, and is empty for a
  /// plain one.
  DownBlock2DImpl(int64_t in, int64_t out, int64_t layers, const std::vector<int64_t>& transformer_layers, bool add_downsample,
                  int64_t downsample_padding, const LevelOptions& lo, const BuildOptions& b) {
    TORCH_CHECK(layers > 0, "diffinstruct::models: layers_per_block must be positive, got ", layers);
    const bool cross = !transformer_layers.empty();
    TORCH_INTERNAL_ASSERT(!cross || static_cast<int64_t>(transformer_layers.size()) == layers);
    resnets = register_module("resnets", torch::nn::ModuleList());
    if (cross) attentions = register_module("attentions", torch::nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i) {
      resnet_.push_back(ResnetBlock2D(lo.resnet(i == 0 ? in : out, out), b));
      resnets->push_back(resnet_.back());
      if (cross) {
        attention_.push_back(Transformer2DModel(lo.transformer(out, transformer_layers[i]), b));
        attentions->push_back(attention_.back());
      }
    }
    if (add_downsample) {
      downsampler_ = Downsample2D(out, downsample_padding, b);
      downsamplers = register_module("downsamplers", torch::nn::ModuleList());
      downsamplers->push_back(downsampler_);
    }
  }

  /// Appends its outputs to `skips` (for the up levels) and returns the last.
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& temb, const torch::Tensor& context, std::vector<torch::Tensor>* skips) {
    for (size_t i = 0; i < resnet_.size(); ++i) {
      h = resnet_[i](h, temb);
      if (!attention_.empty()) h = attention_[i](h, context);
      if (skips) skips->push_back(h);
    }
    if (downsampler_) {
      h = downsampler_(h);
      if (skips) skips->push_back(h);
    }
    return h;
  }
  bool has_cross_attention() const { return !attention_.empty(); }

  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, downsamplers{nullptr};

 private:
  std::vector<ResnetBlock2D> resnet_;
  std::vector<Transformer2DModel> attention_;
  Downsample2D downsampler_{nullptr};
};
TORCH_MODULE(DownBlock2D);

/// UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet) × layers.
class MidBlock2DCrossAttnImpl : public torch::nn::Module {
 public:
  MidBlock2DCrossAttnImpl(int64_t channels, int64_t transformer_layers, const LevelOptions& lo, const BuildOptions& b) {
    resnets = register_module("resnets", torch::nn::ModuleList());
    attentions = register_module("attentions", torch::nn::ModuleList());
    resnet_.push_back(ResnetBlock2D(lo.resnet(channels, channels), b));
    resnets->push_back(resnet_.back());
    attention_.push_back(Transformer2DModel(lo.transformer(channels, transformer_layers), b));
    attentions->push_back(attention_.back());
    resnet_.push_back(ResnetBlock2D(lo.resnet(channels, channels), b));
    resnets->push_back(resnet_.back());
  }
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& temb, const torch::Tensor& context) {
    h = resnet_[0](h, temb);
    for (size_t i = 0; i < attention_.size(); ++i) h = resnet_[i + 1](attention_[i](h, context), temb);
    return h;
  }
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr};

 private:
  std::vector<ResnetBlock2D> resnet_;
  std::vector<Transformer2DModel> attention_;
};
TORCH_MODULE(MidBlock2DCrossAttn);

class UpBlock2DImpl : public torch::nn::Module {
 public:
  /// `in` is the width of the skip from the level below's input, `prev` the width coming from below.
  UpBlock2DImpl(int64_t in, int64_t out, int64_t prev, int64_t layers, const std::vector<int64_t>& transformer_layers, bool add_upsample,
                const LevelOptions& lo, const BuildOptions& b) {
    TORCH_CHECK(layers > 0, "diffinstruct::models: up blocks need at least one layer, got ", layers);
    const bool cross = !transformer_layers.empty();
    TORCH_INTERNAL_ASSERT(!cross || static_cast<int64_t>(transformer_layers.size()) == layers);
    resnets = register_module("resnets", torch::nn::ModuleList());
    if (cross) attentions = register_module("attentions", torch::nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i) {
      const int64_t skip = i == layers - 1 ? in : out;
      const int64_t from = i == 0 ? prev : out;
      resnet_.push_back(ResnetBlock2D(lo.resnet(from + skip, out), b));
      resnets->push_back(resnet_.back());
      if (cross) {
        attention_.push_back(Transformer2DModel(lo.transformer(out, transformer_layers[i]), b));
        attentions->push_back(attention_.back());
      }
    }
    if (add_upsample) {
      upsampler_ = Upsample2D(out, b);
      upsamplers = register_module("upsamplers", torch::nn::ModuleList());
      upsamplers->push_back(upsampler_);
    }
  }

  /// Takes its skips from the back of `skips`.
  torch::Tensor forward(torch::Tensor h, std::vector<torch::Tensor>& skips, const torch::Tensor& temb, const torch::Tensor& context,
                        c10::optional<std::vector<int64_t>> upsample_size) {
    for (size_t i = 0; i < resnet_.size(); ++i) {
      TORCH_INTERNAL_ASSERT(!skips.empty(), "the up levels use more skips than the down levels made");
      h = torch::cat({h, skips.back()}, 1);
      skips.pop_back();
      h = resnet_[i](h, temb);
      if (!attention_.empty()) h = attention_[i](h, context);
    }
    if (upsampler_) h = upsampler_(h, upsample_size);
    return h;
  }
  size_t num_resnets() const { return resnet_.size(); }

  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, upsamplers{nullptr};

 private:
  std::vector<ResnetBlock2D> resnet_;
  std::vector<Transformer2DModel> attention_;
  Upsample2D upsampler_{nullptr};
};
TORCH_MODULE(UpBlock2D);

} // namespace models
} // namespace diffinstruct
