#pragma once
/// \file The VAE's blocks with diffusers' names: `UNetMidBlock2D` (resnet, then (self-attention
/// over pixels, resnet) — the attention group-normalises its input and adds it back) and
/// `UpDecoderBlock2D` (resnets, then ×2). Neither takes a time embedding.

#include <diffinstruct/models/blocks/attention.hpp>
#include <diffinstruct/models/blocks/resnet.hpp>

#include <vector>

namespace diffinstruct {
namespace models {

class MidBlock2DImpl : public torch::nn::Module {
 public:
  MidBlock2DImpl(int64_t channels, int64_t groups, Activation act, bool add_attention, const BuildOptions& b) {
    const auto ro = ResnetBlock2DOptions(channels, channels).groups(groups).eps(1e-6).act(act);
    resnets = register_module("resnets", torch::nn::ModuleList());
    resnet_.push_back(ResnetBlock2D(ro, b));
    resnets->push_back(resnet_.back());
    if (add_attention) {
      // heads = channels / attention_head_dim with attention_head_dim = channels: one head.
      attention_ = Attention(AttentionOptions(channels, 1, channels).qkv_bias(true).norm_groups(groups).norm_eps(1e-6).residual_connection(true).upcast(true), b);
      attentions = register_module("attentions", torch::nn::ModuleList());
      attentions->push_back(attention_);
    }
    resnet_.push_back(ResnetBlock2D(ro, b));
    resnets->push_back(resnet_.back());
  }
  torch::Tensor forward(torch::Tensor h) {
    h = resnet_[0](h);
    if (attention_) h = attention_(h);
    return resnet_[1](h);
  }
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr};

 private:
  std::vector<ResnetBlock2D> resnet_;
  Attention attention_{nullptr};
};
TORCH_MODULE(MidBlock2D);

class UpDecoderBlock2DImpl : public torch::nn::Module {
 public:
  UpDecoderBlock2DImpl(int64_t in, int64_t out, int64_t layers, bool add_upsample, int64_t groups, Activation act, const BuildOptions& b) {
    resnets = register_module("resnets", torch::nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i) {
      resnet_.push_back(ResnetBlock2D(ResnetBlock2DOptions(i == 0 ? in : out, out).groups(groups).eps(1e-6).act(act), b));
      resnets->push_back(resnet_.back());
    }
    if (add_upsample) {
      upsampler_ = Upsample2D(out, b);
      upsamplers = register_module("upsamplers", torch::nn::ModuleList());
      upsamplers->push_back(upsampler_);
    }
  }
  torch::Tensor forward(torch::Tensor h) {
    for (auto& r : resnet_) h = r(h);
    return upsampler_ ? upsampler_(h) : h;
  }
  torch::nn::ModuleList resnets{nullptr}, upsamplers{nullptr};

 private:
  std::vector<ResnetBlock2D> resnet_;
  Upsample2D upsampler_{nullptr};
};
TORCH_MODULE(UpDecoderBlock2D);

} // namespace models
} // namespace diffinstruct
