#pragma once
/// \file All shipped divergence policies.
#include <diffinstruct/divergences/divergence.hpp>
#include <diffinstruct/divergences/kl.hpp>
#include <diffinstruct/divergences/pseudo_huber_score.hpp>
#include <diffinstruct/divergences/score_divergence.hpp>
#include <diffinstruct/divergences/squared_l2_score.hpp>
