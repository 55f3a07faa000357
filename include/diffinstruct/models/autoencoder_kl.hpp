#pragma once
/// \file diffusers' `AutoencoderKL` (the SD 1.x/2.x/SDXL VAE), encoder and decoder, built from its
/// config.json with diffusers' parameter names. Everything is differentiable: a pixel-space reward
/// back-propagates through `decode` into a latent generator.
///
///   decode(z)  = decoder(post_quant_conv(z))               (diffusers' AutoencoderKL.decode)
///   encode(x)  = N(mean, exp(logvar)) with [mean, logvar] = quant_conv(encoder(x)), logvar ∈ [−30, 20]
///   latents    = (z − shift_factor) · scaling_factor       (what a diffusion model is trained on)
///
/// `decode` does not apply scaling_factor, exactly as diffusers' decode does not (its pipelines
/// divide first); `decode_latents` does both steps for a diffusion model's latents.
///
/// Example:
///   auto vae = models::load_vae("stable-diffusion-v1-5/vae");   // models/pretrained.hpp
///   torch::Tensor image = vae->decode_latents(x0);               // [B, 3, 8H, 8W] in about [−1, 1]

#include <diffinstruct/models/blocks/unet_blocks.hpp>
#include <diffinstruct/models/blocks/vae_blocks.hpp>
#include <diffinstruct/models/config_reader.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace diffinstruct {
namespace models {

struct AutoencoderKLConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  std::vector<std::string> down_block_types{"DownEncoderBlock2D"};
  std::vector<std::string> up_block_types{"UpDecoderBlock2D"};
  std::vector<int64_t> block_out_channels{64};
  int64_t layers_per_block = 1;
  std::string act_fn = "silu";
  int64_t latent_channels = 4;
  int64_t norm_num_groups = 32;
  int64_t sample_size = 32;  // informative
  double scaling_factor = 0.18215;
  bool has_shift_factor = false;
  double shift_factor = 0;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;
  bool force_upcast = true;  // informative: diffusers' pipelines decode SDXL's VAE in float32

  void validate(const std::string& what = "the VAE config") const {
    auto bad = [&](const std::string& msg) { TORCH_CHECK(false, "diffinstruct::models::AutoencoderKL: ", what, ": ", msg); };
    if (block_out_channels.empty()) bad("block_out_channels is empty");
    if (down_block_types.size() != block_out_channels.size() || up_block_types.size() != block_out_channels.size())
      bad("down_block_types, up_block_types and block_out_channels must have the same length");
    for (const auto& t : down_block_types)
      if (t != "DownEncoderBlock2D") bad("down block type '" + t + "' is not supported (DownEncoderBlock2D)");
    for (const auto& t : up_block_types)
      if (t != "UpDecoderBlock2D") bad("up block type '" + t + "' is not supported (UpDecoderBlock2D)");
    for (auto ch : block_out_channels)
      if (ch <= 0 || norm_num_groups <= 0 || ch % norm_num_groups != 0)
        bad("block_out_channels entry " + std::to_string(ch) + " is not a positive multiple of norm_num_groups = " + std::to_string(norm_num_groups));
    if (layers_per_block <= 0) bad("layers_per_block must be positive");
    if (in_channels <= 0 || out_channels <= 0 || latent_channels <= 0) bad("channel counts must be positive");
    if (!(scaling_factor > 0) || !std::isfinite(scaling_factor)) bad("scaling_factor must be positive and finite");
    activation_from_name(act_fn, what + ": act_fn");
  }

  static AutoencoderKLConfig from_json(const std::string& text, const std::string& what = "config.json") {
    ConfigReader r(text, what);
    AutoencoderKLConfig c;
    const std::string cls = r.string("_class_name", "AutoencoderKL");
    TORCH_CHECK(cls == "AutoencoderKL", "diffinstruct::models: ", what, " describes a ", cls, ", not an AutoencoderKL");
    r.ignore({"_diffusers_version", "_name_or_path", "_use_default_values", "_diffinstruct_export"});
    c.in_channels = r.integer("in_channels", c.in_channels);
    c.out_channels = r.integer("out_channels", c.out_channels);
    c.down_block_types = r.strings("down_block_types", c.down_block_types);
    c.up_block_types = r.strings("up_block_types", c.up_block_types);
    c.block_out_channels = r.integer_list("block_out_channels", c.block_out_channels);
    c.layers_per_block = r.integer("layers_per_block", c.layers_per_block);
    c.act_fn = r.string("act_fn", c.act_fn);
    c.latent_channels = r.integer("latent_channels", c.latent_channels);
    c.norm_num_groups = r.integer("norm_num_groups", c.norm_num_groups);
    if (const auto* s = r.raw("sample_size"); s && s->is_integer()) c.sample_size = s->integer();
    c.scaling_factor = r.number("scaling_factor", c.scaling_factor);
    c.has_shift_factor = r.has("shift_factor");
    c.shift_factor = r.number("shift_factor", 0.0);
    c.use_quant_conv = r.boolean("use_quant_conv", c.use_quant_conv);
    c.use_post_quant_conv = r.boolean("use_post_quant_conv", c.use_post_quant_conv);
    c.mid_block_add_attention = r.boolean("mid_block_add_attention", c.mid_block_add_attention);
    c.force_upcast = r.boolean("force_upcast", c.force_upcast);
    r.require("latents_mean", "null");
    r.require("latents_std", "null");
    r.finish();
    c.validate(what);
    return c;
  }
  static AutoencoderKLConfig from_file(const std::string& path) { return from_json(read_config_text(path), "'" + path + "'"); }
};

/// A diagonal Gaussian over latents (diffusers' DiagonalGaussianDistribution).
struct LatentDistribution {
  torch::Tensor mean, logvar;
  torch::Tensor mode() const { return mean; }
  torch::Tensor sample(c10::optional<at::Generator> gen = c10::nullopt) const {
    return mean + (0.5 * logvar).exp() * at::randn(mean.sizes(), gen, mean.options());
  }
};

class VaeEncoderImpl : public torch::nn::Module {
 public:
  VaeEncoderImpl(const AutoencoderKLConfig& c, const BuildOptions& b) {
    const auto act = activation_from_name(c.act_fn, "act_fn");
    LevelOptions lo;
    lo.groups = c.norm_num_groups;
    lo.eps = 1e-6;
    lo.act = act;
    conv_in = register_module("conv_in", Conv2d(c.in_channels, c.block_out_channels[0], 3, 1, 1, true, b));
    down_blocks = register_module("down_blocks", torch::nn::ModuleList());
    int64_t out = c.block_out_channels[0];
    for (size_t i = 0; i < c.block_out_channels.size(); ++i) {
      const int64_t in = out;
      out = c.block_out_channels[i];
      down_.push_back(DownBlock2D(in, out, c.layers_per_block, std::vector<int64_t>{}, i + 1 < c.block_out_channels.size(), /*downsample_padding=*/0, lo, b));
      down_blocks->push_back(down_.back());
    }
    mid_block = register_module("mid_block", MidBlock2D(out, c.norm_num_groups, act, c.mid_block_add_attention, b));
    conv_norm_out = register_module("conv_norm_out", GroupNorm(c.norm_num_groups, out, 1e-6, b));
    conv_out = register_module("conv_out", Conv2d(out, 2 * c.latent_channels, 3, 1, 1, true, b));
    act_ = act;
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = conv_in(x);
    for (auto& d : down_) h = d->forward(h, torch::Tensor(), torch::Tensor(), nullptr);
    h = mid_block(h);
    return conv_out(activate(act_, conv_norm_out(h)));
  }
  Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  MidBlock2D mid_block{nullptr};
  GroupNorm conv_norm_out{nullptr};

 private:
  std::vector<DownBlock2D> down_;
  Activation act_ = Activation::kSilu;
};
TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module {
 public:
  VaeDecoderImpl(const AutoencoderKLConfig& c, const BuildOptions& b) {
    act_ = activation_from_name(c.act_fn, "act_fn");
    const auto& ch = c.block_out_channels;
    conv_in = register_module("conv_in", Conv2d(c.latent_channels, ch.back(), 3, 1, 1, true, b));
    mid_block = register_module("mid_block", MidBlock2D(ch.back(), c.norm_num_groups, act_, c.mid_block_add_attention, b));
    up_blocks = register_module("up_blocks", torch::nn::ModuleList());
    int64_t out = ch.back();
    for (size_t i = 0; i < ch.size(); ++i) {
      const int64_t prev = out;
      out = ch[ch.size() - 1 - i];
      up_.push_back(UpDecoderBlock2D(prev, out, c.layers_per_block + 1, i + 1 < ch.size(), c.norm_num_groups, act_, b));
      up_blocks->push_back(up_.back());
    }
    conv_norm_out = register_module("conv_norm_out", GroupNorm(c.norm_num_groups, ch[0], 1e-6, b));
    conv_out = register_module("conv_out", Conv2d(ch[0], c.out_channels, 3, 1, 1, true, b));
  }
  torch::Tensor forward(const torch::Tensor& z) {
    auto h = mid_block(conv_in(z));
    for (auto& u : up_) h = u(h);
    return conv_out(activate(act_, conv_norm_out(h)));
  }
  Conv2d conv_in{nullptr}, conv_out{nullptr};
  MidBlock2D mid_block{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};
  GroupNorm conv_norm_out{nullptr};

 private:
  std::vector<UpDecoderBlock2D> up_;
  Activation act_ = Activation::kSilu;
};
TORCH_MODULE(VaeDecoder);

/// Which halves of the VAE to build: a DI* reward needs only the decoder (half the parameters).
enum class VaeParts { kBoth, kDecoderOnly };

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(AutoencoderKLConfig config, const BuildOptions& b = {}, VaeParts parts = VaeParts::kBoth)
      : config_(std::move(config)) {
    config_.validate();
    const int64_t lc = config_.latent_channels;
    if (parts == VaeParts::kBoth) {
      encoder = register_module("encoder", VaeEncoder(config_, b));
      if (config_.use_quant_conv) quant_conv = register_module("quant_conv", Conv2d(2 * lc, 2 * lc, 1, 1, 0, true, b));
    }
    decoder = register_module("decoder", VaeDecoder(config_, b));
    if (config_.use_post_quant_conv) post_quant_conv = register_module("post_quant_conv", Conv2d(lc, lc, 1, 1, 0, true, b));
  }

  /// z [B, latent_channels, h, w] -> image [B, out_channels, 2^(levels−1)·h, ...], as diffusers'
  /// decode (no scaling_factor applied).
  torch::Tensor decode(const torch::Tensor& z) {
    TORCH_CHECK(z.defined() && z.dim() == 4 && z.size(1) == config_.latent_channels, "diffinstruct::models::AutoencoderKL::decode: expected latents [B, ",
                config_.latent_channels, ", h, w], got ", z.defined() ? c10::str(z.sizes()) : std::string("an undefined tensor"));
    return decoder(post_quant_conv ? post_quant_conv(z) : z);
  }
  /// A diffusion model's latents -> image: decode(latents / scaling_factor + shift_factor).
  torch::Tensor decode_latents(const torch::Tensor& latents) {
    auto z = latents / config_.scaling_factor;
    if (config_.has_shift_factor) z = z + config_.shift_factor;
    return decode(z);
  }
  torch::Tensor forward(const torch::Tensor& z) { return decode(z); }

  /// x [B, in_channels, H, W] in [−1, 1] -> the posterior over (unscaled) latents.
  LatentDistribution encode(const torch::Tensor& x) {
    TORCH_CHECK(encoder, "diffinstruct::models::AutoencoderKL::encode: this VAE was built with VaeParts::kDecoderOnly");
    TORCH_CHECK(x.defined() && x.dim() == 4 && x.size(1) == config_.in_channels, "diffinstruct::models::AutoencoderKL::encode: expected images [B, ",
                config_.in_channels, ", H, W], got ", x.defined() ? c10::str(x.sizes()) : std::string("an undefined tensor"));
    auto moments = encoder(x);
    if (quant_conv) moments = quant_conv(moments);
    auto parts = moments.chunk(2, 1);
    return {parts[0], parts[1].clamp(-30.0, 20.0)};
  }
  /// An image -> a diffusion model's latents: (mode of encode(x) − shift_factor) · scaling_factor.
  torch::Tensor encode_latents(const torch::Tensor& x) {
    auto z = encode(x).mode();
    if (config_.has_shift_factor) z = z - config_.shift_factor;
    return z * config_.scaling_factor;
  }

  const AutoencoderKLConfig& config() const { return config_; }

  VaeEncoder encoder{nullptr};
  VaeDecoder decoder{nullptr};
  Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};

 private:
  AutoencoderKLConfig config_;
};
TORCH_MODULE(AutoencoderKL);

} // namespace models
} // namespace diffinstruct
