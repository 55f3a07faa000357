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
#include <mutex>
#include <unordered_map>
#include <vector>

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
  // Some kernels (convolutions, for one) allocate through raw_allocate(), which needs a DataPtr whose
  // context is its data pointer and a raw deleter: the bookkeeping therefore lives in a table keyed
  // by the data pointer, not in the DataPtr's context.
  c10::DeleterFnPtr raw_deleter() const override { return &CountingCpuAllocator::release; }
  // Pure virtual in 2.x, absent in 1.13.
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }

  int64_t live_bytes() const { return live_.load(); }
  int64_t peak_bytes() const { return peak_.load(); }
  int64_t allocations() const { return allocations_.load(); }
  /// Starts a new peak measurement from what is live now.
  void reset_peak() { peak_.store(live_.load()); }
  void set_base(c10::Allocator* base) { base_ = base; }

 private:
  struct Entry {
    c10::DataPtr inner;  // the memory, freed through the allocator that gave it
    size_t bytes;
    const CountingCpuAllocator* owner;
  };
  // One stack per pointer: counters can be chained (one installed over another), and then the
  // outer counter's entry sits above the inner's; freeing pops the outer, whose inner DataPtr then
  // frees through the inner counter, which pops its own.
  struct Table {
    std::mutex mutex;
    std::unordered_map<void*, std::vector<Entry>> entries;
  };
  static Table& table() {
    static auto* t = new Table();  // never destroyed: tensors may be freed during static destruction
    return *t;
  }

  c10::DataPtr counted(size_t bytes) const {
    c10::Allocator* base = base_ ? base_ : c10::GetDefaultCPUAllocator();
    auto inner = base->allocate(bytes);
    void* data = inner.get();
    const auto device = inner.device();
    if (data == nullptr) return inner;  // a zero-byte allocation: nothing to count
    {
      auto& t = table();
      std::lock_guard<std::mutex> lock(t.mutex);
      t.entries[data].push_back(Entry{std::move(inner), bytes, this});
    }
    const int64_t now = live_.fetch_add(static_cast<int64_t>(bytes)) + static_cast<int64_t>(bytes);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    allocations_.fetch_add(1);
    return {data, data, &CountingCpuAllocator::release, device};
  }
  static void release(void* data) {
    Entry entry{c10::DataPtr(), 0, nullptr};
    {
      auto& t = table();
      std::lock_guard<std::mutex> lock(t.mutex);
      const auto it = t.entries.find(data);
      if (it == t.entries.end() || it->second.empty()) return;  // cannot happen: only our DataPtrs name this deleter
      entry = std::move(it->second.back());
      it->second.pop_back();
      if (it->second.empty()) t.entries.erase(it);
    }
    entry.owner->live_.fetch_sub(static_cast<int64_t>(entry.bytes));
    // entry.inner frees the memory here, outside the lock.
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
