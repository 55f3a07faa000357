#pragma once
/// \file A terminal progress bar with live statistics (for examples; the library itself prints
/// nothing). Redraws in place on a terminal; on a pipe it prints one line per 10% instead.

#include <chrono>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace diffinstruct {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, FILE* out = stderr)
      : label_(std::move(label)), total_(total > 0 ? total : 1), out_(out), tty_(isatty(fileno(out)) != 0),
        start_(std::chrono::steady_clock::now()) {}

  /// Shows progress `done` of total with a status text (e.g. "loss 0.12 reward 0.8").
  void update(int64_t done, const std::string& status) {
    const double frac = static_cast<double>(done) / static_cast<double>(total_);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double eta = done > 0 ? secs * (1 - frac) / frac : 0.0;
    if (tty_) {
      const int width = 28, filled = static_cast<int>(frac * width);
      std::fprintf(out_, "\r%-14s [%s%s] %5.1f%% %6.1fs eta %5.1fs  %s\033[K", label_.c_str(), std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), 100 * frac, secs, eta, status.c_str());
      std::fflush(out_);
    } else if (static_cast<int>(frac * 10) > last_decile_ || done == total_) {
      last_decile_ = static_cast<int>(frac * 10);
      std::fprintf(out_, "%-14s %5.1f%% %6.1fs  %s\n", label_.c_str(), 100 * frac, secs, status.c_str());
    }
  }
  void finish() {
    if (tty_) std::fprintf(out_, "\n");
  }

 private:
  std::string label_;
  int64_t total_;
  FILE* out_;
  bool tty_;
  int last_decile_ = 0;
  std::chrono::steady_clock::time_point start_;
};

} // namespace diffinstruct
