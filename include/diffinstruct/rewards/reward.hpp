#pragma once
/// \file The Reward policy family: an explicit, differentiable reward r(x0, c) (docs/math.md §2.4).
///
/// Requirements of a Reward policy `R` for condition type `C` (see docs/policies.md#rewards):
///   static constexpr bool is_null;                        // true only for NoReward (the trainer skips it)
///   static constexpr const char* name;
///   torch::Tensor operator()(const torch::Tensor& x0, const C& c);   // per-sample reward [B]
/// Optional:
///   std::vector<ModuleRef> modules() const;   // every module the reward uses (core/module_ref.hpp)
/// The reward is frozen: the trainer puts every module it declares in eval mode with no parameter
/// gradients, and refuses at its first step a reward whose graph reaches any other parameter that
/// requires grad. The gradient reaches the generator through x0 only. The generator loss adds
/// L_rew = −α_rew · r(x0, c) per sample.

#include <diffinstruct/core/checks.hpp>
#include <diffinstruct/core/condition.hpp>

#include <type_traits>

namespace diffinstruct {

/// No explicit reward (SIM, DI: α_rew = 0). Copy this to write your own.
struct NoReward {
  static constexpr bool is_null = true;
  static constexpr const char* name = "none";
  template <class Cond>
  torch::Tensor operator()(const torch::Tensor& x0, const Cond&) {
    return torch::zeros({x0.size(0)}, x0.options());
  }
};

namespace detail {
/// A reward model's output, normalised to [B]: accepts [B] or [B, 1].
inline torch::Tensor check_reward_output(const torch::Tensor& r, const torch::Tensor& x0, const char* component) {
  TORCH_CHECK(r.defined() && r.is_floating_point(), "diffinstruct::", component,
              ": expected the reward to be a floating-point tensor, got ",
              r.defined() ? c10::str(r.scalar_type()) : std::string("an undefined tensor"));
  const int64_t batch = x0.size(0);
  TORCH_CHECK((r.dim() == 1 && r.size(0) == batch) || (r.dim() == 2 && r.size(0) == batch && r.size(1) == 1),
              "diffinstruct::", component, ": expected a per-sample reward of shape [", batch, "] or [", batch,
              ", 1], got ", r.sizes());
  return r.reshape({batch});
}

template <class R, class C, class = void>
struct is_reward : std::false_type {};
template <class R, class C>
struct is_reward<R, C, std::void_t<decltype(bool{R::is_null}), decltype(static_cast<const char*>(R::name)),
                                   decltype(torch::Tensor(std::declval<R&>()(std::declval<const torch::Tensor&>(),
                                                                             std::declval<const C&>())))>>
    : std::true_type {};
} // namespace detail

/// True when `R` meets the Reward contract for condition type `C`.
template <class R, class C>
inline constexpr bool is_reward_v = detail::is_reward<R, C>::value;

template <class R, class C>
constexpr void require_reward() {
  static_assert(is_reward_v<R, C>,
                "diffinstruct: the Reward policy must provide `static constexpr bool is_null`, `static constexpr "
                "const char* name` and `torch::Tensor operator()(const torch::Tensor& x0, const Condition& c)`; "
                "see docs/policies.md#rewards");
}

/// Per-sample reward loss L_rew = −α_rew · r [B].
inline torch::Tensor reward_loss(const torch::Tensor& reward, double alpha_rew) { return -alpha_rew * reward; }

} // namespace diffinstruct
