#pragma once
/// \file Verifies a zip archive (the container of TorchScript files) before LibTorch reads it: the
/// end-of-central-directory record (zip64 too), every central-directory entry and its local header
/// inside the file and consistent with each other, and every stored (uncompressed) record's bytes
/// against the CRC-32 the writer stored, which LibTorch's reader does not check. PyTorch stores
/// tensor data uncompressed (1.13 deflates the debug records, 2.x the code records too): a
/// deflated record's sizes are checked (no more than deflate's 1032-fold expansion), not its CRC,
/// which would need an inflater. So a damaged file is an error naming it, and no size read from the
/// archive can make LibTorch allocate far more than the file holds.
///
/// What it cannot promise: a TorchScript file is a program; one crafted with valid checksums is
/// trusted as far as LibTorch trusts it. Load TorchScript only from sources you trust.

#include <diffinstruct/io/crc32c.hpp>
#include <diffinstruct/io/fd.hpp>

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

namespace diffinstruct {
namespace io {

/// One record of a verified archive.
struct ZipRecord {
  std::string name;
  uint64_t data_offset = 0, size = 0, compressed_size = 0;
  uint32_t crc = 0;
  bool stored = true;  ///< uncompressed (its CRC-32 was verified); false: deflated (sizes checked only)
};

namespace detail {
inline uint64_t le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
} // namespace detail

/// Checks the archive at `path` and returns its records; throws a c10::Error naming `path` (and
/// `what` it is, e.g. "the generator") when anything is wrong.
inline std::vector<ZipRecord> verify_zip_archive(const std::string& path, const std::string& what = "the archive") {
  auto bad = [&](const std::string& why) {
    TORCH_CHECK(false, "diffinstruct: '", path, "' (", what, ") is corrupt or truncated: ", why);
  };
  detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  TORCH_CHECK(fd.get() >= 0, "diffinstruct: cannot open '", path, "' (", what, "): ", std::strerror(errno));
  struct stat st {};
  TORCH_CHECK(::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode), "diffinstruct: '", path, "' is not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 22) bad("it has " + std::to_string(size) + " bytes, too few for a zip archive");
  auto read = [&](uint64_t offset, uint64_t n, const char* which) {
    if (offset > size || n > size - offset) bad(std::string(which) + " lies outside the file");
    std::vector<unsigned char> buf(static_cast<size_t>(n));
    detail::pread_exact(fd.get(), buf.data(), n, offset, path, which);
    return buf;
  };
  // End of central directory: the last 22 bytes, or further back by a comment of up to 65535 bytes;
  // read with the 20 bytes before it, where a zip64 locator would be.
  const uint64_t tail_len = std::min<uint64_t>(size, 20 + 22 + 65535);
  const auto tail = read(size - tail_len, tail_len, "the end of central directory");
  int64_t eocd = -1;
  for (int64_t i = static_cast<int64_t>(tail_len) - 22; i >= 0; --i) {
    if (detail::le(&tail[i], 4) == 0x06054b50u && i + 22 + static_cast<int64_t>(detail::le(&tail[i + 20], 2)) == static_cast<int64_t>(tail_len)) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) bad("it has no end-of-central-directory record (not a zip archive, or cut short)");
  const unsigned char* e = &tail[static_cast<size_t>(eocd)];
  uint64_t entries = detail::le(e + 10, 2), cd_size = detail::le(e + 12, 4), cd_offset = detail::le(e + 16, 4);
  // One disk only, and the counts agree: readers differ in which copy of a count they believe
  // (found by fuzzing: an EOCD claiming 0 records while the zip64 record claims 6 passed this check
  // empty and LibTorch then read the unchecked records).
  if (detail::le(e + 4, 2) != 0 || detail::le(e + 6, 2) != 0 || detail::le(e + 8, 2) != entries)
    bad("its end-of-central-directory record describes a multi-disk archive or disagrees with itself");
  const unsigned char* loc = eocd >= 20 ? e - 20 : nullptr;
  if (loc && detail::le(loc, 4) == 0x07064b50u) {
    const auto z = read(detail::le(loc + 8, 8), 56, "the zip64 end of central directory");
    if (detail::le(z.data(), 4) != 0x06064b50u) bad("its zip64 end of central directory is missing");
    const uint64_t z_entries = detail::le(&z[32], 8), z_size = detail::le(&z[40], 8), z_offset = detail::le(&z[48], 8);
    if (detail::le(&z[16], 4) != 0 || detail::le(&z[20], 4) != 0 || detail::le(&z[24], 8) != z_entries)
      bad("its zip64 end of central directory describes a multi-disk archive or disagrees with itself");
    // A field the EOCD saturates is taken from the zip64 record; one it holds must agree with it.
    auto merge = [&](uint64_t& field, uint64_t saturated, uint64_t z_value, const char* what_field) {
      if (field != saturated && field != z_value)
        bad(std::string("its two end-of-central-directory records disagree on the ") + what_field + " (" + std::to_string(field) + " vs " +
            std::to_string(z_value) + ")");
      field = z_value;
    };
    merge(entries, 0xFFFF, z_entries, "number of records");
    merge(cd_size, 0xFFFFFFFFu, z_size, "directory size");
    merge(cd_offset, 0xFFFFFFFFu, z_offset, "directory offset");
  } else if (entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_offset == 0xFFFFFFFFu) {
    bad("it lacks the zip64 locator its directory needs");
  }
  if (entries > size / 46) bad("it claims " + std::to_string(entries) + " records, more than its size can hold");
  const auto cd = read(cd_offset, cd_size, "the central directory");
  std::vector<ZipRecord> records;
  uint64_t pos = 0;
  for (uint64_t k = 0; k < entries; ++k) {
    if (pos + 46 > cd.size() || detail::le(&cd[pos], 4) != 0x02014b50u) bad("central directory entry " + std::to_string(k) + " is damaged");
    const unsigned char* c = &cd[pos];
    const uint64_t flags = detail::le(c + 8, 2), method = detail::le(c + 10, 2);
    ZipRecord r;
    r.crc = static_cast<uint32_t>(detail::le(c + 16, 4));
    uint64_t comp = detail::le(c + 20, 4), uncomp = detail::le(c + 24, 4);
    const uint64_t name_len = detail::le(c + 28, 2), extra_len = detail::le(c + 30, 2), comment_len = detail::le(c + 32, 2);
    uint64_t local = detail::le(c + 42, 4);
    if (pos + 46 + name_len + extra_len + comment_len > cd.size()) bad("central directory entry " + std::to_string(k) + " runs past the directory");
    r.name.assign(reinterpret_cast<const char*>(c + 46), static_cast<size_t>(name_len));
    // zip64 extra field: the 8-byte values of the fields that hold 0xFFFFFFFF, in this order.
    for (uint64_t x = 0; x + 4 <= extra_len;) {
      const unsigned char* f = c + 46 + name_len + x;
      const uint64_t id = detail::le(f, 2), len = detail::le(f + 2, 2);
      if (x + 4 + len > extra_len) bad("record '" + r.name + "' has a damaged extra field");
      if (id == 0x0001) {
        uint64_t at = 4;
        auto next = [&](uint64_t& field) {
          if (field != 0xFFFFFFFFu) return;
          if (at + 8 > 4 + len) bad("record '" + r.name + "' has a short zip64 field");
          field = detail::le(f + at, 8);
          at += 8;
        };
        next(uncomp);
        next(comp);
        next(local);
      }
      x += 4 + len;
    }
    if (flags & 1) bad("record '" + r.name + "' is encrypted");
    if (method != 0 && method != 8) bad("record '" + r.name + "' uses compression method " + std::to_string(method) + " (only stored and deflate)");
    r.stored = method == 0;
    if (r.stored && comp != uncomp) bad("record '" + r.name + "' is stored but its sizes differ");
    if (!r.stored && uncomp > 1032 * comp + 1024) bad("record '" + r.name + "' claims to inflate " + std::to_string(comp) + " bytes to " +
                                                      std::to_string(uncomp) + ", more than deflate can");
    const auto lh = read(local, 30, "a local header");
    if (detail::le(lh.data(), 4) != 0x04034b50u) bad("the local header of record '" + r.name + "' is missing");
    const uint64_t lname = detail::le(&lh[26], 2), lextra = detail::le(&lh[28], 2);
    const auto lname_bytes = read(local + 30, lname, "a local header's name");
    if (std::string(lname_bytes.begin(), lname_bytes.end()) != r.name) bad("record '" + r.name + "' has another name in its local header");
    r.data_offset = local + 30 + lname + lextra;
    r.size = uncomp;
    r.compressed_size = comp;
    if (r.data_offset > size || comp > size - r.data_offset) bad("record '" + r.name + "' runs past the end of the file");
    if (r.stored) {
      // Its bytes against the stored CRC-32, a few MB at a time.
      uint32_t crc = 0;
      std::vector<unsigned char> buf(static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(r.size, 1), uint64_t{8} << 20)));
      for (uint64_t done = 0; done < r.size;) {
        const uint64_t n = std::min<uint64_t>(buf.size(), r.size - done);
        detail::pread_exact(fd.get(), buf.data(), n, r.data_offset + done, path, "a record");
        crc = crc32_ieee(crc, buf.data(), static_cast<size_t>(n));
        done += n;
      }
      if (crc != r.crc) bad("the bytes of record '" + r.name + "' do not match their CRC-32");
    }
    records.push_back(std::move(r));
    pos += 46 + name_len + extra_len + comment_len;
  }
  if (pos != cd.size())
    bad("its central directory holds " + std::to_string(cd.size()) + " bytes but its " + std::to_string(entries) + " records fill " +
        std::to_string(pos));
  return records;
}

} // namespace io
} // namespace diffinstruct
