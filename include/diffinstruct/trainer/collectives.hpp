#pragma once
/// \file The seam between the trainer and data-parallel communication. The trainer only needs these
/// few collectives, so it depends on this interface, not on c10d: `distributed/data_parallel.hpp`
/// implements it over c10d process groups (Gloo), and a test can implement it in-process.
///
/// Contract: every rank calls the same collectives in the same order with tensors of the same
/// shapes; `average` leaves every tensor equal to the mean over ranks (in place); `broadcast` copies
/// root's values into every rank's tensors; failures (a dead or hung rank) throw c10::Error.

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace diffinstruct {

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  /// In place: each tensor becomes the mean of that tensor over all ranks.
  virtual void average(std::vector<torch::Tensor>& tensors) = 0;
  /// In place: each tensor becomes root's.
  virtual void broadcast(std::vector<torch::Tensor>& tensors, int root) = 0;
  /// Returns when every rank has called it.
  virtual void barrier() = 0;

  /// Root's side of a status report (how a checkpoint write went: "ok" or the error): returns at
  /// once. Every other rank calls await_status with the same key. The default goes through
  /// broadcast (so it waits like any collective); DataParallel uses its store instead, which waits
  /// as long as the write takes and fails at once if root dies.
  virtual void publish_status(const std::string& key, const std::string& status) {
    (void)key;
    auto buf = encode_status(status);
    std::vector<torch::Tensor> one{buf};
    broadcast(one, 0);
  }
  /// The status root published under `key`.
  virtual std::string await_status(const std::string& key) {
    (void)key;
    std::vector<torch::Tensor> one{torch::zeros({kStatusBytes}, torch::kUInt8)};
    broadcast(one, 0);
    const auto* p = one[0].data_ptr<uint8_t>();
    return std::string(reinterpret_cast<const char*>(p), strnlen(reinterpret_cast<const char*>(p), kStatusBytes));
  }

 protected:
  static constexpr int64_t kStatusBytes = 4096;
  static torch::Tensor encode_status(const std::string& status) {
    auto buf = torch::zeros({kStatusBytes}, torch::kUInt8);
    std::memcpy(buf.data_ptr<uint8_t>(), status.data(), std::min<size_t>(status.size(), kStatusBytes - 1));
    return buf;
  }
};

}  // namespace diffinstruct
