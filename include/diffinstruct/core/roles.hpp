#pragma once
/// \file Roles: the wrappers that make any LibTorch model the generator (Generator<M>), the teacher or
/// the assistant (Denoiser<M, Parameterization>). ("Adapters" in this library are LoRA's: adapters/.)
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

#include <diffinstruct/core/module_ref.hpp>
#include <diffinstruct/core/parameterization.hpp>

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace diffinstruct {

namespace detail {
/// Calls a model and, if it throws, says which role it was playing and on what input.
template <class Model, class Cond, class... Tensors>
torch::Tensor call_named(const char* role, const std::string& name, const torch::Tensor& first, Model& model, const Cond& cond,
                         const Tensors&... inputs) {
  try {
    return call_model(model, cond, inputs...);
  } catch (c10::Error& e) {
    e.add_context(c10::str("diffinstruct::", role, "('", name, "'): the model's forward failed on an input of shape ", first.sizes(),
                           " (dtype ", first.scalar_type(), ", device ", first.device(), ")"));
    throw;
  }
}
} // namespace detail

/// A diffusion network seen as an ε̂-predictor: `eps(x_t, t, alpha, sigma, c)`.
///
/// `Param` is the network's own parameterization (EpsPrediction, X0Prediction, VPrediction,
/// ScorePrediction); its output is converted to ε̂, the space in which every loss is written.
/// When `Model` is a plain callable that uses modules (an analytic score around a network, say),
/// declare them with `holds(module)` so that a trainer can freeze them and check them.
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
    const torch::Tensor out = detail::call_named("Denoiser", name_, x_t, model_, cond, x_t, t);
    TORCH_CHECK(out.defined() && out.sizes() == x_t.sizes(), "diffinstruct::Denoiser(", name_,
                "): expected the model to return a prediction of shape ", x_t.sizes(), " (the shape of x_t), got ",
                detail::shape_str(out));
    // ε̂ in x_t's dtype: under autocast the network computes in reduced precision, the losses do not.
    return Param::to_eps(out.scalar_type() == x_t.scalar_type() ? out : out.to(x_t.scalar_type()), x_t, alpha, sigma);
  }

  /// Declares a module that the callable model uses (returns *this).
  template <class Module>
  Denoiser& holds(const Module& module) {
    held_.push_back(ModuleRef::of(module));
    return *this;
  }
  /// Declares parameters the callable model reads but does not own, which the trainer must neither
  /// freeze nor switch the mode of, and which no role may train (checked): the base a LoRA assistant
  /// shares with the teacher (adapters/shared_base.hpp). Returns *this.
  Denoiser& reads(std::vector<std::pair<std::string, torch::Tensor>> parameters) {
    for (auto& p : parameters) read_.push_back(std::move(p));
    return *this;
  }
  const std::vector<std::pair<std::string, torch::Tensor>>& read_parameters() const { return read_; }
  /// The model itself (when it is a module) and every module declared with holds().
  std::vector<ModuleRef> modules() const {
    auto out = detail::module_refs_of(model_);
    out.insert(out.end(), held_.begin(), held_.end());
    return out;
  }

  Model& model() { return model_; }
  const Model& model() const { return model_; }
  const std::string& name() const { return name_; }
  std::vector<torch::Tensor> parameters() const { return detail::model_parameters(model_); }

 private:
  Model model_;
  std::string name_;
  std::vector<ModuleRef> held_;
  std::vector<std::pair<std::string, torch::Tensor>> read_;
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
    torch::Tensor x0 = detail::call_named("Generator", name_, z, model_, cond, z);
    TORCH_CHECK(x0.defined() && x0.dim() >= 1 && x0.size(0) == z.size(0), "diffinstruct::Generator(", name_,
                "): expected the model to return a batch of ", z.size(0), " samples, got shape ", detail::shape_str(x0));
    return x0;
  }

  std::vector<ModuleRef> modules() const { return detail::module_refs_of(model_); }
  Model& model() { return model_; }
  const Model& model() const { return model_; }
  const std::string& name() const { return name_; }
  std::vector<torch::Tensor> parameters() const { return detail::model_parameters(model_); }

 private:
  Model model_;
  std::string name_;
};

} // namespace diffinstruct
