#pragma once
/// \file Sinusoidal timestep features (diffusers' `get_timestep_embedding` / `Timesteps`) and the
/// MLP that embeds them (`TimestepEmbedding`: linear_1, act, linear_2).
///
/// features(t)_j = sin(t · ω_j), then cos(t · ω_j), j < d/2, with ω_j = exp(−ln(10000) · j / (d/2 − s))
/// for freq_shift s; flip_sin_to_cos puts the cosines first; odd d gets a trailing zero.

#include <diffinstruct/models/layers.hpp>

#include <cmath>

namespace diffinstruct {
namespace models {

/// t: [N] (any real dtype) -> [N, dim] float32.
inline torch::Tensor timestep_features(const torch::Tensor& t, int64_t dim, bool flip_sin_to_cos, double freq_shift) {
  TORCH_CHECK(t.dim() == 1, "diffinstruct::models::timestep_features: expected timesteps of shape [N], got ", t.sizes());
  const int64_t half = dim / 2;
  auto exponent = torch::arange(0, half, torch::TensorOptions().dtype(torch::kFloat).device(t.device())) * -std::log(10000.0);
  exponent = exponent / (static_cast<double>(half) - freq_shift);
  auto args = t.unsqueeze(1).to(torch::kFloat) * exponent.exp().unsqueeze(0);
  auto emb = flip_sin_to_cos ? torch::cat({args.cos(), args.sin()}, -1) : torch::cat({args.sin(), args.cos()}, -1);
  if (dim % 2 == 1) emb = torch::constant_pad_nd(emb, {0, 1, 0, 0}, 0);
  return emb;
}

class TimestepEmbeddingImpl : public torch::nn::Module {
 public:
  TimestepEmbeddingImpl(int64_t in_channels, int64_t embed_dim, Activation act, const BuildOptions& b) : act_(act) {
    linear_1 = register_module("linear_1", Linear(in_channels, embed_dim, true, b));
    linear_2 = register_module("linear_2", Linear(embed_dim, embed_dim, true, b));
  }
  torch::Tensor forward(const torch::Tensor& x) { return linear_2(activate(act_, linear_1(x))); }
  Linear linear_1{nullptr}, linear_2{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(TimestepEmbedding);

} // namespace models
} // namespace diffinstruct
