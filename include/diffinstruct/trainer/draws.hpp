#pragma once
/// \file The seeded draws of the DI* trainer, in one place: every random number of a run (z, the
/// conditions, t, ε) comes from the trainer's own CPU generator, so that two runs with one seed draw
/// the same numbers. Each update draws its whole batch first, in the order z, c, t, ε, so that any
/// number of micro-batches follows the same random stream. Data-parallel, every rank draws the same
/// global batch and keeps its own rows [rank·B, (rank+1)·B): N ranks × batch B draw what 1 rank ×
/// batch N·B does.
///
/// What is not drawn here is not covered by this: randomness inside the networks (dropout) comes
/// from LibTorch's default generator, which the trainer does not seed (docs/trainer.md#reproducibility).

#include <diffinstruct/core/condition.hpp>
#include <diffinstruct/core/condition_device.hpp>
#include <diffinstruct/trainer/micro_batches.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {

/// Where conditions come from: a sampler drawing a batch from the trainer's generator, and the null
/// condition (1 row, or a full batch) used for the teacher's unconditional pass under CFG. The
/// trainer moves what the sampler returns to its device (ConditionTraits<C>::to).
template <class Cond>
struct ConditionSource {
  std::function<Cond(int64_t batch, at::Generator& gen)> sample;
  Cond null_condition{};
};

/// One update's draws: this rank's rows, on the trainer's device. `z` is undefined when the
/// generator's samples of the step are reused (reuse_generator_samples).
template <class Cond>
struct DrawnBatch {
  torch::Tensor z;
  Cond c{};
  torch::Tensor t, noise;

  /// Micro-batch k of n (of a batch of `batch_size` rows).
  DrawnBatch micro(int64_t k, int64_t n, int64_t batch_size) const {
    if (n == 1) return *this;
    return {z.defined() ? micro_batch_rows(z, k, n, batch_size) : z, micro_batch_rows(c, k, n, batch_size),
            micro_batch_rows(t, k, n, batch_size), micro_batch_rows(noise, k, n, batch_size)};
  }
};

/// Which of the two updates draws (their time densities differ).
enum class Phase { kGenerator = 0, kAssistant = 1 };

/// The trainer's random stream and what it draws.
template <class Cond>
class SeededDraws {
 public:
  SeededDraws() = default;
  SeededDraws(ConditionSource<Cond> conditions, std::vector<int64_t> noise_shape, uint64_t seed)
      : conditions_(std::move(conditions)), noise_shape_(std::move(noise_shape)), rng_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

  /// Where the draws go: the loop's dtype and device, the batch per rank, the per-sample shape of
  /// the generator's samples, and this rank's place among `world` ranks.
  void configure(const torch::TensorOptions& options, int64_t batch, std::vector<int64_t> sample_shape, int rank, int world) {
    options_ = options;
    batch_ = batch;
    sample_shape_ = std::move(sample_shape);
    rank_ = rank;
    world_ = world;
  }

  /// z, c, t, ε of one update, in that order. With `reused` conditions (the generator's samples of
  /// this step reused by the assistant), z and c are not drawn.
  template <class Schedule>
  DrawnBatch<Cond> draw(Phase phase, const Schedule& schedule, const Cond* reused = nullptr) {
    DrawnBatch<Cond> d;
    if (!reused) d.z = randn(noise_shape_);
    d.c = reused ? *reused : draw_condition();
    const auto cpu = torch::TensorOptions().dtype(options_.dtype());
    const int64_t n = batch_ * world_;
    const auto t = phase == Phase::kGenerator ? schedule.sample_generator_t(n, cpu, rng_) : schedule.sample_assistant_t(n, cpu, rng_);
    d.t = own_rows(t).to(options_.device());
    d.noise = randn(sample_shape_);
    return d;
  }

  /// This rank's rows of a global batch drawn on every rank alike.
  template <class T>
  T own_rows(const T& global) const {
    if (world_ == 1) return global;
    const int64_t B = batch_;
    if constexpr (std::is_same_v<T, torch::Tensor>) return global.slice(0, rank_ * B, (rank_ + 1) * B).contiguous();
    else return detail::rows_of(global, rank_ * B, (rank_ + 1) * B);
  }

  at::Generator& rng() { return rng_; }
  const ConditionSource<Cond>& conditions() const { return conditions_; }
  ConditionSource<Cond>& conditions() { return conditions_; }
  const std::vector<int64_t>& noise_shape() const { return noise_shape_; }
  const std::vector<int64_t>& sample_shape() const { return sample_shape_; }

 private:
  torch::Tensor randn(const std::vector<int64_t>& per_sample) {
    std::vector<int64_t> shape{batch_ * world_};
    shape.insert(shape.end(), per_sample.begin(), per_sample.end());
    return own_rows(torch::randn(shape, rng_, torch::TensorOptions().dtype(options_.dtype()))).to(options_.device());
  }
  Cond draw_condition() {
    if constexpr (std::is_same_v<Cond, NoCondition>) {
      return NoCondition{};
    } else {
      // A sampler driven by the trainer's CPU generator returns CPU tensors; the models are on the
      // trainer's device.
      return condition_to_device(own_rows(conditions_.sample(batch_ * world_, rng_)), options_.device(), "the condition sampler");
    }
  }

  ConditionSource<Cond> conditions_;
  std::vector<int64_t> noise_shape_, sample_shape_;
  at::Generator rng_;
  torch::TensorOptions options_;
  int64_t batch_ = 1;
  int rank_ = 0, world_ = 1;
};

} // namespace diffinstruct
