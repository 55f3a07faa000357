#pragma once
/// \file The pieces of the `.safetensors` format that its reader and writer share (io/safetensors.hpp):
/// the dtype names, a header entry, the reader's limits and the checksum keys the writer adds (the
/// file helpers are io/fd.hpp's).

#include <diffinstruct/io/crc32c.hpp>
#include <diffinstruct/io/fd.hpp>
#include <diffinstruct/io/json.hpp>

#include <torch/torch.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace io {

/// The format's dtype names for the torch dtypes it can hold; nullptr for others.
inline const char* safetensors_dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Float: return "F32";
    case c10::ScalarType::Half: return "F16";
    case c10::ScalarType::BFloat16: return "BF16";
    case c10::ScalarType::Double: return "F64";
    case c10::ScalarType::Long: return "I64";
    case c10::ScalarType::Int: return "I32";
    case c10::ScalarType::Short: return "I16";
    case c10::ScalarType::Char: return "I8";
    case c10::ScalarType::Byte: return "U8";
    case c10::ScalarType::Bool: return "BOOL";
    default: return nullptr;
  }
}

/// The torch dtype of a format dtype name; false if unknown (or a dtype torch cannot hold).
inline bool dtype_from_safetensors(const std::string& name, c10::ScalarType* out) {
  static const std::pair<const char*, c10::ScalarType> table[] = {
      {"F32", c10::ScalarType::Float}, {"F16", c10::ScalarType::Half},  {"BF16", c10::ScalarType::BFloat16},
      {"F64", c10::ScalarType::Double}, {"I64", c10::ScalarType::Long}, {"I32", c10::ScalarType::Int},
      {"I16", c10::ScalarType::Short}, {"I8", c10::ScalarType::Char},   {"U8", c10::ScalarType::Byte},
      {"BOOL", c10::ScalarType::Bool}};
  for (const auto& [n, t] : table) {
    if (name == n) {
      *out = t;
      return true;
    }
  }
  return false;
}

/// What a reader accepts.
struct SafetensorsLimits {
  /// Largest header accepted (the format's own reader refuses more than 100 MB).
  TORCH_ARG(uint64_t, max_header_bytes) = uint64_t{100} << 20;
  /// Largest tensor rank accepted.
  TORCH_ARG(int64_t, max_rank) = 16;
};

/// One tensor's place in a file: offsets are relative to the start of the data (after the header).
struct SafetensorsEntry {
  std::string name;
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
  uint64_t bytes() const { return end - begin; }
};

inline constexpr const char* kChecksumPrefix = "diffinstruct.crc32c.";
inline constexpr const char* kHeaderChecksumKey = "diffinstruct.crc32c.__header__";

namespace detail {

inline std::string hex8(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

/// CRC-32C of the header's content (tensor entries in file order, metadata sorted, the header
/// checksum itself left out), as the writer and the reader both compute it.
inline uint32_t header_checksum(const std::vector<SafetensorsEntry>& entries, const std::map<std::string, std::string>& metadata) {
  std::string canon;
  for (const auto& e : entries) {
    canon += e.name;
    canon += '\0';
    canon += safetensors_dtype_name(e.dtype);
    canon += '\0';
    for (auto d : e.shape) canon += std::to_string(d) + ",";
    canon += '\0' + std::to_string(e.begin) + "," + std::to_string(e.end) + "\n";
  }
  for (const auto& [k, v] : metadata) {
    if (k == kHeaderChecksumKey) continue;
    canon += k;
    canon += '\0';
    canon += v;
    canon += '\n';
  }
  return crc32c(0, canon.data(), canon.size());
}

inline bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

} // namespace detail

} // namespace io
} // namespace diffinstruct
