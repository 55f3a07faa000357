#pragma once
/// \file The trainer's options as exact text, and back: a checkpoint's `options.<name>` metadata and
/// the options part of its run definition (trainer/checkpoint.hpp).

#include <diffinstruct/core/describe.hpp>
#include <diffinstruct/trainer/options.hpp>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace detail {

inline constexpr const char* kCheckpointFormat = "diffinstruct-checkpoint/2";

inline std::string shape_text(const std::vector<int64_t>& s) { return c10::str(c10::IntArrayRef(s)); }

/// Every trainer option as exact text (checkpoint metadata `options.<name>`).
inline std::vector<std::pair<std::string, std::string>> options_to_text(const DiStarTrainerOptions& o) {
  std::vector<std::pair<std::string, std::string>> out;
  auto num = [&](const std::string& k, double v) { out.emplace_back(k, exact_number(v)); };
  auto adam = [&](const std::string& k, const AdamSettings& a) {
    num(k + ".lr", a.lr());
    num(k + ".beta1", a.beta1());
    num(k + ".beta2", a.beta2());
    num(k + ".eps", a.eps());
    num(k + ".weight_decay", a.weight_decay());
    out.emplace_back(k + ".decoupled_weight_decay", a.decoupled_weight_decay() ? "1" : "0");
  };
  out.emplace_back("batch_size", std::to_string(o.batch_size()));
  out.emplace_back("assistant_steps", std::to_string(o.assistant_steps()));
  num("alpha_rew", o.alpha_rew());
  adam("generator_adam", o.generator_adam());
  adam("assistant_adam", o.assistant_adam());
  num("generator_max_grad_norm", o.generator_max_grad_norm());
  num("assistant_max_grad_norm", o.assistant_max_grad_norm());
  num("ema_decay", o.ema_decay());
  out.emplace_back("non_finite", o.non_finite() == NonFinitePolicy::kSkip ? "skip" : "throw");
  out.emplace_back("max_consecutive_skips", std::to_string(o.max_consecutive_skips()));
  out.emplace_back("check_weights", o.check_weights() ? "1" : "0");
  out.emplace_back("sample_shape", shape_text(o.sample_shape()));
  out.emplace_back("keep_checkpoints", std::to_string(o.keep_checkpoints()));
  out.emplace_back("seed", std::to_string(o.seed()));
  out.emplace_back("precision", precision_name(o.precision()));
  out.emplace_back("loss_scaling", o.loss_scaling() == LossScaling::kAuto ? "auto" : o.loss_scaling() == LossScaling::kOn ? "on" : "off");
  num("grad_scaler.init_scale", o.grad_scaler().init_scale());
  num("grad_scaler.growth_factor", o.grad_scaler().growth_factor());
  num("grad_scaler.backoff_factor", o.grad_scaler().backoff_factor());
  out.emplace_back("grad_scaler.growth_interval", std::to_string(o.grad_scaler().growth_interval()));
  out.emplace_back("reuse_generator_samples", o.reuse_generator_samples() ? "1" : "0");
  return out;
}

/// Options added after format 2 was fixed: a checkpoint written before them has none, and means
/// their defaults (what every run did then).
inline bool option_added_later(const std::string& k) {
  return k == "precision" || k == "loss_scaling" || k.rfind("grad_scaler.", 0) == 0 || k == "reuse_generator_samples";
}

/// The default text of an option added later ("" for any other).
inline std::string later_option_default(const std::string& k) {
  if (!option_added_later(k)) return {};
  for (const auto& [key, v] : options_to_text(DiStarTrainerOptions())) {
    if (key == k) return v;
  }
  return {};
}

/// The options stored in a checkpoint's metadata; every value is parsed strictly and validated.
inline DiStarTrainerOptions options_from_text(const std::map<std::string, std::string>& meta, const std::string& path) {
  std::map<std::string, std::string> defaults;  // keeps the references get() returns alive
  auto get = [&](const std::string& k) -> const std::string& {
    const auto it = meta.find("options." + k);
    if (it == meta.end() && option_added_later(k)) return defaults[k] = later_option_default(k);
    TORCH_CHECK(it != meta.end(), "diffinstruct::DiStarTrainer::load: checkpoint '", path, "' has no option '", k, "'");
    return it->second;
  };
  auto num = [&](const std::string& k) {
    const auto& v = get(k);
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    TORCH_CHECK(!v.empty() && end && *end == '\0', "diffinstruct::DiStarTrainer::load: option '", k, "' in '", path, "' is '", v,
                "', not a number");
    return x;
  };
  auto integer = [&](const std::string& k) {
    const auto& v = get(k);
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    TORCH_CHECK(!v.empty() && end && *end == '\0' && errno == 0, "diffinstruct::DiStarTrainer::load: option '", k, "' in '", path,
                "' is '", v, "', not an integer");
    return static_cast<int64_t>(x);
  };
  auto flag = [&](const std::string& k) {
    const auto& v = get(k);
    TORCH_CHECK(v == "0" || v == "1", "diffinstruct::DiStarTrainer::load: option '", k, "' in '", path, "' is '", v, "', not 0 or 1");
    return v == "1";
  };
  auto adam = [&](const std::string& k) {
    return AdamSettings(num(k + ".lr"))
        .beta1(num(k + ".beta1"))
        .beta2(num(k + ".beta2"))
        .eps(num(k + ".eps"))
        .weight_decay(num(k + ".weight_decay"))
        .decoupled_weight_decay(flag(k + ".decoupled_weight_decay"));
  };
  DiStarTrainerOptions o;
  o.batch_size(integer("batch_size")).assistant_steps(integer("assistant_steps")).alpha_rew(num("alpha_rew"));
  o.generator_adam(adam("generator_adam")).assistant_adam(adam("assistant_adam"));
  o.generator_max_grad_norm(num("generator_max_grad_norm")).assistant_max_grad_norm(num("assistant_max_grad_norm")).ema_decay(num("ema_decay"));
  const auto& nf = get("non_finite");
  TORCH_CHECK(nf == "skip" || nf == "throw", "diffinstruct::DiStarTrainer::load: option 'non_finite' in '", path, "' is '", nf, "'");
  o.non_finite(nf == "skip" ? NonFinitePolicy::kSkip : NonFinitePolicy::kThrow);
  o.max_consecutive_skips(integer("max_consecutive_skips")).check_weights(flag("check_weights")).keep_checkpoints(integer("keep_checkpoints"));
  {
    // The seed is unsigned 64-bit, written as such: read it as such (a seed >= 2^63 is valid).
    const auto& v = get("seed");
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    TORCH_CHECK(!v.empty() && v[0] != '-' && end && *end == '\0' && errno == 0, "diffinstruct::DiStarTrainer::load: option 'seed' in '",
                path, "' is '", v, "', not an unsigned 64-bit integer");
    o.seed(static_cast<uint64_t>(x));
  }
  const auto& precision = get("precision");
  TORCH_CHECK(precision == "fp32" || precision == "bf16" || precision == "fp16", "diffinstruct::DiStarTrainer::load: option 'precision' in '",
              path, "' is '", precision, "'");
  o.precision(parse_precision(precision));
  const auto& scaling = get("loss_scaling");
  TORCH_CHECK(scaling == "auto" || scaling == "on" || scaling == "off", "diffinstruct::DiStarTrainer::load: option 'loss_scaling' in '",
              path, "' is '", scaling, "'");
  o.loss_scaling(scaling == "auto" ? LossScaling::kAuto : scaling == "on" ? LossScaling::kOn : LossScaling::kOff);
  o.grad_scaler(GradScalerOptions()
                    .init_scale(num("grad_scaler.init_scale"))
                    .growth_factor(num("grad_scaler.growth_factor"))
                    .backoff_factor(num("grad_scaler.backoff_factor"))
                    .growth_interval(integer("grad_scaler.growth_interval")));
  o.reuse_generator_samples(flag("reuse_generator_samples"));
  // sample_shape: "[a, b, c]" or "[]"
  std::string s = get("sample_shape");
  TORCH_CHECK(s.size() >= 2 && s.front() == '[' && s.back() == ']', "diffinstruct::DiStarTrainer::load: option 'sample_shape' in '", path,
              "' is '", s, "'");
  std::vector<int64_t> shape;
  std::stringstream ss(s.substr(1, s.size() - 2));
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long long d = std::strtoll(item.c_str(), &end, 10);
    TORCH_CHECK(end && (*end == '\0' || *end == ' '), "diffinstruct::DiStarTrainer::load: option 'sample_shape' in '", path, "' is '", s, "'");
    shape.push_back(d);
  }
  o.sample_shape(shape);
  o.validate();
  return o;
}

} // namespace detail
} // namespace diffinstruct
