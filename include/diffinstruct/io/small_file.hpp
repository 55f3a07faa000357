#pragma once
/// \file Reads a whole file that should be small (a config, an index, a vocabulary), refusing one past a
/// size limit before allocating for it: a hostile or mistaken path cannot drive a huge allocation.
///
/// Example:
///   std::string text = io::read_small_file(dir + "/vocab.json", 64 << 20, "a CLIP vocabulary");

#include <c10/util/Exception.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace diffinstruct {
namespace io {

/// The bytes of `path`; `what` says in an error what the file should have been.
inline std::string read_small_file(const std::string& path, uint64_t limit, const std::string& what = "a file") {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, "diffinstruct::io: cannot open '", path, "' (", what, ")");
  in.seekg(0, std::ios::end);
  const auto size = static_cast<int64_t>(in.tellg());
  TORCH_CHECK(size >= 0 && static_cast<uint64_t>(size) <= limit, "diffinstruct::io: '", path, "' has ", size,
              " bytes, more than the ", limit, " accepted for ", what);
  in.seekg(0);
  std::string text(static_cast<size_t>(size), '\0');
  in.read(text.data(), size);
  TORCH_CHECK(in, "diffinstruct::io: cannot read '", path, "'");
  return text;
}

}  // namespace io
}  // namespace diffinstruct
