// 03_fashion_mnist's report: the table (Markdown), metrics.json and metrics.csv, and the reward-versus-FD
// plot across reward scales with the spread over runs. Every file is written atomically
// (io/atomic_file.hpp): a rerun or a kill never leaves a half-written report beside a complete one.
#pragma once
#include "pipeline.hpp"

#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/util/errorbar_plot_png.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace fashion {

inline nlohmann::json to_json(const Metrics& m) {
  return {{"name", m.name},           {"method", m.method},       {"steps", m.steps},         {"parameters", m.parameters},
          {"ms_per_image", m.ms_per_image}, {"accuracy", m.accuracy}, {"log_prob", m.log_prob}, {"reward", m.reward},
          {"fd", m.fd},               {"diversity", m.diversity}, {"alpha_rew", m.alpha_rew}, {"alpha_cfg", m.alpha_cfg},
          {"train_seconds", m.train_seconds}};
}

inline std::string table(const std::vector<Metrics>& rows, double teacher_ms) {
  std::string s =
      "| model | method | steps | params | ms / image | time vs teacher | held-out acc ↑ | held-out log p ↑ | reward ↑ | FD ↓ | diversity |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& m : rows)
    s += fmt::format("| {} | {} | {} | {:.0f}k | {:.3f} | {} | {:.3f} | {:.3f} | {:.3f} | {:.2f} | {:.2f} |\n", m.name, m.method, m.steps,
                     m.parameters / 1e3, m.ms_per_image,
                     teacher_ms > 0 && m.steps > 0 ? fmt::format("{:.1f}%", 100 * m.ms_per_image / teacher_ms) : std::string("–"), m.accuracy,
                     m.log_prob, m.reward, m.fd, m.diversity);
  return s;
}

/// metrics<suffix>.json (`report` with the rows added), metrics<suffix>.csv and report<suffix>.md
/// (`heading` then the table, then `extra`).
inline void write_reports(const fs::path& out, const std::string& suffix, nlohmann::json report, const std::vector<Metrics>& rows,
                          const std::string& heading, const std::string& md, const std::string& extra = "") {
  std::vector<nlohmann::json> jrows;
  for (const auto& m : rows) jrows.push_back(to_json(m));
  report["rows"] = jrows;
  di::io::write_text_file_atomically((out / ("metrics" + suffix + ".json")).string(), report.dump(2) + "\n", "metrics.json");
  std::string csv = "name,method,steps,parameters,ms_per_image,accuracy,log_prob,reward,fd,diversity,alpha_rew,alpha_cfg,train_seconds\n";
  for (const auto& m : rows)
    csv += fmt::format("\"{}\",\"{}\",{},{},{},{},{},{},{},{},{},{},{}\n", m.name, m.method, m.steps, m.parameters, m.ms_per_image, m.accuracy,
                       m.log_prob, m.reward, m.fd, m.diversity, m.alpha_rew, m.alpha_cfg, m.train_seconds);
  di::io::write_text_file_atomically((out / ("metrics" + suffix + ".csv")).string(), csv, "metrics.csv");
  di::io::write_text_file_atomically((out / ("report" + suffix + ".md")).string(), heading + md + extra, "report.md");
}

/// Reward against FD across reward scales, one point per (family, alpha_rew) at CFG strength `ac`:
/// the mean over the runs there are (one in the main table, three in the seeds sweep) with +- one
/// standard deviation as bars, each point labelled with its alpha_rew; written to `png`. Returns
/// the same numbers as a Markdown table of the spread.
inline std::string reward_vs_fd(const std::vector<Metrics>& rows, double ac, bool seeds_sweep, const fs::path& png) {
  std::vector<di::ErrorBarSeries> series;
  std::string spread = "\n## Mean and spread over runs\n\n| family | a_rew | runs | held-out acc | held-out log p | reward | FD | diversity |\n"
                       "|---|---|---|---|---|---|---|---|\n";
  for (const std::string family : {"DI*-in", "DI++"}) {
    di::ErrorBarSeries s;
    s.label = family + (seeds_sweep ? " (mean +- sd of 3 runs)" : "");
    s.rgb = family == "DI++" ? std::array<float, 3>{0.85f, 0.35f, 0.1f} : std::array<float, 3>{0.12f, 0.35f, 0.75f};
    std::map<double, std::vector<const Metrics*>> by_alpha;
    for (const auto& m : rows)
      if (m.name.rfind(family + ",", 0) == 0 || m.name == family) {
        if (m.alpha_rew > 0 && m.alpha_cfg == ac) by_alpha[m.alpha_rew].push_back(&m);
      }
    for (const auto& [a, ms] : by_alpha) {
      auto stat = [&](auto field) {
        double mean = 0, sq = 0;
        for (auto* m : ms) mean += field(*m);
        mean /= double(ms.size());
        for (auto* m : ms) sq += (field(*m) - mean) * (field(*m) - mean);
        return std::make_pair(mean, ms.size() > 1 ? std::sqrt(sq / double(ms.size() - 1)) : 0.0);
      };
      const auto fd = stat([](const Metrics& m) { return m.fd; }), rew = stat([](const Metrics& m) { return m.reward; });
      const auto acc = stat([](const Metrics& m) { return m.accuracy; }), lp = stat([](const Metrics& m) { return m.log_prob; });
      const auto div = stat([](const Metrics& m) { return m.diversity; });
      s.points.push_back({fd.first, rew.first, fd.second, rew.second, fmt::format("a_rew={:.3g}", a)});
      spread += fmt::format("| {} | {:.3g} | {} | {:.3f} +- {:.3f} | {:.3f} +- {:.3f} | {:.3f} +- {:.3f} | {:.1f} +- {:.1f} | {:.2f} +- {:.2f} |\n",
                            family, a, ms.size(), acc.first, acc.second, lp.first, lp.second, rew.first, rew.second, fd.first, fd.second,
                            div.first, div.second);
    }
    series.push_back(s);
  }
  di::write_errorbar_png(png.string(), series,
                         di::ErrorBarPlotOptions()
                             .title(fmt::format("reward vs FD across reward scales (a_cfg = {:.3g})", ac))
                             .x_title("FD to the test images, evaluator features (lower is better)")
                             .y_title("reward-model log p(c | x), mean over prompts (higher is better)"));
  return spread;
}

}  // namespace fashion
