#pragma once
/// \file A one-step text-to-image generator made of a diffusion UNet, as SD-Turbo and DMD2 use one:
/// the noise z goes in as x_t at a fixed timestep t* (999 for SD-Turbo, 399 for DMD2's one-step SDXL),
/// and the UNet's prediction there becomes x0 with the schedule's α, σ at t*:
///   epsilon: x0 = (z − σ ε̂) / α        v_prediction: x0 = α z − σ v̂        sample: x0 = the output
/// The UNet is the submodule `unet`, so a trained generator is saved as the diffusers UNet folder it
/// was loaded from (models::save_pretrained(gen->unet, dir)), and its LoRA adapters (named
/// `unet.<module>...`) are the UNet's own.
///
/// Example:
///   auto unet = models::load_unet("sd-turbo/unet");
///   text2image::OneStepUNet gen(unet, schedule, text2image::OneStepUNetOptions().timestep(999));
///   Generator<text2image::OneStepUNet> generator(gen);

#include <diffinstruct/models/scheduler_config.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>
#include <diffinstruct/schedules/discrete_vp.hpp>

#include <torch/torch.h>

#include <cmath>
#include <string>

namespace diffinstruct {
namespace text2image {

struct OneStepUNetOptions {
  /// t*, the UNet's timestep for the one step (an integer of the schedule's table).
  TORCH_ARG(int64_t, timestep) = 999;
  /// What the UNet predicts at t*.
  TORCH_ARG(models::Prediction, prediction) = models::Prediction::kEpsilon;
};

class OneStepUNetImpl : public torch::nn::Module {
 public:
  OneStepUNetImpl(models::UNet2DConditionModel unet, const DiscreteVPSchedule& schedule, OneStepUNetOptions options = {})
      : unet(register_module("unet", std::move(unet))), options_(options) {
    const auto last = schedule.options().num_train_timesteps() - 1;
    TORCH_CHECK(options_.timestep() >= 0 && options_.timestep() <= last, "diffinstruct::text2image::OneStepUNet: expected a timestep in [0, ",
                last, "], got ", options_.timestep());
    const auto t = torch::full({1}, static_cast<double>(options_.timestep()), torch::kDouble);
    alpha_ = schedule.alpha(t).item<double>();
    sigma_ = schedule.sigma(t).item<double>();
    TORCH_CHECK(alpha_ > 0 && std::isfinite(alpha_), "diffinstruct::text2image::OneStepUNet: alpha at t* is not positive");
  }

  /// x0 [B, C, H, W] from noise z [B, C, H, W], in z's dtype (under autocast the UNet computes in
  /// reduced precision; the conversion to x0 does not).
  torch::Tensor forward(const torch::Tensor& z, const models::TextCondition& c) {
    TORCH_CHECK(z.defined() && z.dim() == 4, "diffinstruct::text2image::OneStepUNet: expected z [B, C, H, W], got ",
                z.defined() ? c10::str(z.sizes()) : std::string("an undefined tensor"));
    const auto t = torch::full({z.size(0)}, options_.timestep(), z.options().dtype(torch::kLong));
    const auto out = unet->forward(z, t, c).to(z.scalar_type());
    switch (options_.prediction()) {
      case models::Prediction::kEpsilon: return (z - sigma_ * out) / alpha_;
      case models::Prediction::kV: return alpha_ * z - sigma_ * out;
      case models::Prediction::kSample: return out;
    }
    return out;
  }

  const OneStepUNetOptions& options() const { return options_; }
  double alpha() const { return alpha_; }
  double sigma() const { return sigma_; }
  std::string describe() const {
    return "one-step UNet (t* = " + std::to_string(options_.timestep()) + ", " + models::prediction_name(options_.prediction()) + ")";
  }

  models::UNet2DConditionModel unet;

 private:
  OneStepUNetOptions options_;
  double alpha_ = 1, sigma_ = 0;
};
TORCH_MODULE(OneStepUNet);

}  // namespace text2image
}  // namespace diffinstruct
