#pragma once
/// \file A weighted sum of rewards, e.g. an aesthetic score plus a preference model.

#include <diffinstruct/core/describe.hpp>
#include <diffinstruct/core/module_ref.hpp>
#include <diffinstruct/rewards/reward.hpp>

#include <array>
#include <tuple>

namespace diffinstruct {

/// r(x0, c) = Σ_i weight_i · r_i(x0, c).
///
/// Example:
///   auto reward = WeightedSum<ModuleReward<Aesthetic>, ModuleReward<Pick>>({0.5, 1.0}, aesthetic, pick);
template <class... Rewards>
class WeightedSum {
  static_assert(sizeof...(Rewards) >= 1, "diffinstruct::WeightedSum: give at least one reward");

 public:
  static constexpr bool is_null = false;
  static constexpr const char* name = "weighted_sum";
  static constexpr size_t size = sizeof...(Rewards);

  WeightedSum(std::array<double, sizeof...(Rewards)> weights, Rewards... rewards)
      : weights_(weights), rewards_(std::move(rewards)...) {
    for (size_t i = 0; i < weights_.size(); ++i) {
      TORCH_CHECK(std::isfinite(weights_[i]), "diffinstruct::WeightedSum: expected finite weights, got weight ", i, " = ",
                  weights_[i]);
    }
  }

  template <class Cond>
  torch::Tensor operator()(const torch::Tensor& x0, const Cond& c) {
    const auto parts = components(x0, c);
    torch::Tensor total = weights_[0] * parts[0];
    for (size_t i = 1; i < size; ++i) total = total + weights_[i] * parts[i];
    return total;
  }

  /// Each reward's own (unweighted) value [B], for statistics.
  template <class Cond>
  std::array<torch::Tensor, sizeof...(Rewards)> components(const torch::Tensor& x0, const Cond& c) {
    return std::apply(
        [&](auto&... r) {
          return std::array<torch::Tensor, sizeof...(Rewards)>{detail::check_reward_output(r(x0, c), x0, "WeightedSum")...};
        },
        rewards_);
  }

  /// Every module the components hold (what the trainer freezes).
  std::vector<ModuleRef> modules() const {
    std::vector<ModuleRef> out;
    std::apply([&](const auto&... r) { (append(out, detail::modules_of(r)), ...); }, rewards_);
    return out;
  }

  std::string describe() const {
    std::string out = "weighted_sum(";
    size_t i = 0;
    std::apply([&](const auto&... r) { ((out += (i ? ", " : "") + detail::exact_number(weights_[i]) + "*" + detail::describe_policy(r), ++i), ...); },
               rewards_);
    return out + ")";
  }

  const std::array<double, sizeof...(Rewards)>& weights() const { return weights_; }
  std::tuple<Rewards...>& rewards() { return rewards_; }

 private:
  static void append(std::vector<ModuleRef>& out, std::vector<ModuleRef> more) { out.insert(out.end(), more.begin(), more.end()); }
  std::array<double, sizeof...(Rewards)> weights_;
  std::tuple<Rewards...> rewards_;
};

} // namespace diffinstruct
