#pragma once
/// \file The LibTorch C++ API differences between 1.13 (Debian's) and 2.x (PyPI's wheels) that the
/// library meets outside c10d (those are in distributed/c10d_compat.hpp), in one place.
///
/// | what | 1.13 | 2.x |
/// |---|---|---|
/// | key of `torch::optim::Optimizer::state()` | the TensorImpl's address printed as a string | the `TensorImpl*` itself |
/// | `c10::Allocator::allocate` | `const` | not `const` (counting_allocator.hpp defines both) |
/// | `c10::Allocator::copy_data` | absent | pure virtual |

#include <torch/torch.h>
#include <torch/version.h>

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

} // namespace compat
} // namespace diffinstruct
