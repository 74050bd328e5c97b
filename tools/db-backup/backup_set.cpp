// Backup directories: listing, locating the latest complete one, the lock, GFS retention.
#include "db-backup/backup_set.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include <envkit/exit_status.hpp>
#include <envkit/durable_file.hpp>

namespace db_backup {

namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

}  // namespace

std::string backup_name(std::chrono::sys_seconds t) {
  auto days = std::chrono::floor<std::chrono::days>(t);
  std::chrono::year_month_day ymd{days};
  std::chrono::hh_mm_ss hms{t - days};
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d%02u%02uT%02ld%02ld%02lldZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long>(hms.hours().count()), static_cast<long>(hms.minutes().count()),
                static_cast<long long>(hms.seconds().count()));
  return buf;
}

std::optional<std::chrono::sys_seconds> parse_backup_name(const std::string& name) {
  int y, mo, d, h, mi, s;
  char z = 0;
  int n = 0;
  if (name.size() < 16 ||
      std::sscanf(name.c_str(), "%4d%2d%2dT%2d%2d%2d%c%n", &y, &mo, &d, &h, &mi, &s, &z, &n) != 7 ||
      z != 'Z' || n != 16) {
    return std::nullopt;
  }
  // Optional "-N" suffix for two backups in one second.
  if (name.size() > 16) {
    if (name[16] != '-' || name.size() == 17) return std::nullopt;
    for (size_t i = 17; i < name.size(); ++i)
      if (name[i] < '0' || name[i] > '9') return std::nullopt;
  }
  std::chrono::year_month_day ymd{std::chrono::year(y),
                                  std::chrono::month(static_cast<unsigned>(mo)),
                                  std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok() || h > 23 || mi > 59 || s > 60) return std::nullopt;
  return std::chrono::sys_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(mi) +
         std::chrono::seconds(s);
}

Result<std::vector<BackupInfo>> list_backups(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT || errno == ENOTDIR)
      return Error{Exit::no_input, dir + ": no such backup directory"};
    return Error{Exit::io, dir + ": " + std::strerror(errno)};
  }
  std::vector<BackupInfo> out;
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    std::string path = dir + "/" + name;
    auto t = parse_backup_name(name);
    bool temp = name.rfind(".tmp-", 0) == 0;
    if ((!t && !temp) || !is_dir(path)) continue;
    BackupInfo b;
    b.name = name;
    b.path = path;
    b.complete = !temp && exists(path + "/" + kManifestName);
    if (t) b.time = *t;
    out.push_back(std::move(b));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(),
            [](const BackupInfo& a, const BackupInfo& b) { return a.name < b.name; });
  return out;
}

Result<Manifest> read_manifest(const std::string& backup_dir) {
  std::string path = backup_dir + "/" + kManifestName;
  if (!exists(path)) {
    return Error{Exit::data, backup_dir + ": incomplete backup: no " + std::string(kManifestName) +
                                 " (interrupted, or still being written)"};
  }
  auto text = envkit::read_file(path, 256u << 20);
  if (!text) return text.error();
  auto m = Manifest::parse(*text);
  if (!m) return m.error().context(path);
  return m;
}

Result<std::string> locate_backup(const std::string& path) {
  if (!is_dir(path)) return Error{Exit::no_input, path + ": no such backup directory"};
  if (exists(path + "/" + kManifestName)) return path;
  auto list = list_backups(path);
  if (!list) return list.error();
  for (auto it = list->rbegin(); it != list->rend(); ++it)
    if (it->complete) return it->path;
  // A directory of data files without a manifest is itself an interrupted backup.
  DIR* d = ::opendir(path.c_str());
  bool data = false;
  if (d) {
    while (auto* e = ::readdir(d)) {
      if (std::strstr(e->d_name, ".jsonl")) data = true;
    }
    ::closedir(d);
  }
  if (data || !list->empty()) {
    std::string which = data ? path : list->back().path;
    return Error{Exit::data, which + ": incomplete backup: no " + std::string(kManifestName) +
                                 " (interrupted, or still being written)"};
  }
  return Error{Exit::no_input, path + ": no backup in this directory"};
}

Result<DirLock> DirLock::acquire(const std::string& dir) {
  auto lock = envkit::FileLock::acquire(dir + "/.lock");
  if (!lock) {
    const Error& e = lock.error();
    if (e.code != envkit::exit_for(envkit::Failure::lock_held)) return e;
    return envkit::fail(envkit::Failure::lock_held,
                        "another db-backup is working on " + dir + " (" + e.message + "): try later");
  }
  return DirLock(std::move(*lock));
}

std::vector<PruneDecision> select_prune(std::vector<BackupInfo> backups, const Retention& keep) {
  std::sort(backups.begin(), backups.end(), [](const BackupInfo& a, const BackupInfo& b) {
    return a.time != b.time ? a.time > b.time : a.name > b.name;
  });
  std::vector<PruneDecision> out;
  for (const auto& b : backups) out.push_back({b.name, false, {}});
  auto mark = [&](size_t i, const char* why) {
    out[i].keep = true;
    out[i].reasons.emplace_back(why);
  };
  for (size_t i = 0; i < backups.size() && static_cast<int>(i) < keep.last; ++i) mark(i, "last");
  // Each rule walks newest first and keeps the first backup of every new period it meets.
  auto by_period = [&](int count, const char* why, auto period_of) {
    std::optional<long long> current;
    int kept = 0;
    for (size_t i = 0; i < backups.size() && kept < count; ++i) {
      long long p = period_of(backups[i].time);
      if (current && *current == p) continue;
      current = p;
      mark(i, why);
      ++kept;
    }
  };
  using namespace std::chrono;
  by_period(keep.daily, "daily", [](sys_seconds t) {
    return static_cast<long long>(floor<days>(t).time_since_epoch().count());
  });
  by_period(keep.weekly, "weekly", [](sys_seconds t) {
    // ISO weeks start on Monday; day 0 of the epoch (1970-01-01) was a Thursday.
    long long d = floor<days>(t).time_since_epoch().count();
    return (d + 3) >= 0 ? (d + 3) / 7 : -((-(d + 3) + 6) / 7);
  });
  by_period(keep.monthly, "monthly", [](sys_seconds t) {
    year_month_day ymd{floor<days>(t)};
    return static_cast<long long>(static_cast<int>(ymd.year())) * 12 +
           static_cast<unsigned>(ymd.month());
  });
  return out;
}

}  // namespace db_backup
