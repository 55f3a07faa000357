#pragma once
/// \file Intra-op thread count for programs (examples, benchmarks).
///
/// Debian's LibTorch 1.13 starts with a single intra-op thread unless OMP_NUM_THREADS is set
/// (measured: at::get_num_threads() == 1 on a 2-core machine), so programs that want every core must
/// ask. The library itself never changes the thread count: that is the application's call.

#include <ATen/Parallel.h>

#include <cstdlib>
#include <thread>

namespace diffinstruct {

/// Sets LibTorch's intra-op threads: `requested` > 0 wins; otherwise OMP_NUM_THREADS if set (left as
/// LibTorch read it), else every hardware thread. Returns the count in force.
inline int use_threads(int requested = 0) {
  if (requested > 0) {
    at::set_num_threads(requested);
  } else if (!std::getenv("OMP_NUM_THREADS")) {
    at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
  return at::get_num_threads();
}

} // namespace diffinstruct
