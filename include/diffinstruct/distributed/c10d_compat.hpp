#pragma once
/// \file The one LibTorch version difference this library meets, kept in one place.
///
/// In LibTorch 1.13 a c10d backend such as ProcessGroupGloo *is* a `c10d::ProcessGroup`; from 2.0 on
/// it is a `c10d::Backend` that a ProcessGroup wraps. Both spell allreduce, broadcast and barrier the
/// same way, so code that holds a backend names its type through `C10dBackend` and stays one code
/// path. (docs/compatibility.md lists what is tested against which version.)

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/version.h>

namespace diffinstruct {
namespace compat {

#if TORCH_VERSION_MAJOR >= 2
using C10dBackend = c10d::Backend;
#else
using C10dBackend = c10d::ProcessGroup;
#endif

}  // namespace compat
}  // namespace diffinstruct
