#pragma once
/// \file Intra-op thread count for programs (examples, benchmarks).
///
/// Debian's LibTorch 1.13 starts with a single intra-op thread unless OMP_NUM_THREADS is set
/// (measured: at::get_num_threads() == 1 on a 2-core machine), so programs that want every core must
/// ask. The library itself never changes the thread count: that is the application's call.

#include <ATen/Parallel.h>

#include <cstdlib>
#include <dlfcn.h>
#include <thread>

namespace diffinstruct {

/// Sets LibTorch's intra-op threads: `requested` > 0 wins; otherwise OMP_NUM_THREADS if set (left as
/// LibTorch read it), else every hardware thread. OpenBLAS keeps a thread pool of its own, which
/// LibTorch's setting does not reach; when OpenBLAS is the BLAS in use it gets the same count (measured:
/// with 1 torch thread and OpenBLAS left at 2, a small-MLP training step took 5.4 ms instead of 3.8,
/// its idle workers spinning on the second core). Returns the count in force.
inline int use_threads(int requested = 0) {
  if (requested > 0) {
    at::set_num_threads(requested);
  } else if (!std::getenv("OMP_NUM_THREADS")) {
    at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
  const int n = at::get_num_threads();
  using SetThreads = void (*)(int);
  if (!std::getenv("OPENBLAS_NUM_THREADS")) {
    if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(n);
  }
  return n;
}

} // namespace diffinstruct
