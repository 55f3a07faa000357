// A model that cannot be called with the trainer's condition type (a generator with forward(z) only,
// in a trainer conditioned on label tensors): refused at compile time with the documented message.
// With DIFFINSTRUCT_CONTRACT_MET the generator takes the labels and the program compiles.
#include <diffinstruct/di_star.hpp>

namespace di = diffinstruct;

struct GenImpl : torch::nn::Module {
  torch::nn::Linear lin{nullptr};
  GenImpl() { lin = register_module("lin", torch::nn::Linear(2, 2)); }
#ifdef DIFFINSTRUCT_CONTRACT_MET
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor&) { return lin(z); }
#else
  torch::Tensor forward(const torch::Tensor& z) { return lin(z); }
#endif
};
TORCH_MODULE(Gen);
struct DenImpl : torch::nn::Module {
  torch::nn::Linear lin{nullptr};
  DenImpl() { lin = register_module("lin", torch::nn::Linear(2, 2)); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) { return lin(x); }
};
TORCH_MODULE(Den);

int main() {
  using Trainer = di::DiStarTrainer<di::Generator<Gen>, di::Denoiser<Den>, di::Denoiser<Den>, torch::Tensor, di::PseudoHuberScore,
                                    di::NoGuidance, di::NoReward, di::CosineVPSchedule>;
  di::ConditionSource<torch::Tensor> labels{[](int64_t b, at::Generator& g) { return at::randint(0, 3, {b}, g, torch::kLong); }, {}};
  Trainer trainer(di::Generator<Gen>(Gen()), di::Denoiser<Den>(Den()), di::Denoiser<Den>(Den()), {}, labels, {2});
  return trainer.step_count() == 0 ? 0 : 1;
}
