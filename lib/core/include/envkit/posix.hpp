// POSIX system calls as values: an owning file descriptor, whole writes and reads that
// retry short transfers and EINTR, fsync that retries EINTR, and errno as a message.
// What durable files, the spool and the commands' lock files all need, written once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <envkit/result.hpp>

namespace envkit {

/// An open file descriptor, closed when destroyed. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  /// Gives the descriptor up without closing it.
  int release() noexcept { return std::exchange(fd_, -1); }
  /// Closes the descriptor held (if any) and holds `fd` instead.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

/// An flock() on a lock file, held while the object lives and released however the process
/// ends. flock() rather than fcntl() locks: they belong to the open file, so a second holder
/// in the same process is refused too.
class FileLock {
 public:
  /// exclusive: one holder, which writes its pid into the file for the next one's message.
  /// shared: any number of holders, none while an exclusive one holds it; opens the file
  /// read-only.
  enum class Mode { exclusive, shared };

  /// Locks `path` (created 0600 when missing), retrying for up to `wait`. Errors: lock_held
  /// (Exit::temp_fail) "PATH is locked by another process (pid N)"; local_io when the file
  /// cannot be used.
  static Result<FileLock> acquire(const std::string& path,
                                  std::chrono::milliseconds wait = std::chrono::milliseconds(0),
                                  Mode mode = Mode::exclusive);
  int fd() const { return fd_.get(); }

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

/// strerror(), thread-safe (either strerror_r() flavour).
std::string errno_text(int err);

/// "PATH: WHAT: strerror" as an Error of kind local_io, or `code` (e.g. Exit::no_input).
Error system_error(const std::string& path, std::string_view what, int err,
                   Exit code = Exit::io);

/// Writes all of `data`, retrying short writes and EINTR. Returns 0 or an errno value.
int write_all(int fd, std::string_view data);
/// Writes all of `data` at `offset` (pwrite). Returns 0 or an errno value.
int pwrite_all(int fd, std::string_view data, uint64_t offset);
/// Reads up to `n` bytes at `offset`, stopping early only at end of file. Returns the
/// count, or -errno.
ssize_t pread_full(int fd, char* buf, size_t n, uint64_t offset);
/// fsync(), retried on EINTR. Returns 0 or an errno value.
int fsync_retrying(int fd);
/// fdatasync(), retried on EINTR. Returns 0 or an errno value.
int fdatasync_retrying(int fd);

/// "HOST-PID": a name for this process that no other process on any host shares at the
/// same time (a consumer in a group, a client in a merged history). "localhost" when the
/// host has no name.
std::string host_pid_name();

}  // namespace envkit
