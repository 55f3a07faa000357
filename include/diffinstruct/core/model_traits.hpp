#pragma once
/// \file What kind of model a type is (torch::nn module holder or shared_ptr, TorchScript module, or
/// a plain callable), and how to call it and list its parameters whatever it is.
///
/// Call signatures (the condition argument is omitted for `NoCondition`):
///   generator  g(z, c)          -> x0     [B, ...]
///   denoiser   f(x_t, t, c)     -> prediction in its parameterization, shape of x_t
///   reward     r(x0, c)         -> [B] per-sample reward

#include <diffinstruct/core/condition.hpp>

#include <functional>
#include <memory>
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

/// Does a callable model say which parameters it computes with (`named_parameters()` and
/// `named_buffers()`, lists of (name, tensor))? A role's pass on a module shared with other roles does
/// (adapters/shared_base.hpp): it sees the module less the other roles' adapters.
template <class T, class = void>
struct has_named_parameters : std::false_type {};
template <class T>
struct has_named_parameters<T, std::void_t<decltype(std::declval<const T&>().named_parameters().front().second),
                                           decltype(std::declval<const T&>().named_buffers())>> : std::true_type {};
template <class T>
inline constexpr bool is_parameter_view_v = !is_native_module_v<T> && !is_script_module_v<T> && has_named_parameters<std::decay_t<T>>::value;

/// The trainable parameters of a model (empty for plain callables, which own none we can see).
template <class Model>
std::vector<torch::Tensor> model_parameters(const Model& model) {
  if constexpr (is_script_module_v<Model>) {
    std::vector<torch::Tensor> out;
    for (const auto& p : model.parameters()) out.push_back(p);
    return out;
  } else if constexpr (is_native_module_v<Model>) {
    return model->parameters();
  } else if constexpr (is_parameter_view_v<Model>) {
    std::vector<torch::Tensor> out;
    for (const auto& p : model.named_parameters()) out.push_back(p.second);
    return out;
  } else {
    return {};
  }
}

} // namespace detail

} // namespace diffinstruct
