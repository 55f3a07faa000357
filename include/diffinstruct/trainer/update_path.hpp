#pragma once
/// \file The one path from a role's summed gradients to an applied update, the same for the
/// generator and the assistant:
///
///   rank averaging → unscale → overflow? → clipping → non-finite guard → optimizer step
///   (refused if it would make a weight non-finite) → EMA → gradient release
///
/// Nothing non-finite is ever applied: an update whose loss, gradient or samples are non-finite, or
/// whose step would make a weight non-finite, is dropped and counted; `max_consecutive_skips` in a
/// row end the run with an error.

#include <diffinstruct/trainer/collectives.hpp>
#include <diffinstruct/trainer/micro_batches.hpp>
#include <diffinstruct/trainer/options.hpp>
#include <diffinstruct/trainer/step_stats.hpp>
#include <diffinstruct/trainer/trained_role.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace diffinstruct {

/// How one update is judged and applied: the trainer's rules at this step.
struct UpdateRules {
  const DiStarTrainerOptions* options = nullptr;
  double max_grad_norm = 0;                                  ///< this role's clipping norm (0: none)
  int64_t step = 0;                                          ///< the iteration this update belongs to (1-based, for messages)
  std::string generator_name;                                ///< names the generator when its samples are non-finite
  Collectives* ranks = nullptr;                              ///< data-parallel collectives, or null
  const std::function<void(const std::string&)>* sink = nullptr;  ///< where messages go (may be empty)
};

/// What became of one update.
struct UpdateOutcome {
  bool applied = false;
  double loss = 0;         ///< the batch's mean loss (averaged over ranks)
  bool norm_measured = false;  ///< false when the update overflowed before its norm was taken
  double grad_norm = 0;    ///< before clipping
  double loss_scale = 1;   ///< the role's loss scale when the update was judged
};

namespace detail {

inline void say(const UpdateRules& rules, const std::string& msg) {
  if (rules.sink && *rules.sink) (*rules.sink)(msg);
}

/// Averages gradients (undefined ones count as zeros) and the summary's values over ranks.
inline void average_over_ranks(Collectives& ranks, std::vector<torch::Tensor>& grads, const std::vector<torch::Tensor>& params,
                               torch::Tensor& summary) {
  for (size_t i = 0; i < grads.size(); ++i)
    if (!grads[i].defined()) grads[i] = torch::zeros_like(params[i]);
  std::vector<torch::Tensor> all(grads.begin(), grads.end());
  summary = summary.to(params.front().device()).contiguous();
  all.push_back(summary);
  ranks.average(all);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = all[i];
  summary = all.back().to(torch::kCPU);
}

/// Sets .grad from `grads`, clips, and returns the pre-clip global norm (NaN/inf if any is non-finite).
inline double assign_and_clip(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads, double max_norm) {
  std::vector<torch::Tensor> sq;
  for (size_t i = 0; i < params.size(); ++i) {
    auto g = grads[i].defined() ? grads[i] : torch::zeros_like(params[i]);
    params[i].mutable_grad() = g;
    sq.push_back(g.detach().pow(2).sum());
  }
  const double norm = torch::stack(sq).sum().sqrt().item<double>();
  if (std::isfinite(norm) && max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (auto& p : params) p.mutable_grad().mul_(scale);
  }
  return norm;
}

/// A dropped update: counted, reported, and an error under kThrow or after too many in a row.
inline void non_finite_event(TrainedRole& role, const UpdateRules& rules, StepStats& stats, const std::string& what, double loss,
                             double grad_norm) {
  ++stats.non_finite;
  const int64_t in_row = ++role.skips_in_row();
  const std::string msg = c10::str("diffinstruct::DiStarTrainer: non-finite ", role.name(), " update at step ", rules.step, " (", what,
                                   "; loss ", loss, ", gradient norm ", grad_norm, "); the update was not applied");
  say(rules, msg);
  TORCH_CHECK(rules.options->non_finite() != NonFinitePolicy::kThrow, msg);
  TORCH_CHECK(in_row < rules.options->max_consecutive_skips(), "diffinstruct::DiStarTrainer: ", in_row, " ", role.name(),
              " updates in a row were dropped as non-finite (max_consecutive_skips = ", rules.options->max_consecutive_skips(),
              "); the run is not training any more. Last: ", msg);
}

/// An update whose scaled gradients overflowed: not applied, counted, the scale backs off. Not an
/// error (float16 scaling meets a few at its start), but `max_consecutive_skips` in a row mean no
/// scale helps: the run stops.
inline void overflow_event(TrainedRole& role, const UpdateRules& rules, StepStats& stats) {
  role.clear_gradients();
  const double was = role.scaler().scale_value();
  role.scaler().update(/*overflow=*/true);
  ++stats.overflows;
  const int64_t in_row = ++role.skips_in_row();
  const std::string msg = c10::str("diffinstruct::DiStarTrainer: the ", role.name(), " gradients overflowed at loss scale ", was, " at step ",
                                   rules.step, "; the update was skipped and the scale is now ", role.scaler().scale_value());
  say(rules, msg);
  TORCH_CHECK(in_row < rules.options->max_consecutive_skips(), "diffinstruct::DiStarTrainer: ", in_row, " ", role.name(),
              " updates in a row were skipped (non-finite, or overflowing at every loss scale; max_consecutive_skips = ",
              rules.options->max_consecutive_skips(), "). Last: ", msg);
}

/// Steps the optimizer unless the step would make a weight non-finite (then: dropped, counted).
inline bool guarded_step(TrainedRole& role, const UpdateRules& rules, StepStats& stats, double loss, double norm) {
  const bool check = rules.options->check_weights();
  const auto kind = role.optimizer_kind();
  if (check && kind != OptimizerKind::kUser && !step_keeps_finite(role.optimizer(), kind)) {
    role.clear_gradients();
    non_finite_event(role, rules, stats, "the optimizer step would make weights non-finite", loss, norm);
    return false;
  }
  role.optimizer().step();
  if (check && kind == OptimizerKind::kUser && !all_finite(role.parameters())) {
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer: the ", role.name(), " optimizer (installed with set_optimizers) made weights "
                "non-finite at step ", rules.step, " (loss ", loss, ", gradient norm ", norm, "); a step of an optimizer the trainer "
                "did not build cannot be undone, so training stops here: resume from the last checkpoint");
  }
  role.skips_in_row() = 0;
  return true;
}

} // namespace detail

/// Applies one update of `role` from its summed gradients. `batch.summary` holds the batch's mean
/// loss first and, last, whether every generator sample was finite (MicroBatchSum); data-parallel,
/// both are averaged over ranks with the gradients, so every rank decides alike.
inline UpdateOutcome apply_update(TrainedRole& role, MicroBatchSum& batch, const UpdateRules& rules, StepStats& stats) {
  AddElapsedMs clock(stats.phases.update);
  if (rules.ranks) detail::average_over_ranks(*rules.ranks, batch.grads, role.parameters(), batch.summary);
  UpdateOutcome out;
  const auto s = batch.summary.accessor<double, 1>();
  out.loss = s[0];
  const bool x0_finite = s[batch.summary.size(0) - 1] == 1.0;
  const bool overflow = role.scaler().enabled() && role.scaler().unscale(batch.grads);
  out.loss_scale = role.scaler().scale_value();
  if (overflow && x0_finite && std::isfinite(out.loss)) {
    detail::overflow_event(role, rules, stats);
    return out;
  }
  out.grad_norm = detail::assign_and_clip(role.parameters(), batch.grads, rules.max_grad_norm);
  out.norm_measured = true;
  if (!x0_finite || !std::isfinite(out.loss) || !std::isfinite(out.grad_norm)) {
    role.clear_gradients();
    detail::non_finite_event(role, rules, stats,
                             x0_finite ? "non-finite loss or gradient"
                                       : c10::str("the generator ('", rules.generator_name, "') produced non-finite samples"),
                             out.loss, out.grad_norm);
    return out;
  }
  role.scaler().update(/*overflow=*/false);
  if (!detail::guarded_step(role, rules, stats, out.loss, out.grad_norm)) return out;
  if (role.has_ema()) role.ema().update(role.parameters());
  if (rules.options->release_gradients()) role.clear_gradients();
  out.applied = true;
  return out;
}

} // namespace diffinstruct
