#pragma once
/// \file Regressing a one-step generator onto (z, x0) pairs from a deterministic teacher sampler
/// (DMD's "ODE pairs"): the initialisation that lets score distillation keep every mode
/// (docs/findings.md §3: from a random start about 35% of samples stayed between modes; after regression
/// the floor of about 12.5%).

#include <diffinstruct/core/roles.hpp>
#include <diffinstruct/trainer/options.hpp>

#include <functional>

namespace diffinstruct {

struct RegressionOptions {
  TORCH_ARG(int64_t, steps) = 1000;
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(AdamSettings, adam) = AdamSettings(1e-3).beta1(0.9);
  TORCH_ARG(uint64_t, seed) = 0;
};

/// Fits g(z, c) ≈ x0 by mean squared error over the pairs (z [N, ...], c, x0 [N, ...]); batches are
/// drawn from the pairs with a generator seeded by `options.seed()`. `on_step(step, loss)` is called
/// after each update when given. Returns the final batch loss.
template <class Model, class Cond>
double regress_generator(Generator<Model>& generator, const torch::Tensor& z, const Cond& cond, const torch::Tensor& x0,
                         RegressionOptions options = {}, const std::function<void(int64_t, double)>& on_step = {}) {
  static_assert(std::is_same_v<Cond, torch::Tensor> || std::is_same_v<Cond, NoCondition>,
                "diffinstruct::regress_generator: conditions must be a per-sample tensor or NoCondition");
  detail::check_batch(z, "regress_generator", "z");
  detail::check_batch(x0, "regress_generator", "x0");
  TORCH_CHECK(z.size(0) == x0.size(0), "diffinstruct::regress_generator: expected as many x0 as z, got ", x0.size(0), " and ", z.size(0));
  TORCH_CHECK(options.steps() >= 0 && options.batch_size() > 0, "diffinstruct::regress_generator: expected steps >= 0 and batch_size > 0, got ",
              options.steps(), " and ", options.batch_size());
  auto params = generator.parameters();
  TORCH_CHECK(!params.empty(), "diffinstruct::regress_generator: the generator has no parameters");
  const auto& a = options.adam();
  torch::optim::Adam opt(params, torch::optim::AdamOptions(a.lr()).betas(std::make_tuple(a.beta1(), a.beta2())).eps(a.eps()));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed());
  double last = 0;
  for (int64_t step = 0; step < options.steps(); ++step) {
    const auto idx = torch::randint(z.size(0), {options.batch_size()}, gen, torch::kLong).to(z.device());
    Cond c;
    if constexpr (std::is_same_v<Cond, NoCondition>) c = cond;
    else c = cond.index_select(0, idx);
    const torch::Tensor pred = generator(z.index_select(0, idx), c);
    const torch::Tensor loss = (pred - x0.index_select(0, idx)).pow(2).reshape({options.batch_size(), -1}).sum(1).mean();
    opt.zero_grad();
    loss.backward();
    opt.step();
    last = loss.item<double>();
    if (on_step) on_step(step, last);
  }
  return last;
}

} // namespace diffinstruct
