#pragma once
/// \file A training run's metrics as CSV, a row per step, that reads as one run across resumes:
/// opening it for a resumed run keeps the rows up to the checkpoint's step and drops the rest (the
/// steps the resumed run will do again, and a torn last line of a run that was killed), replacing the
/// file atomically (io/atomic_file.hpp); each row is then appended with one write.
///
/// Example:
///   MetricsCsv csv("out/metrics.csv", {"step", "loss", "eval_reward"}, trainer.step_count());
///   csv.row({std::to_string(s.step), MetricsCsv::number(s.generator_loss), ""});   // "" leaves a cell empty

#include <diffinstruct/io/atomic_file.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace diffinstruct {

class MetricsCsv {
 public:
  /// Opens `path` for a run now at `resumed_step` (0: a new run, the file starts empty). The first
  /// column is the step. A resumed run's file must have the same header (an error otherwise, naming both).
  MetricsCsv(std::string path, std::vector<std::string> columns, int64_t resumed_step) : path_(std::move(path)), columns_(std::move(columns)) {
    TORCH_CHECK(!columns_.empty(), "diffinstruct::MetricsCsv: expected at least the step column");
    std::string header;
    for (size_t i = 0; i < columns_.size(); ++i) header += (i ? "," : "") + columns_[i];
    std::string text = header + "\n";
    if (resumed_step > 0 && std::filesystem::exists(path_)) {
      std::ifstream in(path_);
      std::string line;
      std::getline(in, line);
      TORCH_CHECK(line == header, "diffinstruct::MetricsCsv: '", path_, "' has the columns '", line, "', this run writes '", header, "'");
      while (std::getline(in, line)) {
        const auto comma = line.find(',');
        char* end = nullptr;
        const long long step = std::strtoll(line.c_str(), &end, 10);
        const bool whole = comma != std::string::npos && end == line.c_str() + comma && cells_in(line) == columns_.size();
        if (whole && step <= resumed_step) text += line + "\n";  // a torn line of a killed run is not whole
      }
    }
    io::write_text_file_atomically(path_, text, "the metrics file");
  }

  /// Appends a row (one cell per column; "" leaves a cell empty) with one write.
  void row(const std::vector<std::string>& cells) const {
    TORCH_CHECK(cells.size() == columns_.size(), "diffinstruct::MetricsCsv: expected ", columns_.size(), " cells, got ", cells.size());
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) {
      TORCH_CHECK(cells[i].find_first_of(",\n\r\"") == std::string::npos, "diffinstruct::MetricsCsv: cell '", cells[i], "' of column '",
                  columns_[i], "' holds a comma, quote or line break");
      line += (i ? "," : "") + cells[i];
    }
    line += "\n";
    io::detail::Fd fd(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
    TORCH_CHECK(fd.get() >= 0, "diffinstruct::MetricsCsv: cannot open '", path_, "' to append: ", std::strerror(errno));
    io::detail::write_all(fd.get(), line.data(), line.size(), path_);
    TORCH_CHECK(fd.close(), "diffinstruct::MetricsCsv: cannot close '", path_, "': ", std::strerror(errno));
  }

  /// A number as a cell: 6 significant digits (or `digits`), "" for NaN.
  static std::string number(double v, int digits = 6) {
    if (std::isnan(v)) return "";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    return buf;
  }

  const std::string& path() const { return path_; }

 private:
  static size_t cells_in(const std::string& line) {
    size_t n = 1;
    for (char ch : line) n += ch == ',';
    return n;
  }
  std::string path_;
  std::vector<std::string> columns_;
};

}  // namespace diffinstruct
