// A backup directory DIR and the backups in it: names, completeness, the lock, and
// grandfather-father-son retention.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "db-backup/backend.hpp"
#include <envkit/posix.hpp>

namespace db_backup {

/// Name of the manifest inside a backup.
inline constexpr const char* kManifestName = "manifest.json";

/// One backup directory under DIR.
struct BackupInfo {
  std::string name;       ///< "20261122T141500Z" (or "...Z-2"); ".tmp-..." for one being written
  std::string path;       ///< DIR/name
  bool complete = false;  ///< has a manifest
  std::chrono::sys_seconds time{};  ///< from the name
};

/// "20261122T141500Z" for `t`.
std::string backup_name(std::chrono::sys_seconds t);
/// The time in a backup name, or nullopt when `name` is not one.
std::optional<std::chrono::sys_seconds> parse_backup_name(const std::string& name);

/// The backups under `dir`, oldest first: complete ones and incomplete ones (named like a
/// backup or a temporary ".tmp-*" directory, without a manifest). Exit::no_input if `dir`
/// does not exist.
Result<std::vector<BackupInfo>> list_backups(const std::string& dir);

/// A backup directory to read: `path` itself when it is a backup (manifest.json in it), else
/// the latest complete backup under it. Exit::data "incomplete" for a backup directory
/// without its manifest, Exit::no_input when there is no backup at all.
Result<std::string> locate_backup(const std::string& path);

/// Reads and parses `backup_dir`/manifest.json (Exit::data "incomplete" when missing).
Result<Manifest> read_manifest(const std::string& backup_dir);

/// An exclusive lock on DIR/.lock, held while the object lives. A second holder gets
/// lock_held, Exit::temp_fail ("another db-backup is working on DIR").
class DirLock {
 public:
  static Result<DirLock> acquire(const std::string& dir);

 private:
  explicit DirLock(envkit::FileLock lock) : lock_(std::move(lock)) {}
  envkit::FileLock lock_;
};

/// How many backups each rule keeps.
struct Retention {
  int last = 0, daily = 0, weekly = 0, monthly = 0;
};

/// The decision about one backup.
struct PruneDecision {
  std::string name;
  bool keep = false;
  std::vector<std::string> reasons;  ///< "last", "daily", "weekly", "monthly"
};

/// Grandfather-father-son selection over complete backups (any order): keeps the `last`
/// newest; and for each of the `daily` (ISO `weekly`, `monthly`) newest UTC days (weeks,
/// months) that have backups, the newest backup of that period. Returns one decision per
/// backup, newest first. Pure: no clock, no file system.
std::vector<PruneDecision> select_prune(std::vector<BackupInfo> backups, const Retention& keep);

}  // namespace db_backup
