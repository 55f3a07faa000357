#pragma once
/// \file The LibTorch C++ API differences between 1.13 (Debian's) and 2.x (PyPI's wheels) that the
/// library meets outside c10d (those are in distributed/c10d_compat.hpp), in one place.
///
/// | what | 1.13 | 2.x |
/// |---|---|---|
/// | key of `torch::optim::Optimizer::state()` | the TensorImpl's address printed as a string | the `TensorImpl*` itself |
/// | `c10::Allocator::allocate` | `const` | not `const` (counting_allocator.hpp defines both) |
/// | `c10::Allocator::copy_data` | absent | pure virtual |
/// | `at::scaled_dot_product_attention` | absent (composed from matmul and softmax here) | present (fused kernels) |
/// | `_amp_foreach_non_finite_check_and_unscale_`, `_amp_update_scale_` | CUDA only | CUDA and CPU (2.4 on) |
/// | autocast state | `at::autocast::is_enabled()`, `is_cpu_enabled()`, `get_autocast_gpu_dtype()`, ... | `is_autocast_enabled(device_type)`, `get_autocast_dtype(device_type)` (2.4 on; the old names deprecated) |

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>

namespace diffinstruct {
namespace compat {

/// The key type of an optimizer's per-parameter state map.
using OptimizerStateKey = typename std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;

/// The key under which torch::optim keeps parameter `p`'s state (a template only so that the branch
/// of the other version is not compiled).
template <class Key = OptimizerStateKey>
Key optimizer_state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;  // what c10::guts::to_string does
    os << static_cast<const void*>(p.unsafeGetTensorImpl());
    return os.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

/// softmax(q kᵀ / √d) v over the last two dimensions ([..., L, d] × [..., S, d] -> [..., L, d]).
/// LibTorch 2.x has it as one op with fused CPU/CUDA kernels, which accumulate reduced precision in
/// float32 themselves (diffusers calls the same op); 1.13 has not, so it is composed there, with
/// the scores and softmax in float32 when `upcast` (diffusers' `upcast_softmax`/`upcast_attention`).
/// With `causal`, query i attends to keys 0..i only.
inline torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                                  bool upcast = false, bool causal = false) {
#if TORCH_VERSION_MAJOR >= 2
  (void)upcast;
  return at::scaled_dot_product_attention(q, k, v, {}, 0.0, causal);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  const auto compute = upcast && q.scalar_type() != torch::kDouble ? torch::kFloat : q.scalar_type();
  auto scores = torch::matmul(q.to(compute), k.to(compute).transpose(-1, -2)) * scale;
  if (causal)
    scores = scores + torch::full({q.size(-2), k.size(-2)}, -std::numeric_limits<double>::infinity(), scores.options()).triu(1);
  return torch::matmul(scores.softmax(-1).to(v.scalar_type()), v);
#endif
}

/// Whether autocast is on for CPU and CUDA, and in which dtypes: what a recompute must reproduce.
struct AutocastState {
  bool cpu = false, cuda = false;
  c10::ScalarType cpu_dtype = torch::kBFloat16, cuda_dtype = torch::kHalf;
  bool operator==(const AutocastState& o) const {
    return cpu == o.cpu && cuda == o.cuda && cpu_dtype == o.cpu_dtype && cuda_dtype == o.cuda_dtype;
  }
};

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
inline AutocastState autocast_state() {
  return {at::autocast::is_autocast_enabled(at::kCPU), at::autocast::is_autocast_enabled(at::kCUDA),
          at::autocast::get_autocast_dtype(at::kCPU), at::autocast::get_autocast_dtype(at::kCUDA)};
}
inline void set_autocast_state(const AutocastState& s) {
  at::autocast::set_autocast_enabled(at::kCPU, s.cpu);
  at::autocast::set_autocast_enabled(at::kCUDA, s.cuda);
  at::autocast::set_autocast_dtype(at::kCPU, s.cpu_dtype);
  at::autocast::set_autocast_dtype(at::kCUDA, s.cuda_dtype);
}
#else
inline AutocastState autocast_state() {
  return {at::autocast::is_cpu_enabled(), at::autocast::is_enabled(), at::autocast::get_autocast_cpu_dtype(),
          at::autocast::get_autocast_gpu_dtype()};
}
inline void set_autocast_state(const AutocastState& s) {
  at::autocast::set_cpu_enabled(s.cpu);
  at::autocast::set_enabled(s.cuda);
  at::autocast::set_autocast_cpu_dtype(s.cpu_dtype);
  at::autocast::set_autocast_gpu_dtype(s.cuda_dtype);
}
#endif

/// Whether ATen's loss-scaling ops (`_amp_foreach_non_finite_check_and_unscale_`,
/// `_amp_update_scale_`) have kernels for `device`: CUDA always, the CPU from LibTorch 2.4.
inline bool has_amp_scaler_ops(const c10::Device& device) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return device.is_cuda() || device.is_cpu();
#else
  return device.is_cuda();
#endif
}

/// Sets an autocast state for a scope and restores the previous one after (also on an exception).
/// Leaving the outermost autocast region clears autocast's cache of casted weights, as PyTorch's
/// `torch.autocast` does on exit.
class AutocastStateGuard {
 public:
  explicit AutocastStateGuard(const AutocastState& s) : previous_(autocast_state()) {
    set_autocast_state(s);
    at::autocast::increment_nesting();
  }
  ~AutocastStateGuard() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    set_autocast_state(previous_);
  }
  AutocastStateGuard(const AutocastStateGuard&) = delete;
  AutocastStateGuard& operator=(const AutocastStateGuard&) = delete;

 private:
  AutocastState previous_;
};

} // namespace compat
} // namespace diffinstruct
