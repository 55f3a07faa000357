#pragma once
/// \file Dynamic loss scaling for float16 training (the semantics of PyTorch's GradScaler): the loss
/// is multiplied by a scale S before backward so that small float16 gradients do not flush to zero;
/// the gradients are divided by S before clipping and the step; a step whose gradients overflowed
/// (inf/NaN) is skipped and S backs off, and after `growth_interval` finite steps in a row S grows.
///
/// The work is done by ATen's `_amp_foreach_non_finite_check_and_unscale_` and `_amp_update_scale_`
/// where the backend has them (CUDA; CPU from LibTorch 2.4, core/torch_compat.hpp), and by plain
/// tensor operations otherwise, with the same results (tested against each other).

#include <diffinstruct/core/torch_compat.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace diffinstruct {

/// Settings of dynamic loss scaling (PyTorch's GradScaler defaults).
struct GradScalerOptions {
  /// S at the start.
  TORCH_ARG(double, init_scale) = 65536.0;
  /// S ← S · growth_factor after growth_interval finite steps in a row.
  TORCH_ARG(double, growth_factor) = 2.0;
  /// S ← S · backoff_factor after a step whose gradients overflowed (it is skipped).
  TORCH_ARG(double, backoff_factor) = 0.5;
  TORCH_ARG(int64_t, growth_interval) = 2000;

 public:
  void validate() const {
    TORCH_CHECK(std::isfinite(init_scale_) && init_scale_ > 0 && init_scale_ <= std::numeric_limits<float>::max(),
                "diffinstruct::GradScalerOptions: expected 0 < init_scale <= float32's largest value, got ", init_scale_);
    TORCH_CHECK(std::isfinite(growth_factor_) && growth_factor_ > 1, "diffinstruct::GradScalerOptions: expected a finite growth_factor > 1, got ",
                growth_factor_);
    TORCH_CHECK(backoff_factor_ > 0 && backoff_factor_ < 1, "diffinstruct::GradScalerOptions: expected 0 < backoff_factor < 1, got ",
                backoff_factor_);
    TORCH_CHECK(growth_interval_ >= 1 && growth_interval_ <= std::numeric_limits<int32_t>::max(),
                "diffinstruct::GradScalerOptions: expected growth_interval in [1, 2^31 - 1], got ", growth_interval_);
  }
};

/// Which implementation a GradScaler uses.
enum class ScalerKernels {
  kAuto,   ///< ATen's fused ops where the device has them, else kPlain
  kAten,   ///< ATen's ops (an error where the device has none)
  kPlain,  ///< plain tensor operations
};

/// One network's dynamic loss scale. The scale and the growth tracker live on the training device
/// as tensors (float32 [1] and int32 [1]), as in PyTorch, and go into checkpoints.
///
/// Example (one update):
///   auto grads = torch::autograd::grad({scaler.scale(loss)}, params, {}, false, false, true);
///   const bool overflow = scaler.unscale(grads);   // grads /= S; any inf/NaN?
///   if (!overflow) { assign(grads); optimizer.step(); }
///   scaler.update(overflow);                        // back off, or count towards growth
class GradScaler {
 public:
  GradScaler() = default;  ///< disabled: scale() returns the loss, unscale() only checks
  GradScaler(GradScalerOptions options, const c10::Device& device, ScalerKernels kernels = ScalerKernels::kAuto)
      : options_(std::move(options)), enabled_(true) {
    options_.validate();
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(device);
    scale_ = torch::full({1}, options_.init_scale(), f32);
    growth_tracker_ = torch::zeros({1}, f32.dtype(torch::kInt));
    aten_ = kernels == ScalerKernels::kAten || (kernels == ScalerKernels::kAuto && compat::has_amp_scaler_ops(device));
    TORCH_CHECK(!aten_ || compat::has_amp_scaler_ops(device), "diffinstruct::GradScaler: ATen's loss-scaling ops are not available on ",
                device, " in this LibTorch (", TORCH_VERSION, "); use ScalerKernels::kPlain or kAuto");
  }

  bool enabled() const { return enabled_; }
  const GradScalerOptions& options() const { return options_; }
  bool uses_aten_kernels() const { return aten_; }

  /// loss · S (the loss itself when disabled).
  torch::Tensor scale(const torch::Tensor& loss) const {
    if (!enabled_) return loss;
    return loss * scale_.to(loss.scalar_type()).squeeze();
  }

  /// Divides the defined gradients by S in place and returns whether any of them holds an inf or
  /// a NaN (when disabled: only the check). The gradients must be on the scaler's device.
  bool unscale(std::vector<torch::Tensor>& grads) {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> defined;
    for (auto& g : grads) {
      if (g.defined()) defined.push_back(g);
    }
    if (defined.empty()) return false;
    if (!enabled_) {
      std::vector<torch::Tensor> bad;
      for (const auto& g : defined) bad.push_back(torch::isfinite(g).logical_not().any());
      return torch::stack(bad).any().item<bool>();
    }
    for (const auto& g : defined) {
      TORCH_CHECK(g.device() == scale_.device(), "diffinstruct::GradScaler::unscale: expected gradients on ", scale_.device(),
                  " (the scaler's device), got one on ", g.device());
    }
    const auto inv_scale = scale_.to(torch::kDouble).reciprocal().to(torch::kFloat);  // as PyTorch computes 1/S
    torch::Tensor found_inf;
    if (aten_) {
      found_inf = torch::zeros({1}, scale_.options());
      at::_amp_foreach_non_finite_check_and_unscale_(defined, found_inf, inv_scale);
    } else {
      std::vector<torch::Tensor> bad;
      for (auto& g : defined) {
        g.mul_(inv_scale.to(g.scalar_type()));
        bad.push_back(torch::isfinite(g).logical_not().any());
      }
      found_inf = torch::stack(bad).any();
    }
    return found_inf.item<float>() != 0.0f;
  }

  /// After each update: S backs off when `overflow`, else one more finite step counts towards growth.
  void update(bool overflow) {
    if (!enabled_) return;
    torch::NoGradGuard no_grad;
    const auto found = torch::full({1}, overflow ? 1.0 : 0.0, scale_.options());
    if (aten_) {
      at::_amp_update_scale_(scale_, growth_tracker_, found, options_.growth_factor(), options_.backoff_factor(),
                             options_.growth_interval());
      return;
    }
    if (overflow) {
      scale_.mul_(options_.backoff_factor());
      growth_tracker_.zero_();
      return;
    }
    const int64_t successful = growth_tracker_.item<int>() + 1;
    if (successful == options_.growth_interval()) {
      const auto grown = scale_ * options_.growth_factor();
      if (torch::isfinite(grown).all().item<bool>()) scale_.copy_(grown);  // never grow into inf
      growth_tracker_.zero_();
    } else {
      growth_tracker_.fill_(successful);
    }
  }

  double scale_value() const { return enabled_ ? scale_.item<double>() : 1.0; }
  int64_t growth_tracker() const { return enabled_ ? growth_tracker_.item<int>() : 0; }
  /// The state tensors (for checkpoints): float32 [1] and int32 [1] on the device.
  const torch::Tensor& scale_tensor() const { return scale_; }
  const torch::Tensor& growth_tracker_tensor() const { return growth_tracker_; }
  /// Restores a saved state, checking it.
  void set_state(double scale, int64_t growth_tracker) {
    TORCH_CHECK(enabled_, "diffinstruct::GradScaler::set_state: the scaler is disabled");
    TORCH_CHECK(std::isfinite(scale) && scale > 0 && scale <= std::numeric_limits<float>::max(),
                "diffinstruct::GradScaler::set_state: expected a finite scale > 0, got ", scale);
    TORCH_CHECK(growth_tracker >= 0 && growth_tracker < options_.growth_interval(),
                "diffinstruct::GradScaler::set_state: expected a growth tracker in [0, growth_interval = ", options_.growth_interval(),
                "), got ", growth_tracker);
    scale_.fill_(scale);
    growth_tracker_.fill_(growth_tracker);
  }

 private:
  GradScalerOptions options_;
  bool enabled_ = false;
  bool aten_ = false;
  torch::Tensor scale_, growth_tracker_;
};

} // namespace diffinstruct
