#pragma once
/// \file diffusers' `BasicTransformerBlock` (layer_norm type) and `Transformer2DModel` over
/// continuous inputs, as the UNet's cross-attention blocks use them.
///
/// Block:  x += attn1(norm1(x));  x += attn2(norm2(x), context);  x += ff(norm3(x)).
/// Model:  h = proj_in(norm(x)) as tokens [B, HW, inner];  h = blocks(h);  out = proj_out(h) + x,
/// with proj_in/proj_out 1×1 convolutions, or linear maps on the tokens (use_linear_projection,
/// SD 2.x and SDXL).

#include <diffinstruct/models/blocks/attention.hpp>

namespace diffinstruct {
namespace models {

class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t dim_head, int64_t cross_attention_dim, bool upcast, double dropout,
                            const BuildOptions& b) {
    norm1 = register_module("norm1", LayerNorm(dim, 1e-5, b));
    attn1 = register_module("attn1", Attention(AttentionOptions(dim, heads, dim_head).upcast(upcast), b));
    norm2 = register_module("norm2", LayerNorm(dim, 1e-5, b));
    attn2 = register_module("attn2", Attention(AttentionOptions(dim, heads, dim_head).cross_attention_dim(cross_attention_dim).upcast(upcast), b));
    norm3 = register_module("norm3", LayerNorm(dim, 1e-5, b));
    ff = register_module("ff", FeedForward(dim, dropout, b));
  }
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& context) {
    x = attn1(norm1(x)) + x;
    x = attn2(norm2(x), context) + x;
    return ff(norm3(x)) + x;
  }
  LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  Attention attn1{nullptr}, attn2{nullptr};
  FeedForward ff{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

struct Transformer2DOptions {
  Transformer2DOptions(int64_t channels, int64_t heads, int64_t cross_attention_dim)
      : channels_(channels), heads_(heads), cross_attention_dim_(cross_attention_dim) {}
  TORCH_ARG(int64_t, channels);
  TORCH_ARG(int64_t, heads);
  TORCH_ARG(int64_t, cross_attention_dim);
  TORCH_ARG(int64_t, num_layers) = 1;
  TORCH_ARG(int64_t, norm_groups) = 32;
  TORCH_ARG(bool, use_linear_projection) = false;
  TORCH_ARG(bool, upcast_attention) = false;
  TORCH_ARG(double, dropout) = 0.0;
};

class Transformer2DModelImpl : public torch::nn::Module {
 public:
  Transformer2DModelImpl(const Transformer2DOptions& opt, const BuildOptions& b) : linear_(opt.use_linear_projection()) {
    const int64_t c = opt.channels();
    TORCH_CHECK(opt.heads() > 0 && c % opt.heads() == 0, "diffinstruct::models::Transformer2DModel: ", c,
                " channels do not split into ", opt.heads(), " attention heads (check attention_head_dim / num_attention_heads)");
    TORCH_CHECK(opt.num_layers() > 0, "diffinstruct::models::Transformer2DModel: transformer_layers_per_block must be positive, got ",
                opt.num_layers());
    norm = register_module("norm", GroupNorm(opt.norm_groups(), c, 1e-6, b));
    if (linear_) proj_in_linear = register_module("proj_in", Linear(c, c, true, b));
    else proj_in_conv = register_module("proj_in", Conv2d(c, c, 1, 1, 0, true, b));
    transformer_blocks = register_module("transformer_blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < opt.num_layers(); ++i) {
      blocks_.push_back(BasicTransformerBlock(c, opt.heads(), c / opt.heads(), opt.cross_attention_dim(), opt.upcast_attention(), opt.dropout(), b));
      transformer_blocks->push_back(blocks_.back());
    }
    if (linear_) proj_out_linear = register_module("proj_out", Linear(c, c, true, b));
    else proj_out_conv = register_module("proj_out", Conv2d(c, c, 1, 1, 0, true, b));
  }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context) {
    const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
    auto h = norm(x);
    auto to_tokens = [&](const torch::Tensor& t) { return t.permute({0, 2, 3, 1}).reshape({batch, height * width, channels}); };
    h = linear_ ? proj_in_linear(to_tokens(h)) : to_tokens(proj_in_conv(h));
    for (auto& block : blocks_) h = block(h, context);
    auto to_map = [&](const torch::Tensor& t) { return t.reshape({batch, height, width, channels}).permute({0, 3, 1, 2}).contiguous(); };
    h = linear_ ? to_map(proj_out_linear(h)) : proj_out_conv(to_map(h));
    return h + x;
  }

  GroupNorm norm{nullptr};
  Linear proj_in_linear{nullptr}, proj_out_linear{nullptr};
  Conv2d proj_in_conv{nullptr}, proj_out_conv{nullptr};
  torch::nn::ModuleList transformer_blocks{nullptr};

 private:
  bool linear_;
  std::vector<BasicTransformerBlock> blocks_;
};
TORCH_MODULE(Transformer2DModel);

} // namespace models
} // namespace diffinstruct
