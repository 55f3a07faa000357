#pragma once
// di_evaluate's outputs from the scores of every model: report.md (the paper's table with mean ±
// standard error, time per image and its ratio to the teacher; differences to the reference model
// with bootstrap intervals; per-category means; diversity), metrics.json (the same numbers),
// metrics.csv (one row per image) and grids/<category>.png (the first prompts of each category,
// one column per model, seed 0).
//
// Units: a prompt's score is the mean over its seeds, and means, standard errors and the bootstrap
// (paired: the same prompts and seeds for every model) run over prompts, so that the correlated
// images of one prompt do not pass for independent evidence.
#include "score_store.hpp"

#include <diffinstruct/eval/paired_statistics.hpp>
#include <diffinstruct/io/json.hpp>
#include <diffinstruct/text2image/clip_metrics.hpp>
#include <diffinstruct/text2image/metric_scorers.hpp>
#include <diffinstruct/util/image_grid_png.hpp>

#include <fmt/format.h>

#include <map>
#include <string>
#include <vector>

namespace evaluate {

namespace t2i = diffinstruct::text2image;

/// Everything the report needs of one model.
struct ModelResults {
  std::string name, slug;
  int64_t steps = 1;
  double guidance = 1;
  bool teacher = false;
  std::map<std::string, std::vector<double>> per_image;  // metric -> [P·S], row p·S + s
  double seconds_per_image = NAN;                        // without the first batch (warm-up) when there are others
  double diversity = NAN;
};

struct ReportInput {
  std::vector<std::string> prompts, groups;  // groups: one per prompt (Parti's Category), or empty
  int64_t seeds = 1;
  std::vector<t2i::MetricInfo> metrics;
  std::string diversity_metric;  // whose image embeddings measure diversity ("" when none has them)
  std::vector<ModelResults> models;
  size_t reference = 0;  // the model the others are compared with (the first teacher, else the first)
  int64_t resamples = 1000;
  std::string command, device, date;
};

inline std::vector<double> per_prompt(const std::vector<double>& rows, int64_t seeds) {
  std::vector<double> out(rows.size() / static_cast<size_t>(seeds));
  for (size_t p = 0; p < out.size(); ++p) {
    double s = 0;
    for (int64_t k = 0; k < seeds; ++k) s += rows[p * static_cast<size_t>(seeds) + static_cast<size_t>(k)];
    out[p] = s / static_cast<double>(seeds);
  }
  return out;
}

inline std::string number(double v, int digits = 4) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : std::string("—"); }
/// Digits that suit a metric on the paper's scale (PickScore 0.2331, HPS 31.19, ImageReward 1.140).
inline int digits_for(const t2i::MetricInfo& m) { return m.paper_factor < 1 ? 4 : m.paper_factor > 1 ? 2 : 3; }

inline void write_report(const std::string& out_dir, const ReportInput& in) {
  const fs::path out(out_dir);
  const auto& ref = in.models[in.reference];
  const ModelResults* teacher = nullptr;
  for (const auto& m : in.models)
    if (m.teacher) {
      teacher = &m;
      break;
    }
  std::string md = "# di_evaluate report\n\n";
  md += fmt::format("{} prompts × {} seeds = {} images per model; {}; {}.\n\nCommand: `{}`\n\n", in.prompts.size(), in.seeds,
                    in.prompts.size() * static_cast<size_t>(in.seeds), in.device, in.date, in.command);
  md += "Scores on the paper's scales (PickScore ÷ 100, HPS × 100; the others as their models give them), mean ± standard error over "
        "prompts (each prompt's score the mean over its seeds). Time: generation and VAE decoding per image, without the first batch "
        "(warm-up) when there are others.\n\n";
  // The main table.
  md += "| model | steps | CFG |";
  for (const auto& m : in.metrics) md += " " + m.title + " |";
  md += " s / image | % of teacher |\n|---|---|---|";
  for (size_t i = 0; i < in.metrics.size(); ++i) md += "---|";
  md += "---|---|\n";
  std::string json = "{\n  \"prompts\": " + std::to_string(in.prompts.size()) + ",\n  \"seeds\": " + std::to_string(in.seeds) +
                     ",\n  \"device\": " + di::io::json_quote(in.device) + ",\n  \"date\": " + di::io::json_quote(in.date) + ",\n  \"models\": [\n";
  for (size_t mi = 0; mi < in.models.size(); ++mi) {
    const auto& model = in.models[mi];
    md += fmt::format("| {} | {} | {} |", model.name, model.steps, model.teacher ? fmt::format("{:g}", model.guidance) : std::string("—"));
    json += fmt::format("    {{\"name\": {}, \"steps\": {}, \"guidance\": {}, \"teacher\": {}, \"seconds_per_image\": {}, \"diversity\": {}, \"metrics\": {{",
                        di::io::json_quote(model.name), model.steps, model.teacher ? fmt::format("{}", model.guidance) : "null",
                        model.teacher ? "true" : "false", std::isfinite(model.seconds_per_image) ? fmt::format("{}", model.seconds_per_image) : "null",
                        std::isfinite(model.diversity) ? fmt::format("{}", model.diversity) : "null");
    for (size_t k = 0; k < in.metrics.size(); ++k) {
      const auto& m = in.metrics[k];
      const auto s = di::mean_and_se(per_prompt(model.per_image.at(m.name), in.seeds));
      md += fmt::format(" {} ± {} |", number(s.mean * m.paper_factor, digits_for(m)), number(s.se * m.paper_factor, digits_for(m)));
      json += fmt::format("{}\"{}\": {{\"mean\": {}, \"se\": {}, \"paper_scale\": {}}}", k ? ", " : "", m.name, s.mean,
                          std::isfinite(s.se) ? fmt::format("{}", s.se) : "null", m.paper_factor);
    }
    const double ratio = teacher ? 100 * model.seconds_per_image / teacher->seconds_per_image : NAN;
    md += fmt::format(" {} | {} |\n", number(model.seconds_per_image, 4), model.teacher && &model == teacher ? "100" : number(ratio, 2));
    json += fmt::format("}}}}{}\n", mi + 1 < in.models.size() ? "," : "");
  }
  json += "  ],\n  \"differences\": [\n";
  // Differences to the reference, paired by prompt.
  md += fmt::format("\n## Differences to {}\n\nMean difference (model − reference) on the paper's scale, with the 95% paired bootstrap "
                    "interval over prompts ({} resamples, seed 0). An interval that excludes 0 is a difference these prompts resolve.\n\n| model |",
                    ref.name, in.resamples);
  for (const auto& m : in.metrics) md += " " + m.title + " |";
  md += "\n|---|";
  for (size_t i = 0; i < in.metrics.size(); ++i) md += "---|";
  md += "\n";
  bool first_difference = true;
  for (size_t mi = 0; mi < in.models.size(); ++mi) {
    if (mi == in.reference) continue;
    const auto& model = in.models[mi];
    md += "| " + model.name + " |";
    for (const auto& m : in.metrics) {
      const auto d = di::paired_bootstrap(per_prompt(model.per_image.at(m.name), in.seeds), per_prompt(ref.per_image.at(m.name), in.seeds),
                                          di::BootstrapOptions().resamples(in.resamples));
      const int dg = digits_for(m);
      md += fmt::format(" {:+.{}f} [{:+.{}f}, {:+.{}f}] |", d.mean * m.paper_factor, dg, d.lo * m.paper_factor, dg, d.hi * m.paper_factor, dg);
      json += fmt::format("{}    {{\"model\": {}, \"reference\": {}, \"metric\": \"{}\", \"mean\": {}, \"lo\": {}, \"hi\": {}}}", first_difference ? "" : ",\n",
                          di::io::json_quote(model.name), di::io::json_quote(ref.name), m.name, d.mean, d.lo, d.hi);
      first_difference = false;
    }
    md += "\n";
  }
  json += "\n  ]\n}\n";
  // Diversity.
  if (!in.diversity_metric.empty()) {
    md += fmt::format("\n## Diversity\n\nPer prompt, the mean over pairs of its {} images of 1 − cos of their {} image embeddings, averaged "
                      "over prompts (0: every seed gives the same image).\n\n| model | diversity |\n|---|---|\n",
                      in.seeds, in.diversity_metric);
    for (const auto& model : in.models) md += fmt::format("| {} | {} |\n", model.name, number(model.diversity, 4));
  }
  // Per category.
  std::vector<std::string> categories;
  if (!in.groups.empty()) {
    for (const auto& g : in.groups)
      if (std::find(categories.begin(), categories.end(), g) == categories.end()) categories.push_back(g);
    md += "\n## Per category\n";
    for (const auto& m : in.metrics) {
      md += "\n### " + m.title + "\n\n| category | prompts |";
      for (const auto& model : in.models) md += " " + model.name + " |";
      md += "\n|---|---|";
      for (size_t i = 0; i < in.models.size(); ++i) md += "---|";
      md += "\n";
      for (const auto& cat : categories) {
        int64_t n = 0;
        for (const auto& g : in.groups) n += g == cat;
        md += fmt::format("| {} | {} |", cat, n);
        for (const auto& model : in.models) {
          const auto prompt_means = per_prompt(model.per_image.at(m.name), in.seeds);
          std::vector<double> values;
          for (size_t p = 0; p < prompt_means.size(); ++p)
            if (in.groups[p] == cat) values.push_back(prompt_means[p]);
          md += " " + number(di::mean_and_se(values).mean * m.paper_factor, digits_for(m)) + " |";
        }
        md += "\n";
      }
    }
  }
  md += "\nImages: `models/<model>/images/`; per-image scores: `metrics.csv`; grids: `grids/`.\n";
  di::io::write_text_file_atomically((out / "report.md").string(), md, "report.md");
  di::io::write_text_file_atomically((out / "metrics.json").string(), json, "metrics.json");
  // metrics.csv: one row per image, raw scores.
  auto csv_field = [](const std::string& s) {
    std::string q = "\"";
    for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return q + "\"";
  };
  std::string csv = "model,prompt_index,seed,category,prompt,image";
  for (const auto& m : in.metrics) csv += "," + m.name;
  csv += "\n";
  for (const auto& model : in.models)
    for (size_t p = 0; p < in.prompts.size(); ++p)
      for (int64_t s = 0; s < in.seeds; ++s) {
        const size_t row = p * static_cast<size_t>(in.seeds) + static_cast<size_t>(s);
        csv += fmt::format("{},{},{},{},{},models/{}/images/{}", csv_field(model.name), p, s, csv_field(in.groups.empty() ? "" : in.groups[p]),
                           csv_field(in.prompts[p]), model.slug, image_name(static_cast<int64_t>(p), s));
        for (const auto& m : in.metrics) csv += fmt::format(",{:.9g}", model.per_image.at(m.name)[row]);
        csv += "\n";
      }
  di::io::write_text_file_atomically((out / "metrics.csv").string(), csv, "metrics.csv");
}

/// grids/<category>.png (grids/all.png without categories): up to `rows` prompts of each, one column
/// per model (seed 0), the prompts as captions; images wider than 256 pixels shown at 256.
inline void write_grids(const std::string& out_dir, const ReportInput& in, int64_t height, int64_t width, int64_t rows = 4) {
  const fs::path out(out_dir);
  fs::create_directories(out / "grids");
  std::vector<std::string> categories = {""};
  if (!in.groups.empty()) {
    categories.clear();
    for (const auto& g : in.groups)
      if (std::find(categories.begin(), categories.end(), g) == categories.end()) categories.push_back(g);
  }
  std::string columns;
  for (size_t i = 0; i < in.models.size(); ++i) columns += (i ? " | " : "") + in.models[i].name;
  for (const auto& cat : categories) {
    std::vector<int64_t> picked;
    for (size_t p = 0; p < in.prompts.size() && static_cast<int64_t>(picked.size()) < rows; ++p)
      if (cat.empty() || in.groups[p] == cat) picked.push_back(static_cast<int64_t>(p));
    std::vector<torch::Tensor> grid_rows;
    std::vector<std::string> captions;
    for (int64_t p : picked) {
      std::vector<torch::Tensor> cols;
      for (const auto& model : in.models) {
        const auto index = torch::tensor({p}, torch::kLong), seed = torch::tensor({int64_t{0}}, torch::kLong);
        cols.push_back(read_pngs(out / "models" / model.slug / "images", index, seed, height, width)[0]);
      }
      grid_rows.push_back(torch::stack(cols));
      captions.push_back(in.prompts[static_cast<size_t>(p)]);
    }
    auto x = torch::stack(grid_rows).to(torch::kFloat) / 127.5 - 1;  // [R, M, 3, H, W] in [−1, 1]
    const int64_t side = std::max(height, width);
    if (side > 256) {
      const double f = 256.0 / static_cast<double>(side);
      const auto shape = x.sizes().vec();
      x = torch::nn::functional::interpolate(
              x.flatten(0, 1), torch::nn::functional::InterpolateFuncOptions()
                                   .size(std::vector<int64_t>{std::max<int64_t>(1, static_cast<int64_t>(height * f)), std::max<int64_t>(1, static_cast<int64_t>(width * f))})
                                   .mode(torch::kArea))
              .view({shape[0], shape[1], 3, -1, std::max<int64_t>(1, static_cast<int64_t>(width * f))});
    }
    const int zoom = static_cast<int>(std::clamp<int64_t>(128 / std::max(x.size(3), x.size(4)), 1, 8));
    const std::string name = cat.empty() ? "all" : slug_of(cat);
    di::write_image_grid_png((out / "grids" / (name + ".png")).string(), x, captions,
                             di::ImageGridOptions().zoom(zoom).labels_above(true).title((cat.empty() ? "" : cat + ": ") + columns));
  }
}

}  // namespace evaluate
