#pragma once
/// \file The file helpers of the io readers and writers: a descriptor closed on scope exit, a pread
/// that reads exactly what it is asked (or says why not), and a write that writes everything. No
/// torch here: io/atomic_file.hpp (and what writes through it) needs them without the tensor library.

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

namespace diffinstruct {
namespace io {
namespace detail {

/// A file descriptor closed on scope exit.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  /// Closes now, reporting failure (close can report a deferred write error).
  bool close() {
    const int fd = fd_;
    fd_ = -1;
    return fd < 0 || ::close(fd) == 0;
  }

 private:
  int fd_ = -1;
};

inline void pread_exact(int fd, void* dst, uint64_t bytes, uint64_t offset, const std::string& path, const char* what) {
  auto* p = static_cast<char*>(dst);
  while (bytes > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(bytes, uint64_t{1} << 30));
    const ssize_t got = ::pread(fd, p, chunk, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    TORCH_CHECK(got > 0, "diffinstruct: cannot read ", what, " of '", path, "' at byte ", offset, ": ",
                got == 0 ? std::string("the file ends early (truncated)") : std::string(std::strerror(errno)));
    p += got;
    bytes -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

inline void write_all(int fd, const void* src, uint64_t bytes, const std::string& path) {
  const auto* p = static_cast<const char*>(src);
  while (bytes > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(bytes, uint64_t{1} << 30));
    const ssize_t put = ::write(fd, p, chunk);
    if (put < 0 && errno == EINTR) continue;
    TORCH_CHECK(put > 0, "diffinstruct: cannot write '", path, "': ", put < 0 ? std::strerror(errno) : "no progress");
    p += put;
    bytes -= static_cast<uint64_t>(put);
  }
}

} // namespace detail
} // namespace io
} // namespace diffinstruct
