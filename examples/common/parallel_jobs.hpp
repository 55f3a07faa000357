#pragma once
// Independent jobs (say, post-training runs that share nothing but read-only inputs) on several
// threads, each computing with LibTorch's intra-op thread count as the program set it. On a 2-core
// machine where one intra-op thread is fastest for small models, two jobs side by side use both cores
// (a second intra-op thread would spin more than it computes: docs/performance.md).
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace examples_common {

/// Runs every job, at most `workers` at a time, and returns when all are done. The first exception
/// a job throws stops the others from starting new jobs and is rethrown here once every thread has
/// finished (a job already running completes: nothing is left half-written by a killed thread).
inline void run_parallel_jobs(const std::vector<std::function<void()>>& jobs, int workers) {
  const size_t n = jobs.size();
  workers = static_cast<int>(std::clamp<size_t>(static_cast<size_t>(std::max(workers, 1)), 1, std::max<size_t>(n, 1)));
  if (workers == 1) {
    for (const auto& job : jobs) job();
    return;
  }
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  auto worker = [&] {
    at::init_num_threads();  // a new thread takes the program's intra-op setting, not OpenMP's default
    for (size_t i = next++; i < n && !failed; i = next++) {
      try {
        jobs[i]();
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace examples_common
