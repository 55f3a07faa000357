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
///
/// The functions here (save_checkpoint; load_checkpoint in checkpoint_load.hpp) see a trainer only
/// through CheckpointState (references to its live state), so that the trainer includes them and
/// not the other way round.

#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/precision/precision.hpp>
#include <diffinstruct/trainer/checkpoint_options.hpp>
#include <diffinstruct/trainer/collectives.hpp>
#include <diffinstruct/trainer/optimizer_state.hpp>
#include <diffinstruct/trainer/trained_role.hpp>

#include <ATen/core/Generator.h>

#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {

inline constexpr const char* kCheckpointFormat = "diffinstruct-checkpoint/2";

/// What a checkpoint saves and restores of a trainer: references to the trainer's live state
/// (DiStarTrainer builds one for each save and load).
struct CheckpointState {
  TrainedRole& generator;
  TrainedRole& assistant;
  at::Generator& rng;
  DiStarTrainerOptions& options;
  int64_t& step;
  int64_t& non_finite_total;
  /// The trainer's run definition now (options, policies, shapes, world size): stored, and compared on load.
  std::vector<std::pair<std::string, std::string>> run_definition;
  c10::Device device;
  Collectives* ranks = nullptr;                                   ///< data-parallel collectives, or null
  const std::function<void(const std::string&)>* sink = nullptr;  ///< where load's notes go
  std::map<std::string, int64_t>* saves = nullptr;                ///< saves per (step, path), for the ranks' reports
};

/// Saves everything needed to resume exactly: atomic and durable (a uniquely named temporary file,
/// fsync, rename, fsync of the folder), keeping `keep_checkpoints` files. Data-parallel: every rank
/// calls it; rank 0 writes, and its success or failure reaches every rank.
inline void save_checkpoint(CheckpointState& st, const std::string& path) {
  // Named by step and path (and a count for repeats), so that a save called on rank 0 alone does not
  // shift which report the other ranks wait for at the next save.
  const std::string base = "diffinstruct/save/" + std::to_string(st.step) + "/" + path;
  const std::string key = base + "/" + std::to_string((*st.saves)[base]++);
  if (st.ranks && st.ranks->rank() != 0) {
    // Rank 0 writes; its outcome reaches every rank, however long the write takes.
    const std::string status = st.ranks->await_status(key);
    TORCH_CHECK(status == "ok", "diffinstruct::DiStarTrainer::save: rank 0 could not write the checkpoint '", path, "': ", status);
    return;
  }
  std::exception_ptr failure;
  std::string message = "ok";
  try {
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    std::map<std::string, std::string> meta;
    TrainedRole* const roles[] = {&st.generator, &st.assistant};
    for (const auto* role : roles) {
      for (const auto& [n, t] : role->checkpointed_state()) tensors.emplace_back(std::string(role->name()) + "/" + n, t.detach());
    }
    const auto& gen_named = st.generator.named_parameters();
    const auto& ema = st.generator.ema().shadow();
    for (size_t i = 0; i < ema.size(); ++i) tensors.emplace_back("ema/" + gen_named[i].first, ema[i]);
    for (auto* role : roles) {
      detail::optimizer_to_record(role->optimizer(), role->named_parameters(), std::string("optim/") + role->name(), role->name(), tensors,
                                  meta);
    }
    tensors.emplace_back("rng", st.rng.get_state());
    for (const auto* role : roles) {
      if (!role->scaler().enabled()) continue;
      const std::string prefix = std::string("scaler/") + role->name();
      tensors.emplace_back(prefix + "/scale", role->scaler().scale_tensor().to(torch::kCPU));
      tensors.emplace_back(prefix + "/growth_tracker", role->scaler().growth_tracker_tensor().to(torch::kCPU));
    }
    meta["format"] = kCheckpointFormat;
    meta["step"] = std::to_string(st.step);
    meta["non_finite_total"] = std::to_string(st.non_finite_total);
    meta["skips_in_row.generator"] = std::to_string(st.generator.skips_in_row());
    meta["skips_in_row.assistant"] = std::to_string(st.assistant.skips_in_row());
    for (const auto& [k, v] : detail::options_to_text(st.options)) meta["options." + k] = v;
    for (const auto& [k, v] : st.run_definition) meta["run." + k] = v;
    io::replace_file_atomically(
        path, [&](const std::string& tmp) { io::write_safetensors(tmp, tensors, meta, /*checksums=*/true, /*durable=*/true); },
        st.options.keep_checkpoints(), "checkpoint '" + path + "'");
  } catch (const c10::Error& e) {
    failure = std::current_exception();
    message = e.what_without_backtrace();
  } catch (const std::exception& e) {
    failure = std::current_exception();
    message = e.what();
  }
  if (st.ranks) st.ranks->publish_status(key, message);
  if (failure) {
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer::save: cannot write the checkpoint '", path, "': ", message);
  }
}

}  // namespace diffinstruct

