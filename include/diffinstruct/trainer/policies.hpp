#pragma once
/// \file The trainer's policies as one value, and the compile-time contracts of what a trainer is
/// built from: the role wrappers (Generator<M>, Denoiser<M, P>), models callable with the condition
/// type, and the four policy families. Each broken contract is one static_assert whose message says
/// what was expected; under C++20 the same requirements are also concepts (diffinstruct::GeneratorRole,
/// ...), usable in a user's own constraints.

#include <diffinstruct/config.hpp>
#include <diffinstruct/core/condition.hpp>
#include <diffinstruct/core/roles.hpp>
#include <diffinstruct/core/module_ref.hpp>
#include <diffinstruct/divergences/divergence.hpp>
#include <diffinstruct/rewards/guidance.hpp>
#include <diffinstruct/rewards/reward.hpp>
#include <diffinstruct/schedules/schedule_base.hpp>
#include <diffinstruct/trainer/model_state.hpp>
#include <diffinstruct/trainer/options.hpp>

#include <type_traits>
#include <utility>
#include <vector>

namespace diffinstruct {

/// The policies of one trainer, built by the user and passed in whole (mlpack style).
template <class Divergence, class Guidance, class Reward, class Schedule>
struct DiStarPolicies {
  Divergence divergence{};
  Guidance guidance{};
  Reward reward{};
  Schedule schedule{};
};

namespace detail {

template <class T>
struct is_generator_role : std::false_type {};
template <class M>
struct is_generator_role<Generator<M>> : std::true_type {};
template <class T>
struct is_denoiser_role : std::false_type {};
template <class M, class P>
struct is_denoiser_role<Denoiser<M, P>> : std::true_type {};

/// Can `Model` be called on `Args...` followed by a condition of type `Cond` (as call_model does)?
template <class Model, class Cond, class Args, class = void>
struct callable_with : std::false_type {};
template <class Model, class Cond, class... Args>
struct callable_with<Model, Cond, std::tuple<Args...>, std::enable_if_t<is_script_module_v<Model>>> : std::true_type {};
template <class Model, class Cond, class... Args>
struct callable_with<Model, Cond, std::tuple<Args...>,
                     std::enable_if_t<is_native_module_v<Model> && std::is_same_v<Cond, NoCondition>,
                                      std::void_t<decltype(std::declval<Model&>()->forward(std::declval<const Args&>()...))>>>
    : std::true_type {};
template <class Model, class Cond, class... Args>
struct callable_with<Model, Cond, std::tuple<Args...>,
                     std::enable_if_t<is_native_module_v<Model> && !std::is_same_v<Cond, NoCondition>,
                                      std::void_t<decltype(std::declval<Model&>()->forward(std::declval<const Args&>()...,
                                                                                           std::declval<const Cond&>()))>>>
    : std::true_type {};
// A plain callable: asked only when it is neither kind of module (std::conjunction stops there; a
// module holder's operator() has a deduced return type that must not be instantiated here).
template <class Model, class Cond, class... Args>
struct callable_with<Model, Cond, std::tuple<Args...>,
                     std::enable_if_t<std::conjunction_v<std::bool_constant<!is_native_module_v<Model> && !is_script_module_v<Model>>,
                                                         std::conditional_t<std::is_same_v<Cond, NoCondition>,
                                                                            std::is_invocable<Model&, const Args&...>,
                                                                            std::is_invocable<Model&, const Args&..., const Cond&>>>>>
    : std::true_type {};

template <class Role, class = void>
struct model_of {
  using type = void;
};
template <class Role>
struct model_of<Role, std::void_t<typename Role::ModelType>> {
  using type = typename Role::ModelType;
};

/// g(z, c) and f(x_t, t, c) callable with the condition type.
template <class GeneratorT, class Cond>
inline constexpr bool generator_callable_v = callable_with<typename model_of<GeneratorT>::type, Cond, std::tuple<torch::Tensor>>::value;
template <class DenoiserT, class Cond>
inline constexpr bool denoiser_callable_v =
    callable_with<typename model_of<DenoiserT>::type, Cond, std::tuple<torch::Tensor, torch::Tensor>>::value;

/// Every compile-time requirement of DiStarTrainer, each with its own message. Returns true so that
/// it can sit in a static_assert of its own (the messages come first).
template <class GeneratorT, class TeacherT, class AssistantT, class Cond, class Divergence, class Guidance, class Reward, class Schedule>
constexpr bool trainer_contracts() {
  static_assert(is_generator_role<GeneratorT>::value,
                "diffinstruct::DiStarTrainer: the generator must be wrapped in its role: diffinstruct::Generator<Model>(model) (a raw "
                "module was given where the role wrapper belongs; see docs/trainer.md#setting-up)");
  static_assert(is_denoiser_role<TeacherT>::value,
                "diffinstruct::DiStarTrainer: the teacher must be wrapped in its role: diffinstruct::Denoiser<Model, Parameterization>(model, "
                "\"teacher\") (a raw module was given where the role wrapper belongs; see docs/trainer.md#setting-up)");
  static_assert(is_denoiser_role<AssistantT>::value,
                "diffinstruct::DiStarTrainer: the assistant must be wrapped in its role: diffinstruct::Denoiser<Model, Parameterization>(model, "
                "\"assistant\") (a raw module was given where the role wrapper belongs; see docs/trainer.md#setting-up)");
  static_assert(is_condition_v<Cond>, "diffinstruct::DiStarTrainer: ConditionTraits<Cond> is not specialised; see docs/policies.md#conditions");
  if constexpr (is_generator_role<GeneratorT>::value && is_denoiser_role<TeacherT>::value && is_denoiser_role<AssistantT>::value &&
                is_condition_v<Cond>) {
    static_assert(is_trainable_model_v<typename GeneratorT::ModelType>,
                  "diffinstruct::DiStarTrainer: the generator must be a torch::nn module, a TorchScript module or a pass on a shared base (adapters/shared_base.hpp): it is trained");
    static_assert(is_trainable_model_v<typename AssistantT::ModelType>,
                  "diffinstruct::DiStarTrainer: the assistant must be a torch::nn module, a TorchScript module or a pass on a shared base (adapters/shared_base.hpp): it is trained");
    static_assert(generator_callable_v<GeneratorT, Cond>,
                  "diffinstruct::DiStarTrainer: the generator's model cannot be called as g(z, c) with this condition type (forward(Tensor, "
                  "Cond), or forward(Tensor) with NoCondition); check the trainer's Cond against the model's forward");
    static_assert(denoiser_callable_v<TeacherT, Cond>,
                  "diffinstruct::DiStarTrainer: the teacher's model cannot be called as f(x_t, t, c) with this condition type (forward(Tensor, "
                  "Tensor, Cond), or forward(Tensor, Tensor) with NoCondition); check the trainer's Cond against the model's forward");
    static_assert(denoiser_callable_v<AssistantT, Cond>,
                  "diffinstruct::DiStarTrainer: the assistant's model cannot be called as f(x_t, t, c) with this condition type (forward(Tensor, "
                  "Tensor, Cond), or forward(Tensor, Tensor) with NoCondition); check the trainer's Cond against the model's forward");
  }
  static_assert(is_divergence_v<Divergence>, "diffinstruct::DiStarTrainer: Divergence does not meet the contract; see docs/policies.md#divergences");
  static_assert(is_guidance_v<Guidance>, "diffinstruct::DiStarTrainer: Guidance does not meet the contract; see docs/policies.md#guidance");
  static_assert(is_reward_v<Reward, Cond>,
                "diffinstruct::DiStarTrainer: Reward does not meet the contract for this condition type; see docs/policies.md#rewards");
  static_assert(is_schedule_v<Schedule>, "diffinstruct::DiStarTrainer: Schedule does not meet the contract; see docs/policies.md#schedules");
  if constexpr (is_guidance_v<Guidance>) {
    static_assert(!(Guidance::needs_unconditional && std::is_same_v<Cond, NoCondition>),
                  "diffinstruct::DiStarTrainer: classifier-free guidance (CfgInside, CfgOutside) needs conditions: with NoCondition "
                  "there is no unconditional prediction to guide against; use NoGuidance, or a condition type with a null condition");
  }
  return true;
}

/// Does a policy hold parameters without declaring modules (a hand-written reward with tensors)?
template <class T, class = void>
struct has_parameters : std::false_type {};
template <class T>
struct has_parameters<T, std::void_t<decltype(std::declval<T&>().parameters())>> : std::true_type {};

/// A frozen policy's own parameters, for a policy that has parameters but declares no modules.
template <class P>
void freeze_policy_parameters(P& policy) {
  if constexpr (has_parameters<P>::value && !has_modules<P>::value) {
    for (auto& p : policy.parameters()) p.requires_grad_(false);
  }
}

/// The run-time checks of a trainer's set-up that no type can express.
template <class Cond, class Source>
void check_trainer_setup(const Source& conditions, const std::vector<int64_t>& noise_shape, const DiStarTrainerOptions& options) {
  TORCH_CHECK(!noise_shape.empty(), "diffinstruct::DiStarTrainer: expected a per-sample noise shape (e.g. {4, 64, 64}), got {}");
  for (auto d : noise_shape) {
    TORCH_CHECK(d > 0, "diffinstruct::DiStarTrainer: expected positive noise dimensions, got ", c10::IntArrayRef(noise_shape));
  }
  if constexpr (!std::is_same_v<Cond, NoCondition>) {
    TORCH_CHECK(static_cast<bool>(conditions.sample), "diffinstruct::DiStarTrainer: expected a condition sampler, got an empty function");
    if constexpr (!has_condition_slice<Cond>::value) {
      TORCH_CHECK(options.micro_batches() == 1, "diffinstruct::DiStarTrainer: micro_batches > 1 needs ConditionTraits<Cond>::slice(c, "
                  "begin, end) for this condition type (docs/policies.md#conditions)");
    }
  }
}

}  // namespace detail

#if DIFFINSTRUCT_HAS_CONCEPTS
/// The trainer's requirements as C++20 concepts, for a user's own constrained code.
template <class T>
concept GeneratorRole = detail::is_generator_role<T>::value;
template <class T>
concept DenoiserRole = detail::is_denoiser_role<T>::value;
template <class D>
concept DivergencePolicy = is_divergence_v<D>;
template <class G>
concept GuidancePolicy = is_guidance_v<G>;
template <class R, class C>
concept RewardPolicy = is_reward_v<R, C>;
template <class S>
concept SchedulePolicy = is_schedule_v<S>;
template <class C>
concept Condition = is_condition_v<C>;
#endif

}  // namespace diffinstruct
