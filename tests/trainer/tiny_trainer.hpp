// A small DI* trainer shared by the checkpoint tests and the checkpoint-writing worker they kill.
#pragma once
#include <diffinstruct/di_star.hpp>

namespace tiny {
namespace di = diffinstruct;

struct NetImpl : torch::nn::Module {
  torch::nn::Sequential net;
  NetImpl(int64_t in, int64_t out, int64_t hidden) : net(torch::nn::Linear(in, hidden), torch::nn::SiLU(), torch::nn::Linear(hidden, out)) {
    register_module("net", net);
  }
  torch::Tensor forward(const torch::Tensor& z) { return net->forward(z); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) { return net->forward(torch::cat({x, t.unsqueeze(1)}, 1)); }
};
TORCH_MODULE(Net);

using Reward = di::CallableReward<std::function<torch::Tensor(const torch::Tensor&)>>;
using Trainer = di::DiStarTrainer<di::Generator<Net>, di::Denoiser<Net>, di::Denoiser<Net>, di::NoCondition, di::PseudoHuberScore,
                                  di::NoGuidance, Reward, di::CosineVPSchedule>;

/// A trainer whose weights depend only on `init_seed`; `hidden` sets its size.
inline std::unique_ptr<Trainer> make(uint64_t init_seed, di::DiStarTrainerOptions options = di::DiStarTrainerOptions().batch_size(16),
                                     int64_t hidden = 32, torch::Dtype dtype = torch::kFloat32, double c = 1.0) {
  torch::manual_seed(init_seed);
  Net gen(2, 2, hidden), teacher(3, 2, hidden), asst(3, 2, hidden);
  gen->to(dtype);
  teacher->to(dtype);
  asst->to(dtype);
  di::DiStarPolicies<di::PseudoHuberScore, di::NoGuidance, Reward, di::CosineVPSchedule> policies{
      di::PseudoHuberScore(c), {}, Reward([](const torch::Tensor& x) { return torch::sigmoid(3 * x.select(1, 0)); }), di::CosineVPSchedule()};
  return std::make_unique<Trainer>(di::Generator<Net>(gen), di::Denoiser<Net>(teacher, "teacher"), di::Denoiser<Net>(asst, "assistant"),
                                   std::move(policies), di::ConditionSource<di::NoCondition>{}, std::vector<int64_t>{2}, options);
}

}  // namespace tiny
