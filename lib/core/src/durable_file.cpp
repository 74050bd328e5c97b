// Durable local files: temporary name, fsync, rename, fsync of the directory
// (docs/architecture.md, "Nothing lost").
#include <envkit/durable_file.hpp>

#include <envkit/posix.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace envkit {
namespace {

// Large enough that a stream of small records costs one write(2) per 64 KiB, small enough
// not to matter next to the data a command holds anyway.
constexpr size_t kBufferSize = 64 * 1024;

/// The directory holding `path`, as a path usable with open(): "." when it has no slash.
std::string parent_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  size_t end = slash;
  while (end > 0 && path[end - 1] == '/') --end;
  return end == 0 ? "/" : path.substr(0, end);
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

Result<AtomicFile> AtomicFile::create(std::string path, mode_t mode) {
  size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    return Error{Exit::io, path + ": create file: not a file name"};
  }
  // Same directory as the target, so that rename() stays on one filesystem and is atomic;
  // hidden, so that globs such as *.jsonl never pick up a file still being written.
  std::string temp =
      path.substr(0, slash == std::string::npos ? 0 : slash + 1) + "." + name + ".tmp.XXXXXX";
  int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return system_error(path, "create temporary file", errno);
  // mkostemp() creates 0600 minus the umask; fchmod() is not subject to the umask.
  if (::fchmod(fd, mode & 07777) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return system_error(path, "set mode of temporary file", err);
  }
  return AtomicFile(std::move(path), std::move(temp), fd);
}

AtomicFile::AtomicFile(std::string path, std::string temp_path, int fd)
    : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {
  buffer_.reserve(kBufferSize);
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::exchange(other.temp_path_, {})),
      fd_(std::exchange(other.fd_, -1)),
      buffer_(std::move(other.buffer_)),
      error_(std::move(other.error_)),
      failed_(other.failed_) {}

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    discard();
    path_ = std::move(other.path_);
    temp_path_ = std::exchange(other.temp_path_, {});
    fd_ = std::exchange(other.fd_, -1);
    buffer_ = std::move(other.buffer_);
    error_ = std::move(other.error_);
    failed_ = other.failed_;
  }
  return *this;
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  temp_path_.clear();
  buffer_.clear();
}

Status AtomicFile::fail(Error error) {
  failed_ = true;
  error_ = std::move(error);
  return error_;
}

Status AtomicFile::write(std::string_view data) {
  if (failed_) return error_;
  if (fd_ < 0) return Error{Exit::io, path_ + ": write: file already committed or closed"};
  if (buffer_.size() + data.size() <= kBufferSize) {
    buffer_.append(data);
    return {};
  }
  if (auto st = flush(); !st) return st;
  if (data.size() >= kBufferSize) {
    // Big blocks go straight to the kernel: copying them through the buffer gains nothing.
    if (int err = write_all(fd_, data)) return fail(system_error(path_, "write", err));
    return {};
  }
  buffer_.append(data);
  return {};
}

Status AtomicFile::flush() {
  if (failed_) return error_;
  if (fd_ < 0) return Error{Exit::io, path_ + ": write: file already committed or closed"};
  if (buffer_.empty()) return {};
  int err = write_all(fd_, buffer_);
  buffer_.clear();
  if (err) return fail(system_error(path_, "write", err));
  return {};
}

Status AtomicFile::commit() {
  if (failed_) {
    discard();
    return error_;
  }
  if (fd_ < 0) return Error{Exit::io, path_ + ": commit: file already committed or closed"};
  if (auto st = flush(); !st) {
    discard();
    return st;
  }
  // After a failed fsync the kernel may already have dropped the dirty pages, so retrying
  // could "succeed" with data lost: give up on this temporary file instead.
  if (int err = fsync_retrying(fd_)) {
    discard();
    return fail(system_error(path_, "fsync", err));
  }
  // close() can report a deferred write error (NFS); Linux frees the descriptor even when
  // close() fails, so it is never retried.
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    int err = errno;
    discard();
    return fail(system_error(path_, "close", err));
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    discard();
    return fail(system_error(path_, "rename from " + temp_path_, err));
  }
  temp_path_.clear();  // the data now lives under path_: nothing left to clean up
  if (auto st = fsync_directory(parent_of(path_)); !st) {
    return fail(st.error().context(path_ + ": renamed, but not yet durable"));
  }
  return {};
}

Status write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
  auto file = AtomicFile::create(path, mode);
  if (!file) return file.error();
  if (auto st = file->write(content); !st) return st;
  return file->commit();
}

Status fsync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return system_error(dir, "open directory", errno);
  int err = fsync_retrying(fd);
  ::close(fd);
  // EINVAL: this filesystem cannot sync a directory; the rename is as durable as it gets.
  if (err != 0 && err != EINVAL) return system_error(dir, "fsync directory", err);
  return {};
}

Status make_directories(const std::string& path, mode_t mode) {
  if (path.empty()) return Error{Exit::io, "make directories: empty path"};
  auto failed = [&](const std::string& prefix, int err) {
    return system_error(path, prefix == path ? "create directory" : "create directory " + prefix,
                        err);
  };
  size_t pos = 0;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    if (end == pos) {  // the root, or a doubled slash
      pos = end + 1;
      continue;
    }
    std::string prefix = path.substr(0, end);
    pos = end + 1;

    struct stat st {};
    if (::stat(prefix.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return failed(prefix, ENOTDIR);
      continue;
    }
    if (errno != ENOENT) return failed(prefix, errno);
    if (::mkdir(prefix.c_str(), mode) != 0) {
      int err = errno;
      if (err == EEXIST && is_directory(prefix)) continue;  // another process made it first
      return failed(prefix, err);
    }
    // mkdir() applies the umask; the caller asked for exactly `mode`.
    if (::chmod(prefix.c_str(), mode & 07777) != 0) return failed(prefix, errno);
    if (auto synced = fsync_directory(parent_of(prefix)); !synced) return synced;
  }
  return {};
}

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return system_error(path, "open", errno, Exit::no_input);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  auto too_large = [&] {
    return Error{Exit::io,
                 path + ": read: larger than the limit of " + std::to_string(max_bytes) + " bytes"};
  };
  struct stat st {};
  size_t expected = 0;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    if (static_cast<unsigned long long>(st.st_size) > max_bytes) return too_large();
    expected = static_cast<size_t>(st.st_size);
  }

  std::string out;
  out.reserve(expected);
  for (;;) {
    // One byte beyond the limit is enough to tell "exactly max_bytes" from "too large";
    // asking for one byte beyond the expected size finds the end in the same call.
    size_t room = max_bytes - out.size();
    if (room != static_cast<size_t>(-1)) ++room;
    size_t wanted = std::max(expected - std::min(expected, out.size()) + 1, size_t{64 * 1024});
    size_t chunk = std::min(room, wanted);
    size_t old = out.size();
    out.resize(old + chunk);
    ssize_t n = ::read(fd, out.data() + old, chunk);
    if (n < 0) {
      int err = errno;
      out.resize(old);
      if (err == EINTR) continue;
      return system_error(path, "read", err);
    }
    out.resize(old + static_cast<size_t>(n));
    if (n == 0) break;
    if (out.size() > max_bytes) return too_large();
  }
  return out;
}

}  // namespace envkit
