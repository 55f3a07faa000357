#pragma once
/// \file What one DI* iteration reports, and the callback contract.

#include <chrono>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace diffinstruct {

/// Statistics of one training iteration (K assistant updates + one generator update). Losses are
/// batch means of the per-sample terms (sum over a sample's dims, docs/math.md §2.4).
struct StepStats {
  int64_t step = 0;                 ///< iterations completed after this one
  double generator_loss = 0;        ///< L = L_div + L_cfg + L_rew
  double divergence_loss = 0;       ///< L_div (a surrogate: its value is not the divergence)
  double guidance_loss = 0;         ///< L_cfg (CFG outside only)
  double reward_loss = 0;           ///< L_rew = −α_rew mean r
  double mean_reward = 0;           ///< mean r(x0, c) (0 with NoReward)
  double assistant_loss = 0;        ///< mean DSM loss over the K assistant updates
  double generator_grad_norm = 0;   ///< before clipping
  double assistant_grad_norm = 0;   ///< before clipping, last of the K updates
  int64_t non_finite = 0;           ///< updates dropped this iteration for non-finite loss or gradient
  bool generator_skipped = false;   ///< the generator update was dropped
  int64_t overflows = 0;            ///< updates skipped this iteration because the scaled gradients overflowed (loss scaling)
  double generator_loss_scale = 1;  ///< the loss scale of the generator's update (1 without loss scaling)
  double assistant_loss_scale = 1;  ///< the loss scale of the last assistant update
  int64_t peak_bytes = -1;          ///< with measure_memory: the most bytes the step had live at once above those live at its start (-1: not measured)
  double assistant_ms = 0;          ///< wall time of the assistant phase
  double generator_ms = 0;          ///< wall time of the generator phase
  /// Where the step's time went, summed over both phases (host wall time, milliseconds; on CUDA a
  /// pass's time is its launches' unless something waits on the device). The forwards of what is
  /// checkpointed run again in backward, and are counted there.
  struct Phases {
    double generator_forward = 0;  ///< x0 = g(z, c): the assistant phase's samples and the generator's update's
    double assistant_forward = 0;  ///< ε̂_ψ: the assistant's own update and its frozen pass in the generator's
    double teacher_forward = 0;    ///< the teacher's ε̂ (conditional and unconditional)
    double reward = 0;             ///< r(x0, c)
    double backward = 0;           ///< both roles' gradients (with the recomputes of checkpointing)
    double update = 0;             ///< the update path: rank averaging, unscale, clipping, optimizer, EMA
  } phases;
};

/// Adds the wall time of its scope to a counter of milliseconds.
class AddElapsedMs {
 public:
  explicit AddElapsedMs(double& ms) : ms_(ms), start_(std::chrono::steady_clock::now()) {}
  ~AddElapsedMs() { ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count(); }
  AddElapsedMs(const AddElapsedMs&) = delete;
  AddElapsedMs& operator=(const AddElapsedMs&) = delete;

 private:
  double& ms_;
  std::chrono::steady_clock::time_point start_;
};

namespace detail {
template <class C, class = void>
struct has_step_begin : std::false_type {};
template <class C>
struct has_step_begin<C, std::void_t<decltype(std::declval<C&>().on_step_begin(int64_t{}))>> : std::true_type {};
template <class C, class = void>
struct has_step_end : std::false_type {};
template <class C>
struct has_step_end<C, std::void_t<decltype(std::declval<C&>().on_step_end(std::declval<const StepStats&>()))>>
    : std::true_type {};

/// Runs a callback's on_step_end if it has one; a `bool` result of false asks to stop.
template <class C>
bool call_step_end(C& c, const StepStats& s) {
  if constexpr (has_step_end<C>::value) {
    if constexpr (std::is_same_v<decltype(c.on_step_end(s)), bool>) return c.on_step_end(s);
    else {
      c.on_step_end(s);
      return true;
    }
  } else {
    return true;
  }
}
} // namespace detail

} // namespace diffinstruct
