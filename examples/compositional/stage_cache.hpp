#pragma once
// Stages of the compositional miniature, cached as folders. A stage's folder is named by the stage
// and a hash of everything it depends on (its settings and its inputs' folder names), so a rerun
// reuses what is done and a changed setting retrains only what it touches. A folder is written
// under a temporary name and renamed into place when complete: a killed run never leaves a
// half-written stage that a rerun would trust. Each folder holds settings.txt (what it was made with).
#include <diffinstruct/io/atomic_file.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace compositional {

namespace fs = std::filesystem;

/// FNV-1a, 64 bits: a stable name for a settings string (the same on every machine and run).
inline uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct StageResult {
  fs::path dir;
  bool cached = false;
  double seconds = 0;
};

/// The folder of stage `name` with `settings` under `out`; runs `make(tmp_dir)` to build it unless
/// it exists. Prints which happened.
inline StageResult cached_stage(const fs::path& out, const std::string& name, const std::string& settings,
                                const std::function<void(const fs::path&)>& make) {
  StageResult r;
  r.dir = out / fmt::format("{}_{:016x}", name, fnv1a(settings));
  if (fs::is_directory(r.dir) && fs::exists(r.dir / "settings.txt")) {
    r.cached = true;
    fmt::print("{}: cached {}\n", name, r.dir.string());
    return r;
  }
  const fs::path tmp = r.dir.string() + ".partial";
  fs::create_directories(tmp);
  const auto t0 = std::chrono::steady_clock::now();
  make(tmp);
  diffinstruct::io::write_text_file_atomically((tmp / "settings.txt").string(), settings + "\n", "settings.txt");
  fs::remove_all(r.dir);
  fs::rename(tmp, r.dir);
  r.seconds = seconds_since(t0);
  fmt::print("{}: done in {:.0f} s -> {}\n", name, r.seconds, r.dir.string());
  return r;
}

}  // namespace compositional
