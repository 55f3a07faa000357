#pragma once
/// \file diffusers' `Attention` (the parts the UNet and the VAE use) and the GEGLU `FeedForward`.
///
/// Attention: q = to_q(x), k = to_k(c), v = to_v(c) with c the context (encoder hidden states for
/// cross-attention, x itself for self-attention), split into `heads` heads of `dim_head`,
/// softmax(q kᵀ/√dim_head) v, then to_out.0. The VAE's variant takes [B, C, H, W], group-normalises
/// it first (`group_norm`) and adds the input back (residual_connection), divided by
/// rescale_output_factor.

#include <diffinstruct/core/torch_compat.hpp>
#include <diffinstruct/models/layers.hpp>

namespace diffinstruct {
namespace models {

struct AttentionOptions {
  AttentionOptions(int64_t query_dim, int64_t heads, int64_t dim_head) : query_dim_(query_dim), heads_(heads), dim_head_(dim_head) {}
  TORCH_ARG(int64_t, query_dim);
  TORCH_ARG(int64_t, heads);
  TORCH_ARG(int64_t, dim_head);
  /// Width of the context; 0 for self-attention.
  TORCH_ARG(int64_t, cross_attention_dim) = 0;
  /// Bias of to_q, to_k, to_v (diffusers' `bias`); to_out.0 always has one.
  TORCH_ARG(bool, qkv_bias) = false;
  /// Groups of a GroupNorm applied to the input first; 0 for none.
  TORCH_ARG(int64_t, norm_groups) = 0;
  TORCH_ARG(double, norm_eps) = 1e-5;
  TORCH_ARG(bool, residual_connection) = false;
  TORCH_ARG(double, rescale_output_factor) = 1.0;
  /// Scores and softmax in float32 (upcast_attention / upcast_softmax); only the composed path of
  /// LibTorch 1.13 needs it, 2.x's fused kernels accumulate in float32 anyway.
  TORCH_ARG(bool, upcast) = false;
};

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const AttentionOptions& opt, const BuildOptions& b) : opt_(opt) {
    TORCH_CHECK(opt.heads() > 0 && opt.dim_head() > 0, "diffinstruct::models::Attention: ", opt.heads(), " heads of width ",
                opt.dim_head(), " (both must be positive; does attention_head_dim divide the block's channels?)");
    const int64_t inner = opt.heads() * opt.dim_head();
    const int64_t context = opt.cross_attention_dim() > 0 ? opt.cross_attention_dim() : opt.query_dim();
    if (opt.norm_groups() > 0) group_norm = register_module("group_norm", GroupNorm(opt.norm_groups(), opt.query_dim(), opt.norm_eps(), b));
    to_q = register_module("to_q", Linear(opt.query_dim(), inner, opt.qkv_bias(), b));
    to_k = register_module("to_k", Linear(context, inner, opt.qkv_bias(), b));
    to_v = register_module("to_v", Linear(context, inner, opt.qkv_bias(), b));
    to_out = register_module("to_out", torch::nn::ModuleList());
    out_proj = Linear(inner, opt.query_dim(), true, b);
    to_out->push_back(out_proj);  // to_out.0; diffusers' to_out.1 is a parameterless dropout
  }

  /// x: [B, L, query_dim] (or [B, C, H, W] for the VAE's variant); context: [B, S, cross_attention_dim]
  /// or undefined for self-attention.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {}) {
    const auto residual = x;
    auto h = x;
    const bool spatial = x.dim() == 4;
    if (spatial) h = h.flatten(2).transpose(1, 2);  // [B, HW, C]
    if (group_norm) h = group_norm(h.transpose(1, 2)).transpose(1, 2);
    const auto& c = context.defined() ? context : h;
    const int64_t batch = h.size(0);
    auto split = [&](const torch::Tensor& t) { return t.view({batch, -1, opt_.heads(), opt_.dim_head()}).transpose(1, 2); };
    auto o = compat::scaled_dot_product_attention(split(to_q(h)), split(to_k(c)), split(to_v(c)), opt_.upcast());
    o = out_proj(o.transpose(1, 2).reshape({batch, -1, opt_.heads() * opt_.dim_head()}));
    if (spatial) o = o.transpose(1, 2).reshape(x.sizes());
    if (opt_.residual_connection()) o = o + residual;
    return opt_.rescale_output_factor() == 1.0 ? o : o / opt_.rescale_output_factor();
  }

  GroupNorm group_norm{nullptr};
  Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, out_proj{nullptr};
  torch::nn::ModuleList to_out{nullptr};

 private:
  AttentionOptions opt_;
};
TORCH_MODULE(Attention);

/// GEGLU: proj(x) split in halves (a, g) along the last dimension, a · GELU(g).
class GegluImpl : public torch::nn::Module {
 public:
  GegluImpl(int64_t dim_in, int64_t dim_out, const BuildOptions& b) { proj = register_module("proj", Linear(dim_in, 2 * dim_out, true, b)); }
  torch::Tensor forward(const torch::Tensor& x) {
    auto parts = proj(x).chunk(2, -1);
    return parts[0] * torch::gelu(parts[1]);
  }
  Linear proj{nullptr};
};
TORCH_MODULE(Geglu);

/// diffusers' FeedForward with activation_fn = "geglu": net.0 = GEGLU(dim, 4·dim), net.1 = dropout,
/// net.2 = Linear(4·dim, dim).
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, double dropout, const BuildOptions& b, int64_t mult = 4) : dropout_(dropout) {
    geglu = Geglu(dim, mult * dim, b);
    out = Linear(mult * dim, dim, true, b);
    net = register_module("net", torch::nn::ModuleList());
    net->push_back(geglu);
    net->push_back(torch::nn::Identity());  // the dropout's place, so that out is net.2
    net->push_back(out);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = geglu(x);
    if (dropout_ > 0) h = torch::dropout(h, dropout_, is_training());
    return out(h);
  }
  Geglu geglu{nullptr};
  Linear out{nullptr};
  torch::nn::ModuleList net{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(FeedForward);

} // namespace models
} // namespace diffinstruct
