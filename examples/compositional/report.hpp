#pragma once
// The miniature's report: the table (Markdown), metrics.json and metrics.csv, each written atomically.
#include "summary.hpp"

#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/util/errorbar_plot_png.hpp>

#include <nlohmann/json.hpp>

namespace compositional {

inline nlohmann::json to_json(const PromptFollowing& p) {
  return {{"position", p.position},
          {"colour", p.colour},
          {"class", p.cls},
          {"layout", p.layout},
          {"all_correct", p.all_correct},
          {"layout_items", p.layout_items},
          {"all_correct_items", p.all_correct_items},
          {"fd", p.fd},
          {"diversity", p.diversity}};
}

inline nlohmann::json to_json(const Row& r) {
  return {{"name", r.name},       {"method", r.method},        {"steps", r.steps}, {"guidance", r.guidance}, {"ms_per_image", r.ms_per_image},
          {"train_seconds", r.train_seconds}, {"reward", r.reward}, {"all", to_json(r.all)}, {"seen", to_json(r.seen)}, {"held_out", to_json(r.held)},
          {"sweep", r.sweep}, {"alpha_rew", r.alpha_rew}, {"seed_index", r.seed_index}};
}

/// The Markdown table: one line per name, "mean ± sd" where it has several seeds.
inline std::string table(const std::vector<Summary>& lines, double teacher_ms) {
  std::string s =
      "| model | seeds | steps | CFG | ms / image | time vs teacher | all correct: seen ↑ | held-out pairs ↑ | haze forgiven ↑ | class ↑ | colour ↑ | "
      "position ↑ | layout ↑ | reward ↑ | FD ↓ | diversity |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& l : lines) {
    auto v = [&](double mean, double sd, int digits) {
      return l.n > 1 ? fmt::format("{:.{}f} ± {:.{}f}", mean, digits, sd, digits) : fmt::format("{:.{}f}", mean, digits);
    };
    const Row &m = l.mean, &d = l.sd;
    s += fmt::format("| {} | {} | {} | {:g} | {:.2f} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", m.name, l.n, m.steps, m.guidance,
                     m.ms_per_image, teacher_ms > 0 && m.steps > 0 ? fmt::format("{:.1f}%", 100 * m.ms_per_image / teacher_ms) : std::string("–"),
                     v(m.seen.all_correct, d.seen.all_correct, 3), v(m.held.all_correct, d.held.all_correct, 3),
                     v(m.all.all_correct_items, d.all.all_correct_items, 3), v(m.all.cls, d.all.cls, 3), v(m.all.colour, d.all.colour, 3),
                     v(m.all.position, d.all.position, 3), v(m.all.layout, d.all.layout, 3), v(m.reward, d.reward, 2), v(m.all.fd, d.all.fd, 2),
                     v(m.all.diversity, d.all.diversity, 2));
  }
  return s;
}

/// The reward-scale sweeps: the CLIP reward (what training maximises) against the exact evaluator's
/// all-correct rate, strict and with haze forgiven, ± one sd over seeds; each point labelled by its scale.
inline void write_sweep_plot(const fs::path& path, const std::vector<Summary>& lines) {
  struct Family {
    std::string name;
    std::array<float, 3> strict, forgiving;
  };
  std::vector<di::ErrorBarSeries> series;
  for (const Family& f : {Family{"DI*-in", {0.80f, 0.15f, 0.15f}, {0.95f, 0.60f, 0.55f}}, Family{"DI++", {0.12f, 0.35f, 0.75f}, {0.55f, 0.70f, 0.95f}}}) {
    di::ErrorBarSeries strict{{}, f.strict, f.name + ", strict"}, forgiving{{}, f.forgiving, f.name + ", haze forgiven"};
    for (const auto& l : lines) {
      if (l.mean.sweep != f.name) continue;
      const std::string label = fmt::format("{:g}", l.mean.alpha_rew);
      strict.points.push_back({l.mean.reward, l.mean.all.all_correct, l.sd.reward, l.sd.all.all_correct, label});
      forgiving.points.push_back({l.mean.reward, l.mean.all.all_correct_items, l.sd.reward, l.sd.all.all_correct_items, label});
    }
    if (strict.points.empty()) continue;
    series.push_back(strict);
    series.push_back(forgiving);
  }
  if (series.empty()) return;
  di::write_errorbar_png(path.string(), series,
                         di::ErrorBarPlotOptions()
                             .title("reward scale sweep (labels: a_rew): CLIP reward vs the exact evaluator")
                             .x_title("CLIP reward (mean over the evaluation images)")
                             .y_title("all attributes correct (fraction of images)"));
}

/// `lines` is summarise(rows), which the table and the plot were made from too.
inline void write_reports(const fs::path& out, nlohmann::json report, const std::vector<Row>& rows, const std::vector<Summary>& lines,
                          const std::string& md) {
  std::vector<nlohmann::json> jrows;
  for (const auto& r : rows) jrows.push_back(to_json(r));
  report["rows"] = jrows;
  std::vector<nlohmann::json> jsummary;
  for (const auto& l : lines) jsummary.push_back({{"name", l.mean.name}, {"seeds", l.n}, {"mean", to_json(l.mean)}, {"sd", to_json(l.sd)}});
  report["summary"] = jsummary;
  di::io::write_text_file_atomically((out / "metrics.json").string(), report.dump(2) + "\n", "metrics.json");
  std::string csv =
      "name,method,seed_index,steps,guidance,ms_per_image,train_seconds,reward,all_correct_seen,all_correct_held_out,all_correct_items,class,colour,"
      "position,layout,layout_items,fd,diversity\n";
  for (const auto& r : rows)
    csv += fmt::format("\"{}\",\"{}\",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", r.name, r.method, r.seed_index, r.steps, r.guidance,
                       r.ms_per_image, r.train_seconds, r.reward, r.seen.all_correct, r.held.all_correct, r.all.all_correct_items, r.all.cls,
                       r.all.colour, r.all.position, r.all.layout, r.all.layout_items, r.all.fd, r.all.diversity);
  di::io::write_text_file_atomically((out / "metrics.csv").string(), csv, "metrics.csv");
  di::io::write_text_file_atomically((out / "report.md").string(), md, "report.md");
}

}  // namespace compositional
