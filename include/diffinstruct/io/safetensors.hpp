#pragma once
/// \file Reading and writing `.safetensors` files (https://github.com/huggingface/safetensors): an
/// 8-byte little-endian header length N, N bytes of JSON (`name -> {dtype, shape, data_offsets}` and
/// an optional `__metadata__` string map), then the tensors' bytes, contiguous and in order.
///
/// Reading is streamed with pread from one open file descriptor: opening parses and validates the
/// header only; each tensor is read when asked, straight into its destination, so a file is never
/// held twice in memory and nothing is allocated that the file's size does not justify. Every
/// structural rule of the format is checked when the file is opened (header length within the file
/// and at most 100 MB, strict JSON, known dtypes, shape × dtype size = byte count without overflow,
/// offsets starting at 0, ascending, without gaps or overlaps, ending at the end of the file, no
/// duplicate names); a violation is a c10::Error naming the file and the rule.
///
/// Writing streams one tensor at a time (copied to the CPU if it lives elsewhere). With checksums,
/// the writer adds a CRC-32C of every tensor's bytes and of the header's content to `__metadata__`
/// (keys `diffinstruct.crc32c.<name>` and `diffinstruct.crc32c.__header__`); other readers ignore
/// them, `SafetensorsFile::verify_checksums` checks them.
///
/// Example:
///   io::write_safetensors("w.safetensors", {{"weight", w}, {"bias", b}}, {{"format", "pt"}});
///   io::SafetensorsFile f("w.safetensors");
///   torch::Tensor weight = f.read("weight");

#include <diffinstruct/io/safetensors_format.hpp>

#include <torch/torch.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace io {

/// An open `.safetensors` file whose header has been validated.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(std::string path, SafetensorsLimits limits = {}) : path_(std::move(path)) {
    TORCH_CHECK(detail::host_is_little_endian(), "diffinstruct::io: safetensors files are little-endian; this host is not");
    fd_ = detail::Fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    TORCH_CHECK(fd_.get() >= 0, "diffinstruct::io::SafetensorsFile: cannot open '", path_, "': ", std::strerror(errno));
    struct stat st {};
    TORCH_CHECK(::fstat(fd_.get(), &st) == 0 && S_ISREG(st.st_mode), "diffinstruct::io::SafetensorsFile: '", path_,
                "' is not a regular file");
    file_size_ = static_cast<uint64_t>(st.st_size);
    invalid_if(file_size_ < 8, "it has " + std::to_string(file_size_) + " bytes, fewer than the 8 of the header length");
    unsigned char len[8];
    detail::pread_exact(fd_.get(), len, 8, 0, path_, "the header length");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
    invalid_if(n > limits.max_header_bytes(), "its header length " + std::to_string(n) + " exceeds the limit of " +
                                                  std::to_string(limits.max_header_bytes()) + " bytes");
    invalid_if(n > file_size_ - 8, "its header length " + std::to_string(n) + " runs past the end of the file (" +
                                       std::to_string(file_size_) + " bytes; truncated?)");
    invalid_if(n < 2, "its header length is " + std::to_string(n));
    data_offset_ = 8 + n;
    std::string header(static_cast<size_t>(n), '\0');
    detail::pread_exact(fd_.get(), header.data(), n, 8, path_, "the header");
    invalid_if(header[0] != '{', "its header does not start with '{'");
    parse_header(header, limits);
  }

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }
  /// Where the tensor data starts (8 + header length).
  uint64_t data_offset() const { return data_offset_; }
  /// Every tensor, in file order (ascending offsets).
  const std::vector<SafetensorsEntry>& tensors() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* find(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  /// The entry named `name`, or an error naming the file.
  const SafetensorsEntry& at(const std::string& name) const {
    const auto* e = find(name);
    TORCH_CHECK(e, "diffinstruct::io::SafetensorsFile: '", path_, "' has no tensor '", name, "'");
    return *e;
  }

  /// The raw bytes of `e` into `dst` (which holds e.bytes()).
  void read_bytes(const SafetensorsEntry& e, void* dst) const {
    detail::pread_exact(fd_.get(), dst, e.bytes(), data_offset_ + e.begin, path_, ("tensor '" + e.name + "'").c_str());
  }
  /// Calls fn(const unsigned char* data, size_t n) over `e`'s bytes, `chunk` bytes at a time.
  template <class F>
  void for_each_chunk(const SafetensorsEntry& e, F&& fn, uint64_t chunk = uint64_t{8} << 20) const {
    std::vector<unsigned char> buf(static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(e.bytes(), 1), chunk)));
    for (uint64_t done = 0; done < e.bytes();) {
      const uint64_t n = std::min<uint64_t>(chunk, e.bytes() - done);
      detail::pread_exact(fd_.get(), buf.data(), n, data_offset_ + e.begin + done, path_, ("tensor '" + e.name + "'").c_str());
      fn(static_cast<const unsigned char*>(buf.data()), static_cast<size_t>(n));
      done += n;
    }
  }
  /// A new contiguous CPU tensor with `name`'s contents.
  torch::Tensor read(const std::string& name) const {
    const auto& e = at(name);
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
    read_bytes(e, t.data_ptr());
    return t;
  }
  /// Reads `name` into an existing tensor of the same shape, converting dtype and moving to its
  /// device as needed (one staging copy of this tensor only when it is not a contiguous CPU tensor
  /// of the file's dtype).
  void read_into(const std::string& name, const torch::Tensor& dst) const { read_into(at(name), dst); }
  void read_into(const SafetensorsEntry& e, const torch::Tensor& dst) const {
    TORCH_CHECK(dst.sizes() == c10::IntArrayRef(e.shape), "diffinstruct::io::SafetensorsFile: tensor '", e.name, "' in '", path_,
                "' has shape ", c10::IntArrayRef(e.shape), ", expected ", dst.sizes());
    torch::NoGradGuard no_grad;
    if (dst.device().is_cpu() && dst.scalar_type() == e.dtype && dst.is_contiguous()) {
      read_bytes(e, dst.data_ptr());
      return;
    }
    auto staged = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
    read_bytes(e, staged.data_ptr());
    dst.copy_(staged);
  }

  /// Has the file the writer's checksums?
  bool has_checksums() const { return metadata_.count(kHeaderChecksumKey) > 0; }
  /// Verifies the header checksum and every tensor's (reading the whole file once, in chunks);
  /// throws naming the file and the first tensor whose bytes differ from what was written.
  void verify_checksums() const {
    const auto h = metadata_.find(kHeaderChecksumKey);
    TORCH_CHECK(h != metadata_.end(), "diffinstruct::io::SafetensorsFile: '", path_, "' carries no checksums");
    TORCH_CHECK(h->second == detail::hex8(detail::header_checksum(entries_, metadata_)), "diffinstruct: '", path_,
                "' is corrupt: its header does not match its checksum (a byte of the header changed)");
    for (const auto& e : entries_) {
      const auto c = metadata_.find(kChecksumPrefix + e.name);
      TORCH_CHECK(c != metadata_.end(), "diffinstruct: '", path_, "' is corrupt: tensor '", e.name, "' has no checksum");
      uint32_t crc = 0;
      for_each_chunk(e, [&](const unsigned char* p, size_t n) { crc = crc32c(crc, p, n); });
      TORCH_CHECK(c->second == detail::hex8(crc), "diffinstruct: '", path_, "' is corrupt: the bytes of tensor '", e.name,
                  "' do not match their checksum (stored ", c->second, ", computed ", detail::hex8(crc), ")");
    }
  }

 private:
  void invalid_if(bool bad, const std::string& why) const {
    TORCH_CHECK(!bad, "diffinstruct::io::SafetensorsFile: '", path_, "' is not a valid safetensors file: ", why);
  }

  static bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }

  void parse_header(const std::string& header, const SafetensorsLimits& limits) {
    JsonValue root;
    try {
      root = parse_json(header, "the header of '" + path_ + "'", /*max_depth=*/8);
    } catch (const c10::Error& e) {
      invalid_if(true, e.msg());
    }
    invalid_if(!root.is_object(), "its header is not a JSON object");
    for (const auto& [key, value] : root.object()) {
      if (key == "__metadata__") {
        invalid_if(!value.is_object(), "__metadata__ is not an object of strings");
        for (const auto& [k, v] : value.object()) {
          invalid_if(!v.is_string(), "__metadata__ entry '" + k + "' is not a string");
          metadata_.emplace(k, v.string());
        }
        continue;
      }
      invalid_if(key.empty(), "a tensor has an empty name");
      invalid_if(!value.is_object(), "the entry of tensor '" + key + "' is not an object");
      const auto* dtype = value.find("dtype");
      const auto* shape = value.find("shape");
      const auto* offsets = value.find("data_offsets");
      invalid_if(!dtype || !dtype->is_string(), "tensor '" + key + "' has no dtype string");
      invalid_if(!shape || !shape->is_array(), "tensor '" + key + "' has no shape array");
      invalid_if(!offsets || !offsets->is_array() || offsets->array().size() != 2,
                 "tensor '" + key + "' has no data_offsets pair [begin, end]");
      SafetensorsEntry e;
      e.name = key;
      invalid_if(!dtype_from_safetensors(dtype->string(), &e.dtype), "tensor '" + key + "' has unknown dtype '" + dtype->string() + "'");
      invalid_if(static_cast<int64_t>(shape->array().size()) > limits.max_rank(),
                 "tensor '" + key + "' has rank " + std::to_string(shape->array().size()) + ", more than " +
                     std::to_string(limits.max_rank()));
      uint64_t count = 1;
      for (const auto& d : shape->array()) {
        invalid_if(!d.is_integer() || d.integer() < 0, "tensor '" + key + "' has a shape entry that is not a non-negative integer");
        e.shape.push_back(d.integer());
        invalid_if(!checked_mul(count, static_cast<uint64_t>(d.integer()), &count), "tensor '" + key + "' has a shape whose size overflows");
      }
      for (const auto& o : offsets->array()) invalid_if(!o.is_integer() || o.integer() < 0, "tensor '" + key + "' has a bad data offset");
      e.begin = static_cast<uint64_t>(offsets->array()[0].integer());
      e.end = static_cast<uint64_t>(offsets->array()[1].integer());
      invalid_if(e.end < e.begin, "tensor '" + key + "' has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]");
      uint64_t bytes = 0;
      invalid_if(!checked_mul(count, c10::elementSize(e.dtype), &bytes), "tensor '" + key + "' has a byte size that overflows");
      invalid_if(bytes != e.bytes(), "tensor '" + key + "' has shape " + c10::str(c10::IntArrayRef(e.shape)) + " of " + dtype->string() +
                                         " (" + std::to_string(bytes) + " bytes) but data_offsets span " + std::to_string(e.bytes()) + " bytes");
      entries_.push_back(std::move(e));
    }
    std::stable_sort(entries_.begin(), entries_.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t expected = 0;
    for (size_t i = 0; i < entries_.size(); ++i) {
      const auto& e = entries_[i];
      invalid_if(e.begin != expected, "tensor '" + e.name + "' starts at data byte " + std::to_string(e.begin) + ", expected " +
                                          std::to_string(expected) + " (tensors must be contiguous, without gaps or overlaps)");
      expected = e.end;
      index_.emplace(e.name, i);
    }
    invalid_if(expected != file_size_ - data_offset_, "its tensors end at data byte " + std::to_string(expected) + " but the file holds " +
                                                          std::to_string(file_size_ - data_offset_) + " data bytes (truncated, or trailing bytes)");
  }

  std::string path_;
  detail::Fd fd_;
  uint64_t file_size_ = 0, data_offset_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

/// Writes tensors (in the given order) and metadata to `path` as one safetensors file; with
/// `checksums`, adds the CRC-32C entries described above; with `durable`, fsyncs before returning.
/// Writes `path` in place: for atomic replacement write a temporary file and rename it (the
/// trainer's checkpoints do). Tensors may live on any device; each is copied to the CPU in turn.
inline void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              std::map<std::string, std::string> metadata = {}, bool checksums = false, bool durable = false) {
  std::vector<SafetensorsEntry> entries;
  std::unordered_map<std::string, bool> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    TORCH_CHECK(!name.empty() && name != "__metadata__", "diffinstruct::io::write_safetensors: bad tensor name '", name, "'");
    TORCH_CHECK(seen.emplace(name, true).second, "diffinstruct::io::write_safetensors: duplicate tensor name '", name, "'");
    TORCH_CHECK(t.defined(), "diffinstruct::io::write_safetensors: tensor '", name, "' is undefined");
    TORCH_CHECK(safetensors_dtype_name(t.scalar_type()), "diffinstruct::io::write_safetensors: tensor '", name, "' has dtype ",
                t.scalar_type(), ", which safetensors cannot hold");
    SafetensorsEntry e;
    e.name = name;
    e.dtype = t.scalar_type();
    e.shape = t.sizes().vec();
    e.begin = offset;
    e.end = offset + static_cast<uint64_t>(t.numel()) * t.element_size();
    offset = e.end;
    entries.push_back(std::move(e));
  }
  if (checksums) {
    for (const auto& e : entries) metadata[kChecksumPrefix + e.name] = "00000000";
    metadata[kHeaderChecksumKey] = "00000000";
  }
  auto header_text = [&]() {
    std::string h = "{";
    bool first = true;
    if (!metadata.empty()) {
      h += "\"__metadata__\":{";
      for (const auto& [k, v] : metadata) {
        if (!first) h += ',';
        h += json_quote(k);
        h += ':';
        h += json_quote(v);
        first = false;
      }
      h += '}';
      first = false;
    }
    for (const auto& e : entries) {
      if (!first) h += ',';
      h += json_quote(e.name);
      h += ":{\"dtype\":\"";
      h += safetensors_dtype_name(e.dtype);
      h += "\",\"shape\":[";
      for (size_t i = 0; i < e.shape.size(); ++i) {
        if (i) h += ',';
        h += std::to_string(e.shape[i]);
      }
      h += "],\"data_offsets\":[";
      h += std::to_string(e.begin);
      h += ',';
      h += std::to_string(e.end);
      h += "]}";
      first = false;
    }
    h += "}";
    while (h.size() % 8) h += ' ';  // the data starts 8-byte aligned, as the reference writer does
    return h;
  };
  std::string header = header_text();
  detail::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  TORCH_CHECK(fd.get() >= 0, "diffinstruct::io::write_safetensors: cannot create '", path, "': ", std::strerror(errno));
  auto write_len = [&](uint64_t n) {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    detail::write_all(fd.get(), len, 8, path);
  };
  write_len(header.size());
  detail::write_all(fd.get(), header.data(), header.size(), path);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto cpu = tensors[i].second.detach().to(torch::kCPU).contiguous();
    const auto bytes = entries[i].bytes();
    detail::write_all(fd.get(), cpu.data_ptr(), bytes, path);
    if (checksums) metadata[kChecksumPrefix + entries[i].name] = detail::hex8(crc32c(0, cpu.data_ptr(), bytes));
  }
  if (checksums) {
    metadata[kHeaderChecksumKey] = detail::hex8(detail::header_checksum(entries, metadata));
    const std::string final_header = header_text();
    TORCH_INTERNAL_ASSERT(final_header.size() == header.size(), "checksums changed the header's length");
    TORCH_CHECK(::pwrite(fd.get(), final_header.data(), final_header.size(), 8) == static_cast<ssize_t>(final_header.size()),
                "diffinstruct::io::write_safetensors: cannot write the header of '", path, "': ", std::strerror(errno));
  }
  if (durable) TORCH_CHECK(::fsync(fd.get()) == 0, "diffinstruct::io::write_safetensors: cannot fsync '", path, "': ", std::strerror(errno));
  TORCH_CHECK(fd.close(), "diffinstruct::io::write_safetensors: cannot close '", path, "': ", std::strerror(errno));
}

} // namespace io
} // namespace diffinstruct
