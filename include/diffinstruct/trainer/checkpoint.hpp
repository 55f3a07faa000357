#pragma once
/// \file Checkpoints of DiStarTrainer: one file restores everything (generator, EMA, assistant, both
/// optimizers, step, RNG state, options) and records what defines the run (options, policies,
/// shapes, world size).
///
/// Format: a `.safetensors` file (io/safetensors.hpp; Python's `safetensors` opens it) with tensors
/// `generator/<name>`, `assistant/<name>` (parameters, and buffers as `buffer:<name>`),
/// `ema/<parameter name>`, `optim/{generator,assistant}/...` (trainer/optimizer_state.hpp) and `rng`;
/// `__metadata__` holds `format` (= diffinstruct-checkpoint/2), `step`, counters, `options.*` (every
/// trainer option, exactly), `run.*` (the run definition) and a CRC-32C of every tensor and of the
/// header.
///
/// Guarantees (docs/reliability.md):
/// * Atomic and durable: written to a uniquely named temporary beside the target, fsync'd, renamed
///   over it, the folder fsync'd before and after; `path` is at every moment the old or the new
///   complete checkpoint. `keep_checkpoints` older versions stay as `path.1`, `path.2`, ...
/// * Verified: load() checks the header's and every tensor's checksum before anything changes, so a
///   flipped bit anywhere is an error naming the file (and the tensor), and the trainer is untouched.
/// * Streamed: save copies one tensor at a time to the host; load reads the file twice (verify, then
///   commit) straight into each live tensor, on its device and in its dtype: host memory never holds
///   the checkpoint.
/// * Data parallel: every rank calls save(); rank 0 writes and publishes "ok" or its error, and the
///   other ranks wait for that as long as the write takes (they fail at once if rank 0 dies).

#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/trainer/di_star_trainer.hpp>
#include <diffinstruct/trainer/optimizer_state.hpp>

#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>

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
  o.seed(static_cast<uint64_t>(integer("seed")));
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

template <class G, class T, class A, class C, class D, class Gd, class R, class S>
std::vector<std::pair<std::string, std::string>> DiStarTrainer<G, T, A, C, D, Gd, R, S>::run_definition() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [k, v] : detail::options_to_text(options_)) {
    if (k != "keep_checkpoints") out.emplace_back("options." + k, v);  // how many files are kept does not define the run
  }
  out.emplace_back("policy.divergence", detail::describe_policy(policies_.divergence));
  out.emplace_back("policy.guidance", detail::describe_policy(policies_.guidance));
  out.emplace_back("policy.reward", detail::describe_policy(policies_.reward));
  out.emplace_back("policy.schedule", detail::describe_policy(policies_.schedule));
  out.emplace_back("shape.noise", detail::shape_text(noise_shape_));
  out.emplace_back("world_size", std::to_string(world()));
  out.emplace_back("optimizer.generator", detail::optimizer_type(*generator_opt_));
  out.emplace_back("optimizer.assistant", detail::optimizer_type(*assistant_opt_));
  return out;
}

template <class G, class T, class A, class C, class D, class Gd, class R, class S>
void DiStarTrainer<G, T, A, C, D, Gd, R, S>::save(const std::string& path) {
  // Named by step and path (and a count for repeats), so that a save called on rank 0 alone does not
  // shift which report the other ranks wait for at the next save.
  const std::string base = "diffinstruct/save/" + std::to_string(step_) + "/" + path;
  const std::string key = base + "/" + std::to_string(saves_[base]++);
  if (dp_ && dp_->rank() != 0) {
    // Rank 0 writes; its outcome reaches every rank, however long the write takes.
    const std::string status = dp_->await_status(key);
    TORCH_CHECK(status == "ok", "diffinstruct::DiStarTrainer::save: rank 0 could not write the checkpoint '", path, "': ", status);
    return;
  }
  std::exception_ptr failure;
  std::string message = "ok";
  try {
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    std::map<std::string, std::string> meta;
    for (const auto& [n, t] : detail::trained_state(generator_named_, generator_.model())) tensors.emplace_back("generator/" + n, t.detach());
    for (const auto& [n, t] : detail::trained_state(assistant_named_, assistant_.model())) tensors.emplace_back("assistant/" + n, t.detach());
    const auto& gen_named = generator_named_;
    for (size_t i = 0; i < ema_.shadow().size(); ++i) tensors.emplace_back("ema/" + gen_named[i].first, ema_.shadow()[i]);
    detail::optimizer_to_record(*generator_opt_, gen_named, "optim/generator", "generator", tensors, meta);
    detail::optimizer_to_record(*assistant_opt_, assistant_named_, "optim/assistant", "assistant", tensors, meta);
    tensors.emplace_back("rng", rng_.get_state());
    const std::pair<const GradScaler*, const char*> scalers[] = {{&generator_scaler_, "generator"}, {&assistant_scaler_, "assistant"}};
    for (const auto& [scaler, role] : scalers) {
      if (!scaler->enabled()) continue;
      tensors.emplace_back(std::string("scaler/") + role + "/scale", scaler->scale_tensor().to(torch::kCPU));
      tensors.emplace_back(std::string("scaler/") + role + "/growth_tracker", scaler->growth_tracker_tensor().to(torch::kCPU));
    }
    meta["format"] = detail::kCheckpointFormat;
    meta["step"] = std::to_string(step_);
    meta["non_finite_total"] = std::to_string(non_finite_total_);
    meta["skips_in_row.generator"] = std::to_string(skips_in_row_[kGeneratorPhase]);
    meta["skips_in_row.assistant"] = std::to_string(skips_in_row_[kAssistantPhase]);
    for (const auto& [k, v] : detail::options_to_text(options_)) meta["options." + k] = v;
    for (const auto& [k, v] : run_definition()) meta["run." + k] = v;
    io::replace_file_atomically(
        path, [&](const std::string& tmp) { io::write_safetensors(tmp, tensors, meta, /*checksums=*/true, /*durable=*/true); },
        options_.keep_checkpoints(), "checkpoint '" + path + "'");
  } catch (const c10::Error& e) {
    failure = std::current_exception();
    message = e.what_without_backtrace();
  } catch (const std::exception& e) {
    failure = std::current_exception();
    message = e.what();
  }
  if (dp_) dp_->publish_status(key, message);
  if (failure) {
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer::save: cannot write the checkpoint '", path, "': ", message);
  }
}

template <class G, class T, class A, class C, class D, class Gd, class R, class S>
void DiStarTrainer<G, T, A, C, D, Gd, R, S>::load(const std::string& path, ResumeMode mode) {
  TORCH_CHECK(std::filesystem::is_regular_file(path), "diffinstruct::DiStarTrainer::load: no checkpoint file at '", path, "'");
  const std::string where = "checkpoint '" + path + "'";
  std::unique_ptr<io::SafetensorsFile> file_holder;
  DiStarTrainerOptions options = options_;
  std::unique_ptr<torch::optim::Optimizer> new_gen_opt, new_asst_opt;
  const auto gen_live = detail::trained_state(generator_named_, generator_.model());
  const auto asst_live = detail::trained_state(assistant_named_, assistant_.model());
  const auto& gen_params = generator_named_;
  const auto& asst_params = assistant_named_;
  bool ema_from_generator = false;
  std::vector<std::string> notes;
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> scaler_states;  // (role, (scale, growth tracker))
  // Phase 1: read and check everything; nothing of this trainer changes yet.
  try {
    file_holder = std::make_unique<io::SafetensorsFile>(path);
    const auto& file = *file_holder;
    const auto& meta = file.metadata();
    const auto format = meta.find("format");
    TORCH_CHECK(format != meta.end() && format->second == detail::kCheckpointFormat, "'", path, "' is not a checkpoint of this version (format ",
                format == meta.end() ? std::string("missing") : format->second, ", expected ", detail::kCheckpointFormat, ")");
    file.verify_checksums();
    // The run definition: compare, then refuse, apply or report as `mode` says.
    std::map<std::string, std::string> saved, live;
    for (const auto& [k, v] : meta) {
      if (k.rfind("run.", 0) == 0) saved[k.substr(4)] = v;
    }
    for (const auto& [k, v] : run_definition()) {
      live[k] = v;
      // A checkpoint from before an option existed ran with its default.
      if (!saved.count(k) && k.rfind("options.", 0) == 0 && detail::option_added_later(k.substr(8)))
        saved[k] = detail::later_option_default(k.substr(8));
    }
    std::set<std::string> keys;
    for (const auto& kv : saved) keys.insert(kv.first);
    for (const auto& kv : live) keys.insert(kv.first);
    std::string differences, structural;
    for (const auto& k : keys) {
      const auto s = saved.count(k) ? saved[k] : std::string("(absent)");
      const auto l = live.count(k) ? live[k] : std::string("(absent)");
      if (s == l) continue;
      const std::string line = "\n  " + k + ": checkpoint " + s + ", this trainer " + l;
      differences += line;
      if (k.rfind("options.", 0) != 0 && k.rfind("optimizer.", 0) != 0) structural += line;
    }
    if (mode == ResumeMode::kRequireMatch) {
      TORCH_CHECK(differences.empty(), "the run it was written by differs from this trainer's (load with ResumeMode::kUseCheckpointOptions "
                  "to take its options, or kKeepLiveOptions to keep yours):", differences);
    } else if (mode == ResumeMode::kUseCheckpointOptions) {
      TORCH_CHECK(structural.empty(), "its policies, shapes or world size differ from this trainer's (ResumeMode::kKeepLiveOptions "
                  "resumes anyway):", structural);
      options = detail::options_from_text(meta, path);
      // How this run computes stays this trainer's choice.
      options.checkpoint_generator(options_.checkpoint_generator()).checkpoint_teacher(options_.checkpoint_teacher());
      options.checkpoint_assistant(options_.checkpoint_assistant()).checkpoint_reward(options_.checkpoint_reward());
      options.measure_memory(options_.measure_memory()).micro_batches(options_.micro_batches());
      TORCH_CHECK(options.batch_size() % options.micro_batches() == 0, "its batch size ", options.batch_size(), " is not divisible by this "
                  "trainer's micro_batches ", options.micro_batches());
      check_precision_supported(options.precision(), tensor_options_.device(), "its precision");
      check_master_weights(options.precision());
      if (generator_opt_kind_ != detail::OptimizerKind::kUser) {
        new_gen_opt = detail::make_adam(generator_params_, options.generator_adam());
        new_asst_opt = detail::make_adam(assistant_params_, options.assistant_adam());
      }
    } else if (!differences.empty()) {
      notes.push_back("diffinstruct::DiStarTrainer::load: resuming " + where + " with this trainer's options and policies; they differ:" +
                      differences);
    }
    // Models: the same tensors, names and shapes.
    auto check_model = [&](const detail::NamedTensors& state, const std::string& role) {
      std::set<std::string> expected;
      for (const auto& [n, t] : state) {
        expected.insert(role + "/" + n);
        const auto* e = file.find(role + "/" + n);
        TORCH_CHECK(e, "the ", role, " has tensor '", n, "', which '", path, "' does not hold (another architecture?)");
        TORCH_CHECK(c10::IntArrayRef(e->shape) == t.sizes(), role, " tensor '", n, "' in '", path, "' has shape ",
                    c10::IntArrayRef(e->shape), ", expected ", t.sizes());
      }
      for (const auto& e : file.tensors()) {
        TORCH_CHECK(e.name.rfind(role + "/", 0) != 0 || expected.count(e.name), "'", path, "' holds ", role, " tensor '",
                    e.name.substr(role.size() + 1), "', which this trainer's ", role, " does not have (another architecture?)");
      }
    };
    check_model(gen_live, "generator");
    check_model(asst_live, "assistant");
    if (options.ema_decay() > 0) {
      for (const auto& [n, t] : gen_params) {
        const auto* e = file.find("ema/" + n);
        if (!e && mode == ResumeMode::kKeepLiveOptions) {
          ema_from_generator = true;
          continue;
        }
        TORCH_CHECK(e, "'", path, "' has no EMA of generator parameter '", n, "' (it was saved without an EMA)");
        TORCH_CHECK(c10::IntArrayRef(e->shape) == t.sizes(), "EMA tensor '", n, "' in '", path, "' has shape ", c10::IntArrayRef(e->shape),
                    ", expected ", t.sizes());
      }
      if (ema_from_generator) notes.push_back("diffinstruct::DiStarTrainer::load: " + where + " has no EMA; it starts from the loaded generator");
    }
    detail::check_optimizer_record(new_gen_opt ? *new_gen_opt : *generator_opt_, gen_params, "optim/generator", "generator", file);
    detail::check_optimizer_record(new_asst_opt ? *new_asst_opt : *assistant_opt_, asst_params, "optim/assistant", "assistant", file);
    const auto& rng = file.at("rng");
    TORCH_CHECK(rng.dtype == torch::kUInt8 && c10::IntArrayRef(rng.shape) == rng_.get_state().sizes(), "the RNG state in '", path,
                "' has shape ", c10::IntArrayRef(rng.shape), ", expected ", rng_.get_state().sizes());
    for (const char* k : {"step", "non_finite_total", "skips_in_row.generator", "skips_in_row.assistant"}) {
      TORCH_CHECK(meta.count(k), "'", path, "' has no '", k, "'");
    }
    // Loss scales: read and checked now, applied in phase 2 (a run without scaling has none).
    if (options.scales_losses()) {
      for (const char* role : {"generator", "assistant"}) {
        const auto* scale = file.find(std::string("scaler/") + role + "/scale");
        const auto* tracker = file.find(std::string("scaler/") + role + "/growth_tracker");
        if (!scale || !tracker) {
          notes.push_back(c10::str("diffinstruct::DiStarTrainer::load: ", where, " has no ", role, " loss scale (it was saved without "
                                   "loss scaling); it starts at init_scale ", options.grad_scaler().init_scale()));
          continue;
        }
        TORCH_CHECK(scale->dtype == torch::kFloat && c10::IntArrayRef(scale->shape) == c10::IntArrayRef({1}) &&
                        tracker->dtype == torch::kInt && c10::IntArrayRef(tracker->shape) == c10::IntArrayRef({1}),
                    "the ", role, " loss scale in '", path, "' is not a float32 [1] scale and an int32 [1] growth tracker");
        const double value = file.read(std::string("scaler/") + role + "/scale").item<double>();
        const int64_t count = file.read(std::string("scaler/") + role + "/growth_tracker").item<int>();
        TORCH_CHECK(std::isfinite(value) && value > 0 && count >= 0 && count < options.grad_scaler().growth_interval(), "the ", role,
                    " loss scale in '", path, "' is ", value, " with growth tracker ", count, "; expected a finite scale > 0 and a tracker "
                    "in [0, growth_interval = ", options.grad_scaler().growth_interval(), ")");
        scaler_states.emplace_back(role, std::make_pair(value, count));
      }
    }
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer::load: cannot restore ", where, " (nothing was changed): ", msg);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer::load: ", where, " is corrupt or truncated (nothing was changed): ", e.what());
  }
  const auto& file = *file_holder;
  const auto& meta = file.metadata();
  auto counter = [&](const char* k) {
    char* end = nullptr;
    const long long v = std::strtoll(meta.at(k).c_str(), &end, 10);
    TORCH_CHECK(end && *end == '\0' && v >= 0, "diffinstruct::DiStarTrainer::load: '", k, "' in '", path, "' is '", meta.at(k), "'");
    return static_cast<int64_t>(v);
  };
  const int64_t step = counter("step"), non_finite_total = counter("non_finite_total");
  const int64_t skips_g = counter("skips_in_row.generator"), skips_a = counter("skips_in_row.assistant");

  // Phase 2: commit, reading each tensor straight into its live counterpart.
  try {
    torch::NoGradGuard no_grad;
    for (const auto& [n, t] : gen_live) file.read_into("generator/" + n, t.detach());
    for (const auto& [n, t] : asst_live) file.read_into("assistant/" + n, t.detach());
    if (options.ema_decay() <= 0) {
      ema_ = ExponentialMovingAverage();
    } else if (ema_.shadow().size() != generator_params_.size() || ema_from_generator) {
      ema_ = ExponentialMovingAverage(generator_params_, options.ema_decay());  // a copy of the loaded generator
    } else {
      ema_.set_decay(options.ema_decay());
      for (size_t i = 0; i < gen_params.size(); ++i) file.read_into("ema/" + gen_params[i].first, ema_.shadow()[i]);  // in place
    }
    if (new_gen_opt) {
      generator_opt_ = std::move(new_gen_opt);
      assistant_opt_ = std::move(new_asst_opt);
      generator_opt_kind_ = detail::adam_kind(options.generator_adam());
      assistant_opt_kind_ = detail::adam_kind(options.assistant_adam());
    }
    const bool keep_live = mode == ResumeMode::kKeepLiveOptions;
    detail::optimizer_from_record(*generator_opt_, gen_params, "optim/generator", file, keep_live);
    detail::optimizer_from_record(*assistant_opt_, asst_params, "optim/assistant", file, keep_live);
    rng_.set_state(file.read("rng"));
  } catch (const std::exception& e) {
    // Only an I/O failure of a file that verified a moment ago lands here (it was changed in place).
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer::load: reading ", where, " failed after it was verified, part-way through restoring; "
                "this trainer is inconsistent, load a checkpoint again: ", e.what());
  }
  options_ = options;
  sample_shape_ = options_.sample_shape().empty() ? noise_shape_ : options_.sample_shape();
  build_scalers();  // the (possibly new) options' loss scaling, then the saved scales
  for (const auto& [role, state] : scaler_states) (role == "generator" ? generator_scaler_ : assistant_scaler_).set_state(state.first, state.second);
  step_ = step;
  non_finite_total_ = non_finite_total;
  skips_in_row_[kGeneratorPhase] = skips_g;
  skips_in_row_[kAssistantPhase] = skips_a;
  if (sink_) {
    for (const auto& n : notes) sink_(n);
  }
  broadcast_state();  // data-parallel: every rank continues from rank 0's values
}

} // namespace diffinstruct
