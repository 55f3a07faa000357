#pragma once
// The models of bench_trainer_step, mirrored one-for-one in bench_trainer_step.py.
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/testing/gaussian_mixture.hpp>

namespace bench {

// 2-D demo models: MLP 2→128→128→128→2 generator; assistant on (x_t, sin πt, cos πt).
struct MlpImpl : torch::nn::Module {
  torch::nn::Sequential net;
  MlpImpl(int64_t in, int64_t out)
      : net(torch::nn::Linear(in, 128), torch::nn::SiLU(), torch::nn::Linear(128, 128), torch::nn::SiLU(), torch::nn::Linear(128, 128),
            torch::nn::SiLU(), torch::nn::Linear(128, out)) {
    register_module("net", net);
  }
  torch::Tensor forward(const torch::Tensor& z) { return net->forward(z); }
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t) {
    return net->forward(torch::cat({x_t, torch::sin(M_PI * t).unsqueeze(1), torch::cos(M_PI * t).unsqueeze(1)}, 1));
  }
};
TORCH_MODULE(Mlp);

// Small conv models on 1×16×16 images: three 3×3 convolutions, 32 channels; denoisers take t as a
// constant extra channel.
struct ConvImpl : torch::nn::Module {
  torch::nn::Sequential net;
  explicit ConvImpl(int64_t in)
      : net(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, 32, 3).padding(1)), torch::nn::SiLU(),
            torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 32, 3).padding(1)), torch::nn::SiLU(),
            torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 1, 3).padding(1))) {
    register_module("net", net);
  }
  torch::Tensor forward(const torch::Tensor& z) { return net->forward(z); }
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t) {
    return net->forward(torch::cat({x_t, t.view({-1, 1, 1, 1}).expand_as(x_t)}, 1));
  }
};
TORCH_MODULE(Conv);

struct MixtureTeacher {
  diffinstruct::testing::GaussianMixture mixture = diffinstruct::testing::GaussianMixture::ring();
  diffinstruct::CosineVPSchedule schedule = diffinstruct::CosineVPSchedule();
  torch::Tensor operator()(const torch::Tensor& x_t, const torch::Tensor& t) const {
    return mixture.eps(x_t, schedule.alpha(t), schedule.sigma(t));
  }
};

inline torch::Tensor mlp_reward(const torch::Tensor& x0) { return torch::sigmoid(3 * x0.select(1, 0)); }
inline torch::Tensor conv_reward(const torch::Tensor& x0) { return torch::sigmoid(x0.mean({1, 2, 3})); }

}  // namespace bench
