// 03_fashion_mnist's post-training runs: the main table's methods, or the runs of one sweep (the
// open questions: c, the (alpha_cfg, alpha_rew) grid, K; and seeds, the run-to-run spread), each a
// name, a cache file and how to train it from the one-step init.
#pragma once
#include "pipeline.hpp"

#include <functional>
#include <string>
#include <vector>

namespace fashion {

struct Run {
  std::string name, method, file;
  std::function<TrainedGenerator()> train;
  double alpha_rew, alpha_cfg;
};

/// The runs of `sweep` ("none": the main table), all from the same init and assistant start (the
/// teacher). The references must outlive the runs.
inline std::vector<Run> post_training_runs(const std::string& sweep, const Config& cfg, const di::CosineVPSchedule& schedule,
                                           const TinyUNet& teacher, const OneStepGenerator& init, const Reward& reward) {
  std::vector<Run> runs;
  // `seed_offset` picks the post-training run's own draws (the stages before it keep --seed).
  auto add = [&](std::string name, std::string method, std::string file, double arew, double acfg, auto div, auto guid, int64_t k,
                 uint64_t seed_offset = 20) {
    runs.push_back({name, method, file,
                    [=, &cfg, &schedule, &teacher, &init, &reward] {
                      return run_di_star(name, div, guid, arew, cfg.post_steps, k, cfg, schedule, teacher, init, teacher, reward,
                                         cfg.seed + seed_offset);
                    },
                    arew, acfg});
  };
  const double ar = cfg.alpha_rew, ac = cfg.alpha_cfg;
  if (sweep == "none") {
    add("DI*-in", "PH + reward + CFG inside", "di_star_in", ar, ac, di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(ac)), cfg.k);
    add("DI*-out", "PH + reward + CFG outside", "di_star_out", ar, ac, di::PseudoHuberScore(cfg.c), di::CfgOutside(di::AlphaCfg(ac)), cfg.k);
    add("DI* no CFG", "PH + reward", "di_star_nocfg", ar, 0.0, di::PseudoHuberScore(cfg.c), di::NoGuidance{}, cfg.k);
    add("DI++", "KL + reward + CFG inside", "di_plusplus", ar, ac, di::KL(), di::CfgInside(di::AlphaCfg(ac)), cfg.k);
    add("SIM", "PH + CFG inside", "sim", 0.0, ac, di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(ac)), cfg.k);
    add("DI", "KL + CFG inside", "di", 0.0, ac, di::KL(), di::CfgInside(di::AlphaCfg(ac)), cfg.k);
    for (double a : {ar / 3, 3 * ar}) {  // reward scales for the reward-versus-FD plot
      add(fmt::format("DI*-in, a_rew = {:.3g}", a), "PH + reward + CFG inside", fmt::format("di_star_in_arew{:.3g}", a), a, ac,
          di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(ac)), cfg.k);
      add(fmt::format("DI++, a_rew = {:.3g}", a), "KL + reward + CFG inside", fmt::format("di_plusplus_arew{:.3g}", a), a, ac, di::KL(),
          di::CfgInside(di::AlphaCfg(ac)), cfg.k);
    }
  } else if (sweep == "c") {
    for (double c : {0.03, 0.3, 1.0, 3.0, 30.0})
      add(fmt::format("DI*-in, c = {}", c), "PH + reward + CFG inside", fmt::format("sweep_c{}", c), ar, ac, di::PseudoHuberScore(c),
          di::CfgInside(di::AlphaCfg(ac)), cfg.k);
  } else if (sweep == "cfg-grid") {
    for (double a_cfg : {0.0, 1.0, 2.0, 4.0})
      for (double a_rew : {0.0, ar / 3, ar, 3 * ar})
        add(fmt::format("DI*-in, a_cfg = {}, a_rew = {:.3g}", a_cfg, a_rew), "PH + reward + CFG inside",
            fmt::format("sweep_cfg{}_rew{:.3g}", a_cfg, a_rew), a_rew, a_cfg, di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(a_cfg)), cfg.k);
  } else if (sweep == "seeds") {
    // Run-to-run spread: the same four methods from the same init with three post-training seeds
    // (run 0 is the main table's), and DI*-in / DI++ at the other two reward scales, for the
    // reward-versus-FD plot with error bars.
    for (uint64_t r : {0, 1, 2}) {
      const uint64_t off = 20 + 1000 * r;
      add(fmt::format("DI*-in, run {}", r), "PH + reward + CFG inside", fmt::format("seeds_di_star_in_r{}", r), ar, ac,
          di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(ac)), cfg.k, off);
      add(fmt::format("DI++, run {}", r), "KL + reward + CFG inside", fmt::format("seeds_di_plusplus_r{}", r), ar, ac, di::KL(),
          di::CfgInside(di::AlphaCfg(ac)), cfg.k, off);
      add(fmt::format("DI* no CFG, run {}", r), "PH + reward", fmt::format("seeds_di_star_nocfg_r{}", r), ar, 0.0,
          di::PseudoHuberScore(cfg.c), di::NoGuidance{}, cfg.k, off);
      add(fmt::format("SIM, run {}", r), "PH + CFG inside", fmt::format("seeds_sim_r{}", r), 0.0, ac, di::PseudoHuberScore(cfg.c),
          di::CfgInside(di::AlphaCfg(ac)), cfg.k, off);
      for (double a : {ar / 3, 3 * ar}) {
        add(fmt::format("DI*-in, a_rew = {:.3g}, run {}", a, r), "PH + reward + CFG inside",
            fmt::format("seeds_di_star_in_arew{:.3g}_r{}", a, r), a, ac, di::PseudoHuberScore(cfg.c), di::CfgInside(di::AlphaCfg(ac)), cfg.k,
            off);
        add(fmt::format("DI++, a_rew = {:.3g}, run {}", a, r), "KL + reward + CFG inside", fmt::format("seeds_di_plusplus_arew{:.3g}_r{}", a, r),
            a, ac, di::KL(), di::CfgInside(di::AlphaCfg(ac)), cfg.k, off);
      }
    }
  } else if (sweep == "K") {
    for (int64_t k : {1, 2, 4})
      add(fmt::format("DI*-in, K = {}", k), "PH + reward + CFG inside", fmt::format("sweep_K{}", k), ar, ac, di::PseudoHuberScore(cfg.c),
          di::CfgInside(di::AlphaCfg(ac)), k);
  }
  return runs;
}

}  // namespace fashion
