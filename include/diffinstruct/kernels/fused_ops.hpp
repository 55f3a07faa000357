#pragma once
/// \file The fused score-loss kernels as dispatcher ops, seen from the header-only side.
///
/// The CUDA kernels need nvcc, so they live in the optional library `diffinstruct::cuda`
/// (src/cuda/), which registers `diffinstruct::score_loss_forward` and `diffinstruct::score_loss_backward`
/// with the PyTorch dispatcher (CUDA and CPU keys). Headers look the ops up by name: a program linked
/// with the library uses the GPU kernels, one without it falls back to the reference on GPU tensors
/// (the CPU kernel is header-only and never needs the library). Linking `diffinstruct::cuda` defines
/// DIFFINSTRUCT_WITH_CUDA_KERNELS, which makes the headers reference one of the library's symbols so
/// that `--as-needed` linkers keep it.

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/Tensor.h>

#include <tuple>

#ifdef DIFFINSTRUCT_WITH_CUDA_KERNELS
extern "C" int diffinstruct_cuda_kernels_linked();
#endif

namespace diffinstruct {
namespace detail {

inline constexpr const char* kScoreLossForwardSchema =
    "score_loss_forward(Tensor a, Tensor b, Tensor e, Tensor sigma, Tensor w, float param, int distance) -> (Tensor, Tensor)";
inline constexpr const char* kScoreLossBackwardSchema =
    "score_loss_backward(Tensor grad_loss, Tensor a, Tensor b, Tensor e, Tensor sigma, Tensor w, Tensor stats, float param, "
    "int distance) -> (Tensor, Tensor)";

/// Is a fused kernel registered with the dispatcher for tensors of this device type?
inline bool fused_op_registered(c10::DeviceType device_type) {
#ifdef DIFFINSTRUCT_WITH_CUDA_KERNELS
  static const int linked = diffinstruct_cuda_kernels_linked();
  (void)linked;
#endif
  const auto op = c10::Dispatcher::singleton().findSchema({"diffinstruct::score_loss_forward", ""});
  if (!op) return false;
  const auto key = device_type == c10::DeviceType::CUDA ? c10::DispatchKey::CUDA : c10::DispatchKey::CPU;
  return op->hasKernelForDispatchKey(key);
}

inline std::tuple<at::Tensor, at::Tensor> score_loss_forward_op(const at::Tensor& a, const at::Tensor& b, const at::Tensor& e,
                                                                const at::Tensor& sigma, const at::Tensor& w, double param,
                                                                int64_t distance) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("diffinstruct::score_loss_forward", "")
                             .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                                       const at::Tensor&, const at::Tensor&, double, int64_t)>();
  return op.call(a, b, e, sigma, w, param, distance);
}

inline std::tuple<at::Tensor, at::Tensor> score_loss_backward_op(const at::Tensor& grad_loss, const at::Tensor& a, const at::Tensor& b,
                                                                 const at::Tensor& e, const at::Tensor& sigma, const at::Tensor& w,
                                                                 const at::Tensor& stats, double param, int64_t distance) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("diffinstruct::score_loss_backward", "")
          .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                    const at::Tensor&, const at::Tensor&, const at::Tensor&, double, int64_t)>();
  return op.call(grad_loss, a, b, e, sigma, w, stats, param, distance);
}

}  // namespace detail
}  // namespace diffinstruct
