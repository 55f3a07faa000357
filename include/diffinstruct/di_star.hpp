#pragma once
/// \file diffinstruct: Diff-Instruct* (DI*) post-training of one-step generators on LibTorch.
///
/// The one public entry. Users include this header and pick policies:
///   divergences  PseudoHuberScore, SquaredL2Score, KL, ScoreDivergence<YourDistance>
///   guidance     NoGuidance, CfgInside, CfgOutside
///   rewards      NoReward, ModuleReward, CallableReward, WeightedSum
///   schedules    DiscreteVPSchedule, CosineVPSchedule, EdmSchedule
///   roles        Denoiser<Model, Parameterization>, Generator<Model> (the wrappers that make any model a
///                teacher, assistant or generator; LoRA adapters are adapters/, included on their own)
///   trainer      make_trainer(generator, teacher, assistant, policies..., conditions, NoiseShape{...}, options)
///                or DiStarTrainer<...> spelled out
/// See docs/policies.md for the contracts and docs/math.md for the formulas.

#include <diffinstruct/config.hpp>
#include <diffinstruct/version.hpp>

#include <diffinstruct/core/checks.hpp>
#include <diffinstruct/core/condition.hpp>
#include <diffinstruct/core/roles.hpp>
#include <diffinstruct/core/parameterization.hpp>
#include <diffinstruct/core/torchscript.hpp>

#include <diffinstruct/schedules/schedules.hpp>

#include <diffinstruct/kernels/score_loss.hpp>

#include <diffinstruct/divergences/divergences.hpp>

#include <diffinstruct/rewards/rewards.hpp>

#include <diffinstruct/losses/assistant_loss.hpp>
#include <diffinstruct/losses/generator_loss.hpp>

#include <diffinstruct/trainer/di_star_trainer.hpp>
#include <diffinstruct/trainer/make_trainer.hpp>
