// Classifier-free guidance with NoCondition has no unconditional prediction to guide against: the
// trainer must refuse it at compile time with the documented message (tests/CMakeLists.txt checks
// the compiler output). With DIFFINSTRUCT_CONTRACT_MET the same program uses NoGuidance and compiles.
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
using Guidance = di::NoGuidance;
#else
using Guidance = di::CfgInside;
#endif

int main() {
  using Trainer = di::DiStarTrainer<di::Generator<Net>, di::Denoiser<Net>, di::Denoiser<Net>, di::NoCondition, di::PseudoHuberScore,
                                    Guidance, di::NoReward, di::CosineVPSchedule>;
  Trainer trainer(di::Generator<Net>(Net()), di::Denoiser<Net>(Net()), di::Denoiser<Net>(Net()), {}, {}, {2});
  return trainer.step_count() == 0 ? 0 : 1;
}
