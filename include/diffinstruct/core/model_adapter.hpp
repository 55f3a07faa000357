#pragma once
/// \file Model adapters: any LibTorch model serves as generator, teacher, assistant or reward.
///
/// A "model" may be
///   * a `torch::nn` module holder (`TORCH_MODULE(Net)`), called as `model->forward(...)`;
///   * a `std::shared_ptr<Impl>` with `Impl` derived from `torch::nn::Module`, called the same way;
///   * a TorchScript `torch::jit::Module` (from `torch::jit::load`), called with IValues;
///   * any callable (lambda, function object), called directly.
/// Call signatures (the condition argument is omitted for `NoCondition`):
///   generator  g(z, c)          -> x0     [B, ...]
///   denoiser   f(x_t, t, c)     -> prediction in its parameterization, shape of x_t
///   reward     r(x0, c)         -> [B] per-sample reward
/// `t` is the schedule's own time variable, per sample [B] (a timestep for discrete VP, t ∈ [0, 1]
/// for cosine VP, σ for EDM); models that want another embedding of time convert it themselves.

#include <diffinstruct/core/condition.hpp>
#include <diffinstruct/core/parameterization.hpp>

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace detail {

template <class T, class = void>
struct is_module_holder : std::false_type {};
template <class T>
struct is_module_holder<T, std::void_t<typename T::ContainedType>>
    : std::is_base_of<torch::nn::ModuleHolder<typename T::ContainedType>, T> {};

template <class T>
struct is_module_ptr : std::false_type {};
template <class T>
struct is_module_ptr<std::shared_ptr<T>> : std::is_base_of<torch::nn::Module, T> {};

template <class T>
inline constexpr bool is_script_module_v = std::is_same_v<std::decay_t<T>, torch::jit::Module>;

template <class T>
inline constexpr bool is_native_module_v = is_module_holder<std::decay_t<T>>::value || is_module_ptr<std::decay_t<T>>::value;

/// Calls `model` on tensors followed by a condition, whatever kind of model it is.
template <class Model, class Cond, class... Tensors>
torch::Tensor call_model(Model& model, const Cond& cond, const Tensors&... inputs) {
  constexpr bool no_cond = std::is_same_v<Cond, NoCondition>;
  if constexpr (is_script_module_v<Model>) {
    std::vector<torch::jit::IValue> args{torch::jit::IValue(inputs)...};
    ConditionTraits<Cond>::append_ivalues(cond, args);
    auto out = model.forward(std::move(args));
    TORCH_CHECK(out.isTensor(), "diffinstruct: expected the TorchScript model's forward to return a Tensor, got ",
                out.tagKind());
    return out.toTensor();
  } else if constexpr (is_native_module_v<Model>) {
    if constexpr (no_cond) return model->forward(inputs...);
    else return model->forward(inputs..., cond);
  } else {
    if constexpr (no_cond) return std::invoke(model, inputs...);
    else return std::invoke(model, inputs..., cond);
  }
}

/// The trainable parameters of a model (empty for plain callables, which own none we can see).
template <class Model>
std::vector<torch::Tensor> model_parameters(const Model& model) {
  if constexpr (is_script_module_v<Model>) {
    std::vector<torch::Tensor> out;
    for (const auto& p : model.parameters()) out.push_back(p);
    return out;
  } else if constexpr (is_native_module_v<Model>) {
    return model->parameters();
  } else {
    return {};
  }
}

} // namespace detail

/// A diffusion network seen as an ε̂-predictor: `eps(x_t, t, alpha, sigma, c)`.
///
/// `Param` is the network's own parameterization (EpsPrediction, X0Prediction, VPrediction,
/// ScorePrediction); its output is converted to ε̂, the space in which every loss is written.
///
/// Example:
///   auto teacher = Denoiser<UNet, VPrediction>(unet, "teacher");
///   torch::Tensor eps = teacher.eps(x_t, t, alpha, sigma, labels);
template <class Model, class Param = EpsPrediction>
class Denoiser {
  static_assert(is_parameterization_v<Param>,
                "diffinstruct::Denoiser: Param must provide static to_eps and from_eps; see docs/policies.md#parameterizations");

 public:
  using ModelType = Model;
  using Parameterization = Param;

  explicit Denoiser(Model model, std::string name = "denoiser") : model_(std::move(model)), name_(std::move(name)) {}

  template <class Cond>
  torch::Tensor eps(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& alpha,
                    const torch::Tensor& sigma, const Cond& cond) {
    detail::check_condition_batch(cond, x_t.size(0), name_.c_str());
    const torch::Tensor out = detail::call_model(model_, cond, x_t, t);
    TORCH_CHECK(out.defined() && out.sizes() == x_t.sizes(), "diffinstruct::Denoiser(", name_,
                "): expected the model to return a prediction of shape ", x_t.sizes(), " (the shape of x_t), got ",
                detail::shape_str(out));
    return Param::to_eps(out, x_t, alpha, sigma);
  }

  Model& model() { return model_; }
  const Model& model() const { return model_; }
  const std::string& name() const { return name_; }
  std::vector<torch::Tensor> parameters() const { return detail::model_parameters(model_); }

 private:
  Model model_;
  std::string name_;
};

/// A one-step generator `x0 = g(z, c)`.
template <class Model>
class Generator {
 public:
  using ModelType = Model;

  explicit Generator(Model model, std::string name = "generator") : model_(std::move(model)), name_(std::move(name)) {}

  template <class Cond>
  torch::Tensor operator()(const torch::Tensor& z, const Cond& cond) {
    detail::check_condition_batch(cond, z.size(0), name_.c_str());
    torch::Tensor x0 = detail::call_model(model_, cond, z);
    TORCH_CHECK(x0.defined() && x0.dim() >= 1 && x0.size(0) == z.size(0), "diffinstruct::Generator(", name_,
                "): expected the model to return a batch of ", z.size(0), " samples, got shape ", detail::shape_str(x0));
    return x0;
  }

  Model& model() { return model_; }
  const Model& model() const { return model_; }
  std::vector<torch::Tensor> parameters() const { return detail::model_parameters(model_); }

 private:
  Model model_;
  std::string name_;
};

} // namespace diffinstruct
