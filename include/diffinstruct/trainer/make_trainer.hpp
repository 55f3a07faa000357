#pragma once
/// \file A DI* trainer in a few lines: make_trainer takes the three roles, then everything else by
/// value in any order — the policies, the condition source, the noise shape and the options — and
/// deduces the trainer's type from them. What is not given takes its default: pseudo-Huber with
/// c = 1, no reward, the discrete VP schedule of SD/SDXL (scaled_linear), default options. The
/// guidance is never a default when there are conditions: it is the one choice the trainer cannot
/// guess (CFG inside at one scale, outside at another, or none), so it must be given.
///
/// Example:
///   auto trainer = di::make_trainer(di::Generator(student), di::Denoiser(teacher_unet, "teacher"),
///                                   di::Denoiser(assistant_unet, "assistant"), di::CfgInside(di::GuidanceScale(8.5)),
///                                   di::ConditionSource<torch::Tensor>{sample_labels, null_label}, di::NoiseShape{4, 64, 64});
///
/// The explicit form (DiStarTrainer<8 types>(...)) stays available and builds the same trainer.

#include <diffinstruct/divergences/pseudo_huber_score.hpp>
#include <diffinstruct/rewards/reward.hpp>
#include <diffinstruct/schedules/discrete_vp.hpp>
#include <diffinstruct/trainer/di_star_trainer.hpp>

#include <initializer_list>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace diffinstruct {

/// The per-sample shape of the generator's noise z (the batch dimension excluded), for make_trainer.
struct NoiseShape {
  NoiseShape() = default;
  NoiseShape(std::initializer_list<int64_t> dims) : dims(dims) {}
  explicit NoiseShape(std::vector<int64_t> d) : dims(std::move(d)) {}
  std::vector<int64_t> dims;
};

namespace detail {

template <class T>
struct is_condition_source : std::false_type {};
template <class C>
struct is_condition_source<ConditionSource<C>> : std::true_type {};

/// A role wrapper, or a module that should have been wrapped in one.
template <class T>
inline constexpr bool role_or_module_v =
    is_generator_role<T>::value || is_denoiser_role<T>::value || is_native_module_v<T> || is_script_module_v<T>;

template <class T>
struct is_noise_shape : std::is_same<T, NoiseShape> {};
template <class T>
struct is_trainer_options : std::is_same<T, DiStarTrainerOptions> {};
template <class T>
struct is_divergence_arg : std::bool_constant<is_divergence_v<T>> {};
template <class T>
struct is_guidance_arg : std::bool_constant<is_guidance_v<T>> {};
template <class T>
struct is_schedule_arg : std::bool_constant<is_schedule_v<T>> {};

/// The condition type of a ConditionSource among Args, or NoCondition.
template <class... Args>
struct condition_of {
  using type = NoCondition;
};
template <class C, class... Rest>
struct condition_of<ConditionSource<C>, Rest...> {
  using type = C;
};
template <class First, class... Rest>
struct condition_of<First, Rest...> : condition_of<Rest...> {};

template <class Cond>
struct reward_for {
  template <class T>
  struct arg : std::bool_constant<is_reward_v<T, Cond> && !is_divergence_v<T> && !is_guidance_v<T> && !is_schedule_v<T>> {};
};

/// The first of Args satisfying Pred, or Default.
template <template <class> class Pred, class Default, class... Args>
struct first_matching {
  using type = Default;
};
template <template <class> class Pred, class Default, class First, class... Rest>
struct first_matching<Pred, Default, First, Rest...>
    : std::conditional_t<Pred<First>::value, std::common_type<First>, first_matching<Pred, Default, Rest...>> {};

template <template <class> class Pred, class... Args>
inline constexpr int count_matching = (0 + ... + (Pred<Args>::value ? 1 : 0));

/// The argument satisfying Pred, or T{} when none does.
template <template <class> class Pred, class T, class... Args>
T pick(const Args&... args) {
  if constexpr (count_matching<Pred, Args...> == 0) {
    return T{};
  } else {
    std::optional<T> out;
    auto take = [&](const auto& a) {
      if constexpr (Pred<std::decay_t<decltype(a)>>::value) out.emplace(a);
    };
    (take(args), ...);
    return std::move(*out);
  }
}

}  // namespace detail

/// Builds a DiStarTrainer from its three roles and, in any order: a divergence, a guidance, a
/// reward, a schedule (policies, by value), a ConditionSource<C> (none: NoCondition), a NoiseShape
/// (required) and DiStarTrainerOptions. Each may be given once.
///
/// It takes part in overload resolution only when its first three arguments are roles or modules,
/// so that argument-dependent lookup never takes a user's own make_trainer(seed, options) for it; a
/// module given where its role wrapper belongs is then refused with a message that says so.
template <class GeneratorT, class TeacherT, class AssistantT, class... Args,
          std::enable_if_t<detail::role_or_module_v<GeneratorT> && detail::role_or_module_v<TeacherT> &&
                               detail::role_or_module_v<AssistantT>,
                           int> = 0>
auto make_trainer(GeneratorT generator, TeacherT teacher, AssistantT assistant, Args... args) {
  using namespace detail;
  using Cond = typename condition_of<Args...>::type;
  using Divergence = typename first_matching<is_divergence_arg, PseudoHuberScore, Args...>::type;
  using Guidance = typename first_matching<is_guidance_arg, NoGuidance, Args...>::type;
  using Reward = typename first_matching<reward_for<Cond>::template arg, NoReward, Args...>::type;
  using Schedule = typename first_matching<is_schedule_arg, DiscreteVPSchedule, Args...>::type;
  constexpr int divergences = count_matching<is_divergence_arg, Args...>, guidances = count_matching<is_guidance_arg, Args...>;
  constexpr int rewards = count_matching<reward_for<Cond>::template arg, Args...>, schedules = count_matching<is_schedule_arg, Args...>;
  constexpr int sources = count_matching<is_condition_source, Args...>, shapes = count_matching<is_noise_shape, Args...>;
  constexpr int options = count_matching<is_trainer_options, Args...>;
  static_assert(divergences + guidances + rewards + schedules + sources + shapes + options == sizeof...(Args),
                "diffinstruct::make_trainer: an argument after the three roles is none of: a divergence, a guidance, a reward for this "
                "condition type, a schedule, a ConditionSource<C>, a NoiseShape, DiStarTrainerOptions (docs/trainer.md#setting-up)");
  static_assert(divergences <= 1 && guidances <= 1 && rewards <= 1 && schedules <= 1 && sources <= 1 && shapes <= 1 && options <= 1,
                "diffinstruct::make_trainer: each policy, the condition source, the noise shape and the options may be given once");
  static_assert(shapes == 1, "diffinstruct::make_trainer: the noise shape is required: NoiseShape{4, 64, 64} (per sample, without the batch)");
  static_assert(std::is_same_v<Cond, NoCondition> || guidances == 1,
                "diffinstruct::make_trainer: say how classifier-free guidance enters: CfgInside(GuidanceScale(s)), CfgOutside(GuidanceScale(s)) "
                "or NoGuidance (there is no default guidance: docs/trainer.md#setting-up)");
  using Trainer = DiStarTrainer<GeneratorT, TeacherT, AssistantT, Cond, Divergence, Guidance, Reward, Schedule>;
  return Trainer(std::move(generator), std::move(teacher), std::move(assistant),
                 DiStarPolicies<Divergence, Guidance, Reward, Schedule>{
                     pick<is_divergence_arg, Divergence>(args...), pick<is_guidance_arg, Guidance>(args...),
                     pick<reward_for<Cond>::template arg, Reward>(args...), pick<is_schedule_arg, Schedule>(args...)},
                 pick<is_condition_source, ConditionSource<Cond>>(args...), pick<is_noise_shape, NoiseShape>(args...).dims,
                 pick<is_trainer_options, DiStarTrainerOptions>(args...));
}

}  // namespace diffinstruct
