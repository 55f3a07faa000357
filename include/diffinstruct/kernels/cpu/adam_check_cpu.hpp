#pragma once
/// \file The trainer's pre-step weight check, fused for CPU tensors: would an Adam/AdamW step leave
/// every weight finite? One read of each weight, its gradient and its moments, no temporaries: the
/// tensor-op version (trainer/optimizers.hpp, `detail::adam_next_weights`) allocates and writes five
/// tensors per parameter, which cost a small model's step 12% (measured with callgrind:
/// docs/performance.md). The per-element formula and order are LibTorch's step's
/// (torch/csrc/api/src/optim/adam{,w}.cpp); the CPU kernels of ATen may contract a multiply-add
/// that this loop rounds twice, so a new weight can differ in its last bit, and a verdict only
/// within an ulp of float's largest number.

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace diffinstruct {
namespace kernels {
namespace cpu {

/// The scalars of one parameter's next Adam/AdamW step (step counts from 1).
struct AdamStepScalars {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled = false, amsgrad = false;
  int64_t step = 1;
};

/// The loop of `adam_next_weights`, one element at a time. Non-finite results are detected through
/// the bits of next − next, which is +0 exactly for a finite value and NaN otherwise.
template <class T, bool kFirstStep, bool kAmsgrad, bool kOut>
bool adam_next_weights_loop(const T* p, const T* g, const T* m, const T* v, const T* v_max, int64_t begin, int64_t end, T b1,
                            T one_b1, T b2, T one_b2, T sqrt_bc2, T eps, T wd_l2, T shrink, T step_size, T* out) {
  using Bits = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  Bits bits = 0;
  for (int64_t i = begin; i < end; ++i) {
    const T grad = g[i] + wd_l2 * p[i];  // grad.add(p, weight_decay); wd_l2 = 0 without L2 decay
    T m_new, v_new;
    if constexpr (kFirstStep) {  // zero moments
      m_new = one_b1 * grad;
      v_new = one_b2 * grad * grad;
    } else {
      m_new = m[i] * b1 + one_b1 * grad;         // exp_avg.mul_(beta1).add_(grad, 1 - beta1)
      v_new = v[i] * b2 + one_b2 * grad * grad;  // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
    }
    if constexpr (kAmsgrad) {  // torch::max, which keeps a NaN of either side
      const T a = v_max[i];
      v_new = (a != a || v_new != v_new) ? a + v_new : (a > v_new ? a : v_new);
    }
    const T denom = std::sqrt(v_new) / sqrt_bc2 + eps;
    const T next = p[i] * shrink + step_size * (m_new / denom);  // p.mul_(1 - lr·wd) (AdamW); p.addcdiv_(exp_avg, denom, -lr / bc1)
    const T zero_if_finite = next - next;
    Bits b;
    std::memcpy(&b, &zero_if_finite, sizeof(T));
    bits |= b;
    if constexpr (kOut) out[i] = next;
  }
  return bits == 0;
}

#if defined(__SSE2__)
/// The same loop for float, four lanes at a time with SSE2 (every x86-64 has it). The compiler does
/// not vectorise the scalar loop: std::sqrt may set errno, and that branch blocks it. The same IEEE
/// operations in the same order as the scalar loop. Returns where it stopped (a multiple of four
/// past begin); the caller finishes the tail.
template <bool kFirstStep, bool kAmsgrad, bool kOut>
int64_t adam_next_weights_sse(const float* p, const float* g, const float* m, const float* v, const float* v_max, int64_t begin,
                              int64_t end, float b1, float one_b1, float b2, float one_b2, float sqrt_bc2, float eps, float wd_l2,
                              float shrink, float step_size, float* out, bool& finite) {
  const __m128 vb1 = _mm_set1_ps(b1), vob1 = _mm_set1_ps(one_b1), vb2 = _mm_set1_ps(b2), vob2 = _mm_set1_ps(one_b2);
  const __m128 vsq = _mm_set1_ps(sqrt_bc2), veps = _mm_set1_ps(eps), vwd = _mm_set1_ps(wd_l2), vshrink = _mm_set1_ps(shrink);
  const __m128 vstep = _mm_set1_ps(step_size);
  __m128i bits = _mm_setzero_si128();
  int64_t i = begin;
  for (; i + 4 <= end; i += 4) {
    const __m128 pp = _mm_loadu_ps(p + i);
    const __m128 grad = _mm_add_ps(_mm_loadu_ps(g + i), _mm_mul_ps(vwd, pp));
    __m128 m_new, v_new;
    if constexpr (kFirstStep) {
      m_new = _mm_mul_ps(vob1, grad);
      v_new = _mm_mul_ps(_mm_mul_ps(vob2, grad), grad);
    } else {
      m_new = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + i), vb1), _mm_mul_ps(vob1, grad));
      v_new = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), vb2), _mm_mul_ps(_mm_mul_ps(vob2, grad), grad));
    }
    if constexpr (kAmsgrad) {
      const __m128 a = _mm_loadu_ps(v_max + i), nan = _mm_cmpunord_ps(a, v_new);
      v_new = _mm_or_ps(_mm_and_ps(nan, _mm_add_ps(a, v_new)), _mm_andnot_ps(nan, _mm_max_ps(a, v_new)));
    }
    const __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(v_new), vsq), veps);
    const __m128 next = _mm_add_ps(_mm_mul_ps(pp, vshrink), _mm_mul_ps(vstep, _mm_div_ps(m_new, denom)));
    bits = _mm_or_si128(bits, _mm_castps_si128(_mm_sub_ps(next, next)));
    if constexpr (kOut) _mm_storeu_ps(out + i, next);
  }
  finite = _mm_movemask_epi8(_mm_cmpeq_epi32(bits, _mm_setzero_si128())) == 0xFFFF;
  return i;
}
#endif

/// The weights after the step for elements [begin, end); m and v are null before the first step,
/// v_max null unless amsgrad keeps one. Returns whether all are finite; writes them to `out` when
/// it is given.
template <class T>
bool adam_next_weights(const T* p, const T* g, const T* m, const T* v, const T* v_max, int64_t begin, int64_t end,
                       const AdamStepScalars& s, T* out) {
  const double bc1 = 1 - std::pow(s.beta1, static_cast<double>(s.step));
  const double bc2 = 1 - std::pow(s.beta2, static_cast<double>(s.step));
  const T b1 = static_cast<T>(s.beta1), one_b1 = static_cast<T>(1 - s.beta1);
  const T b2 = static_cast<T>(s.beta2), one_b2 = static_cast<T>(1 - s.beta2);
  const T sqrt_bc2 = static_cast<T>(std::sqrt(bc2)), eps = static_cast<T>(s.eps);
  const T wd_l2 = static_cast<T>(s.decoupled ? 0.0 : s.weight_decay);
  const T shrink = static_cast<T>(s.decoupled ? 1 - s.lr * s.weight_decay : 1.0), step_size = static_cast<T>(-s.lr / bc1);
  const bool first = !m || !v;
  auto run = [&](auto first_step, auto amsgrad) {
    constexpr bool kFirst = decltype(first_step)::value, kAms = decltype(amsgrad)::value;
    bool finite = true;
    int64_t i = begin;
#if defined(__SSE2__)
    if constexpr (std::is_same_v<T, float>) {
      auto sse = out ? adam_next_weights_sse<kFirst, kAms, true> : adam_next_weights_sse<kFirst, kAms, false>;
      i = sse(p, g, m, v, v_max, begin, end, b1, one_b1, b2, one_b2, sqrt_bc2, eps, wd_l2, shrink, step_size, out, finite);
    }
#endif
    auto loop = out ? adam_next_weights_loop<T, kFirst, kAms, true> : adam_next_weights_loop<T, kFirst, kAms, false>;
    return loop(p, g, m, v, v_max, i, end, b1, one_b1, b2, one_b2, sqrt_bc2, eps, wd_l2, shrink, step_size, out) && finite;
  };
  using Yes = std::true_type;
  using No = std::false_type;
  if (first) return v_max ? run(Yes{}, Yes{}) : run(Yes{}, No{});
  return v_max ? run(No{}, Yes{}) : run(No{}, No{});
}

/// Can the fused check read these tensors? CPU, float32 or float64, contiguous, one dtype, the
/// moments (when defined) shaped like the weight.
inline bool adam_check_supported(const torch::Tensor& p, const torch::Tensor& g, const torch::Tensor& m, const torch::Tensor& v,
                                 const torch::Tensor& v_max) {
  const auto dt = p.scalar_type();
  if (!p.device().is_cpu() || (dt != torch::kFloat && dt != torch::kDouble) || !p.is_contiguous()) return false;
  for (const auto* t : {&g, &m, &v, &v_max}) {
    if (!t->defined()) continue;
    if (t != &g && t->numel() == 0) continue;  // an absent max_exp_avg_sq is stored empty
    if (!t->device().is_cpu() || t->scalar_type() != dt || !t->is_contiguous() || t->sizes() != p.sizes()) return false;
  }
  return g.defined();
}

/// Would the step keep every element of this parameter finite? Parallel over chunks of elements.
/// `out`, when defined (contiguous, p's shape and dtype), receives the new weights (for tests).
inline bool adam_step_keeps_finite(const torch::Tensor& p, const torch::Tensor& g, const torch::Tensor& m, const torch::Tensor& v,
                                   const torch::Tensor& v_max, const AdamStepScalars& s, const torch::Tensor& out = {}) {
  TORCH_CHECK(adam_check_supported(p, g, m, v, v_max), "diffinstruct::kernels::cpu::adam_step_keeps_finite: expected contiguous CPU "
              "float32/float64 tensors of one shape and dtype; got a weight of ", p.scalar_type(), " ", p.sizes(), " on ", p.device());
  std::atomic<bool> finite{true};
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "adam_step_keeps_finite", [&] {
    auto ptr = [](const torch::Tensor& t) { return t.defined() && t.numel() ? t.data_ptr<scalar_t>() : nullptr; };
    const scalar_t *pp = ptr(p), *pg = ptr(g), *pm = ptr(m), *pv = ptr(v), *pvm = s.amsgrad ? ptr(v_max) : nullptr;
    scalar_t* po = out.defined() ? out.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
      if (!adam_next_weights(pp, pg, pm, pv, pvm, begin, end, s, po)) finite.store(false);
    });
  });
  return finite.load();
}

}  // namespace cpu
}  // namespace kernels
}  // namespace diffinstruct
