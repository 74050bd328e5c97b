// Durable local files: write to a temporary name, fsync, rename over the target, fsync the
// directory.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include <envkit/result.hpp>

namespace envkit {

/// A file that appears under its final name complete or not at all.
///
///   auto file = AtomicFile::create("backups/manifest.json", 0644);
///   if (!file) return file.error();
///   if (auto st = file->write(text); !st) return st;
///   return file->commit();
///
/// Data goes to a hidden temporary file in the same directory (".<name>.tmp.XXXXXX", so a
/// rename never crosses filesystems); commit() flushes, fsyncs it, renames it over the final
/// name and fsyncs the directory, so that after commit() returns the new content survives a
/// crash or power loss. Until then readers of the final name see the old file (or none).
/// Destroying an uncommitted AtomicFile removes the temporary file; a process killed before
/// commit() leaves at most that hidden temporary behind, never a partial file under the
/// final name. Errors carry Exit::io and read "path: what: strerror".
class AtomicFile {
 public:
  /// Opens a new temporary file beside `path` (O_CLOEXEC), with permissions exactly `mode`
  /// whatever the umask. `path`'s directory must exist (see make_directories()).
  static Result<AtomicFile> create(std::string path, mode_t mode = 0600);

  AtomicFile(AtomicFile&& other) noexcept;
  /// Discards this object's own uncommitted temporary file, then takes over `other`'s.
  AtomicFile& operator=(AtomicFile&& other) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  /// Removes the temporary file unless commit() succeeded in renaming it.
  ~AtomicFile();

  /// Appends `data`. Small writes are buffered; short writes and EINTR are retried. After a
  /// failed write the file is unusable: later writes and commit() return the same error.
  Status write(std::string_view data);

  /// Writes out the buffer (does not fsync). Needed only before writing through fd().
  Status flush();

  /// The temporary file's descriptor, for calls that need one (fchown, fstat, sendfile).
  /// Call flush() first when writing through it, so bytes given to write() land before.
  /// -1 once committed or moved from.
  int fd() const { return fd_; }

  /// Flushes, fsyncs the file, renames it over path() and fsyncs the directory. On error
  /// before the rename the temporary file is removed and path() is untouched; an error from
  /// the final directory fsync means the new file is in place but may not survive a crash.
  Status commit();

  /// The final name given to create().
  const std::string& path() const { return path_; }
  /// The temporary file's name; empty once committed or moved from.
  const std::string& temp_path() const { return temp_path_; }

 private:
  AtomicFile(std::string path, std::string temp_path, int fd);
  Status fail(Error error);
  void discard() noexcept;

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  std::string buffer_;
  Error error_;  // the first failure; commit() and write() repeat it
  bool failed_ = false;
};

/// Replaces `path` with `content` durably and atomically (an AtomicFile in one call).
Status write_file_atomically(const std::string& path, std::string_view content, mode_t mode = 0600);

/// Fsyncs a directory, making the creation, rename or removal of its entries durable.
/// Filesystems that cannot sync directories (EINVAL) count as success.
Status fsync_directory(const std::string& dir);

/// Creates `path` and any missing parents, like `mkdir -p`. Directories it creates get
/// exactly `mode` (whatever the umask), and each creation is fsynced into its parent, so a
/// file made durable inside them cannot vanish with its directory. Existing directories are
/// left as they are; an existing non-directory anywhere on the path is an error.
Status make_directories(const std::string& path, mode_t mode = 0700);

/// Reads a whole file. Error when it holds more than `max_bytes` (checked while reading, so
/// a file that grows or lies about its size cannot exhaust memory). A file that cannot be
/// opened is Exit::no_input; other failures are Exit::io.
Result<std::string> read_file(const std::string& path, size_t max_bytes);

}  // namespace envkit
