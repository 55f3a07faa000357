#pragma once
/// \file The encoder layer that transformers' CLIP text and vision models share, with its names:
/// `self_attn.{q,k,v,out}_proj`, `layer_norm1`, `mlp.fc1`, `mlp.fc2`, `layer_norm2`.
///   h += out_proj(attention(ln1(h)));  h += fc2(act(fc1(ln2(h))))
/// The text model's attention is causal, the vision model's is not.

#include <diffinstruct/core/torch_compat.hpp>
#include <diffinstruct/models/layers.hpp>

#include <cmath>
#include <memory>

namespace diffinstruct {
namespace models {

/// transformers' quick_gelu: x · sigmoid(1.702 x).
inline torch::Tensor quick_gelu(const torch::Tensor& x) { return x * torch::sigmoid(1.702 * x); }

/// The shape of one encoder layer, shared by the text model (causal) and the vision model.
struct ClipLayerOptions {
  int64_t hidden_size = 512;
  int64_t heads = 8;
  int64_t intermediate_size = 2048;
  bool gelu = false;  // hidden_act: gelu (true) or quick_gelu (false)
  double eps = 1e-5;
  bool causal = false;
};

class ClipAttentionImpl : public torch::nn::Module {
 public:
  ClipAttentionImpl(int64_t dim, int64_t heads, bool causal, const BuildOptions& b) : heads_(heads), causal_(causal) {
    k_proj = register_module("k_proj", Linear(dim, dim, true, b));
    v_proj = register_module("v_proj", Linear(dim, dim, true, b));
    q_proj = register_module("q_proj", Linear(dim, dim, true, b));
    out_proj = register_module("out_proj", Linear(dim, dim, true, b));
  }
  /// x [B, L, D]; self-attention, causal (token i sees tokens 0..i) for the text model.
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t batch = x.size(0), len = x.size(1), dim = x.size(2), head = dim / heads_;
    auto split = [&](const torch::Tensor& t) { return t.view({batch, len, heads_, head}).transpose(1, 2); };
    auto o = compat::scaled_dot_product_attention(split(q_proj(x)), split(k_proj(x)), split(v_proj(x)), /*upcast=*/true, causal_);
    return out_proj(o.transpose(1, 2).reshape({batch, len, dim}));
  }
  Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, out_proj{nullptr};

 private:
  int64_t heads_;
  bool causal_;
};
TORCH_MODULE(ClipAttention);

class ClipEncoderLayerImpl : public torch::nn::Module {
 public:
  ClipEncoderLayerImpl(const ClipLayerOptions& c, const BuildOptions& b) : gelu_(c.gelu) {
    self_attn = register_module("self_attn", ClipAttention(c.hidden_size, c.heads, c.causal, b));
    layer_norm1 = register_module("layer_norm1", LayerNorm(c.hidden_size, c.eps, b));
    mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
    fc1 = mlp->register_module("fc1", Linear(c.hidden_size, c.intermediate_size, true, b));
    fc2 = mlp->register_module("fc2", Linear(c.intermediate_size, c.hidden_size, true, b));
    layer_norm2 = register_module("layer_norm2", LayerNorm(c.hidden_size, c.eps, b));
  }
  torch::Tensor forward(torch::Tensor h) {
    h = h + self_attn(layer_norm1(h));
    const auto m = fc1(layer_norm2(h));
    return h + fc2(gelu_ ? torch::gelu(m) : quick_gelu(m));
  }
  ClipAttention self_attn{nullptr};
  LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  std::shared_ptr<torch::nn::Module> mlp;
  Linear fc1{nullptr}, fc2{nullptr};

 private:
  bool gelu_;
};
TORCH_MODULE(ClipEncoderLayer);

} // namespace models
} // namespace diffinstruct
