#pragma once
/// \file The assistant's denoising score-matching loss on detached generator samples (docs/math.md §3).

#include <diffinstruct/core/roles.hpp>

namespace diffinstruct {

/// Per-sample DSM loss λ(t) ‖ε̂ − ε‖² [B] (summed over a sample's dimensions).
inline torch::Tensor dsm_loss(const torch::Tensor& eps_pred, const torch::Tensor& noise, const torch::Tensor& lambda) {
  detail::check_batch(noise, "dsm_loss", "noise");
  detail::check_like(noise, eps_pred, "dsm_loss", "noise", "eps_pred");
  detail::check_per_sample(noise, lambda, "dsm_loss", "lambda");
  const auto diff = eps_pred - noise;
  return lambda * sum_per_sample(diff * diff);
}

/// The same loss with the assistant's ε̂ given as a function eps(x_t, t, α_t, σ_t) (the trainer
/// passes one that checkpoints the assistant's forward).
template <class EpsFn, class Schedule>
torch::Tensor assistant_loss_of(EpsFn&& eps, const Schedule& schedule, const torch::Tensor& x0, const torch::Tensor& t,
                                const torch::Tensor& noise) {
  detail::check_batch(x0, "assistant_loss", "x0");
  detail::check_like(x0, noise, "assistant_loss", "x0", "noise");
  detail::check_per_sample(x0, t, "assistant_loss", "t");
  const auto alpha = schedule.alpha(t);
  const auto sigma = schedule.sigma(t);
  const auto x_t = diffuse(x0.detach(), alpha, sigma, noise);
  return dsm_loss(eps(x_t, t, alpha, sigma), noise, assistant_weight(schedule, t, alpha, sigma));
}

/// The assistant's loss L_ψ = λ(t) ‖ε̂_ψ(x_t, t, c) − ε‖², x_t = α_t sg[x0] + σ_t ε: the generator's
/// samples are detached, so only the assistant learns from it. The assistant is trained on the
/// unguided conditional target (no CFG).
///
/// Example:
///   auto t = schedule.sample_assistant_t(B, x0.options());
///   auto loss = assistant_loss(assistant, schedule, x0, labels, t, torch::randn_like(x0)).mean();
template <class AssistantModel, class Param, class Schedule, class Cond>
torch::Tensor assistant_loss(Denoiser<AssistantModel, Param>& assistant, const Schedule& schedule, const torch::Tensor& x0,
                             const Cond& cond, const torch::Tensor& t, const torch::Tensor& noise) {
  return assistant_loss_of(
      [&](const torch::Tensor& x_t, const torch::Tensor& tt, const torch::Tensor& a, const torch::Tensor& s) {
        return assistant.eps(x_t, tt, a, s, cond);
      },
      schedule, x0, t, noise);
}

} // namespace diffinstruct
