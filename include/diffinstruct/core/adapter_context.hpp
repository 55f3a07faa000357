#pragma once
/// \file Which layer adapters are switched off on this thread: the state a forward pass depends on
/// beyond its inputs, weights, random numbers and autocast, which activation checkpointing must
/// carry into its recompute.
///
/// A `LoraDisabledScope` (adapters/lora.hpp) adds its layers here for its duration: the teacher's
/// pass on a base shared with a LoRA assistant. A block of that pass checkpointed per block is
/// recomputed in backward, after the scope has ended; `checkpoint` (memory/activation_checkpoint.hpp)
/// saves this set with the forward and sets it again for the recompute, so the recompute sees the
/// adapters as the forward did.

#include <algorithm>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace detail {

/// The adapters (by address) disabled on this thread.
inline std::vector<const void*>& disabled_adapters() {
  thread_local std::vector<const void*> disabled;
  return disabled;
}

inline bool adapter_disabled(const void* adapter) {
  const auto& d = disabled_adapters();
  return std::find(d.begin(), d.end(), adapter) != d.end();
}

/// Sets this thread's disabled adapters for a scope and puts the previous set back after.
class DisabledAdaptersGuard {
 public:
  explicit DisabledAdaptersGuard(std::vector<const void*> disabled) : previous_(std::move(disabled_adapters())) {
    disabled_adapters() = std::move(disabled);
  }
  ~DisabledAdaptersGuard() { disabled_adapters() = std::move(previous_); }
  DisabledAdaptersGuard(const DisabledAdaptersGuard&) = delete;
  DisabledAdaptersGuard& operator=(const DisabledAdaptersGuard&) = delete;

 private:
  std::vector<const void*> previous_;
};

}  // namespace detail
}  // namespace diffinstruct
