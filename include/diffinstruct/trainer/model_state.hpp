#pragma once
/// \file Named parameters and buffers of any trainable model (torch::nn or TorchScript), for
/// optimizers, freezing, EMA and checkpoints.

#include <diffinstruct/core/roles.hpp>

#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace detail {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

template <class Model>
inline constexpr bool is_trainable_model_v = is_native_module_v<Model> || is_script_module_v<Model> || is_parameter_view_v<Model>;

template <class Model>
NamedTensors named_parameters(const Model& model) {
  NamedTensors out;
  if constexpr (is_script_module_v<Model>) {
    for (const auto& p : model.named_parameters()) out.emplace_back(p.name, p.value);
  } else if constexpr (is_native_module_v<Model>) {
    for (const auto& p : model->named_parameters()) out.emplace_back(p.key(), p.value());
  } else if constexpr (is_parameter_view_v<Model>) {
    for (const auto& p : model.named_parameters()) out.emplace_back(p.first, p.second);
  }
  return out;
}

template <class Model>
NamedTensors named_buffers(const Model& model) {
  NamedTensors out;
  if constexpr (is_script_module_v<Model>) {
    for (const auto& b : model.named_buffers()) out.emplace_back(b.name, b.value);
  } else if constexpr (is_native_module_v<Model>) {
    for (const auto& b : model->named_buffers()) out.emplace_back(b.key(), b.value());
  } else if constexpr (is_parameter_view_v<Model>) {
    for (const auto& b : model.named_buffers()) out.emplace_back(b.first, b.second);
  }
  return out;
}

/// Parameters and buffers: everything a checkpoint must hold to restore the model.
template <class Model>
NamedTensors named_state(const Model& model) {
  auto out = named_parameters(model);
  for (auto& b : named_buffers(model)) out.emplace_back("buffer:" + b.first, b.second);
  return out;
}

template <class Model>
void set_requires_grad(const Model& model, bool value) {
  for (auto& p : named_parameters(model)) p.second.requires_grad_(value);
}

template <class Model>
void set_train_mode(Model& model, bool train) {
  if constexpr (is_script_module_v<Model>) model.train(train);
  else if constexpr (is_native_module_v<Model>) model->train(train);
}

} // namespace detail

/// Copies `from`'s parameters and buffers into `to` (same architecture: names and shapes must
/// match), without gradient; native and TorchScript models alike. E.g. a one-step generator
/// initialised from the teacher, or an assistant starting as a copy of it.
template <class From, class To>
void copy_state(const From& from, const To& to) {
  const auto src = detail::named_state(from);
  const auto dst = detail::named_state(to);
  TORCH_CHECK(src.size() == dst.size(), "diffinstruct::copy_state: the models hold ", src.size(), " and ", dst.size(),
              " tensors; expected the same architecture");
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < src.size(); ++i) {
    TORCH_CHECK(src[i].first == dst[i].first && src[i].second.sizes() == dst[i].second.sizes(), "diffinstruct::copy_state: tensor ", i,
                " is '", src[i].first, "' ", src[i].second.sizes(), " in the source but '", dst[i].first, "' ", dst[i].second.sizes(),
                " in the target");
    dst[i].second.detach().copy_(src[i].second);
  }
}

} // namespace diffinstruct
