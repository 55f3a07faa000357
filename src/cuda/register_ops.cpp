// Registers the fused score-loss kernels with the PyTorch dispatcher as `diffinstruct::score_loss_forward`
// and `diffinstruct::score_loss_backward`: the CUDA kernels under the CUDA key and the fused CPU
// kernels under the CPU key. The header-only library finds the ops by name (kernels/fused_ops.hpp);
// Python can load this shared library with torch.ops.load_library and call torch.ops.diffinstruct.*.
#include <diffinstruct/kernels/cpu/score_loss_cpu.hpp>
#include <diffinstruct/kernels/cuda/score_loss_cuda.hpp>
#include <diffinstruct/kernels/fused_ops.hpp>

#include <torch/library.h>

namespace {

namespace dk = diffinstruct::kernels;

dk::cpu::Distance cpu_distance(int64_t distance) {
  TORCH_CHECK(distance == 0 || distance == 1, "diffinstruct: distance must be 0 (pseudo-Huber) or 1 (squared L2), got ", distance);
  return distance == 0 ? dk::cpu::Distance::kPseudoHuber : dk::cpu::Distance::kSquaredL2;
}

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& a, const at::Tensor& b, const at::Tensor& e, const at::Tensor& sigma,
                                               const at::Tensor& w, double param, int64_t distance) {
  return dk::cpu::score_loss_forward(cpu_distance(distance), a, b, e, sigma, w, param);
}

std::tuple<at::Tensor, at::Tensor> backward_cpu(const at::Tensor& grad_loss, const at::Tensor& a, const at::Tensor& b, const at::Tensor& e,
                                                const at::Tensor& sigma, const at::Tensor& w, const at::Tensor& stats, double param,
                                                int64_t distance) {
  return dk::cpu::score_loss_backward(cpu_distance(distance), grad_loss, a, b, e, sigma, w, stats, param);
}

}  // namespace

TORCH_LIBRARY(diffinstruct, m) {
  m.def(diffinstruct::detail::kScoreLossForwardSchema);
  m.def(diffinstruct::detail::kScoreLossBackwardSchema);
}

TORCH_LIBRARY_IMPL(diffinstruct, CUDA, m) {
  m.impl("score_loss_forward", &dk::cuda::score_loss_forward);
  m.impl("score_loss_backward", &dk::cuda::score_loss_backward);
}

TORCH_LIBRARY_IMPL(diffinstruct, CPU, m) {
  m.impl("score_loss_forward", &forward_cpu);
  m.impl("score_loss_backward", &backward_cpu);
}

// A symbol the headers reference when DIFFINSTRUCT_WITH_CUDA_KERNELS is defined, so a linker with
// --as-needed keeps this library (and its static registrations) in the program.
extern "C" int diffinstruct_cuda_kernels_linked() { return 1; }

// The CUDA caching allocator's statistics for memory/peak_memory.hpp (libc10_cuda is linked here,
// not by the header-only library).
#include <c10/cuda/CUDACachingAllocator.h>

extern "C" void diffinstruct_cuda_memory_reset_peak(int device) {
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
}

extern "C" void diffinstruct_cuda_memory_allocated(int device, long long* current, long long* peak) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  const auto& a = stats.allocated_bytes[0];  // StatType::AGGREGATE (its namespace moved between LibTorch versions)
  *current = a.current;
  *peak = a.peak;
}
