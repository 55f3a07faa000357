#pragma once
/// \file Gradient accumulation: an update's batch run as micro-batches, their gradients and
/// summaries summed, and the rows of a batch that one rank or one micro-batch takes.

#include <diffinstruct/core/condition.hpp>

#include <torch/torch.h>

#include <type_traits>
#include <utility>
#include <vector>

namespace diffinstruct {

/// The sum over an update's micro-batches of the gradients and of a summary: a float64 CPU vector
/// of shares of batch means, whose last entry is a flag (1 when every generator sample was finite),
/// summed as a minimum.
struct MicroBatchSum {
  std::vector<torch::Tensor> grads;
  torch::Tensor summary;

  /// Adds a micro-batch's gradients (an undefined one counts as zero) and summary.
  void add(std::vector<torch::Tensor> part_grads, const torch::Tensor& part_summary) {
    if (grads.empty()) {
      grads = std::move(part_grads);
    } else {
      for (size_t i = 0; i < grads.size(); ++i) {
        if (!part_grads[i].defined()) continue;
        if (grads[i].defined()) grads[i].add_(part_grads[i]);
        else grads[i] = std::move(part_grads[i]);
      }
    }
    if (!summary.defined()) {
      summary = part_summary;
      return;
    }
    const int64_t last = summary.size(0) - 1;
    auto flag = torch::minimum(summary[last], part_summary[last]);
    summary = summary + part_summary;
    summary[last] = flag;
  }
};

namespace detail {

/// Rows [begin, end) of a batch: a tensor's, or a condition's (ConditionTraits<C>::slice).
template <class T>
T rows_of(const T& batch, int64_t begin, int64_t end) {
  if constexpr (std::is_same_v<T, torch::Tensor>) return batch.slice(0, begin, end);
  else if constexpr (std::is_same_v<T, NoCondition>) return batch;
  else return ConditionTraits<T>::slice(batch, begin, end);
}

} // namespace detail

/// Micro-batch k of n of a batch of `batch_size` rows (the whole batch when n = 1).
template <class T>
T micro_batch_rows(const T& batch, int64_t k, int64_t n, int64_t batch_size) {
  if (n == 1) return batch;
  const int64_t m = batch_size / n;
  return detail::rows_of(batch, k * m, (k + 1) * m);
}

} // namespace diffinstruct
