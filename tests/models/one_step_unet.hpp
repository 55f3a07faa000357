#pragma once
// A one-step generator in the SD-Turbo manner, for tests: a UNet evaluated at the last timestep, its
// ε̂ turned into x0 with the schedule's α, σ there.
#include <diffinstruct/models/unet2d_condition.hpp>

#include <torch/torch.h>

namespace test_models {

struct OneStepUNetImpl : torch::nn::Module {
  diffinstruct::models::UNet2DConditionModel unet;
  double alpha, sigma;
  OneStepUNetImpl(diffinstruct::models::UNet2DConditionModel u, double a, double s) : unet(register_module("unet", std::move(u))), alpha(a), sigma(s) {}
  torch::Tensor forward(const torch::Tensor& z, const diffinstruct::models::TextCondition& c) {
    const auto t = torch::full({z.size(0)}, 999, torch::kLong);
    return (z - sigma * unet->forward(z, t, c)) / alpha;
  }
};
TORCH_MODULE(OneStepUNet);

}  // namespace test_models
