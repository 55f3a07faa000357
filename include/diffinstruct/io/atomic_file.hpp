#pragma once
/// \file Replacing a file atomically and durably: write a uniquely named temporary beside it, fsync
/// it, fsync the folder, rename it over the target, fsync the folder again. A crash (SIGKILL, power
/// loss) at any moment leaves either the old complete file or the new complete one at the target's
/// name. Temporaries left by processes that died are removed on the next replacement.

#include <diffinstruct/io/fd.hpp>

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>

namespace diffinstruct {
namespace io {
namespace detail {

inline std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "host";
  std::string h(buf);
  for (auto& c : h) {
    if (c == '/' || c == '.' || c == '-') c = '_';
  }
  return h;
}

/// "<target>.tmp-<host>-<pid>-<n>": unique per process and call, and says who made it.
inline std::string temporary_name(const std::string& target) {
  static std::atomic<uint64_t> counter{0};
  return target + ".tmp-" + host_name() + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

/// fsync of a folder, so that a rename or a new entry in it survives a power loss.
inline void fsync_dir(const std::filesystem::path& dir, const std::string& what) {
  const std::string d = dir.empty() ? "." : dir.string();
  const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  TORCH_CHECK(fd >= 0, "diffinstruct: cannot open the folder '", d, "' of ", what, " to sync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  TORCH_CHECK(rc == 0 || err == EINVAL, "diffinstruct: cannot fsync the folder '", d, "' of ", what, ": ", std::strerror(err));
}

/// Removes "<target>.tmp-<this host>-<pid>-*" files whose process no longer runs (or is this one).
inline void remove_stale_temporaries(const std::string& target) {
  namespace fs = std::filesystem;
  const fs::path t(target);
  const fs::path dir = t.parent_path().empty() ? fs::path(".") : t.parent_path();
  const std::string prefix = t.filename().string() + ".tmp-" + host_name() + "-";
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const auto dash = rest.find('-');
    if (dash == std::string::npos) continue;
    const std::string pid_text = rest.substr(0, dash);  // named: endp points into it (ASan found the temporary)
    char* endp = nullptr;
    const long pid = std::strtol(pid_text.c_str(), &endp, 10);
    if (!endp || *endp != '\0' || pid <= 0) continue;
    const bool alive = pid != ::getpid() && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
    if (!alive) fs::remove(it->path(), ec);
  }
}

} // namespace detail

/// Replaces `target` with what `write(temporary_path)` writes, atomically and durably. `write` must
/// write and fsync a complete file at the path it is given. With `keep > 1` the previous versions
/// stay as target.1 (the one before) ... target.(keep-1); `target` itself always names a complete
/// file, at every moment. On failure the temporary is removed, `target` is untouched, and the error
/// names `what`.
inline void replace_file_atomically(const std::string& target, const std::function<void(const std::string&)>& write, int64_t keep = 1,
                                    const std::string& what = "the file") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(target).parent_path();
  detail::remove_stale_temporaries(target);
  const std::string tmp = detail::temporary_name(target);
  try {
    write(tmp);
    detail::fsync_dir(dir, what);  // the temporary's folder entry is durable before it is renamed
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  std::error_code ec;
  if (keep > 1 && fs::exists(target, ec)) {
    // Shift the older versions up by one, then make target.1 a second name of the current target;
    // target keeps naming a complete file throughout.
    fs::remove(target + "." + std::to_string(keep - 1), ec);
    for (int64_t i = keep - 2; i >= 1; --i) {
      const std::string from = target + "." + std::to_string(i);
      if (fs::exists(from, ec)) fs::rename(from, target + "." + std::to_string(i + 1), ec);
    }
    fs::create_hard_link(target, target + ".1", ec);
    if (ec) fs::copy_file(target, target + ".1", fs::copy_options::overwrite_existing, ec);
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    TORCH_CHECK(false, "diffinstruct: cannot move the temporary '", tmp, "' to '", target, "' (", what, "): ", ec.message());
  }
  detail::fsync_dir(dir, what);
}

/// fsync of a file someone else wrote (torch::save, an archive): what replace_file_atomically's
/// `write` must do before it returns.
inline void fsync_file(const std::string& path, const std::string& what) {
  detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  TORCH_CHECK(fd.get() >= 0, "diffinstruct::io: cannot open '", path, "' (", what, ") to fsync it: ", std::strerror(errno));
  TORCH_CHECK(::fsync(fd.get()) == 0, "diffinstruct::io: cannot fsync '", path, "' (", what, "): ", std::strerror(errno));
}

/// Replaces the file at `path` with `text`, atomically and durably (replace_file_atomically).
inline void write_text_file_atomically(const std::string& path, const std::string& text, const std::string& what = "the file") {
  replace_file_atomically(path, [&](const std::string& tmp) {
    detail::Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    TORCH_CHECK(fd.get() >= 0, "diffinstruct::io: cannot create '", tmp, "' (", what, "): ", std::strerror(errno));
    detail::write_all(fd.get(), text.data(), text.size(), tmp);
    TORCH_CHECK(::fsync(fd.get()) == 0, "diffinstruct::io: cannot fsync '", tmp, "' (", what, "): ", std::strerror(errno));
    TORCH_CHECK(fd.close(), "diffinstruct::io: cannot close '", tmp, "' (", what, "): ", std::strerror(errno));
  }, 1, what);
}

} // namespace io
} // namespace diffinstruct
