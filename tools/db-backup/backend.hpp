// THE SEAM of db-backup: what the framework (dump/restore/verify/diff/list/prune, written by
// one engineer) and each store's backend (MySQL here; Redis and MongoDB in redis_backend.cpp
// and mongo_backend.cpp, written by another) agree on. Change it only together.
//
// A backup is one directory holding data files and, written last, manifest.json:
//
//   DIR/20261122T141500Z/
//     manifest.json                       the index; without it the backup is incomplete
//     readings.00000.jsonl.zst            object "readings", chunk 0 (JSON Lines, compressed)
//     readings.schema.sql                 (optional extra files a backend wants, recorded too)
//
// An "object" is what a backend dumps as one unit: a MySQL table, a MongoDB collection, a
// Redis keyspace (database N). An object is split into one or more chunk files; every file is
// JSON Lines, one record a line, optionally gzip- or zstd-compressed, and the manifest keeps
// for each file its SHA-256 over the bytes as stored (compressed), its size and row count.
//
// The framework owns directories, temporary names, locking, the manifest, checksums,
// compression, progress and verification of files; a backend only reads its store and
// writes records (dump), reads records and writes its store (restore), and optionally
// compares one object with the live store (verify --against).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/base64.hpp>
#include <envkit/connection.hpp>
#include <envkit/json.hpp>
#include <envkit/result.hpp>
#include <envkit/url.hpp>

namespace db_backup {

using envkit::Error;
using envkit::Exit;
using envkit::Result;
using envkit::Status;

/// How data files are compressed. The file name ends in ".jsonl", ".jsonl.gz" or ".jsonl.zst".
enum class Compression { none, gzip, zstd };

/// "none", "gzip", "zstd".
std::string_view compression_name(Compression c);
/// Parses "none", "gzip"/"gz", "zstd"/"zst"; Exit::usage otherwise.
Result<Compression> parse_compression(std::string_view text);
/// ".jsonl", ".jsonl.gz", ".jsonl.zst".
std::string_view data_file_suffix(Compression c);

/// Hex SHA-256 of `data` (lower case, 64 characters).
std::string sha256_hex(std::string_view data);

/// One data file of an object, as recorded in the manifest.
struct FileEntry {
  std::string name;    ///< file name inside the backup directory (no '/')
  std::string sha256;  ///< hex SHA-256 of the bytes as stored (after compression)
  uint64_t bytes = 0;  ///< size as stored
  uint64_t rows = 0;   ///< records (lines) in the file
};

/// One dumped object (table, collection, keyspace) as recorded in the manifest.
struct ObjectEntry {
  std::string name;  ///< table / collection name, or "db0" for Redis database 0
  std::string kind;  ///< "table", "collection", "keyspace"
  uint64_t rows = 0; ///< records over all files
  std::vector<FileEntry> files;  ///< in chunk order
  /// MySQL: the SHOW CREATE TABLE text; MongoDB/Redis: empty.
  std::string schema;
  /// Backend-specific description as one JSON object text ("{}" when none). MySQL: columns
  /// with their types and the primary key; MongoDB: indexes and collection options.
  std::string metadata = "{}";
  /// Fields that identify a record, for diff and verify --against: the primary key columns
  /// (MySQL), ["_id"] (MongoDB), ["key"] (Redis). Empty: compare whole records as a multiset.
  std::vector<std::string> key;
  /// A checksum the server computed, when it has one (MySQL CHECKSUM TABLE); what it means
  /// (e.g. "mysql-checksum-table, live at 2026-11-22T14:15:00Z") is in source_checksum_kind.
  std::optional<std::string> source_checksum;
  std::string source_checksum_kind;
};

/// manifest.json, the index of a backup. Written last and atomically: its presence is what
/// makes a backup complete.
struct Manifest {
  static constexpr int kFormatVersion = 1;
  int format_version = kFormatVersion;
  std::string tool_version;    ///< db-backup's version
  std::string backend;         ///< scheme: "mysql", "redis", "mongodb"
  std::string source;          ///< the source URL, redacted (never a password)
  std::string database;        ///< database / db name the objects came from
  std::string server_version;  ///< as the server reports it
  std::string started_at;      ///< RFC 3339 UTC
  std::string finished_at;     ///< RFC 3339 UTC
  Compression compression = Compression::none;
  /// True when every object was read from one point-in-time snapshot.
  bool consistent = false;
  /// How consistency was obtained and the position, as one JSON object text. MySQL:
  /// {"method":"ftwrl"|"binlog_snapshot"|"none", "binlog_file":..., "binlog_position":...,
  ///  "gtid":...}; Redis/Mongo: whatever identifies the point in time, or {}.
  std::string snapshot = "{}";
  std::vector<std::string> warnings;  ///< e.g. "no RELOAD privilege: snapshot per connection"
  std::vector<ObjectEntry> objects;   ///< sorted by name

  uint64_t total_rows() const;
  uint64_t total_bytes() const;
  const ObjectEntry* find(std::string_view name) const;

  /// Serialises to pretty JSON text.
  std::string to_json() const;
  /// Parses manifest.json text; Exit::data when it is malformed.
  static Result<Manifest> parse(std::string_view text);
};

/// Writes one data file: records in, compressed bytes out, SHA-256 and size counted over the
/// stored bytes, mode 0600, fsynced at finish(). The file is written under a temporary name
/// and renamed in finish(); a writer destroyed before finish() removes its file. Not
/// thread-safe: one writer per thread.
class DataFileWriter {
 public:
  static Result<DataFileWriter> create(const std::string& dir, std::string name, Compression c);
  DataFileWriter(DataFileWriter&&) noexcept;
  DataFileWriter& operator=(DataFileWriter&&) = delete;
  ~DataFileWriter();

  /// Appends one record: `json` is one serialised JSON value without a newline.
  Status write_record(std::string_view json);
  /// Appends `rows` records at once: `lines` is their text, each ending with a newline. A big
  /// block (1 MiB) goes to the checksum, compressor and file without being copied.
  Status write_lines(std::string_view lines, uint64_t rows);
  /// Flushes the compressor, fsyncs, renames into place; returns the manifest entry.
  /// The same as seal() then commit().
  Result<FileEntry> finish();
  /// Flushes the compressor and returns the manifest entry; the file is not yet durable nor
  /// under its name. Nothing may be written after it.
  Result<FileEntry> seal();
  /// After seal(): fsyncs the file and renames it into place. May run on another thread.
  Status commit();
  uint64_t rows() const;
  /// Uncompressed bytes handed to write_record so far (for progress).
  uint64_t raw_bytes() const;

 private:
  struct Impl;
  explicit DataFileWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// What a DataFileReader checks against the manifest when it reaches the end of a file.
enum class FileCheck {
  all,     ///< SHA-256, size and record count
  counts,  ///< size and record count: restore, whose files were all verified just before
  none,    ///< nothing: restore --force reads what is there
};

/// Reads one data file back: decompresses, splits lines, and at the end checks that the
/// stored bytes match the FileEntry's SHA-256, size and row count (Exit::data naming the file
/// when not). Memory stays bounded by the longest line.
class DataFileReader {
 public:
  /// `entry` is the manifest's record of the file (its checks are done at the end).
  static Result<DataFileReader> open(const std::string& dir, const FileEntry& entry,
                                     FileCheck check = FileCheck::all);
  DataFileReader(DataFileReader&&) noexcept;
  DataFileReader& operator=(DataFileReader&&) = delete;
  ~DataFileReader();

  /// The next record's text (valid until the next call), or nullopt at the end, after the
  /// checksum, size and row count have been checked.
  Result<std::optional<std::string_view>> next();

 private:
  struct Impl;
  explicit DataFileReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// What the user asked of a dump, for the backend.
struct DumpOptions {
  std::vector<std::string> include;  ///< --tables (empty: all objects)
  std::vector<std::string> exclude;  ///< --exclude
  std::string where;                 ///< --where: a filter in the store's own language
  size_t threads = 1;                ///< --threads: connections working in parallel
  uint64_t chunk_rows = 1000000;     ///< --chunk-rows: split objects larger than this
  bool snapshot = true;              ///< false only from the test hook (ENVKIT_DB_BACKUP_NO_SNAPSHOT)
  std::chrono::milliseconds row_delay{0};  ///< test hook: sleep per 1000 rows (ENVKIT_DB_BACKUP_THROTTLE_MS)
};

/// Progress of one object, reported by backends as they go (the framework prints it on a
/// terminal and nowhere else). Thread-safe.
class Progress {
 public:
  virtual ~Progress() = default;
  /// `expected_rows` may be an estimate (0: unknown).
  virtual void begin_object(const std::string& name, uint64_t expected_rows) = 0;
  /// Adds rows and uncompressed bytes done for `name`.
  virtual void advance(const std::string& name, uint64_t rows, uint64_t bytes) = 0;
  virtual void end_object(const std::string& name) = 0;
};

/// A backup being written, handed to Backend::dump(). Thread-safe: workers may open files and
/// add objects concurrently.
class BackupWriter {
 public:
  BackupWriter(std::string dir, Compression compression, DumpOptions options, Progress& progress,
               Manifest& manifest)
      : dir_(std::move(dir)), compression_(compression), options_(std::move(options)),
        progress_(progress), manifest_(manifest) {}

  const DumpOptions& options() const { return options_; }
  Progress& progress() { return progress_; }
  Compression compression() const { return compression_; }
  /// The (temporary) backup directory.
  const std::string& dir() const { return dir_; }

  /// Opens chunk `chunk` of `object` for writing. The name is derived safely from `object`
  /// (hostile names become "t<N>" with the real name kept in the manifest).
  Result<DataFileWriter> open_chunk(const std::string& object, size_t chunk);

  /// Records a finished object. Call once per object. Backends give its files through
  /// add_chunk(), the one way a chunk joins a backup, and leave `files` and `rows` empty.
  void add_object(ObjectEntry entry);
  /// Adds a written chunk file to `object` (chunks finished by different workers, in any
  /// order); its rows are added to the object's count. The file is sealed here and made
  /// durable (fsync, rename) on a thread of its own, so that the worker goes on with its next
  /// chunk while the disk catches up: at most `threads` files wait so at once, and a
  /// failure is returned by a later add_chunk() or by finish_objects(). The object itself
  /// must be added with add_object() (files empty or not) for the chunks to count.
  Status add_chunk(const std::string& object, size_t chunk, DataFileWriter file);
  /// Called by the framework after dump(): waits for every chunk file to be durable (the
  /// first failure is returned), then chunk files join their objects in chunk order.
  Status finish_objects();
  /// Waits for every chunk file still being made durable; the first failure is returned.
  /// The framework calls it before removing a failed dump.
  Status wait_for_files();

  /// Manifest fields the backend knows: call under no particular order, any thread.
  void set_server_version(std::string v);
  void set_database(std::string db);
  void set_snapshot(bool consistent, std::string snapshot_json);
  void warn(std::string message);  ///< also logged as a warning

  /// True once SIGTERM/SIGINT asked to stop: backends return Error{Exit::temp_fail,...} soon.
  bool stopping() const;

 private:
  std::string dir_;
  Compression compression_;
  DumpOptions options_;
  Progress& progress_;
  Manifest& manifest_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::vector<std::pair<size_t, FileEntry>>>> chunks_;
  std::vector<std::string> file_names_;
  std::deque<std::future<Status>> commits_;  // files being made durable, oldest first

  void add_file(const std::string& object, size_t chunk, FileEntry file);
};

/// What the user asked of a restore.
struct RestoreOptions {
  bool replace = false;       ///< --replace: drop/overwrite existing objects; else they must not exist
  size_t threads = 1;         ///< parallel connections
  size_t batch_rows = 5000;   ///< rows per multi-row INSERT / insertMany / pipeline
  std::vector<std::string> include;  ///< restore only these objects (empty: all)
};

/// A complete backup being read, handed to Backend::restore() and compare().
class BackupReader {
 public:
  BackupReader(std::string dir, Manifest manifest)
      : dir_(std::move(dir)), manifest_(std::move(manifest)) {}
  const std::string& dir() const { return dir_; }
  const Manifest& manifest() const { return manifest_; }
  /// Opens one data file; it is checked (`check_files`) as it reaches the end.
  Result<DataFileReader> open(const FileEntry& file) const { return DataFileReader::open(dir_, file, check_files); }
  /// Hands every record of `object`, file after file, to `each` with its file and line
  /// number; each file is checked as it ends. Stops at the first error, a file's or `each`'s.
  Status for_each_record(
      const ObjectEntry& object,
      const std::function<Status(std::string_view record, const FileEntry& file, uint64_t line)>& each) const;
  Progress* progress = nullptr;  ///< may be null
  FileCheck check_files = FileCheck::all;

 private:
  std::string dir_;
  Manifest manifest_;
};

/// One difference between a backup and the live store (verify --against), or between two
/// backups (diff). `key` is the record's key as a JSON object text ({"id":5}), or the whole
/// record for objects without a key.
struct Difference {
  std::string object;
  std::string change;  ///< "added" (only live / only in the second), "removed", "changed"
  std::string key;     ///< JSON object text
  std::string before;  ///< JSON record text, empty for "added"
  std::string after;   ///< JSON record text, empty for "removed"
};

/// A store: MySQL/MariaDB, Redis, MongoDB. One instance per command run.
class Backend {
 public:
  virtual ~Backend() = default;

  /// Dumps the selected objects into `out`: for each object, write chunk files through
  /// out.open_chunk(), then out.add_object()/add_file(). Sets the manifest's server
  /// version, database and snapshot through `out`. Keeps going past one bad object only when
  /// the backup would still be truthful; otherwise returns the error (no manifest is
  /// written for a failed dump).
  virtual Status dump(BackupWriter& out) = 0;

  /// Restores the objects of `in` into the store, schema first. Without opts.replace an
  /// object that already exists with data is an error (Exit::data) before anything is written.
  virtual Status restore(const BackupReader& in, const RestoreOptions& opts) = 0;

  /// Compares `object` of the backup with the live store record by record (by key), calling
  /// `report` for each difference. Default: Exit::unavailable "not supported".
  virtual Status compare(const BackupReader& in, const ObjectEntry& object,
                         const std::function<void(const Difference&)>& report);
};

/// Settings every backend gets besides its URL.
struct BackendOptions {
  envkit::ConnectionOptions connection;
};

/// The backend for the URL's scheme: mysql:// and mariadb:// (mysql_backend.cpp),
/// redis:// (redis_backend.cpp), mongodb:// (mongo_backend.cpp). The URL's password has
/// already been resolved. Exit::usage for an unknown scheme.
Result<std::unique_ptr<Backend>> make_backend(const envkit::Url& url, const BackendOptions& options);

/// Per-backend constructors, called by make_backend(); each lives in its backend's file and
/// is registered by one line in the table of backend_factory.cpp.
Result<std::unique_ptr<Backend>> make_mysql_backend(const envkit::Url& url, const BackendOptions& options);
Result<std::unique_ptr<Backend>> make_redis_backend(const envkit::Url& url, const BackendOptions& options);
Result<std::unique_ptr<Backend>> make_mongo_backend(const envkit::Url& url, const BackendOptions& options);

// Binary values are written in records as standard base64 (envkit/base64.hpp).
using envkit::base64_decode;
using envkit::base64_encode;
using envkit::base64_encode_to;

/// Canonical JSON text of a record for comparisons (object members sorted by key), so that
/// two records with the same content compare equal as strings.
std::string canonical_json(const envkit::JsonValue& value);

}  // namespace db_backup
