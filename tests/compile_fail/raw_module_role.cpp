// A raw module where a role wrapper belongs (the generator given as Net, not Generator<Net>): the
// trainer must refuse it at compile time with the documented message (tests/CMakeLists.txt checks
// the compiler output). With DIFFINSTRUCT_CONTRACT_MET the same program wraps it and compiles.
#include <diffinstruct/di_star.hpp>

namespace di = diffinstruct;

struct NetImpl : torch::nn::Module {
  torch::nn::Linear lin{nullptr};
  NetImpl() { lin = register_module("lin", torch::nn::Linear(2, 2)); }
  torch::Tensor forward(const torch::Tensor& z) { return lin(z); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&) { return lin(x); }
};
TORCH_MODULE(Net);

#ifdef DIFFINSTRUCT_CONTRACT_MET
using GeneratorRole = di::Generator<Net>;
#else
using GeneratorRole = Net;
#endif

int main() {
  using Trainer = di::DiStarTrainer<GeneratorRole, di::Denoiser<Net>, di::Denoiser<Net>, di::NoCondition, di::PseudoHuberScore,
                                    di::NoGuidance, di::NoReward, di::CosineVPSchedule>;
  Trainer trainer(GeneratorRole(Net()), di::Denoiser<Net>(Net()), di::Denoiser<Net>(Net()), {}, {}, {2});
  return trainer.step_count() == 0 ? 0 : 1;
}
