#pragma once
/// \file Restoring a checkpoint written by save_checkpoint (trainer/checkpoint.hpp): in two phases,
/// so that a missing, corrupt, truncated or mismatched file changes nothing. Phase 1 reads and checks
/// everything (format, every checksum, the run definition against ResumeMode, every tensor's name
/// and shape, the optimizers' records, the RNG state, the counters, the loss scales); phase 2 reads
/// each tensor straight into its live counterpart, on its device and in its dtype.

#include <diffinstruct/trainer/checkpoint.hpp>

namespace diffinstruct {

/// Restores `path` into the trainer behind `st`, verifying every tensor's checksum and the run
/// definition (ResumeMode) first; on a missing, corrupt, truncated or mismatched file throws an
/// error naming the file and leaves the trainer untouched.
inline void load_checkpoint(CheckpointState& st, const std::string& path, ResumeMode mode) {
  TORCH_CHECK(std::filesystem::is_regular_file(path), "diffinstruct::DiStarTrainer::load: no checkpoint file at '", path, "'");
  const std::string where = "checkpoint '" + path + "'";
  std::unique_ptr<io::SafetensorsFile> file_holder;
  DiStarTrainerOptions options = st.options;
  std::unique_ptr<torch::optim::Optimizer> new_gen_opt, new_asst_opt;
  const auto gen_live = st.generator.checkpointed_state();
  const auto asst_live = st.assistant.checkpointed_state();
  const auto& gen_params = st.generator.named_parameters();
  const auto& asst_params = st.assistant.named_parameters();
  bool ema_from_generator = false;
  std::vector<std::string> notes;
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> scaler_states;  // (role, (scale, growth tracker))
  // Phase 1: read and check everything; nothing of this trainer changes yet.
  try {
    file_holder = std::make_unique<io::SafetensorsFile>(path);
    const auto& file = *file_holder;
    const auto& meta = file.metadata();
    const auto format = meta.find("format");
    TORCH_CHECK(format != meta.end() && format->second == kCheckpointFormat, "'", path, "' is not a checkpoint of this version (format ",
                format == meta.end() ? std::string("missing") : format->second, ", expected ", kCheckpointFormat, ")");
    file.verify_checksums();
    // The run definition: compare, then refuse, apply or report as `mode` says.
    std::map<std::string, std::string> saved, live;
    for (const auto& [k, v] : meta) {
      if (k.rfind("run.", 0) == 0) saved[k.substr(4)] = v;
    }
    for (const auto& [k, v] : st.run_definition) {
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
      // How this run computes stays this trainer's choice (options outside the run definition).
      const auto& live = st.options;
      options.checkpoint_generator(live.checkpoint_generator()).checkpoint_teacher(live.checkpoint_teacher());
      options.checkpoint_assistant(live.checkpoint_assistant()).checkpoint_reward(live.checkpoint_reward());
      options.measure_memory(live.measure_memory()).micro_batches(live.micro_batches()).release_gradients(live.release_gradients());
      TORCH_CHECK(options.batch_size() % options.micro_batches() == 0, "its batch size ", options.batch_size(), " is not divisible by this "
                  "trainer's micro_batches ", options.micro_batches());
      check_precision_supported(options.precision(), st.device, "its precision");
      st.generator.check_master_weights(options.precision());
      st.assistant.check_master_weights(options.precision());
      if (st.generator.optimizer_kind() != detail::OptimizerKind::kUser) {
        new_gen_opt = detail::make_adam(st.generator.parameters(), options.generator_adam());
        new_asst_opt = detail::make_adam(st.assistant.parameters(), options.assistant_adam());
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
    detail::check_optimizer_record(new_gen_opt ? *new_gen_opt : st.generator.optimizer(), gen_params, "optim/generator", "generator", file);
    detail::check_optimizer_record(new_asst_opt ? *new_asst_opt : st.assistant.optimizer(), asst_params, "optim/assistant", "assistant", file);
    const auto& rng = file.at("rng");
    TORCH_CHECK(rng.dtype == torch::kUInt8 && c10::IntArrayRef(rng.shape) == st.rng.get_state().sizes(), "the RNG state in '", path,
                "' has shape ", c10::IntArrayRef(rng.shape), ", expected ", st.rng.get_state().sizes());
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
    auto& ema = st.generator.ema();
    if (options.ema_decay() <= 0) {
      ema = ExponentialMovingAverage();
    } else {
      // A trainer built without an EMA (decay 0) that takes the checkpoint's options gains one: the
      // checkpoint's, not a copy of the generator.
      if (ema.shadow().size() != gen_params.size() || ema_from_generator) st.generator.start_ema(options.ema_decay());  // a copy of the loaded generator
      ema.set_decay(options.ema_decay());
      if (!ema_from_generator) {
        for (size_t i = 0; i < gen_params.size(); ++i) file.read_into("ema/" + gen_params[i].first, ema.shadow()[i]);  // in place
      }
    }
    if (new_gen_opt) {
      st.generator.replace_optimizer(std::move(new_gen_opt), detail::adam_kind(options.generator_adam()));
      st.assistant.replace_optimizer(std::move(new_asst_opt), detail::adam_kind(options.assistant_adam()));
    }
    const bool keep_live = mode == ResumeMode::kKeepLiveOptions;
    detail::optimizer_from_record(st.generator.optimizer(), gen_params, "optim/generator", file, keep_live);
    detail::optimizer_from_record(st.assistant.optimizer(), asst_params, "optim/assistant", file, keep_live);
    st.rng.set_state(file.read("rng"));
  } catch (const std::exception& e) {
    // Only an I/O failure of a file that verified a moment ago lands here (it was changed in place).
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer::load: reading ", where, " failed after it was verified, part-way through restoring; "
                "this trainer is inconsistent, load a checkpoint again: ", e.what());
  }
  st.options = options;
  // The (possibly new) options' loss scaling, then the saved scales.
  st.generator.build_scaler(st.options, st.device);
  st.assistant.build_scaler(st.options, st.device);
  for (const auto& [role, state] : scaler_states) (role == "generator" ? st.generator : st.assistant).scaler().set_state(state.first, state.second);
  st.step = step;
  st.non_finite_total = non_finite_total;
  st.generator.skips_in_row() = skips_g;
  st.assistant.skips_in_row() = skips_a;
  if (st.sink && *st.sink) {
    for (const auto& n : notes) (*st.sink)(n);
  }
}


}  // namespace diffinstruct
