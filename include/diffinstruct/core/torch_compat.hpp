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

} // namespace compat
} // namespace diffinstruct
