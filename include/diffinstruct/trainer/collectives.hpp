#pragma once
/// \file The seam between the trainer and data-parallel communication. The trainer only needs these
/// few collectives, so it depends on this interface, not on c10d: `distributed/data_parallel.hpp`
/// implements it over c10d process groups (Gloo), and a test can implement it in-process.
///
/// Contract: every rank calls the same collectives in the same order with tensors of the same
/// shapes; `average` leaves every tensor equal to the mean over ranks (in place); `broadcast` copies
/// root's values into every rank's tensors; failures (a dead or hung rank) throw c10::Error.

#include <torch/torch.h>

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
};

}  // namespace diffinstruct
