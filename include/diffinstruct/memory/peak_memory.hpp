#pragma once
/// \file The peak memory of a scope on one device, as the trainer reports it per step
/// (`DiStarTrainerOptions::measure_memory`, `StepStats::peak_bytes`):
///   * CPU: exact, through a counting allocator installed as LibTorch's CPU allocator for the scope
///     (memory/counting_allocator.hpp); tensors allocated before the scope are not counted, so the
///     figure is what the scope added at its peak.
///   * CUDA: the caching allocator's statistics (peak reset at the start; the figure is the peak of
///     allocated bytes minus those allocated at the start), read through the CUDA extension
///     `diffinstruct::cuda` (it links libc10_cuda, which the header-only library does not).
///
/// Example:
///   PeakMemoryScope scope(device);
///   run();
///   int64_t bytes = scope.peak_bytes();

#include <diffinstruct/memory/counting_allocator.hpp>

#include <memory>

#ifdef DIFFINSTRUCT_WITH_CUDA_KERNELS
extern "C" void diffinstruct_cuda_memory_reset_peak(int device);
extern "C" void diffinstruct_cuda_memory_allocated(int device, long long* current, long long* peak);
#endif

namespace diffinstruct {

/// Whether peak memory can be measured on `device` in this build.
inline bool peak_memory_supported(const c10::Device& device) {
#ifdef DIFFINSTRUCT_WITH_CUDA_KERNELS
  if (device.is_cuda()) return true;
#endif
  return device.is_cpu();
}

namespace detail {
/// One counter for the whole program, never destroyed: tensors counted by it may outlive any
/// object (an optimizer state allocated in a measured step lives as long as the trainer, or longer).
inline CountingCpuAllocator& process_cpu_counter() {
  static auto* counter = new CountingCpuAllocator();
  return *counter;
}
} // namespace detail

class PeakMemoryScope {
 public:
  explicit PeakMemoryScope(const c10::Device& device) : device_(device) {
    TORCH_CHECK(peak_memory_supported(device), "diffinstruct::PeakMemoryScope: measuring memory on ", device,
                device.is_cuda() ? " needs the CUDA extension diffinstruct::cuda linked (DIFFINSTRUCT_ENABLE_CUDA)" : " is not supported");
    if (device.is_cpu()) {
      auto& counter = detail::process_cpu_counter();
      cpu_scope_ = std::make_unique<CpuAllocationScope>(counter);
      counter.reset_peak();
      start_ = counter.live_bytes();
    } else {
#ifdef DIFFINSTRUCT_WITH_CUDA_KERNELS
      const int index = device.has_index() ? device.index() : 0;
      diffinstruct_cuda_memory_reset_peak(index);
      long long current = 0, peak = 0;
      diffinstruct_cuda_memory_allocated(index, &current, &peak);
      start_ = current;
#endif
    }
  }
  PeakMemoryScope(const PeakMemoryScope&) = delete;
  PeakMemoryScope& operator=(const PeakMemoryScope&) = delete;

  /// The most bytes live at once since the scope began, above those live at its start.
  int64_t peak_bytes() const {
    if (device_.is_cpu()) return detail::process_cpu_counter().peak_bytes() - start_;
#ifdef DIFFINSTRUCT_WITH_CUDA_KERNELS
    long long current = 0, peak = 0;
    diffinstruct_cuda_memory_allocated(device_.has_index() ? device_.index() : 0, &current, &peak);
    return peak - start_;
#else
    return 0;
#endif
  }

 private:
  c10::Device device_;
  std::unique_ptr<CpuAllocationScope> cpu_scope_;
  int64_t start_ = 0;
};

} // namespace diffinstruct
