#pragma once
/// \file diffusers' `ResnetBlock2D`, `Downsample2D` and `Upsample2D`, with its parameter names.
///
/// ResnetBlock2D ("default" time embedding norm):
///   h = conv1(act(norm1(x))) + time_emb_proj(act(temb))[:, :, None, None]
///   h = conv2(dropout(act(norm2(h))))
///   out = (conv_shortcut(x) or x + h) / output_scale_factor
/// with "scale_shift", norm2(h) · (1 + scale) + shift from a 2C-wide projection instead.

#include <diffinstruct/models/layers.hpp>

namespace diffinstruct {
namespace models {

struct ResnetBlock2DOptions {
  ResnetBlock2DOptions(int64_t in_channels, int64_t out_channels) : in_channels_(in_channels), out_channels_(out_channels) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  /// Width of the time embedding; 0 for blocks without one (the VAE's).
  TORCH_ARG(int64_t, temb_channels) = 0;
  TORCH_ARG(int64_t, groups) = 32;
  /// Groups of norm2; 0 means `groups`.
  TORCH_ARG(int64_t, groups_out) = 0;
  TORCH_ARG(double, eps) = 1e-6;
  TORCH_ARG(Activation, act) = Activation::kSilu;
  TORCH_ARG(double, output_scale_factor) = 1.0;
  /// "scale_shift" (true) or "default" (false) use of the time embedding.
  TORCH_ARG(bool, scale_shift) = false;
  /// resnet_skip_time_act: the time embedding enters the projection without the activation.
  TORCH_ARG(bool, skip_time_act) = false;
  TORCH_ARG(double, dropout) = 0.0;
};

class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  ResnetBlock2DImpl(const ResnetBlock2DOptions& opt, const BuildOptions& b) : opt_(opt) {
    const int64_t in = opt.in_channels(), out = opt.out_channels();
    norm1 = register_module("norm1", GroupNorm(opt.groups(), in, opt.eps(), b));
    conv1 = register_module("conv1", Conv2d(in, out, 3, 1, 1, true, b));
    if (opt.temb_channels() > 0)
      time_emb_proj = register_module("time_emb_proj", Linear(opt.temb_channels(), opt.scale_shift() ? 2 * out : out, true, b));
    norm2 = register_module("norm2", GroupNorm(opt.groups_out() > 0 ? opt.groups_out() : opt.groups(), out, opt.eps(), b));
    conv2 = register_module("conv2", Conv2d(out, out, 3, 1, 1, true, b));
    if (in != out) conv_shortcut = register_module("conv_shortcut", Conv2d(in, out, 1, 1, 0, true, b));
  }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb = {}) {
    auto h = conv1(activate(opt_.act(), norm1(x)));
    torch::Tensor scale, shift;
    if (time_emb_proj) {
      TORCH_CHECK(temb.defined(), "diffinstruct::models::ResnetBlock2D: this block takes a time embedding; none was given");
      auto t = time_emb_proj(opt_.skip_time_act() ? temb : activate(opt_.act(), temb)).unsqueeze(-1).unsqueeze(-1);
      if (opt_.scale_shift()) {
        auto parts = t.chunk(2, 1);
        scale = parts[0];
        shift = parts[1];
      } else {
        h = h + t;
      }
    }
    h = norm2(h);
    if (scale.defined()) h = h * (1 + scale) + shift;
    h = activate(opt_.act(), h);
    if (opt_.dropout() > 0) h = torch::dropout(h, opt_.dropout(), is_training());
    h = conv2(h);
    auto skip = conv_shortcut ? conv_shortcut(x) : x;
    auto out = skip + h;
    return opt_.output_scale_factor() == 1.0 ? out : out / opt_.output_scale_factor();
  }

  GroupNorm norm1{nullptr}, norm2{nullptr};
  Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
  Linear time_emb_proj{nullptr};

 private:
  ResnetBlock2DOptions opt_;
};
TORCH_MODULE(ResnetBlock2D);

/// Stride-2 3×3 convolution (`conv`). padding = 0 pads one row and column at the bottom/right
/// first (the VAE encoder's convention).
class Downsample2DImpl : public torch::nn::Module {
 public:
  Downsample2DImpl(int64_t channels, int64_t padding, const BuildOptions& b) : padding_(padding) {
    conv = register_module("conv", Conv2d(channels, channels, 3, 2, padding, true, b));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return conv(padding_ == 0 ? torch::constant_pad_nd(x, {0, 1, 0, 1}, 0) : x);
  }
  Conv2d conv{nullptr};

 private:
  int64_t padding_;
};
TORCH_MODULE(Downsample2D);

/// Nearest-neighbour ×2 (or to `size`), then a 3×3 convolution (`conv`).
class Upsample2DImpl : public torch::nn::Module {
 public:
  Upsample2DImpl(int64_t channels, const BuildOptions& b) { conv = register_module("conv", Conv2d(channels, channels, 3, 1, 1, true, b)); }
  torch::Tensor forward(const torch::Tensor& x, c10::optional<std::vector<int64_t>> size = c10::nullopt) {
    namespace F = torch::nn::functional;
    auto o = F::InterpolateFuncOptions().mode(torch::kNearest);
    if (size) o.size(*size);
    else o.scale_factor(std::vector<double>{2.0, 2.0});
    return conv(F::interpolate(x, o));
  }
  Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

} // namespace models
} // namespace diffinstruct
