// A user distance whose d'(y) function is misnamed (`derivative` instead of `grad`):
// ScoreDivergence must refuse it with the documented message.
#include <diffinstruct/di_star.hpp>

struct MisnamedDistance {
  static constexpr const char* name = "misnamed";
  torch::Tensor derivative(const torch::Tensor& y) const { return y; }
};

int main() {
  diffinstruct::ScoreDivergence<MisnamedDistance> div;
  (void)div;
  return 0;
}
