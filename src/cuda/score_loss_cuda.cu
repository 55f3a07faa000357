// Torch-side launchers of the fused CUDA score-loss kernels (kernels/cuda/score_loss_kernels.cuh):
// input checks, a device guard, the current stream, dtype dispatch, and a launch check.
// Registered with the dispatcher in register_ops.cpp; compiled only in CUDA-enabled builds.
#include <diffinstruct/kernels/cuda/score_loss_cuda.hpp>
#include <diffinstruct/kernels/cuda/score_loss_kernels.cuh>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace diffinstruct {
namespace kernels {
namespace cuda {
namespace {

// The kernels' element types, by ATen dtype.
template <class scalar_t>
struct DeviceType {
  using type = scalar_t;
};
template <>
struct DeviceType<at::Half> {
  using type = __half;
};
template <>
struct DeviceType<at::BFloat16> {
  using type = __nv_bfloat16;
};

template <class scalar_t>
const typename DeviceType<scalar_t>::type* device_ptr(const at::Tensor& t) {
  return reinterpret_cast<const typename DeviceType<scalar_t>::type*>(t.data_ptr<scalar_t>());
}
template <class scalar_t>
typename DeviceType<scalar_t>::type* device_ptr_mut(at::Tensor& t) {
  return reinterpret_cast<typename DeviceType<scalar_t>::type*>(t.data_ptr<scalar_t>());
}

void check_inputs(const char* op, const at::Tensor& a, const at::Tensor& b, const at::Tensor& e, const at::Tensor& sigma,
                  const at::Tensor& w, int64_t distance) {
  TORCH_CHECK(a.is_cuda(), op, ": expected CUDA tensors, got a on ", a.device());
  TORCH_CHECK(a.dim() >= 1 && a.size(0) > 0, op, ": expected a of shape [B, ...] with B > 0, got ", a.sizes());
  TORCH_CHECK(b.sizes() == a.sizes() && e.sizes() == a.sizes(), op, ": a, b and e must have one shape, got ", a.sizes(), ", ",
              b.sizes(), ", ", e.sizes());
  TORCH_CHECK(b.scalar_type() == a.scalar_type() && e.scalar_type() == a.scalar_type(), op, ": a, b and e must have one dtype, got ",
              a.scalar_type(), ", ", b.scalar_type(), ", ", e.scalar_type());
  TORCH_CHECK(a.scalar_type() == at::kFloat || a.scalar_type() == at::kHalf || a.scalar_type() == at::kBFloat16, op,
              ": expected float32, float16 or bfloat16 inputs, got ", a.scalar_type());
  for (const at::Tensor* t : {&b, &e, &sigma, &w})
    TORCH_CHECK(t->device() == a.device(), op, ": every input must be on ", a.device(), ", got one on ", t->device());
  const int64_t B = a.size(0);
  TORCH_CHECK(sigma.numel() == 1 || sigma.numel() == B, op, ": sigma must be a scalar or hold B = ", B, " values, got ", sigma.sizes());
  TORCH_CHECK(w.numel() == 1 || w.numel() == B, op, ": w must be a scalar or hold B = ", B, " values, got ", w.sizes());
  TORCH_CHECK(distance == 0 || distance == 1, op, ": distance must be 0 (pseudo-Huber) or 1 (squared L2), got ", distance);
}

at::Tensor per_sample_float(const at::Tensor& t, int64_t B) { return t.detach().to(at::kFloat).reshape({-1}).expand({B}).contiguous(); }

int sm_count() { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }

// The kernels take float, half and bfloat16 (not double: AT_DISPATCH's floating set would add it).
template <class F>
void dispatch_kernel_dtype(at::ScalarType st, F&& f) {
  switch (st) {
    case at::kFloat: f(float{}); break;
    case at::kHalf: f(at::Half{}); break;
    case at::kBFloat16: f(at::BFloat16{}); break;
    default: TORCH_CHECK(false, "diffinstruct: no CUDA kernel for dtype ", st);
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> score_loss_forward(const at::Tensor& a, const at::Tensor& b, const at::Tensor& e,
                                                      const at::Tensor& sigma, const at::Tensor& w, double param, int64_t distance) {
  check_inputs("diffinstruct::score_loss_forward", a, b, e, sigma, w, distance);
  const c10::cuda::CUDAGuard guard(a.device());
  const int64_t B = a.size(0), N = a.numel() / B;
  const auto ac = a.contiguous(), bc = b.contiguous(), ec = e.contiguous();
  const auto s = per_sample_float(sigma, B), ww = per_sample_float(w, B);
  const int splits = splits_for(B, N, sm_count());
  auto partial = at::empty({B * splits * 2}, a.options().dtype(at::kFloat));
  auto loss = at::empty({B}, a.options());
  auto stats = at::empty({B, 2}, a.options().dtype(at::kFloat));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  dispatch_kernel_dtype(a.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    using T = typename DeviceType<scalar_t>::type;
    C10_CUDA_CHECK(launch_forward<T>(device_ptr<scalar_t>(ac), device_ptr<scalar_t>(bc), device_ptr<scalar_t>(ec), B, N,
                                     s.data_ptr<float>(), ww.data_ptr<float>(), static_cast<int>(distance), static_cast<float>(param),
                                     splits, partial.data_ptr<float>(), device_ptr_mut<scalar_t>(loss), stats.data_ptr<float>(), stream));
  });
  return {loss, stats};
}

std::tuple<at::Tensor, at::Tensor> score_loss_backward(const at::Tensor& grad_loss, const at::Tensor& a, const at::Tensor& b,
                                                       const at::Tensor& e, const at::Tensor& sigma, const at::Tensor& w,
                                                       const at::Tensor& stats, double param, int64_t distance) {
  check_inputs("diffinstruct::score_loss_backward", a, b, e, sigma, w, distance);
  const int64_t B = a.size(0), N = a.numel() / B;
  TORCH_CHECK(stats.device() == a.device() && stats.scalar_type() == at::kFloat && stats.numel() == 2 * B,
              "diffinstruct::score_loss_backward: expected float32 stats [", B, ", 2] on ", a.device(), ", got ", stats.scalar_type(), " ",
              stats.sizes(), " on ", stats.device());
  TORCH_CHECK(grad_loss.numel() == 1 || grad_loss.numel() == B, "diffinstruct::score_loss_backward: grad_loss must hold B = ", B,
              " values, got ", grad_loss.sizes());
  const c10::cuda::CUDAGuard guard(a.device());
  const auto ac = a.contiguous(), bc = b.contiguous(), ec = e.contiguous();
  const auto s = per_sample_float(sigma, B), ww = per_sample_float(w, B), go = per_sample_float(grad_loss, B);
  const auto st = stats.contiguous();
  auto ga = at::empty_like(ac), gb = at::empty_like(bc);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  dispatch_kernel_dtype(a.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    using T = typename DeviceType<scalar_t>::type;
    C10_CUDA_CHECK(launch_backward<T>(device_ptr<scalar_t>(ac), device_ptr<scalar_t>(bc), device_ptr<scalar_t>(ec), B, N,
                                      st.data_ptr<float>(), s.data_ptr<float>(), ww.data_ptr<float>(), go.data_ptr<float>(),
                                      static_cast<int>(distance), static_cast<float>(param), device_ptr_mut<scalar_t>(ga),
                                      device_ptr_mut<scalar_t>(gb), sm_count(), stream));
  });
  return {ga.view(a.sizes()), gb.view(b.sizes())};
}

}  // namespace cuda
}  // namespace kernels
}  // namespace diffinstruct
