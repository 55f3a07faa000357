#pragma once
/// \file Which layer adapters are switched off on this thread: the state a forward pass depends on
/// beyond its inputs, weights, random numbers and autocast, which activation checkpointing must
/// carry into its recompute.
///
/// A `LoraDisabledScope` (adapters/lora.hpp) adds its layers, and their parameters, here for its
/// duration: the pass of one role on a base shared with other roles' adapters. A block of that pass
/// checkpointed per block is recomputed in backward, after the scope has ended; `checkpoint`
/// (memory/activation_checkpoint.hpp) saves this state with the forward and sets it again for the
/// recompute, so the recompute sees the adapters as the forward did. It also leaves the switched-off
/// adapters' parameters out of the checkpointed call's inputs: the pass does not read them, so the
/// graph must not reach them (no gradient is computed for another role's adapters).

#include <algorithm>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace detail {

/// The adapters (by address) and their parameters (by TensorImpl address) switched off on a thread.
struct DisabledAdapters {
  std::vector<const void*> adapters, parameters;
};

/// This thread's switched-off adapters.
inline DisabledAdapters& disabled_adapters() {
  thread_local DisabledAdapters disabled;
  return disabled;
}

inline bool adapter_disabled(const void* adapter) {
  const auto& d = disabled_adapters().adapters;
  return std::find(d.begin(), d.end(), adapter) != d.end();
}

/// Is this tensor (by TensorImpl address) a parameter of a switched-off adapter?
inline bool parameter_of_disabled_adapter(const void* tensor_impl) {
  const auto& d = disabled_adapters().parameters;
  return std::find(d.begin(), d.end(), tensor_impl) != d.end();
}

/// Sets this thread's switched-off adapters for a scope and puts the previous set back after.
class DisabledAdaptersGuard {
 public:
  explicit DisabledAdaptersGuard(DisabledAdapters disabled) : previous_(std::move(disabled_adapters())) {
    disabled_adapters() = std::move(disabled);
  }
  ~DisabledAdaptersGuard() { disabled_adapters() = std::move(previous_); }
  DisabledAdaptersGuard(const DisabledAdaptersGuard&) = delete;
  DisabledAdaptersGuard& operator=(const DisabledAdaptersGuard&) = delete;

 private:
  DisabledAdapters previous_;
};

}  // namespace detail
}  // namespace diffinstruct
