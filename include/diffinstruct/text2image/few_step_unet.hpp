#pragma once
/// \file A K-step generator from a UNet (few-step DI*, the paper's open question 2): the same network
/// denoises at K timesteps t_1 > ... > t_K of the schedule's table, re-noising its estimate between
/// steps, as DMD2's and the consistency models' multi-step samplers do:
///
///   x = z_1 (at t_1);   for k = 1..K:  x̂0 = x0-prediction of the UNet at (x, t_k);
///                                       if k < K:  x = α(t_{k+1}) x̂0 + σ(t_{k+1}) z_{k+1}
///   returns x̂0 of the last step.
///
/// The re-noising noises are part of the generator's input: z is [B, K·C, H, W], split into K
/// chunks of C channels (set the trainer's sample_shape to [C, H, W] and its noise to [K·C, H, W]).
/// The generator is then a deterministic function of its input, like a one-step generator: a
/// trainer's draws (and so its exact resume) cover every noise, and evaluation reuses fixed noise.
///
/// Gradients flow through the whole chain: the DI* loss's gradient is the exact gradient of the
/// K-step generator's output distribution. DMD2's "backward simulation" instead runs the earlier
/// steps without gradients and trains a randomly chosen step — cheaper in memory for large K, but a
/// different objective, and its random step would be a draw outside the trainer's. Memory is K
/// generator passes (with per-block checkpointing of the UNet, K passes of checkpoints).
/// With K = 1 it is exactly text2image::OneStepUNet.
#include <diffinstruct/models/scheduler_config.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>
#include <diffinstruct/schedules/discrete_vp.hpp>

#include <torch/torch.h>

#include <string>
#include <vector>

namespace diffinstruct {
namespace text2image {

struct FewStepUNetOptions {
  /// t_1 > t_2 > ... > t_K, integers of the schedule's table (DMD2's 4-step SDXL: 999, 749, 499, 249).
  TORCH_ARG(std::vector<int64_t>, timesteps) = std::vector<int64_t>{999};
  /// What the UNet predicts.
  TORCH_ARG(models::Prediction, prediction) = models::Prediction::kEpsilon;
};

class FewStepUNetImpl : public torch::nn::Module {
 public:
  FewStepUNetImpl(models::UNet2DConditionModel unet, const DiscreteVPSchedule& schedule, FewStepUNetOptions options = {})
      : unet(register_module("unet", std::move(unet))), options_(std::move(options)) {
    const auto& ts = options_.timesteps();
    const int64_t last = schedule.options().num_train_timesteps() - 1;
    TORCH_CHECK(!ts.empty() && ts.size() <= 64, "diffinstruct::text2image::FewStepUNet: expected 1 to 64 timesteps, got ", ts.size());
    for (size_t k = 0; k < ts.size(); ++k) {
      TORCH_CHECK(ts[k] >= 0 && ts[k] <= last, "diffinstruct::text2image::FewStepUNet: timestep ", ts[k], " is outside [0, ", last, "]");
      TORCH_CHECK(k == 0 || ts[k] < ts[k - 1], "diffinstruct::text2image::FewStepUNet: timesteps must decrease, got ",
                  c10::IntArrayRef(ts));
      const auto t = torch::full({1}, static_cast<double>(ts[k]), torch::kDouble);
      alpha_.push_back(schedule.alpha(t).item<double>());
      sigma_.push_back(schedule.sigma(t).item<double>());
      TORCH_CHECK(alpha_.back() > 0 && std::isfinite(alpha_.back()), "diffinstruct::text2image::FewStepUNet: alpha at timestep ", ts[k],
                  " is not positive");
    }
  }

  int64_t steps() const { return static_cast<int64_t>(options_.timesteps().size()); }

  /// x0 [B, C, H, W] from z [B, K·C, H, W] (C = the UNet's in_channels), in z's dtype.
  torch::Tensor forward(const torch::Tensor& z, const models::TextCondition& c) {
    const int64_t channels = unet->config().in_channels, k_steps = steps();
    TORCH_CHECK(z.defined() && z.dim() == 4 && z.size(1) == k_steps * channels, "diffinstruct::text2image::FewStepUNet: expected z [B, ",
                k_steps, "·", channels, ", H, W] (the first step's noise and each re-noising's), got ",
                z.defined() ? c10::str(z.sizes()) : std::string("an undefined tensor"));
    const auto noise = z.split(channels, 1);
    auto x = noise[0];
    torch::Tensor x0;
    for (int64_t k = 0; k < k_steps; ++k) {
      const auto t = torch::full({z.size(0)}, options_.timesteps()[static_cast<size_t>(k)], z.options().dtype(torch::kLong));
      const auto out = unet->forward(x, t, c).to(z.scalar_type());
      const double a = alpha_[static_cast<size_t>(k)], s = sigma_[static_cast<size_t>(k)];
      switch (options_.prediction()) {
        case models::Prediction::kEpsilon: x0 = (x - s * out) / a; break;
        case models::Prediction::kV: x0 = a * x - s * out; break;
        case models::Prediction::kSample: x0 = out; break;
      }
      if (k + 1 < k_steps) x = alpha_[static_cast<size_t>(k + 1)] * x0 + sigma_[static_cast<size_t>(k + 1)] * noise[static_cast<size_t>(k + 1)];
    }
    return x0;
  }

  const FewStepUNetOptions& options() const { return options_; }
  std::string describe() const {
    return std::to_string(steps()) + "-step UNet (timesteps " + c10::str(c10::IntArrayRef(options_.timesteps())) + ", " +
           models::prediction_name(options_.prediction()) + ")";
  }

  models::UNet2DConditionModel unet;

 private:
  FewStepUNetOptions options_;
  std::vector<double> alpha_, sigma_;
};
TORCH_MODULE(FewStepUNet);

}  // namespace text2image
}  // namespace diffinstruct
