#pragma once
/// \file Fused CPU kernels of the score-divergence surrogate: one pass over a, b, e for the two
/// per-sample reductions (forward), one pass to write ∂L/∂a and ∂L/∂b (backward).
///
/// Work is split into chunks of a sample's features and run in parallel over (sample, chunk), so a
/// batch of one large sample (an SDXL latent) uses every core as well as a large batch of small ones.
/// Inner loops keep 8 independent accumulators so the compiler vectorises them without reassociating
/// floating-point sums; chunk partials are combined in double. bfloat16/half inputs accumulate in
/// float. The per-sample math is shared with the CUDA kernels (kernels/score_math.hpp).

#include <diffinstruct/kernels/score_math.hpp>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <vector>

namespace diffinstruct {
namespace kernels {
namespace cpu {

/// Which closed-form distance the kernel implements.
enum class Distance { kPseudoHuber, kSquaredL2 };

inline constexpr int64_t kChunk = 16384;  // features per parallel work item

/// Work items per task: small samples are grouped so that a task touches about kChunk features.
inline int64_t grain(int64_t features) { return std::max<int64_t>(1, kChunk / std::max<int64_t>(features, 1)); }

template <class T>
using acc_type = std::conditional_t<std::is_same_v<T, double>, double, float>;

inline ScoreLossCoefficients<double> coefficients(Distance d, double yy, double yg, double sigma, double w, double param) {
  return d == Distance::kPseudoHuber ? pseudo_huber_coefficients(yy, yg, sigma, w, param)
                                     : squared_l2_coefficients(yy, yg, sigma, w, param);
}

/// Per-sample Σ(b−a)² and Σ(b−a)(a−e) over [B, N] contiguous inputs, in double.
template <class scalar_t>
void reduce_dd_dh(const scalar_t* a, const scalar_t* b, const scalar_t* e, int64_t B, int64_t N, double* dd, double* dh) {
  using acc_t = acc_type<scalar_t>;
  const int64_t chunks = (N + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(B * chunks * 2), 0.0);
  at::parallel_for(0, B * chunks, grain(N), [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t s = item / chunks, c = item % chunks;
      const int64_t lo = s * N + c * kChunk, hi = s * N + std::min(N, (c + 1) * kChunk);
      acc_t sdd[8] = {0}, sdh[8] = {0};
      int64_t i = lo;
      for (; i + 8 <= hi; i += 8) {
        for (int k = 0; k < 8; ++k) {
          const acc_t av = static_cast<acc_t>(a[i + k]);
          const acc_t d = static_cast<acc_t>(b[i + k]) - av, h = av - static_cast<acc_t>(e[i + k]);
          sdd[k] += d * d;
          sdh[k] += d * h;
        }
      }
      for (; i < hi; ++i) {
        const acc_t av = static_cast<acc_t>(a[i]);
        const acc_t d = static_cast<acc_t>(b[i]) - av, h = av - static_cast<acc_t>(e[i]);
        sdd[0] += d * d;
        sdh[0] += d * h;
      }
      double tdd = 0, tdh = 0;
      for (int k = 0; k < 8; ++k) tdd += sdd[k], tdh += sdh[k];
      partial[static_cast<size_t>(item * 2)] = tdd;
      partial[static_cast<size_t>(item * 2 + 1)] = tdh;
    }
  });
  for (int64_t s = 0; s < B; ++s) {
    double tdd = 0, tdh = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      tdd += partial[static_cast<size_t>((s * chunks + c) * 2)];
      tdh += partial[static_cast<size_t>((s * chunks + c) * 2 + 1)];
    }
    dd[s] = tdd;
    dh[s] = tdh;
  }
}

/// ∂L/∂a = ca_d (b−a) + ca_h (a−e), ∂L/∂b = cb_d (b−a) + cb_h (a−e), per-sample coefficients.
template <class scalar_t>
void write_grads(const scalar_t* a, const scalar_t* b, const scalar_t* e, int64_t B, int64_t N, const double* coef,
                 scalar_t* ga, scalar_t* gb) {
  using acc_t = acc_type<scalar_t>;
  const int64_t chunks = (N + kChunk - 1) / kChunk;
  at::parallel_for(0, B * chunks, grain(N), [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t s = item / chunks, c = item % chunks;
      const int64_t lo = s * N + c * kChunk, hi = s * N + std::min(N, (c + 1) * kChunk);
      const acc_t ad = static_cast<acc_t>(coef[s * 4]), ah = static_cast<acc_t>(coef[s * 4 + 1]);
      const acc_t bd = static_cast<acc_t>(coef[s * 4 + 2]), bh = static_cast<acc_t>(coef[s * 4 + 3]);
      for (int64_t i = lo; i < hi; ++i) {
        const acc_t av = static_cast<acc_t>(a[i]);
        const acc_t d = static_cast<acc_t>(b[i]) - av, h = av - static_cast<acc_t>(e[i]);
        ga[i] = static_cast<scalar_t>(ad * d + ah * h);
        gb[i] = static_cast<scalar_t>(bd * d + bh * h);
      }
    }
  });
}

/// Per-sample values for the forward: the loss [B] in the inputs' dtype, and (yy, yg) [B, 2] in
/// float64, which the backward needs. Inputs: [B, ...] of one floating dtype (contiguous or not),
/// sigma and w [B] or scalars.
inline std::tuple<torch::Tensor, torch::Tensor> score_loss_forward(Distance distance, const torch::Tensor& a, const torch::Tensor& b,
                                                                  const torch::Tensor& e, const torch::Tensor& sigma, const torch::Tensor& w,
                                                                  double param) {
  const int64_t B = a.size(0), N = a.numel() / std::max<int64_t>(B, 1);
  const auto ac = a.contiguous(), bc = b.contiguous(), ec = e.contiguous();
  const auto s = sigma.detach().to(torch::kFloat64).expand({B}).contiguous();
  const auto ww = w.detach().to(torch::kFloat64).expand({B}).contiguous();
  auto stats = torch::empty({B, 2}, torch::kFloat64);
  std::vector<double> dd(static_cast<size_t>(B)), dh(static_cast<size_t>(B));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, a.scalar_type(), "diffinstruct_score_loss_forward_cpu", [&] {
    reduce_dd_dh<scalar_t>(ac.data_ptr<scalar_t>(), bc.data_ptr<scalar_t>(), ec.data_ptr<scalar_t>(), B, N, dd.data(), dh.data());
  });
  auto loss = torch::empty({B}, torch::kFloat64);
  const double* sp = s.data_ptr<double>();
  const double* wp = ww.data_ptr<double>();
  double* st = stats.data_ptr<double>();
  double* lp = loss.data_ptr<double>();
  for (int64_t i = 0; i < B; ++i) {
    const double inv_s2 = 1.0 / (sp[i] * sp[i]);
    st[2 * i] = dd[static_cast<size_t>(i)] * inv_s2;
    st[2 * i + 1] = dh[static_cast<size_t>(i)] * inv_s2;
    lp[i] = coefficients(distance, st[2 * i], st[2 * i + 1], sp[i], wp[i], param).loss;
  }
  return {loss.to(a.scalar_type()), stats};
}

/// ∂L/∂a and ∂L/∂b for an upstream gradient `grad_loss` [B].
inline std::tuple<torch::Tensor, torch::Tensor> score_loss_backward(Distance distance, const torch::Tensor& grad_loss, const torch::Tensor& a,
                                                                   const torch::Tensor& b, const torch::Tensor& e, const torch::Tensor& sigma,
                                                                   const torch::Tensor& w, const torch::Tensor& stats, double param) {
  const int64_t B = a.size(0), N = a.numel() / std::max<int64_t>(B, 1);
  const auto ac = a.contiguous(), bc = b.contiguous(), ec = e.contiguous();
  const auto s = sigma.detach().to(torch::kFloat64).expand({B}).contiguous();
  const auto ww = w.detach().to(torch::kFloat64).expand({B}).contiguous();
  const auto go = grad_loss.detach().to(torch::kFloat64).expand({B}).contiguous();
  std::vector<double> coef(static_cast<size_t>(B * 4));
  const double* st = stats.data_ptr<double>();
  for (int64_t i = 0; i < B; ++i) {
    const double sg = s.data_ptr<double>()[i];
    const auto k = coefficients(distance, st[2 * i], st[2 * i + 1], sg, ww.data_ptr<double>()[i], param);
    const double scale = go.data_ptr<double>()[i] / sg;  // y = (b−a)/σ, g = (a−e)/σ
    coef[static_cast<size_t>(4 * i)] = scale * k.ya;
    coef[static_cast<size_t>(4 * i + 1)] = scale * k.ga;
    coef[static_cast<size_t>(4 * i + 2)] = scale * k.yb;
    coef[static_cast<size_t>(4 * i + 3)] = scale * k.gb;
  }
  auto ga = torch::empty_like(ac), gb = torch::empty_like(bc);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, a.scalar_type(), "diffinstruct_score_loss_backward_cpu", [&] {
    write_grads<scalar_t>(ac.data_ptr<scalar_t>(), bc.data_ptr<scalar_t>(), ec.data_ptr<scalar_t>(), B, N, coef.data(),
                          ga.data_ptr<scalar_t>(), gb.data_ptr<scalar_t>());
  });
  return {ga.view(a.sizes()), gb.view(b.sizes())};
}

} // namespace cpu
} // namespace kernels
} // namespace diffinstruct
