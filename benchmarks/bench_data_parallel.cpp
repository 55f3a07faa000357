// bench_data_parallel — one rank of a data-parallel DI* run on the benchmark models (the 2-D demo
// MLP, batch 256 per rank, and the small conv model on 1×16×16, batch 64 per rank), launched by
// scripts/bench_dp.sh through scripts/launch_local.sh for 1 and 2 ranks. Rank 0 prints steps per
// second and the share of the step spent in collectives (gradient all-reduce, statistics).
// Per-rank batch is fixed (weak scaling): 2 ranks process twice the samples per step.
#include "trainer_step_models.hpp"

#include <diffinstruct/distributed/data_parallel.hpp>
#include <diffinstruct/util/threads.hpp>

#include <fmt/format.h>

#include <chrono>

namespace di = diffinstruct;

namespace {

template <class Gen, class Asst, class Teacher, class RewardFn>
void run(const char* name, Gen gen, Asst asst, Teacher teacher, RewardFn reward, std::vector<int64_t> noise, int64_t batch, int64_t steps,
         const std::shared_ptr<di::DataParallel>& dp) {
  using Trainer = di::DiStarTrainer<di::Generator<Gen>, di::Denoiser<Teacher>, di::Denoiser<Asst>, di::NoCondition, di::PseudoHuberScore,
                                    di::NoGuidance, di::CallableReward<RewardFn>, di::CosineVPSchedule>;
  Trainer trainer(di::Generator<Gen>(gen), di::Denoiser<Teacher>(teacher), di::Denoiser<Asst>(asst),
                  {di::PseudoHuberScore(1.0), di::NoGuidance{}, di::CallableReward<RewardFn>(reward), di::CosineVPSchedule()}, {}, noise,
                  di::DiStarTrainerOptions().batch_size(batch).alpha_rew(0.3).ema_decay(0));
  trainer.set_data_parallel(dp);
  for (int i = 0; i < 5; ++i) trainer.step();  // warm-up
  dp->barrier();
  const double comm0 = dp->collective_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) trainer.step();
  dp->barrier();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double comm = dp->collective_seconds() - comm0;
  if (dp->rank() == 0)
    fmt::print("{:<6} ranks {}  batch/rank {:>4}  {:>8.1f} steps/s  {:>9.0f} samples/s  {:>6.2f} ms/step  collectives {:>5.1f}%\n", name,
               dp->world_size(), batch, steps / seconds, steps * batch * dp->world_size() / seconds, 1e3 * seconds / steps,
               100 * comm / seconds);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t steps = argc > 1 ? std::atoll(argv[1]) : 200;
  di::use_threads(1);
  try {
    auto dp = di::DataParallel::from_env();
    torch::manual_seed(0);
    run("mlp", bench::Mlp(2, 2), bench::Mlp(4, 2), bench::MixtureTeacher{}, bench::mlp_reward, {2}, 256, steps, dp);
    run("conv", bench::Conv(1), bench::Conv(2), bench::Conv(2), bench::conv_reward, {1, 16, 16}, 64, steps / 4, dp);
  } catch (const c10::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
