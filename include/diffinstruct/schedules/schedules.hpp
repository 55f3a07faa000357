#pragma once
/// \file All shipped noise schedules.
#include <diffinstruct/schedules/cosine_vp.hpp>
#include <diffinstruct/schedules/discrete_vp.hpp>
#include <diffinstruct/schedules/edm.hpp>
#include <diffinstruct/schedules/schedule_base.hpp>
