#pragma once
/// \file Compute precision, separate from storage: which dtype the networks' forward passes run in
/// (autocast), what the training loop's own numbers are kept in, and how frozen models are stored.
///
/// The rule (docs/memory.md#precision): trained weights, their gradients, the optimizer states and
/// the EMA are float32 master weights; under kBFloat16/kFloat16 the forward passes of the generator,
/// teacher, assistant and reward run under autocast, and every number of the loop itself (noise,
/// times, α_t, σ_t, w(t), the divergence's reductions, losses, rewards, statistics) stays float32
/// or wider. Frozen models may be *stored* in a reduced dtype (store_frozen_in), which saves half of
/// their memory; autocast feeds them their inputs in that dtype.

#include <diffinstruct/core/module_ref.hpp>
#include <diffinstruct/core/torch_compat.hpp>

#include <optional>
#include <string>
#include <vector>

namespace diffinstruct {

/// The dtype the networks' forward passes compute in.
enum class Precision {
  kFloat32,   ///< no autocast: the networks see the loop's dtype (float32, or float64 with float64 weights)
  kBFloat16,  ///< autocast to bfloat16 (CPU and CUDA); no loss scaling needed (float32's exponent range)
  kFloat16,   ///< autocast to float16 (CUDA only), with dynamic loss scaling (grad_scaler.hpp)
};

inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kFloat32: return "fp32";
    case Precision::kBFloat16: return "bf16";
    case Precision::kFloat16: return "fp16";
  }
  return "?";
}

/// "fp32" | "bf16" | "fp16" (also "float32", "bfloat16", "float16") -> Precision.
inline Precision parse_precision(const std::string& s) {
  if (s == "fp32" || s == "float32") return Precision::kFloat32;
  if (s == "bf16" || s == "bfloat16") return Precision::kBFloat16;
  if (s == "fp16" || s == "float16") return Precision::kFloat16;
  TORCH_CHECK(false, "diffinstruct: expected a precision fp32, bf16 or fp16, got '", s, "'");
  return Precision::kFloat32;  // not reached
}

/// The dtype autocast computes in under `p` (kFloat for kFloat32, which uses no autocast).
inline c10::ScalarType compute_dtype(Precision p) {
  return p == Precision::kBFloat16 ? torch::kBFloat16 : p == Precision::kFloat16 ? torch::kHalf : torch::kFloat;
}

/// Whether `dtype` is a reduced floating-point type (bfloat16 or float16).
inline bool is_reduced_precision(c10::ScalarType dtype) { return dtype == torch::kBFloat16 || dtype == torch::kHalf; }

/// The dtype of the training loop's own numbers for trained weights of `weights` dtype: that dtype,
/// but never below float32.
inline c10::ScalarType loop_dtype_for(c10::ScalarType weights) {
  return is_reduced_precision(weights) ? torch::kFloat : c10::promoteTypes(weights, torch::kFloat);
}

/// Refuses a precision the device cannot run: float16 autocast is CUDA-only here (LibTorch 1.13's
/// CPU autocast knows bfloat16 only, and CPU float16 matrix products are slow where they exist).
inline void check_precision_supported(Precision p, const c10::Device& device, const char* who) {
  TORCH_CHECK(p != Precision::kFloat16 || device.is_cuda(), who, ": precision fp16 needs a CUDA device (the trained parameters are on ",
              device, "); use bf16 on the CPU");
  TORCH_CHECK(device.is_cpu() || device.is_cuda(), who, ": mixed precision supports CPU and CUDA devices, got ", device);
}

/// Runs the forward passes of a scope under autocast to `p`'s dtype on `device` (nothing for
/// kFloat32); the previous autocast state comes back after, and leaving the outermost region
/// clears autocast's cache of casted weights (they change at the next optimizer step).
///
/// Example:
///   { AutocastScope scope(Precision::kBFloat16, x.device()); y = unet->forward(x, t, c); }
///   y = y.to(torch::kFloat);
class AutocastScope {
 public:
  AutocastScope(Precision p, const c10::Device& device) {
    if (p == Precision::kFloat32) return;
    auto s = compat::autocast_state();
    if (device.is_cuda()) {
      s.cuda = true;
      s.cuda_dtype = compute_dtype(p);
    } else {
      s.cpu = true;
      s.cpu_dtype = compute_dtype(p);
    }
    guard_.emplace(s);
  }
  bool active() const { return guard_.has_value(); }

 private:
  std::optional<compat::AutocastStateGuard> guard_;
};

/// Casts the floating-point parameters and buffers of `module` to `dtype` in place (integer
/// buffers such as position ids stay as they are; the tensors keep their identity, so references
/// to them stay valid).
inline void cast_floating_point(const ModuleRef& module, c10::ScalarType dtype) {
  TORCH_CHECK(c10::isFloatingType(dtype), "diffinstruct::cast_floating_point: expected a floating-point dtype, got ", dtype);
  torch::NoGradGuard no_grad;
  for (auto& t : module.tensors()) {
    if (t.is_floating_point() && t.scalar_type() != dtype) t.set_data(t.to(dtype));
  }
}

namespace detail {
template <class M>
void collect_modules(std::vector<ModuleRef>& out, const M& m) {
  if constexpr (std::is_same_v<std::decay_t<M>, ModuleRef>) out.push_back(m);
  else if constexpr (has_modules<M>::value) {
    for (auto& r : m.modules()) out.push_back(std::move(r));
  } else {
    static_assert(is_native_module_v<M> || is_script_module_v<M>,
                  "diffinstruct::store_frozen_in: expected modules (holders, shared_ptrs, TorchScript modules, ModuleRefs) or "
                  "policies and adapters declaring modules() (Denoiser, ClipReward, DecodedReward, ...)");
    out.push_back(ModuleRef::of(m));
  }
}
} // namespace detail

/// Stores frozen models in a reduced dtype (bf16 halves their memory): the teacher, a reward and
/// what it wraps (a VAE decoder, a CLIP model), given as modules or as anything with modules()
/// (a Denoiser, a reward policy). Freezes them too (evaluation mode, no parameter gradients); the
/// trainer would. Only for frozen models: trained weights stay float32 (master weights), and the
/// trainer refuses reduced-precision trained weights.
///
/// Example:
///   store_frozen_in(torch::kBFloat16, teacher, reward);   // then DiStarTrainerOptions().precision(Precision::kBFloat16)
template <class... Models>
void store_frozen_in(c10::ScalarType dtype, const Models&... models) {
  std::vector<ModuleRef> refs;
  (detail::collect_modules(refs, models), ...);
  for (const auto& m : refs) {
    m.freeze();
    cast_floating_point(m, dtype);
  }
}

} // namespace diffinstruct
