#pragma once
/// \file Conditions on the models' device. A condition sampler driven by the trainer's CPU generator
/// returns CPU tensors, and a null condition is usually built on the CPU; the models may be on a
/// GPU. `ConditionTraits<C>::to(c, device)` (optional) moves a condition; without it the trainer
/// checks every tensor of the condition (through append_ivalues) and names the one on another device.

#include <diffinstruct/core/condition.hpp>

#include <string>
#include <type_traits>
#include <vector>

namespace diffinstruct {
namespace detail {

/// Does ConditionTraits<C> provide the optional `to(c, device)`?
template <class C, class = void>
struct has_condition_to : std::false_type {};
template <class C>
struct has_condition_to<C, std::void_t<decltype(ConditionTraits<C>::to(std::declval<const C&>(), std::declval<const c10::Device&>()))>>
    : std::true_type {};

}  // namespace detail

/// `c` on `device`: moved when ConditionTraits<C>::to exists (tensors already there are not
/// copied), checked otherwise. `what` names the condition in the error ("the null condition").
template <class C>
C condition_to_device(const C& c, const c10::Device& device, const char* what) {
  if constexpr (detail::has_condition_to<C>::value) {
    return ConditionTraits<C>::to(c, device);
  } else {
    std::vector<torch::jit::IValue> tensors;
    ConditionTraits<C>::append_ivalues(c, tensors);
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!tensors[i].isTensor()) continue;
      const auto& t = tensors[i].toTensor();
      TORCH_CHECK(!t.defined() || t.device() == device, "diffinstruct::DiStarTrainer: tensor ", i, " of ", what, " is on ", t.device(),
                  ", expected ", device, " (where the trained parameters are). Return it on that device, or give ConditionTraits of "
                  "this condition type a static to(c, device) and the trainer moves it (docs/policies.md#conditions)");
    }
    return c;
  }
}

}  // namespace diffinstruct
