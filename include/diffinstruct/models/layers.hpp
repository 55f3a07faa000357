#pragma once
/// \file The leaf layers of the diffusers-compatible models: Linear, Conv2d, GroupNorm, LayerNorm,
/// with PyTorch's parameter names (`weight`, `bias`) and default initialisation.
///
/// They exist, instead of torch::nn's own, for one reason: a real checkpoint is loaded into a model
/// right after building it, so the model must be buildable without spending time and memory on a
/// random initialisation that is overwritten at once. `BuildOptions` says where the parameters
/// live (dtype, device, including `torch::kMeta`, which allocates nothing: that is how the
/// parameter counts of SD1.5 and SDXL are computed) and whether they are initialised (`kRandom`,
/// PyTorch's defaults) or left as uninitialised storage (`kEmpty`, for loading).
///
/// Example:
///   auto o = models::BuildOptions().dtype(torch::kBFloat16).init(models::Init::kEmpty);
///   models::Linear proj(320, 1280, /*bias=*/true, o);

#include <diffinstruct/core/torch_compat.hpp>

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>

namespace diffinstruct {
namespace models {

/// How a freshly built model's parameters are filled.
enum class Init {
  kRandom,  ///< PyTorch's defaults: Kaiming-uniform weights (a = √5), uniform biases, unit norms
  kEmpty,   ///< uninitialised storage, to be overwritten by a checkpoint
};

/// Where and how a model's parameters are created.
struct BuildOptions {
  torch::TensorOptions tensor_options() const { return torch::TensorOptions().dtype(dtype_).device(device_); }
  /// Random initialisation only makes sense on a device that holds data.
  bool randomize() const { return init_ == Init::kRandom && !device_.is_meta(); }
  TORCH_ARG(c10::ScalarType, dtype) = torch::kFloat;
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  TORCH_ARG(Init, init) = Init::kRandom;
};

namespace detail {

/// Normalisations under mixed precision: computed in float32 when autocast is on for the input's
/// device or the input's dtype differs from the weights' (a bf16 activation into a float32 norm, or
/// the reverse). That is what autocast's float32 list does for group_norm and layer_norm on CUDA;
/// LibTorch 1.13's CPU autocast leaves them alone, and its CPU group_norm refuses mixed dtypes.
/// Under autocast the result stays float32 (as autocast returns it); without, it comes back in the
/// input's dtype.
template <class Norm>
torch::Tensor norm_mixed_precision(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, Norm norm) {
  const auto s = compat::autocast_state();
  const bool autocast = x.is_cuda() ? s.cuda : (x.is_cpu() && s.cpu);
  if (!autocast && x.scalar_type() == weight.scalar_type()) return norm(x, weight, bias);
  if (x.scalar_type() == torch::kDouble) return norm(x, weight.to(torch::kDouble), bias.to(torch::kDouble));
  const auto y = norm(x.to(torch::kFloat), weight.to(torch::kFloat), bias.to(torch::kFloat));
  return autocast ? y : y.to(x.scalar_type());
}

/// PyTorch's reset_parameters for Linear and Conv: U(-1/√fan_in, 1/√fan_in) for both the weight
/// (what kaiming_uniform_ with a = √5 reduces to) and the bias.
inline void default_init(torch::Tensor& weight, torch::Tensor& bias, int64_t fan_in) {
  torch::NoGradGuard no_grad;
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  weight.uniform_(-bound, bound);
  if (bias.defined()) bias.uniform_(-bound, bound);
}

inline void check_positive(int64_t v, const char* layer, const char* what) {
  TORCH_CHECK(v > 0, "diffinstruct::models::", layer, ": ", what, " must be positive, got ", v);
}

} // namespace detail

/// What an adapter adds to a layer (adapters/lora.hpp): the layer computes y from x as always, then
/// passes it through adapt(x, y) of each of its adapters in turn. Set on `Linear` and `Conv2d`
/// through their `adapters` member; empty: the plain layer. Several adapters on one layer are the
/// roles of a run sharing one base, each switched off in the others' passes (adapters/shared_base.hpp).
class LayerAdapter {
 public:
  virtual ~LayerAdapter() = default;
  /// The adapted layer's output for input x, given the layer's own output y.
  virtual torch::Tensor adapt(const torch::Tensor& x, torch::Tensor y, bool training) const = 0;
};

/// y = x Wᵀ + b, W: [out, in].
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true, const BuildOptions& o = {}) {
    detail::check_positive(in_features, "Linear", "in_features");
    detail::check_positive(out_features, "Linear", "out_features");
    weight = register_parameter("weight", torch::empty({out_features, in_features}, o.tensor_options()));
    if (bias) this->bias = register_parameter("bias", torch::empty({out_features}, o.tensor_options()));
    if (o.randomize()) detail::default_init(weight, this->bias, in_features);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = torch::linear(x, weight, bias);
    for (const auto& a : adapters) y = a->adapt(x, std::move(y), is_training());
    return y;
  }
  torch::Tensor weight, bias;
  std::vector<std::shared_ptr<LayerAdapter>> adapters;  ///< LoRAs, for instance, applied in order; empty: the plain layer
};
TORCH_MODULE(Linear);

/// 2-D convolution with a square kernel, W: [out, in, k, k].
class Conv2dImpl : public torch::nn::Module {
 public:
  Conv2dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1, int64_t padding = 0,
             bool bias = true, const BuildOptions& o = {})
      : stride_(stride), padding_(padding) {
    detail::check_positive(in_channels, "Conv2d", "in_channels");
    detail::check_positive(out_channels, "Conv2d", "out_channels");
    detail::check_positive(kernel_size, "Conv2d", "kernel_size");
    detail::check_positive(stride, "Conv2d", "stride");
    TORCH_CHECK(padding >= 0, "diffinstruct::models::Conv2d: padding must be non-negative, got ", padding);
    weight = register_parameter("weight", torch::empty({out_channels, in_channels, kernel_size, kernel_size}, o.tensor_options()));
    if (bias) this->bias = register_parameter("bias", torch::empty({out_channels}, o.tensor_options()));
    if (o.randomize()) detail::default_init(weight, this->bias, in_channels * kernel_size * kernel_size);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = torch::conv2d(x, weight, bias, stride_, padding_);
    for (const auto& a : adapters) y = a->adapt(x, std::move(y), is_training());
    return y;
  }
  int64_t stride() const { return stride_; }
  int64_t padding() const { return padding_; }
  torch::Tensor weight, bias;
  std::vector<std::shared_ptr<LayerAdapter>> adapters;  ///< LoRAs, for instance, applied in order; empty: the plain layer

 private:
  int64_t stride_, padding_;
};
TORCH_MODULE(Conv2d);

/// Group normalisation over channel groups of an [N, C, ...] tensor, with a per-channel affine map.
class GroupNormImpl : public torch::nn::Module {
 public:
  GroupNormImpl(int64_t num_groups, int64_t num_channels, double eps, const BuildOptions& o = {}) : groups_(num_groups), eps_(eps) {
    detail::check_positive(num_groups, "GroupNorm", "num_groups");
    TORCH_CHECK(num_channels % num_groups == 0, "diffinstruct::models::GroupNorm: ", num_channels,
                " channels do not split into ", num_groups, " groups (norm_num_groups must divide every block's channels)");
    weight = register_parameter("weight", torch::empty({num_channels}, o.tensor_options()));
    bias = register_parameter("bias", torch::empty({num_channels}, o.tensor_options()));
    if (o.randomize()) {
      torch::NoGradGuard no_grad;
      weight.fill_(1);
      bias.zero_();
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return detail::norm_mixed_precision(x, weight, bias, [this](const torch::Tensor& v, const torch::Tensor& w, const torch::Tensor& b) {
      return torch::group_norm(v, groups_, w, b, eps_);
    });
  }
  torch::Tensor weight, bias;

 private:
  int64_t groups_;
  double eps_;
};
TORCH_MODULE(GroupNorm);

/// Layer normalisation over the last dimension, with an affine map (elementwise_affine = true).
class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps, const BuildOptions& o = {}) : dim_(dim), eps_(eps) {
    detail::check_positive(dim, "LayerNorm", "dim");
    weight = register_parameter("weight", torch::empty({dim}, o.tensor_options()));
    bias = register_parameter("bias", torch::empty({dim}, o.tensor_options()));
    if (o.randomize()) {
      torch::NoGradGuard no_grad;
      weight.fill_(1);
      bias.zero_();
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return detail::norm_mixed_precision(x, weight, bias, [this](const torch::Tensor& v, const torch::Tensor& w, const torch::Tensor& b) {
      return torch::layer_norm(v, {dim_}, w, b, eps_);
    });
  }
  torch::Tensor weight, bias;

 private:
  int64_t dim_;
  double eps_;
};
TORCH_MODULE(LayerNorm);

/// The activations diffusers configs name in `act_fn`.
enum class Activation { kSilu, kGelu, kRelu, kMish };

inline Activation activation_from_name(const std::string& name, const std::string& where) {
  if (name == "silu" || name == "swish") return Activation::kSilu;
  if (name == "gelu") return Activation::kGelu;
  if (name == "relu") return Activation::kRelu;
  if (name == "mish") return Activation::kMish;
  TORCH_CHECK(false, "diffinstruct::models: ", where, " = '", name, "' is not supported (expected silu, swish, gelu, relu or mish)");
}

inline torch::Tensor activate(Activation a, const torch::Tensor& x) {
  switch (a) {
    case Activation::kSilu: return torch::silu(x);
    case Activation::kGelu: return torch::gelu(x);
    case Activation::kRelu: return torch::relu(x);
    case Activation::kMish: return torch::mish(x);
  }
  return x;
}

} // namespace models
} // namespace diffinstruct
