// make_trainer with conditions but no guidance: the guidance is never a silent default, so this must
// not compile, with the documented message. With DIFFINSTRUCT_CONTRACT_MET it says NoGuidance and compiles.
#include <diffinstruct/di_star.hpp>

namespace di = diffinstruct;

struct NetImpl : torch::nn::Module {
  torch::nn::Linear lin{nullptr};
  NetImpl() { lin = register_module("lin", torch::nn::Linear(2, 2)); }
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor&) { return lin(z); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) { return lin(x); }
};
TORCH_MODULE(Net);

int main() {
  di::ConditionSource<torch::Tensor> labels{[](int64_t b, at::Generator& g) { return at::randint(0, 3, {b}, g, torch::kLong); },
                                            torch::zeros({1}, torch::kLong)};
  auto trainer = di::make_trainer(di::Generator(Net()), di::Denoiser(Net(), "teacher"), di::Denoiser(Net(), "assistant"), labels,
#ifdef DIFFINSTRUCT_CONTRACT_MET
                                  di::NoGuidance(),
#endif
                                  di::NoiseShape{2});
  return trainer.step_count() == 0 ? 0 : 1;
}
