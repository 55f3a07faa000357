#pragma once
/// \file The DI* generator loss: L = L_div + L_cfg + L_rew (docs/math.md §2, §4).
///
/// Reduction convention (fixed, docs/math.md §2.4): every term is summed over a sample's dimensions and
/// returned per sample [B]; the trainer averages over the batch. α_rew is therefore relative to a
/// divergence summed over all of a sample's dimensions (4×128×128 for an SDXL latent).

#include <diffinstruct/divergences/divergence.hpp>
#include <diffinstruct/rewards/guidance.hpp>
#include <diffinstruct/rewards/reward.hpp>

namespace diffinstruct {

/// One batch's network outputs and diffusion quantities at per-sample times t.
struct GeneratorLossInputs {
  torch::Tensor assistant_eps;  ///< a = ε̂_ψ(x_t)
  torch::Tensor eps_cond;       ///< ε̂_ref(x_t, c)
  torch::Tensor eps_uncond;     ///< ε̂_ref(x_t, ∅); needed only when the guidance needs it
  torch::Tensor noise;          ///< ε
  torch::Tensor x_t;            ///< α x0 + σ ε (differentiable in the generator's parameters)
  torch::Tensor x0;             ///< generator samples
  torch::Tensor alpha;          ///< α_t [B]
  torch::Tensor sigma;          ///< σ_t [B]
  torch::Tensor w;              ///< w(t) [B]
  torch::Tensor reward;         ///< r(x0, c) [B] from the reward policy; undefined for no reward
  double alpha_rew = 0.0;       ///< reward scale α_rew
};

/// Per-sample terms [B]; `total = divergence + guidance + reward`.
struct GeneratorLossTerms {
  torch::Tensor divergence;  ///< L_div (surrogate)
  torch::Tensor guidance;    ///< L_cfg (zero unless CFG is outside)
  torch::Tensor reward;      ///< L_rew = −α_rew r
  torch::Tensor total;
};

/// Computes the generator loss terms. With `check_values`, non-finite inputs and σ ≤ 0 raise a
/// clear error (one device read-back per tensor; the trainer turns it off and counts non-finite
/// losses instead).
///
/// Example:
///   auto terms = generator_loss(PseudoHuberScore(1.0), CfgInside(AlphaCfg(7.5)), inputs);
///   terms.total.mean().backward();
template <class Divergence, class Guidance>
GeneratorLossTerms generator_loss(const Divergence& divergence, const Guidance& guidance, const GeneratorLossInputs& in,
                                  bool check_values = true) {
  require_divergence<Divergence>();
  require_guidance<Guidance>();
  constexpr const char* component = "generator_loss";
  detail::check_defined(in.eps_cond, component, "eps_cond");
  if constexpr (Guidance::needs_unconditional) {
    TORCH_CHECK(in.eps_uncond.defined(), "diffinstruct::generator_loss: the guidance policy '", Guidance::name,
                "' needs the teacher's unconditional prediction `eps_uncond`, got an undefined tensor");
  }
  TORCH_CHECK(std::isfinite(in.alpha_rew), "diffinstruct::generator_loss: expected a finite alpha_rew, got ", in.alpha_rew);

  // Values are checked once here (when asked), not again inside the policies.
  DivergenceInputs div_in{in.assistant_eps, guidance.target(in.eps_cond, in.eps_uncond), in.noise, in.x_t, in.x0,
                          in.alpha, in.sigma, in.w, /*check_values=*/false};
  detail::check_divergence_inputs(div_in, component);
  if (check_values) {
    detail::check_divergence_values(div_in, component);
    if (in.eps_uncond.defined()) detail::check_finite(in.eps_uncond, component, "eps_uncond");
  }

  GeneratorLossTerms terms;
  terms.divergence = divergence.loss(div_in);
  terms.guidance = detail::guidance_loss(guidance, in.eps_cond, in.eps_uncond, in.x_t, in.sigma, in.w, /*check_values=*/false);
  if (in.reward.defined()) {
    const auto r = detail::check_reward_output(in.reward, in.x_t, component);
    if (check_values) detail::check_finite(r, component, "reward");
    terms.reward = reward_loss(r, in.alpha_rew);
  } else {
    terms.reward = torch::zeros_like(terms.divergence);
  }
  terms.total = terms.divergence + terms.guidance + terms.reward;
  return terms;
}

} // namespace diffinstruct
