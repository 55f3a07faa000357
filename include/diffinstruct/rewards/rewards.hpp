#pragma once
/// \file All shipped reward and guidance policies.
#include <diffinstruct/rewards/guidance.hpp>
#include <diffinstruct/rewards/model_reward.hpp>
#include <diffinstruct/rewards/reward.hpp>
#include <diffinstruct/rewards/weighted_sum.hpp>
