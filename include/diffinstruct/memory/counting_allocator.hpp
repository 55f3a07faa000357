#pragma once
/// \file Exact accounting of LibTorch's CPU tensor memory: a CPU allocator that forwards to the one
/// it replaces and counts the bytes live and the peak. Install it for a scope; every CPU tensor
/// allocated meanwhile is counted until it is freed (even after the scope ends).
///
/// Example:
///   CountingCpuAllocator counter;
///   {
///     CpuAllocationScope scope(counter);   // tensors allocated here are counted
///     trainer.load("ckpt.safetensors");
///   }
///   counter.peak_bytes();                  // the most CPU tensor memory live at once, exactly

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace diffinstruct {

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverloaded-virtual"
#endif
/// Counts the bytes of CPU tensor memory it hands out (live and peak), forwarding to another allocator.
class CountingCpuAllocator final : public c10::Allocator {
 public:
  CountingCpuAllocator() = default;

  // `allocate` is const in LibTorch 1.13 and not in 2.x (core/torch_compat.hpp): both are defined,
  // and whichever the base class declares is the one that overrides it.
  c10::DataPtr allocate(size_t bytes) const { return counted(bytes); }
  c10::DataPtr allocate(size_t bytes) { return counted(bytes); }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }
  // Pure virtual in 2.x, absent in 1.13.
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }

  int64_t live_bytes() const { return live_.load(); }
  int64_t peak_bytes() const { return peak_.load(); }
  int64_t allocations() const { return allocations_.load(); }
  /// Starts a new peak measurement from what is live now.
  void reset_peak() { peak_.store(live_.load()); }
  void set_base(c10::Allocator* base) { base_ = base; }

 private:
  c10::DataPtr counted(size_t bytes) const {
    c10::Allocator* base = base_ ? base_ : c10::GetDefaultCPUAllocator();
    auto inner = base->allocate(bytes);
    void* data = inner.get();
    const auto device = inner.device();
    auto* ctx = new Context{std::move(inner), bytes, this};
    const int64_t now = live_.fetch_add(static_cast<int64_t>(bytes)) + static_cast<int64_t>(bytes);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    allocations_.fetch_add(1);
    return {data, ctx, &CountingCpuAllocator::release, device};
  }
  struct Context {
    c10::DataPtr inner;
    size_t bytes;
    const CountingCpuAllocator* owner;
  };
  static void release(void* p) {
    auto* ctx = static_cast<Context*>(p);
    ctx->owner->live_.fetch_sub(static_cast<int64_t>(ctx->bytes));
    delete ctx;  // frees the memory through the allocator that gave it
  }

  c10::Allocator* base_ = nullptr;
  mutable std::atomic<int64_t> live_{0}, peak_{0}, allocations_{0};
};

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/// Makes `counter` LibTorch's CPU allocator for a scope, then restores the previous one. The
/// counter must outlive every tensor allocated in the scope.
class CpuAllocationScope {
 public:
  explicit CpuAllocationScope(CountingCpuAllocator& counter) : previous_(c10::GetCPUAllocator()) {
    counter.set_base(previous_);
    c10::SetCPUAllocator(&counter, /*priority=*/kPriority);
  }
  ~CpuAllocationScope() { c10::SetCPUAllocator(previous_, kPriority); }
  CpuAllocationScope(const CpuAllocationScope&) = delete;
  CpuAllocationScope& operator=(const CpuAllocationScope&) = delete;

 private:
  static constexpr uint8_t kPriority = 100;
  c10::Allocator* previous_;
};

} // namespace diffinstruct
