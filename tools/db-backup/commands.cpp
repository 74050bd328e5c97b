// The subcommands: dump (once or as a daemon), restore, verify, diff, list, prune.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>

#include "db-backup/backend.hpp"
#include "db-backup/backup_set.hpp"
#include "db-backup/progress.hpp"
#include "db-backup/run.hpp"
#include <envkit/durable_file.hpp>
#include <envkit/jsonl.hpp>
#include <envkit/log.hpp>
#include <envkit/metrics.hpp>
#include <envkit/schedule.hpp>
#include <envkit/signals.hpp>
#include <envkit/timefmt.hpp>
#include <envkit/worker_pool.hpp>
#include "db-backup/record_index.hpp"

namespace db_backup {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

std::string now_text() {
  return envkit::format_utc(std::chrono::time_point_cast<std::chrono::milliseconds>(Clock::now()));
}

Result<envkit::Url> parse_endpoint(const std::string& text, const Config& c) {
  auto url = envkit::parse_url(text);
  if (!url) return url.error();
  envkit::SecretSources secrets;
  secrets.password_file = c.password_file;
  if (auto st = envkit::resolve_password(*url, secrets); !st) return st.error();
  return url;
}

Result<std::unique_ptr<Backend>> open_backend(const envkit::Url& url, const Config& c) {
  BackendOptions o;
  o.connection = c.connection;
  return make_backend(url, o);
}

std::string manifest_backend_name(const std::string& scheme) {
  return scheme == "mariadb" ? "mysql" : scheme;
}

Status remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return Error{Exit::io, path + ": cannot remove: " + ec.message()};
  return {};
}

// Says which backups under `parent` are incomplete (newer than the one being used).
void warn_incomplete(const std::string& parent, const std::string& chosen) {
  auto list = list_backups(parent);
  if (!list) return;
  for (const auto& b : *list) {
    if (!b.complete && b.path != chosen) {
      envkit::log_warning(b.path + ": incomplete backup (no manifest.json): ignored");
    }
  }
}

// Checks every file of a backup: SHA-256, size, record count and, with `json`, that every
// record is a JSON object; `threads` files at a time. Calls `problem` for each bad file, one
// call at a time; returns the number of them.
size_t check_files(const std::string& dir, const Manifest& m, bool json, size_t threads,
                   const std::function<void(const Error&)>& problem) {
  std::vector<const FileEntry*> files;
  for (const auto& o : m.objects)
    for (const auto& f : o.files) files.push_back(&f);
  std::mutex mutex;
  size_t bad = 0;
  auto report = [&](const Error& e) {
    std::lock_guard lock(mutex);
    problem(e);
    ++bad;
  };
  (void)envkit::for_each_parallel(files.size(), threads, [&](size_t, size_t i) -> Status {
    const FileEntry& f = *files[i];
    auto reader = DataFileReader::open(dir, f);
    if (!reader) {
      report(reader.error());
      return {};
    }
    uint64_t line = 0;
    for (;;) {
      auto rec = reader->next();
      if (!rec) {
        report(rec.error());
        return {};
      }
      if (!*rec) return {};
      ++line;
      if (json) {
        rapidjson::Document d;
        d.Parse((*rec)->data(), (*rec)->size());
        if (d.HasParseError() || !d.IsObject()) {
          report(Error{Exit::data, f.name + ":" + std::to_string(line) + ": not a JSON object"});
          return {};
        }
      }
    }
  });
  return bad;
}

// ---------------------------------------------------------------------------------------
// metrics

double previous_metric(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::strtod(line.c_str() + name.size() + 1, nullptr);
  }
  return 0;
}

struct RunStats {
  bool ok = false;
  double started = 0, duration = 0;
  uint64_t bytes = 0, rows = 0;
};

Status write_metrics(const std::string& path, const RunStats& s, uint64_t failures) {
  if (path.empty()) return {};
  double last_success =
      s.ok ? s.started + s.duration
           : previous_metric(path, "envkit_db_backup_last_success_timestamp_seconds");
  double last_bytes = s.ok ? static_cast<double>(s.bytes)
                           : previous_metric(path, "envkit_db_backup_last_success_bytes");
  double last_rows = s.ok ? static_cast<double>(s.rows)
                          : previous_metric(path, "envkit_db_backup_last_success_rows");
  envkit::MetricsFile m;
  m.add("db_backup_last_success_timestamp_seconds", "gauge",
        "End of the last successful backup (Unix time)", last_success);
  m.add("db_backup_last_success_bytes", "gauge", "Bytes stored by the last successful backup",
        last_bytes);
  m.add("db_backup_last_success_rows", "gauge", "Rows in the last successful backup", last_rows);
  m.add("db_backup_last_run_success", "gauge", "1 when the last run succeeded", s.ok ? 1 : 0);
  m.add("db_backup_last_run_duration_seconds", "gauge", "Duration of the last run", s.duration);
  m.add("db_backup_failures_total", "counter", "Failed backups since the daemon started",
        static_cast<double>(failures));
  return m.write(path);
}

// ---------------------------------------------------------------------------------------
// dump

Status prune_dir(const std::string& dir, const Retention& keep, bool dry_run, bool print);

struct DumpRound {
  const Config& config;
  envkit::Url url;
  Backend& backend;
  DumpOptions options;
  Compression compression;
};

Result<RunStats> dump_once(DumpRound& r) {
  RunStats stats;
  auto t0 = std::chrono::steady_clock::now();
  stats.started = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
  const std::string& out = r.config.out;
  if (auto st = envkit::make_directories(out, 0700); !st) return st.error();
  auto lock = DirLock::acquire(out);
  if (!lock) return lock.error();
  // Under the lock no other run is writing: any temporary directory is a dead run's.
  if (auto list = list_backups(out)) {
    for (const auto& b : *list) {
      if (b.name.rfind(".tmp-", 0) == 0) {
        envkit::log_info("removing " + b.path + ": left by an interrupted run");
        (void)remove_tree(b.path);
      }
    }
  }
  auto start = std::chrono::floor<std::chrono::seconds>(Clock::now());
  std::string name = backup_name(start);
  for (int i = 2; fs::exists(out + "/" + name); ++i)
    name = backup_name(start) + "-" + std::to_string(i);
  std::string tmp = out + "/.tmp-" + name + "-" + std::to_string(::getpid());
  if (::mkdir(tmp.c_str(), 0700) != 0)
    return Error{Exit::io, tmp + ": cannot create: " + std::strerror(errno)};
  ::chmod(tmp.c_str(), 0700);

  Manifest m;
  m.tool_version = ENVKIT_VERSION;
  m.backend = manifest_backend_name(r.url.scheme);
  m.source = r.url.redacted();
  m.started_at = now_text();
  m.compression = r.compression;
  auto progress = make_progress("dump", r.config.progress);
  BackupWriter writer(tmp, r.compression, r.options, *progress, m);
  auto st = r.backend.dump(writer);
  progress.reset();
  if (st) st = writer.finish_objects();
  if (!st) {
    (void)writer.wait_for_files();
    (void)remove_tree(tmp);
    return st.error();
  }
  m.finished_at = now_text();
  // The manifest last, then the rename: a backup under its final name is always complete.
  if (auto w = envkit::write_file_atomically(tmp + "/" + kManifestName, m.to_json(), 0600); !w) {
    (void)remove_tree(tmp);
    return w.error();
  }
  std::string final_path = out + "/" + name;
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    Error e{Exit::io, final_path + ": cannot rename into place: " + std::strerror(errno)};
    (void)remove_tree(tmp);
    return e;
  }
  if (auto f = envkit::fsync_directory(out); !f) return f.error();
  stats.ok = true;
  stats.bytes = m.total_bytes();
  stats.rows = m.total_rows();
  stats.duration = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  envkit::log_info("backup " + final_path + " complete: " + std::to_string(m.objects.size()) +
                   " objects, " + std::to_string(stats.rows) + " rows, " +
                   std::to_string(stats.bytes) + " bytes");
  if (r.config.keeps_given()) {
    Retention keep{r.config.keep_last, r.config.keep_daily, r.config.keep_weekly,
                   r.config.keep_monthly};
    if (auto p = prune_dir(out, keep, false, false); !p) return p.error();
  }
  return stats;
}

Result<Exit> run_dump(const Config& c) {
  auto url = parse_endpoint(c.from, c);
  if (!url) return url.error();
  auto backend = open_backend(*url, c);
  if (!backend) return backend.error();
  auto comp = parse_compression(c.compress);
  if (!comp) return comp.error();
  DumpOptions o;
  o.include = c.tables;
  o.exclude = c.exclude;
  o.where = c.where;
  o.threads = c.threads;
  o.chunk_rows = c.chunk_rows;
  // Test hooks, so that the snapshot can be shown to matter and a dump made slow.
  if (const char* v = std::getenv("ENVKIT_DB_BACKUP_NO_SNAPSHOT"); v && std::string(v) == "1") {
    envkit::log_warning("ENVKIT_DB_BACKUP_NO_SNAPSHOT=1: test hook, this dump is NOT consistent");
    o.snapshot = false;
  }
  if (const char* v = std::getenv("ENVKIT_DB_BACKUP_THROTTLE_MS"))
    o.row_delay = std::chrono::milliseconds(std::atoll(v));
  DumpRound round{c, *url, **backend, o, *comp};
  if (c.every.value.count() <= 0) {
    auto stats = dump_once(round);
    if (!stats) {
      if (stats.error().code != Exit::temp_fail || envkit::stop_requested()) {
        RunStats failed;
        (void)write_metrics(c.metrics_file, failed, 1);
      }
      return stats.error();
    }
    if (auto st = write_metrics(c.metrics_file, *stats, 0); !st) return st.error();
    return Exit::ok;
  }
  // Daemon: a backup at once, then on the clock's grid (multiples of --every since the
  // epoch), so the schedule never drifts however long a backup takes; a backup that
  // overruns a tick skips it. A failed round is logged and retried at the next tick.
  // SIGTERM ends the loop; a backup in flight is abandoned (its temporary directory
  // removed), never left looking complete.
  uint64_t failures = 0;
  envkit::GridSchedule schedule(c.every.value);
  envkit::run_on_schedule(schedule, /*at_once=*/true, [&](envkit::SysMillis) {
    auto stats = dump_once(round);
    if (!stats) {
      if (envkit::stop_requested()) return false;
      ++failures;
      envkit::log_error(stats.error().message);
      RunStats failed;
      (void)write_metrics(c.metrics_file, failed, failures);
    } else if (auto st = write_metrics(c.metrics_file, *stats, failures); !st) {
      envkit::log_error(st.error().message);
    }
    return true;
  });
  envkit::log_info("stopped by signal");
  return Exit::ok;
}

// ---------------------------------------------------------------------------------------
// restore, verify, diff, list, prune

Result<Exit> run_restore(const Config& c) {
  auto dir = locate_backup(c.from);
  if (!dir) return dir.error();
  if (*dir != c.from) warn_incomplete(c.from, *dir);
  auto m = read_manifest(*dir);
  if (!m) return m.error();
  if (!c.force) {
    std::string first;
    size_t bad = check_files(*dir, *m, false, c.threads, [&](const Error& e) {
      envkit::log_error("verify: " + e.message);
      if (first.empty()) first = e.message;
    });
    if (bad) {
      return Error{Exit::data, *dir + ": backup fails verification (" + first +
                                   "): not restoring; --force restores it anyway"};
    }
  }
  auto url = parse_endpoint(c.to, c);
  if (!url) return url.error();
  auto backend = open_backend(*url, c);
  if (!backend) return backend.error();
  RestoreOptions o;
  o.replace = c.replace;
  o.threads = c.threads;
  o.batch_rows = c.batch_rows;
  o.include = c.tables;
  BackupReader reader(*dir, std::move(*m));
  // Every file's SHA-256 was checked above, before anything was written: while the rows
  // are read again, their size and record count are checked, not their digest again.
  reader.check_files = c.force ? FileCheck::none : FileCheck::counts;
  auto progress = make_progress("restore", c.progress);
  reader.progress = progress.get();
  if (auto st = (*backend)->restore(reader, o); !st) return st.error();
  progress.reset();
  envkit::log_info("restored " + *dir + " into " + url->redacted());
  return Exit::ok;
}

Result<Exit> run_verify(const Config& c) {
  auto dir = locate_backup(c.args[0]);
  if (!dir) return dir.error();
  if (*dir != c.args[0]) warn_incomplete(c.args[0], *dir);
  auto m = read_manifest(*dir);
  if (!m) return m.error();
  size_t bad = check_files(*dir, *m, true, c.threads,
                           [](const Error& e) { envkit::log_error("verify: " + e.message); });
  if (bad) return Error{Exit::data, *dir + ": " + std::to_string(bad) + " bad file(s)"};
  if (c.against.empty()) {
    envkit::log_info(*dir + ": ok: " + std::to_string(m->objects.size()) + " objects, " +
                     std::to_string(m->total_rows()) + " rows");
    return Exit::ok;
  }
  auto url = parse_endpoint(c.against, c);
  if (!url) return url.error();
  auto backend = open_backend(*url, c);
  if (!backend) return backend.error();
  BackupReader reader(*dir, *m);
  auto out = envkit::JsonLinesWriter::to_stdout();
  uint64_t differences = 0;
  Status write_error;
  for (const auto& o : m->objects) {
    auto st = (*backend)->compare(reader, o, [&](const Difference& d) {
      ++differences;
      if (auto w = out.write(difference_json(d)); !w && write_error) write_error = w;
    });
    if (!st) return st.error();
  }
  if (auto st = out.flush(); !st) return st.error();
  if (!write_error) return write_error.error();
  return differences ? Exit::failure : Exit::ok;
}

Status add_files(RecordIndex& index, const std::string& dir, const ObjectEntry& o) {
  for (const auto& f : o.files) {
    auto r = DataFileReader::open(dir, f);
    if (!r) return r.error();
    for (;;) {
      auto rec = r->next();
      if (!rec) return rec.error();
      if (!*rec) break;
      if (auto st = index.add(**rec); !st) return st.error().context(f.name);
    }
  }
  return {};
}

Result<Exit> run_diff(const Config& c) {
  auto a_dir = locate_backup(c.args[0]);
  if (!a_dir) return a_dir.error();
  auto b_dir = locate_backup(c.args[1]);
  if (!b_dir) return b_dir.error();
  auto a = read_manifest(*a_dir);
  if (!a) return a.error();
  auto b = read_manifest(*b_dir);
  if (!b) return b.error();
  std::set<std::string> names;
  for (const auto& o : a->objects) names.insert(o.name);
  for (const auto& o : b->objects) names.insert(o.name);
  auto out = envkit::JsonLinesWriter::to_stdout();
  uint64_t differences = 0;
  Status write_error;
  auto report = [&](const Difference& d) {
    ++differences;
    if (auto w = out.write(difference_json(d)); !w && write_error) write_error = w;
  };
  for (const auto& name : names) {
    const ObjectEntry* oa = a->find(name);
    const ObjectEntry* ob = b->find(name);
    // Keys must agree for a keyed comparison; otherwise compare whole records.
    std::vector<std::string> key =
        (oa && ob && oa->key == ob->key)
            ? oa->key
            : (oa && !ob ? oa->key : (ob && !oa ? ob->key : std::vector<std::string>{}));
    RecordIndex index(key);
    if (oa) {
      if (auto st = add_files(index, *a_dir, *oa); !st) return st.error();
    }
    if (ob) {
      for (const auto& f : ob->files) {
        auto r = DataFileReader::open(*b_dir, f);
        if (!r) return r.error();
        for (;;) {
          auto rec = r->next();
          if (!rec) return rec.error();
          if (!*rec) break;
          if (auto st = index.match(**rec, name, report); !st) return st.error().context(f.name);
        }
      }
    }
    index.report_unmatched(name, report);
  }
  if (auto st = out.flush(); !st) return st.error();
  if (!write_error) return write_error.error();
  return differences ? Exit::failure : Exit::ok;
}

Result<Exit> run_list(const Config& c) {
  auto list = list_backups(c.args[0]);
  if (!list) return list.error();
  auto out = envkit::JsonLinesWriter::to_stdout();
  for (const auto& b : *list) {
    envkit::JsonWriter w;
    w.begin_object()
        .key("name")
        .string(b.name)
        .key("path")
        .string(b.path)
        .key("complete")
        .boolean(b.complete);
    if (b.complete) {
      auto m = read_manifest(b.path);
      if (m) {
        w.key("backend").string(m->backend).key("database").string(m->database);
        w.key("started_at").string(m->started_at).key("finished_at").string(m->finished_at);
        w.key("objects").number(static_cast<uint64_t>(m->objects.size()));
        w.key("rows").number(m->total_rows()).key("bytes").number(m->total_bytes());
        w.key("consistent").boolean(m->consistent);
      } else {
        w.key("error").string(m.error().message);
      }
    } else {
      w.key("error").string("incomplete: no manifest.json (interrupted, or still being written)");
    }
    w.end_object();
    if (auto st = out.write(w.take()); !st) return st.error();
  }
  if (auto st = out.flush(); !st) return st.error();
  return Exit::ok;
}

Status prune_dir(const std::string& dir, const Retention& keep, bool dry_run, bool print) {
  auto list = list_backups(dir);
  if (!list) return list.error();
  std::vector<BackupInfo> complete;
  for (const auto& b : *list)
    if (b.complete) complete.push_back(b);
  auto decisions = select_prune(complete, keep);
  auto out = envkit::JsonLinesWriter::to_stdout();
  for (const auto& d : decisions) {
    if (print) {
      envkit::JsonWriter w;
      w.begin_object().key("name").string(d.name).key("action").string(
          d.keep ? "keep" : (dry_run ? "would-remove" : "remove"));
      w.key("reasons").begin_array();
      for (const auto& r : d.reasons) w.string(r);
      w.end_array().end_object();
      if (auto st = out.write(w.take()); !st) return st;
    }
    if (!d.keep && !dry_run) {
      // Take the manifest away first: a half-removed backup then reads as incomplete.
      std::string path = dir + "/" + d.name;
      ::unlink((path + "/" + kManifestName).c_str());
      if (auto st = remove_tree(path); !st) return st;
      envkit::log_info("pruned " + path);
    }
  }
  if (!dry_run) (void)envkit::fsync_directory(dir);
  return out.flush();
}

Result<Exit> run_prune(const Config& c) {
  const std::string& dir = c.args[0];
  auto list = list_backups(dir);
  if (!list) return list.error();
  auto lock = DirLock::acquire(dir);
  if (!lock) return lock.error();
  Retention keep{c.keep_last, c.keep_daily, c.keep_weekly, c.keep_monthly};
  if (auto st = prune_dir(dir, keep, c.dry_run, true); !st) return st.error();
  return Exit::ok;
}

}  // namespace

Status check(const Config& c) {
  auto database = [&c](const std::string& text) -> Status {
    auto url = parse_endpoint(text, c);
    if (!url) return url.error();
    if (auto backend = open_backend(*url, c); !backend) return backend.error();
    return {};
  };
  if (c.command == "dump") {
    if (auto comp = parse_compression(c.compress); !comp) return comp.error();
    return database(c.from);
  }
  if (c.command == "restore") return database(c.to);
  if (c.command == "verify" && !c.against.empty()) return database(c.against);
  return {};
}

Result<Exit> run(const Config& c) {
  if (c.command == "dump") return run_dump(c);
  if (c.command == "restore") return run_restore(c);
  if (c.command == "verify") return run_verify(c);
  if (c.command == "diff") return run_diff(c);
  if (c.command == "list") return run_list(c);
  if (c.command == "prune") return run_prune(c);
  return Error{Exit::usage, "unknown subcommand '" + c.command + "'"};
}

}  // namespace db_backup
