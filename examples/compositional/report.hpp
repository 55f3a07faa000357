#pragma once
// The miniature's report: the table (Markdown), metrics.json and metrics.csv, each written atomically.
#include "evaluation.hpp"

#include <diffinstruct/io/atomic_file.hpp>

#include <nlohmann/json.hpp>

namespace compositional {

inline nlohmann::json to_json(const PromptFollowing& p) {
  return {{"position", p.position}, {"colour", p.colour}, {"class", p.cls}, {"layout", p.layout}, {"all_correct", p.all_correct},
          {"fd", p.fd},             {"diversity", p.diversity}};
}

inline nlohmann::json to_json(const Row& r) {
  return {{"name", r.name},       {"method", r.method},        {"steps", r.steps}, {"guidance", r.guidance}, {"ms_per_image", r.ms_per_image},
          {"train_seconds", r.train_seconds}, {"reward", r.reward}, {"all", to_json(r.all)}, {"seen", to_json(r.seen)}, {"held_out", to_json(r.held)}};
}

inline std::string table(const std::vector<Row>& rows, double teacher_ms) {
  std::string s =
      "| model | steps | CFG | ms / image | time vs teacher | all correct: seen ↑ | held-out pairs ↑ | class ↑ | colour ↑ | position ↑ | "
      "layout ↑ | reward ↑ | FD ↓ | diversity |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows)
    s += fmt::format("| {} | {} | {:g} | {:.2f} | {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.2f} | {:.2f} | {:.2f} |\n", r.name,
                     r.steps, r.guidance, r.ms_per_image,
                     teacher_ms > 0 && r.steps > 0 ? fmt::format("{:.1f}%", 100 * r.ms_per_image / teacher_ms) : std::string("–"), r.seen.all_correct,
                     r.held.all_correct, r.all.cls, r.all.colour, r.all.position, r.all.layout, r.reward, r.all.fd, r.all.diversity);
  return s;
}

inline void write_reports(const fs::path& out, nlohmann::json report, const std::vector<Row>& rows, const std::string& md) {
  std::vector<nlohmann::json> jrows;
  for (const auto& r : rows) jrows.push_back(to_json(r));
  report["rows"] = jrows;
  di::io::write_text_file_atomically((out / "metrics.json").string(), report.dump(2) + "\n", "metrics.json");
  std::string csv = "name,method,steps,guidance,ms_per_image,reward,all_correct_seen,all_correct_held_out,class,colour,position,layout,fd,diversity\n";
  for (const auto& r : rows)
    csv += fmt::format("\"{}\",\"{}\",{},{},{},{},{},{},{},{},{},{},{},{}\n", r.name, r.method, r.steps, r.guidance, r.ms_per_image, r.reward,
                       r.seen.all_correct, r.held.all_correct, r.all.cls, r.all.colour, r.all.position, r.all.layout, r.all.fd, r.all.diversity);
  di::io::write_text_file_atomically((out / "metrics.csv").string(), csv, "metrics.csv");
  di::io::write_text_file_atomically((out / "report.md").string(), md, "report.md");
}

}  // namespace compositional
