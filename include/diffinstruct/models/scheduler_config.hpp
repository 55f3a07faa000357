#pragma once
/// \file A diffusers pipeline's `scheduler/scheduler_config.json` -> the noise process the models were
/// trained on (a DiscreteVPSchedule's options) and what the UNet predicts (`prediction_type`).
///
/// Only the keys that define the forward process are read: the beta table (`beta_schedule`,
/// `beta_start`, `beta_end`, `num_train_timesteps`) and `prediction_type`. Every scheduler class
/// (DDIM, PNDM, Euler, DPM-Solver, LCM, ...) of an SD 1.x/2.x/XL pipeline writes them; the rest of
/// the file (timestep spacing, step offsets, sampler settings) only says how a sampler walks that
/// process, so it is ignored. What would change the process itself and is not implemented is
/// refused by name: `trained_betas`, `rescale_betas_zero_snr`, a `beta_schedule` other than linear
/// or scaled_linear.
///
/// Example:
///   const auto sc = models::read_scheduler_config("sd-turbo/scheduler/scheduler_config.json");
///   DiscreteVPSchedule schedule(sc.options);
///   if (sc.prediction == models::Prediction::kV) ...

#include <diffinstruct/core/parameterization.hpp>
#include <diffinstruct/io/json.hpp>
#include <diffinstruct/io/small_file.hpp>
#include <diffinstruct/schedules/discrete_vp.hpp>

#include <string>

namespace diffinstruct {
namespace models {

/// What a diffusion UNet's output is (diffusers' `prediction_type`).
enum class Prediction {
  kEpsilon,  ///< "epsilon": the noise ε
  kV,        ///< "v_prediction": v = α ε − σ x0
  kSample,   ///< "sample": x0 itself
};

inline Prediction parse_prediction(const std::string& s) {
  if (s == "epsilon") return Prediction::kEpsilon;
  if (s == "v_prediction") return Prediction::kV;
  if (s == "sample") return Prediction::kSample;
  TORCH_CHECK(false, "diffinstruct::models: unknown prediction_type '", s, "' (expected epsilon, v_prediction or sample)");
  return Prediction::kEpsilon;  // not reached
}

inline const char* prediction_name(Prediction p) {
  switch (p) {
    case Prediction::kEpsilon: return "epsilon";
    case Prediction::kV: return "v_prediction";
    case Prediction::kSample: return "sample";
  }
  return "?";
}

/// Calls `f(param)` with the parameterization a run-time prediction type names — EpsPrediction,
/// VPrediction or X0Prediction (core/parameterization.hpp) — so that a trainer's Denoiser<M, Param>
/// can be chosen from a scheduler_config.json; returns what `f` returns (the same type for all three).
///
/// Example:
///   models::with_parameterization(pipe.scheduler().prediction, [&](auto param) {
///     using Param = decltype(param);
///     train(Denoiser<UNet, Param>(teacher, "teacher"), Denoiser<UNet, Param>(assistant, "assistant"));
///   });
template <class F>
decltype(auto) with_parameterization(Prediction p, F&& f) {
  switch (p) {
    case Prediction::kV: return f(VPrediction{});
    case Prediction::kSample: return f(X0Prediction{});
    case Prediction::kEpsilon: break;
  }
  return f(EpsPrediction{});
}

struct SchedulerConfig {
  DiscreteVPOptions options;  ///< the beta table (the time ranges and weightings stay the library's defaults)
  Prediction prediction = Prediction::kEpsilon;
  std::string class_name;     ///< `_class_name`, for messages ("PNDMScheduler", ...)
};

/// Parses the text of a scheduler_config.json; `what` names it in errors.
inline SchedulerConfig parse_scheduler_config(const std::string& json_text, const std::string& what) {
  const auto root = io::parse_json(json_text, what, /*max_depth=*/16);
  TORCH_CHECK(root.is_object(), "diffinstruct::models: ", what, " is not a JSON object");
  auto number = [&](const char* key, double fallback) {
    const auto* v = root.find(key);
    if (v == nullptr || v->is_null()) return fallback;
    TORCH_CHECK(v->is_number(), "diffinstruct::models: ", what, ": '", key, "' must be a number, got ", io::JsonValue::kind_name(v->kind()));
    return v->number();
  };
  auto string = [&](const char* key, const std::string& fallback) {
    const auto* v = root.find(key);
    if (v == nullptr || v->is_null()) return fallback;
    TORCH_CHECK(v->is_string(), "diffinstruct::models: ", what, ": '", key, "' must be a string, got ", io::JsonValue::kind_name(v->kind()));
    return v->string();
  };
  SchedulerConfig out;
  out.class_name = string("_class_name", "a scheduler");
  // diffusers' defaults when a key is missing (SchedulerMixin classes: linear 1e-4 -> 0.02 over 1000).
  const std::string schedule = string("beta_schedule", "linear");
  TORCH_CHECK(schedule == "linear" || schedule == "scaled_linear", "diffinstruct::models: ", what, ": beta_schedule '", schedule,
              "' is not implemented (expected linear or scaled_linear, the tables of SD 1.x, 2.x and XL)");
  out.options.beta_schedule(schedule == "linear" ? BetaSchedule::kLinear : BetaSchedule::kScaledLinear);
  out.options.beta_start(number("beta_start", 1e-4));
  out.options.beta_end(number("beta_end", 0.02));
  const double steps = number("num_train_timesteps", 1000);
  TORCH_CHECK(steps >= 2 && steps <= 100000 && steps == static_cast<double>(static_cast<int64_t>(steps)), "diffinstruct::models: ", what,
              ": num_train_timesteps must be an integer in [2, 100000], got ", steps);
  out.options.num_train_timesteps(static_cast<int64_t>(steps));
  // The library's generator range is DMD2's 20..980 of 1000; another table length scales it.
  const double n = steps;
  out.options.generator_range(TimeRange{0.02 * n, 0.98 * n});
  out.options.assistant_range(TimeRange{0, n - 1});
  if (const auto* tb = root.find("trained_betas"); tb != nullptr && !tb->is_null()) {
    TORCH_CHECK(false, "diffinstruct::models: ", what, ": trained_betas (an explicit beta table) is not implemented; expected null");
  }
  if (const auto* z = root.find("rescale_betas_zero_snr"); z != nullptr && !z->is_null()) {
    TORCH_CHECK(z->is_bool(), "diffinstruct::models: ", what, ": 'rescale_betas_zero_snr' must be true or false");
    TORCH_CHECK(!z->boolean(), "diffinstruct::models: ", what, ": rescale_betas_zero_snr = true (a zero terminal SNR table) is not implemented");
  }
  out.prediction = parse_prediction(string("prediction_type", "epsilon"));
  DiscreteVPSchedule{out.options};  // refuses betas outside (0, 1) with the schedule's own message
  return out;
}

/// Reads `path` (a scheduler_config.json of at most 1 MB).
inline SchedulerConfig read_scheduler_config(const std::string& path) {
  return parse_scheduler_config(io::read_small_file(path, uint64_t{1} << 20, "a scheduler_config.json (at most 1 MB)"), "'" + path + "'");
}

}  // namespace models
}  // namespace diffinstruct
