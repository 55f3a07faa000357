// A user divergence that forgets `needs_input_grad`: generator_loss must refuse it at compile time
// with the documented message (tests/CMakeLists.txt checks the compiler output).
#include <diffinstruct/di_star.hpp>

struct ForgetfulDivergence {
#ifdef DIFFINSTRUCT_CONTRACT_MET
  static constexpr bool needs_input_grad = true;
#endif
  static constexpr const char* name = "forgetful";
  torch::Tensor loss(const diffinstruct::DivergenceInputs& in) const { return in.w; }
};

int main() {
  diffinstruct::GeneratorLossInputs in;
  (void)diffinstruct::generator_loss(ForgetfulDivergence{}, diffinstruct::NoGuidance{}, in);
  return 0;
}
