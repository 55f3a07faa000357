// Files in the tests: a scratch folder per test family under the build tree, and whole-file reads
// and writes. One copy for every test file.
#pragma once
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace test_util {

/// `name` in the scratch folder `family` (created) under the build tree's test folder.
inline std::filesystem::path scratch_path(const std::string& family, const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(DIFFINSTRUCT_TEST_TMPDIR) / family;
  std::filesystem::create_directories(dir);
  return dir / name;
}

inline std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_all(const std::filesystem::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

}  // namespace test_util
