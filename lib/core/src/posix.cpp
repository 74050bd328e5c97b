// POSIX helpers: descriptor ownership, whole reads and writes, fsync, errno text.
#include <envkit/posix.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <envkit/exit_status.hpp>

namespace envkit {

namespace {
// strerror_r() is the GNU flavour (returns char*) or the XSI one (returns int).
[[maybe_unused]] const char* strerror_result(const char* gnu, const char*) { return gnu; }
[[maybe_unused]] const char* strerror_result(int xsi, const char* buf) {
  return xsi == 0 ? buf : "unknown error";
}
}  // namespace

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<FileLock> FileLock::acquire(const std::string& path, std::chrono::milliseconds wait, Mode mode) {
  // A shared holder only reads the file, so a lock file another user made readable will do.
  UniqueFd fd(mode == Mode::shared ? ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600)
                                   : ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return system_error(path, "open", errno);
  auto until = std::chrono::steady_clock::now() + wait;
  while (::flock(fd.get(), (mode == Mode::shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return system_error(path, "lock", errno);
    if (std::chrono::steady_clock::now() >= until) {
      char pid[32] = {};
      ssize_t n = pread_full(fd.get(), pid, sizeof pid - 1, 0);
      std::string holder = n > 0 ? " (pid " + std::string(pid, std::strcspn(pid, "\n")) + ")" : "";
      return fail(Failure::lock_held, path + " is locked by another process" + holder);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (mode == Mode::shared) return FileLock(std::move(fd));
  // The pid is only for the message above; the lock itself is the flock().
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0) return system_error(path, "truncate", errno);
  if (int e = pwrite_all(fd.get(), pid, 0)) return system_error(path, "write", e);
  return FileLock(std::move(fd));
}

std::string errno_text(int err) {
  char buf[256] = {};
  return strerror_result(strerror_r(err, buf, sizeof buf), buf);
}

Error system_error(const std::string& path, std::string_view what, int err, Exit code) {
  return Error{code, path + ": " + std::string(what) + ": " + errno_text(err)};
}

int write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    // A regular file never accepts zero bytes of a non-empty write; do not spin if one does.
    if (n == 0) return EIO;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

int pwrite_all(int fd, std::string_view data, uint64_t offset) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return 0;
}

ssize_t pread_full(int fd, char* buf, size_t n, uint64_t offset) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

int fsync_retrying(int fd) {
  int rc;
  do {
    rc = ::fsync(fd);
  } while (rc != 0 && errno == EINTR);
  return rc == 0 ? 0 : errno;
}

int fdatasync_retrying(int fd) {
  int rc;
  do {
    rc = ::fdatasync(fd);
  } while (rc != 0 && errno == EINTR);
  return rc == 0 ? 0 : errno;
}

std::string host_pid_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  return std::string(host) + "-" + std::to_string(::getpid());
}

}  // namespace envkit
