// The MySQL/MariaDB backend: consistent parallel dumps of tables into typed JSON Lines, and
// restores by batched LOAD DATA LOCAL from memory (multi-row INSERTs where the server
// refuses it).
//
// Consistency across N connections. MariaDB cannot hand one transaction's snapshot to
// another connection, so the classic sequence is used:
//   control: FLUSH TABLES WITH READ LOCK        (every write in the server waits)
//   each worker: START TRANSACTION WITH CONSISTENT SNAPSHOT
//   control: SHOW MASTER STATUS, @@gtid_binlog_pos, CHECKSUM TABLE of small tables, schemas
//   control: UNLOCK TABLES
// All workers' snapshots therefore see the same committed state, the binlog position is
// exactly that state's, and the lock is held only for the milliseconds the statements above
// take (plus CHECKSUM TABLE of tables under kChecksumMaxRows, so that the recorded server
// checksum is of the very state dumped). MariaDB's binlog_snapshot_file/position would avoid
// FTWRL, but only for one connection; it is used for the fallback below.
//
// Without the RELOAD privilege FTWRL fails: the dump then runs on ONE connection in one
// START TRANSACTION WITH CONSISTENT SNAPSHOT (still a consistent snapshot of InnoDB tables,
// like mysqldump --single-transaction), with a warning, "method":"single-transaction" in the
// manifest's snapshot, and the binlog position from SHOW STATUS LIKE 'binlog_snapshot_%'.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <future>
#include <map>
#include <thread>

#include "db-backup/backend.hpp"
#include <envkit/log.hpp>
#include <envkit/mysql.hpp>
#include <envkit/signals.hpp>
#include <envkit/timefmt.hpp>
#include <envkit/worker_pool.hpp>
#include "db-backup/mysql_rows.hpp"
#include "db-backup/record_index.hpp"

namespace db_backup {

namespace {

using envkit::MysqlConnection;
using envkit::quote_identifier;

// Tables with at most this many rows (estimated) get a CHECKSUM TABLE inside the lock window.
constexpr uint64_t kChecksumMaxRows = 100000;

struct TableInfo {
  std::string name;
  uint64_t estimated_rows = 0;
  std::vector<Column> columns;
  std::vector<std::string> key;  // primary key columns
  std::string schema;
  std::optional<std::string> checksum;
};

struct WorkItem {
  size_t table = 0;
  size_t chunk = 0;
  std::string range;  // SQL condition on the key, empty: the whole table
};

Result<std::string> single_value(MysqlConnection& c, const std::string& sql) {
  auto r = c.query(sql);
  if (!r) return r.error();
  auto more = r->next_row();
  if (!more) return more.error();
  if (!*more || !r->value(0)) return std::string();
  return std::string(*r->value(0));
}

std::string now_utc() {
  return envkit::format_utc(
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()));
}

class MysqlBackend : public Backend {
 public:
  MysqlBackend(envkit::Url url, BackendOptions options)
      : url_(std::move(url)), options_(std::move(options)) {}

  Status dump(BackupWriter& out) override;
  Status restore(const BackupReader& in, const RestoreOptions& opts) override;
  Status compare(const BackupReader& in, const ObjectEntry& object,
                 const std::function<void(const Difference&)>& report) override;

 private:
  Result<MysqlConnection> connect() {
    auto c = MysqlConnection::connect(url_, options_.connection);
    if (!c) return c.error();
    // TIMESTAMP values leave and enter the server in UTC, whatever its zone.
    if (auto st = c->execute("SET time_zone='+00:00'"); !st) return st.error();
    return c;
  }
  Result<std::vector<TableInfo>> list_tables(MysqlConnection& c, const DumpOptions& o);
  Status describe(MysqlConnection& c, TableInfo& t);
  Status dump_item(MysqlConnection& c, BackupWriter& out, const TableInfo& t, const WorkItem& item);

  envkit::Url url_;
  BackendOptions options_;
};

Result<std::vector<TableInfo>> MysqlBackend::list_tables(MysqlConnection& c, const DumpOptions& o) {
  auto r = c.query(
      "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
      "DATABASE() "
      "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME");
  if (!r) return r.error().context("listing tables");
  std::vector<TableInfo> all;
  for (;;) {
    auto more = r->next_row();
    if (!more) return more.error();
    if (!*more) break;
    TableInfo t;
    t.name = std::string(*r->value(0));
    if (auto v = r->value(1))
      t.estimated_rows = std::strtoull(std::string(*v).c_str(), nullptr, 10);
    all.push_back(std::move(t));
  }
  for (const auto& want : o.include) {
    if (std::none_of(all.begin(), all.end(), [&](const TableInfo& t) { return t.name == want; })) {
      return Error{Exit::no_input, "no table '" + want + "' in database '" + url_.path + "'"};
    }
  }
  std::vector<TableInfo> chosen;
  for (auto& t : all) {
    if (!o.include.empty() &&
        std::find(o.include.begin(), o.include.end(), t.name) == o.include.end())
      continue;
    if (std::find(o.exclude.begin(), o.exclude.end(), t.name) != o.exclude.end()) continue;
    chosen.push_back(std::move(t));
  }
  return chosen;
}

Status MysqlBackend::describe(MysqlConnection& c, TableInfo& t) {
  std::string name = c.quote_string(t.name);
  auto r = c.query(
      "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA FROM information_schema.COLUMNS "
      "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = " +
      name + " ORDER BY ORDINAL_POSITION");
  if (!r) return r.error().context(t.name);
  for (;;) {
    auto more = r->next_row();
    if (!more) return more.error();
    if (!*more) break;
    std::string extra(r->value(3).value_or(""));
    std::transform(extra.begin(), extra.end(), extra.begin(), ::toupper);
    Column col;
    col.name = std::string(*r->value(0));
    col.data_type = std::string(*r->value(1));
    col.column_type = std::string(*r->value(2));
    // Generated columns are computed by the server: neither dumped nor restored.
    if (extra.find("GENERATED") != std::string::npos ||
        extra.find("VIRTUAL") != std::string::npos ||
        extra.find("PERSISTENT") != std::string::npos ||
        extra.find("STORED") != std::string::npos) {
      continue;
    }
    t.columns.push_back(std::move(col));
  }
  // MariaDB's JSON is LONGTEXT with a json_valid() check; MySQL's is its own type.
  auto checks = c.query(
      "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
      "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = " +
      name);
  std::vector<std::string> clauses;
  if (checks) {
    for (;;) {
      auto more = checks->next_row();
      if (!more || !*more) break;
      if (auto v = checks->value(0)) clauses.emplace_back(*v);
    }
  }
  for (auto& col : t.columns) {
    std::string json_check = "json_valid(" + quote_identifier(col.name) + ")";
    bool json = col.data_type == "json" ||
                std::find(clauses.begin(), clauses.end(), json_check) != clauses.end();
    col.kind = column_kind(col.data_type, json);
  }
  auto pk = c.query(
      "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
      "AND TABLE_NAME = " +
      name + " AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX");
  if (!pk) return pk.error().context(t.name);
  for (;;) {
    auto more = pk->next_row();
    if (!more) return more.error();
    if (!*more) break;
    t.key.emplace_back(*pk->value(0));
  }
  auto create = c.query("SHOW CREATE TABLE " + quote_identifier(t.name));
  if (!create) return create.error().context(t.name);
  auto more = create->next_row();
  if (!more) return more.error();
  if (*more && create->value(1)) t.schema = std::string(*create->value(1));
  return {};
}

std::string table_metadata(const TableInfo& t) {
  envkit::JsonWriter w;
  w.begin_object().key("columns").begin_array();
  for (const auto& c : t.columns) {
    w.begin_object();
    w.key("name").string(c.name);
    w.key("type").string(kind_name(c.kind));
    w.key("sql_type").string(c.column_type);
    if (c.kind == ColumnKind::datetime) w.key("zone").string("none (DATETIME is wall-clock time)");
    if (c.kind == ColumnKind::timestamp) w.key("zone").string("UTC");
    w.end_object();
  }
  w.end_array().end_object();
  return w.take();
}

// Splits a table with a single integer primary key into ranges of about chunk_rows rows.
// Bounds are open at both ends, so rows outside [min, max] are never lost.
Result<std::vector<std::string>> chunk_ranges(MysqlConnection& c, const TableInfo& t,
                                              uint64_t chunk_rows) {
  std::vector<std::string> ranges;
  if (t.key.size() != 1 || t.estimated_rows <= chunk_rows) return ranges;
  auto col = std::find_if(t.columns.begin(), t.columns.end(),
                          [&](const Column& x) { return x.name == t.key[0]; });
  if (col == t.columns.end() || col->kind != ColumnKind::integer) return ranges;
  std::string k = quote_identifier(t.key[0]);
  auto r = c.query("SELECT MIN(" + k + "), MAX(" + k + ") FROM " + quote_identifier(t.name));
  if (!r) return r.error();
  auto more = r->next_row();
  if (!more) return more.error();
  if (!*more || !r->value(0) || !r->value(1)) return ranges;
  long double lo = std::strtold(std::string(*r->value(0)).c_str(), nullptr);
  long double hi = std::strtold(std::string(*r->value(1)).c_str(), nullptr);
  uint64_t n = std::min<uint64_t>((t.estimated_rows + chunk_rows - 1) / chunk_rows, 10000);
  if (n < 2 || hi - lo < n) return ranges;
  std::vector<std::string> bounds;
  for (uint64_t i = 1; i < n; ++i) {
    long double b =
        std::floor(lo + (hi - lo) * static_cast<long double>(i) / static_cast<long double>(n));
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.0Lf", b);
    if (bounds.empty() || bounds.back() != buf) bounds.emplace_back(buf);
  }
  for (size_t i = 0; i <= bounds.size(); ++i) {
    std::string cond;
    if (i > 0) cond = k + " >= " + bounds[i - 1];
    if (i < bounds.size()) cond += (cond.empty() ? "" : " AND ") + k + " < " + bounds[i];
    ranges.push_back(cond);
  }
  return ranges;
}

std::string select_sql(const TableInfo& t, const std::string& range, const std::string& where) {
  std::string sql = "SELECT ";
  for (size_t i = 0; i < t.columns.size(); ++i)
    sql += (i ? ", " : "") + quote_identifier(t.columns[i].name);
  sql += " FROM " + quote_identifier(t.name);
  std::string cond = range;
  if (!where.empty()) cond = cond.empty() ? "(" + where + ")" : cond + " AND (" + where + ")";
  if (!cond.empty()) sql += " WHERE " + cond;
  if (!t.key.empty()) {
    sql += " ORDER BY ";
    for (size_t i = 0; i < t.key.size(); ++i) sql += (i ? ", " : "") + quote_identifier(t.key[i]);
  }
  return sql;
}

Status MysqlBackend::dump_item(MysqlConnection& c, BackupWriter& out, const TableInfo& t,
                               const WorkItem& item) {
  auto file = out.open_chunk(t.name, item.chunk);
  if (!file) return file.error();
  auto rows = c.query(select_sql(t, item.range, out.options().where), envkit::Fetch::streamed);
  if (!rows) return rows.error().context("dumping " + t.name);
  // Records are encoded straight into one 1 MiB block per worker, which goes to the checksum
  // and the file in one piece: no copy or allocation per record or value.
  constexpr size_t kBlockBytes = 1 << 20;
  RowEncoder encoder(t.columns);
  ByteBuffer block;
  block.reserve(kBlockBytes + (64 << 10));
  uint64_t n = 0, in_block = 0, reported_bytes = 0;
  auto write_block = [&]() -> Status {
    if (in_block == 0) return {};
    auto st = file->write_lines(block.view(), in_block);
    block.clear();
    in_block = 0;
    return st;
  };
  for (;;) {
    auto more = rows->next_row();
    if (!more) return more.error().context("dumping " + t.name);
    if (!*more) break;
    encoder.append_line(*rows, block);
    ++in_block;
    if (block.size() >= kBlockBytes) {
      if (auto st = write_block(); !st) return st;
    }
    if (++n % 1000 == 0) {
      uint64_t bytes = file->raw_bytes() + block.size();
      out.progress().advance(t.name, 1000, bytes - reported_bytes);
      reported_bytes = bytes;
      if (out.stopping()) {
        // Draining the rest of a streamed chunk could take minutes: cut the connection.
        mariadb_cancel(c.handle());
        return Error{Exit::temp_fail, "stopped by signal while dumping " + t.name};
      }
      if (out.options().row_delay.count() > 0) std::this_thread::sleep_for(out.options().row_delay);
    }
  }
  if (auto st = write_block(); !st) return st;
  out.progress().advance(t.name, n % 1000, file->raw_bytes() - reported_bytes);
  return out.add_chunk(t.name, item.chunk, std::move(*file));
}

// Test hook: ENVKIT_DB_BACKUP_TEST_PAUSE=PATH makes the dump, once its snapshot is taken,
// create PATH.ready and wait (at most 60 s) until PATH exists, so that a test can write to
// the database at a known point in the middle of a dump.
void test_pause() {
  const char* path = std::getenv("ENVKIT_DB_BACKUP_TEST_PAUSE");
  if (!path || !*path) return;
  { std::ofstream(std::string(path) + ".ready") << "ready\n"; }
  for (int i = 0; i < 600 && !envkit::stop_requested(); ++i) {
    if (std::ifstream(path).good()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Status MysqlBackend::dump(BackupWriter& out) {
  const DumpOptions& opts = out.options();
  if (url_.path.empty())
    return Error{Exit::usage, "the MySQL URL names no database: mysql://user@host/DATABASE"};
  auto ctl = connect();
  if (!ctl) return ctl.error();
  out.set_server_version(ctl->server_version());
  out.set_database(url_.path);
  auto tables = list_tables(*ctl, opts);
  if (!tables) return tables.error();

  size_t threads = std::max<size_t>(1, opts.threads);
  std::vector<MysqlConnection> workers;
  bool locked = false;
  std::string method = "none";
  envkit::JsonWriter snap;
  snap.begin_object();
  if (opts.snapshot) {
    auto st = ctl->execute("FLUSH TABLES WITH READ LOCK");
    if (st) {
      locked = true;
      method = "ftwrl";
    } else {
      out.warn(
          "FLUSH TABLES WITH READ LOCK refused (" + st.error().message +
          "): no RELOAD privilege? dumping on one connection in one transaction (consistent for "
          "InnoDB tables only), without --threads");
      threads = 1;
      method = "single-transaction";
    }
  }
  for (size_t i = 0; i < threads; ++i) {
    auto w = connect();
    if (!w) {
      if (locked) (void)ctl->execute("UNLOCK TABLES");
      return w.error();
    }
    if (opts.snapshot) {
      if (auto st = w->execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); !st)
        return st;
      if (auto st = w->execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !st)
        return st;
    }
    workers.push_back(std::move(*w));
  }
  snap.key("method").string(method);
  // The position of the snapshot: under FTWRL the master status is frozen; in the fallback,
  // MariaDB reports the snapshot's own position per transaction.
  if (locked) {
    if (auto r = ctl->query("SHOW MASTER STATUS"); r) {
      if (auto more = r->next_row(); more && *more && r->value(0)) {
        snap.key("binlog_file").string(*r->value(0));
        snap.key("binlog_position").raw(r->value(1).value_or("0"));
      }
    }
  } else if (method == "single-transaction") {
    if (auto r = workers[0].query("SHOW STATUS LIKE 'binlog_snapshot_%'"); r) {
      for (;;) {
        auto more = r->next_row();
        if (!more || !*more) break;
        std::string k(r->value(0).value_or(""));
        std::string v(r->value(1).value_or(""));
        if (k == "Binlog_snapshot_file" && !v.empty()) snap.key("binlog_file").string(v);
        if (k == "Binlog_snapshot_position" && !v.empty() && v != "0")
          snap.key("binlog_position").raw(v);
      }
    }
  }
  if (auto gtid = single_value(*ctl, "SELECT @@GLOBAL.gtid_binlog_pos"); gtid && !gtid->empty()) {
    snap.key("gtid").string(*gtid);
  } else if (auto g2 = single_value(*ctl, "SELECT @@GLOBAL.gtid_executed"); g2 && !g2->empty()) {
    snap.key("gtid").string(*g2);
  }
  snap.key("taken_at").string(now_utc());
  snap.end_object();

  Status failed;
  for (auto& t : *tables) {
    if (auto st = describe(*ctl, t); !st) {
      failed = st;
      break;
    }
    if (locked && t.estimated_rows <= kChecksumMaxRows) {
      auto r = ctl->query("CHECKSUM TABLE " + quote_identifier(t.name));
      if (r) {
        if (auto more = r->next_row(); more && *more && r->value(1))
          t.checksum = std::string(*r->value(1));
      }
    }
  }
  if (locked) {
    if (auto st = ctl->execute("UNLOCK TABLES"); !st && failed) failed = st;
  }
  if (!failed) return failed;
  out.set_snapshot(opts.snapshot, snap.take());
  test_pause();

  // Work: every chunk of every table, largest tables first so that the threads finish together.
  std::vector<WorkItem> items;
  std::vector<size_t> order((*tables).size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return (*tables)[a].estimated_rows > (*tables)[b].estimated_rows;
  });
  for (size_t i : order) {
    auto& t = (*tables)[i];
    auto ranges = chunk_ranges(*ctl, t, opts.chunk_rows);
    if (!ranges) return ranges.error().context(t.name);
    if (ranges->empty()) ranges->push_back("");
    for (size_t c = 0; c < ranges->size(); ++c) items.push_back({i, c, (*ranges)[c]});
    ObjectEntry e;
    e.name = t.name;
    e.kind = "table";
    e.schema = t.schema;
    e.metadata = table_metadata(t);
    e.key = t.key;
    if (t.checksum && opts.where.empty()) {
      e.source_checksum = t.checksum;
      e.source_checksum_kind = "mysql-checksum-table, inside the snapshot's lock window";
    }
    out.add_object(std::move(e));
    out.progress().begin_object(t.name, t.estimated_rows);
  }

  // One connection per worker, all inside the same snapshot.
  Status first_error = envkit::for_each_parallel(items.size(), workers.size(), [&](size_t w, size_t i) {
    return dump_item(workers[w], out, (*tables)[items[i].table], items[i]);
  });
  for (auto& t : *tables) out.progress().end_object(t.name);
  return first_error;
}

// ---------------------------------------------------------------------------------------
// Restore

struct RestoreTable {
  const ObjectEntry* object = nullptr;
  std::vector<Column> columns;
  LoadBytes load_bytes = LoadBytes::hex;
};

Result<std::vector<Column>> columns_from_metadata(const ObjectEntry& o) {
  auto doc = envkit::parse_json(o.metadata);
  if (!doc) return Error{Exit::data, o.name + ": metadata: " + doc.error().message};
  const auto* cols = envkit::find_member(*doc, "columns");
  if (!cols || !cols->IsArray()) return Error{Exit::data, o.name + ": metadata has no columns"};
  std::vector<Column> out;
  for (const auto& c : cols->GetArray()) {
    const auto* n = envkit::find_member(c, "name");
    const auto* t = envkit::find_member(c, "type");
    if (!n || !n->IsString() || !t || !t->IsString())
      return Error{Exit::data, o.name + ": bad column in metadata"};
    Column col;
    col.name = n->GetString();
    auto kind = parse_kind(t->GetString());
    if (!kind)
      return Error{Exit::data,
                   o.name + ": unknown column type '" + std::string(t->GetString()) + "'"};
    col.kind = *kind;
    out.push_back(std::move(col));
  }
  return out;
}

Status session_for_restore(MysqlConnection& c) {
  for (const char* sql : {"SET SESSION foreign_key_checks = 0", "SET SESSION unique_checks = 0",
                          "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES'",
                          "SET SESSION max_error_count = 65535"}) {
    if (auto st = c.execute(sql); !st) return st;
  }
  return {};
}

// How restore_file sends rows: LOAD DATA LOCAL (from memory; the server parses less than an
// INSERT's literals), or multi-row INSERTs where the server has local_infile off.
enum class LoadWith { load_data, insert };

// The rows of one statement, checked the way an INSERT in strict mode would be: LOAD DATA
// LOCAL turns what INSERT refuses (a value out of range, a duplicate key) into warnings, so
// any warning but a note fails the restore, and so does a row count that is not the one sent.
Status load_batch(MysqlConnection& c, const std::string& sql, std::string_view lines, size_t rows) {
  auto loaded = c.load_local(sql, lines);
  if (!loaded) return loaded.error();
  if (loaded->refused)
    return Error{Exit::data, "the server refused LOAD DATA LOCAL (local_infile was turned off)"};
  if (loaded->warnings > 0) {
    auto warnings = c.warnings();
    if (!warnings) return warnings.error();
    for (const auto& w : *warnings) {
      if (w.level != "Note") return Error{Exit::data, w.message};
    }
    if (warnings->size() < loaded->warnings) {
      return Error{Exit::data, std::to_string(loaded->warnings) + " warnings, " +
                                   std::to_string(warnings->size()) + " of them listed"};
    }
  }
  if (loaded->rows != rows) {
    return Error{Exit::data, std::to_string(rows) + " rows sent, " + std::to_string(loaded->rows) +
                                 " loaded"};
  }
  return {};
}

// `spare` is the worker's buffers of committed statements, kept from file to file: a new
// buffer is fresh memory, and faulting it in cost more than decoding into it.
Status restore_file(MysqlConnection& c, const BackupReader& in, const RestoreTable& t,
                    const FileEntry& f, size_t batch_rows, LoadWith with,
                    std::vector<std::string>& spare) {
  auto reader = in.open(f);
  if (!reader) return reader.error();
  std::vector<std::string> names;
  for (const auto& column : t.columns) names.push_back(column.name);
  envkit::InsertBuilder insert(t.object->name, names, {}, batch_rows);
  const std::string load_sql = load_data_statement(t.object->name, t.columns, t.load_bytes);
  RowDecoder decoder(t.columns, c);
  // Commits every 32 MiB of statements rather than every statement: a server that fsyncs
  // at each commit would otherwise spend its time there. The statements since the last
  // commit are kept: a deadlock between the workers' inserts rolls the transaction back, and
  // it is run again (up to 3 times) rather than failing the restore.
  constexpr size_t kCommitBytes = 32 << 20;
  struct Statement {
    std::string text;  // the lines of a LOAD DATA, or an INSERT
    size_t rows;
  };
  std::vector<Statement> since_commit;
  size_t uncommitted = 0;
  auto run = [&](const Statement& s) -> Status {
    if (with == LoadWith::load_data) return load_batch(c, load_sql, s.text, s.rows);
    return c.execute(s.text);
  };
  auto send = [&](Statement s) -> Status {
    uncommitted += s.text.size();
    since_commit.push_back(std::move(s));
    Status st = run(since_commit.back());
    for (int again = 0; !st && st.error().kind == envkit::Failure::server_busy && again < 3; ++again) {
      envkit::log_warning(t.object->name + ": " + st.error().message +
                          ": running the transaction again");
      if (auto rb = c.execute("ROLLBACK"); !rb) return rb;
      st = c.execute("START TRANSACTION");
      for (const auto& done : since_commit) {
        if (!st) break;
        st = run(done);
      }
    }
    if (!st) return st.error().context("restoring " + t.object->name);
    if (uncommitted < kCommitBytes) return {};
    uncommitted = 0;
    for (auto& done : since_commit) spare.push_back(std::move(done.text));
    since_commit.clear();
    if (auto cm = c.execute("COMMIT"); !cm) return cm;
    return c.execute("START TRANSACTION");
  };
  // LOAD DATA: the next batch is decoded while the server loads this one, on a thread of its
  // own (one batch at a time, so the connection is never used by two threads at once); the
  // decoding is the client's whole cost, and the server's share would otherwise wait for it.
  std::string lines;
  size_t line_count = 0;
  std::future<Status> loading;  // after what it uses: on an early return it is waited for first
  auto load_next = [&]() -> Status {
    if (loading.valid()) {
      if (auto st = loading.get(); !st) return st;
    }
    if (line_count == 0) return {};
    std::string next;  // taken while no load runs: the loading thread fills `spare`
    if (!spare.empty()) {
      next = std::move(spare.back());
      spare.pop_back();
      next.clear();
    }
    Statement batch{std::move(lines), line_count};
    lines = std::move(next);
    line_count = 0;
    loading = std::async(std::launch::async, send, std::move(batch));
    return {};
  };
  auto insert_next = [&]() -> Status {
    if (insert.empty()) return {};
    size_t rows = insert.rows();
    auto st = send(Statement{insert.take(), rows});
    if (!spare.empty()) {
      insert.recycle(std::move(spare.back()));
      spare.pop_back();
    }
    return st;
  };
  if (auto st = c.execute("START TRANSACTION"); !st) return st;
  for (;;) {
    auto line = reader->next();
    if (!line) return line.error();
    if (!*line) break;
    size_t rows = 0;
    Status st;
    if (with == LoadWith::load_data) {
      if (auto d = decoder.append_load_data_line(**line, t.load_bytes, lines); !d) return d.error().context(f.name);
      if (++line_count >= batch_rows || lines.size() >= envkit::InsertBuilder::kDefaultMaxBytes) {
        rows = line_count;
        st = load_next();
      }
    } else {
      if (auto d = decoder.append_values(**line, insert.next_row()); !d)
        return d.error().context(f.name);
      if (insert.full()) {
        rows = insert.rows();
        st = insert_next();
      }
    }
    if (!st) return st;
    if (rows > 0) {
      if (in.progress) in.progress->advance(t.object->name, rows, 0);
      if (envkit::stop_requested())
        return Error{Exit::temp_fail, "stopped by signal while restoring"};
    }
  }
  if (with == LoadWith::load_data) {
    if (auto st = load_next(); !st) return st;  // the last batch...
    if (auto st = load_next(); !st) return st;  // ...and its wait
  } else if (auto st = insert_next(); !st) {
    return st;
  }
  if (auto st = c.execute("COMMIT"); !st) return st;
  for (auto& done : since_commit) spare.push_back(std::move(done.text));
  spare.push_back(std::move(lines));
  return {};
}

Status MysqlBackend::restore(const BackupReader& in, const RestoreOptions& opts) {
  if (in.manifest().backend != "mysql") {
    return Error{Exit::usage, "this backup is of " + in.manifest().backend + ", not MySQL"};
  }
  if (url_.path.empty())
    return Error{Exit::usage, "the MySQL URL names no database: mysql://user@host/DATABASE"};
  auto ctl = connect();
  if (!ctl && ctl.error().message.find("Unknown database") != std::string::npos) {
    // The database itself went with the server: create it, then connect to it.
    envkit::Url server = url_;
    server.path.clear();
    auto bare = MysqlConnection::connect(server, options_.connection);
    if (!bare) return bare.error();
    if (auto st = bare->execute("CREATE DATABASE IF NOT EXISTS " + quote_identifier(url_.path));
        !st)
      return st;
    envkit::log_info("created database " + url_.path);
    ctl = connect();
  }
  if (!ctl) return ctl.error();
  if (auto st = session_for_restore(*ctl); !st) return st;
  std::vector<RestoreTable> tables;
  for (const auto& o : in.manifest().objects) {
    if (!opts.include.empty() &&
        std::find(opts.include.begin(), opts.include.end(), o.name) == opts.include.end())
      continue;
    auto cols = columns_from_metadata(o);
    if (!cols) return cols.error();
    tables.push_back({&o, std::move(*cols)});
  }
  // Refuse before writing anything when a table is already there.
  if (!opts.replace) {
    for (const auto& t : tables) {
      auto exists = single_value(
          *ctl,
          "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
          "AND TABLE_NAME = " +
              ctl->quote_string(t.object->name));
      if (!exists) return exists.error();
      if (*exists != "0") {
        return Error{Exit::data, "table '" + t.object->name + "' already exists in '" + url_.path +
                                     "': restore into an empty database, or give --replace"};
      }
    }
  }
  for (auto& t : tables) {
    if (opts.replace) {
      if (auto st = ctl->execute("DROP TABLE IF EXISTS " + quote_identifier(t.object->name)); !st)
        return st;
    }
    if (t.object->schema.empty())
      return Error{Exit::data, t.object->name + ": no schema in the backup"};
    if (auto st = ctl->execute(t.object->schema); !st)
      return st.error().context("creating " + t.object->name);
    // The records are UTF-8: a table whose character columns all take it as it is is loaded
    // byte for byte, binary values included, with nothing for the server to convert.
    auto converted = single_value(
        *ctl,
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = " + ctl->quote_string(t.object->name) +
            " AND CHARACTER_SET_NAME NOT IN ('utf8mb4', 'binary')");
    if (!converted) return converted.error();
    t.load_bytes = *converted == "0" ? LoadBytes::raw : LoadBytes::hex;
  }
  struct Job {
    const RestoreTable* table;
    const FileEntry* file;
  };
  std::vector<Job> jobs;
  for (const auto& t : tables) {
    for (const auto& f : t.object->files) jobs.push_back({&t, &f});
    if (in.progress) in.progress->begin_object(t.object->name, t.object->rows);
  }
  std::sort(jobs.begin(), jobs.end(),
            [](const Job& a, const Job& b) { return a.file->bytes > b.file->bytes; });
  size_t threads = std::max<size_t>(1, std::min(opts.threads, jobs.size()));
  std::vector<MysqlConnection> conns;
  for (size_t i = 0; i < threads; ++i) {
    auto c = connect();
    if (!c) return c.error();
    if (auto st = session_for_restore(*c); !st) return st;
    conns.push_back(std::move(*c));
  }
  // LOAD DATA LOCAL where the server allows it; its bytes come from memory (docs/architecture.md,
  // "The MySQL sink").
  auto local_infile = single_value(*ctl, "SELECT @@GLOBAL.local_infile");
  if (!local_infile) return local_infile.error();
  LoadWith with = *local_infile == "1" ? LoadWith::load_data : LoadWith::insert;
  if (with == LoadWith::insert)
    envkit::log_info("the server has local_infile off: restoring with INSERT");
  std::vector<std::vector<std::string>> spares(conns.size());
  Status first_error = envkit::for_each_parallel(jobs.size(), conns.size(), [&](size_t w, size_t i) {
    return restore_file(conns[w], in, *jobs[i].table, *jobs[i].file, opts.batch_rows, with,
                        spares[w]);
  });
  for (const auto& t : tables)
    if (in.progress) in.progress->end_object(t.object->name);
  if (!first_error) return first_error;
  // The server's own checksum of what was restored, against the one taken at dump time.
  // Same server version only: CHECKSUM TABLE's algorithm has changed between versions.
  if (ctl->server_version() == in.manifest().server_version) {
    for (const auto& t : tables) {
      if (!t.object->source_checksum) continue;
      auto r = ctl->query("CHECKSUM TABLE " + quote_identifier(t.object->name));
      if (!r) continue;
      if (auto more = r->next_row();
          more && *more && r->value(1) && *r->value(1) != *t.object->source_checksum) {
        envkit::log_warning(t.object->name + ": CHECKSUM TABLE after restore (" +
                            std::string(*r->value(1)) + ") differs from the source's (" +
                            *t.object->source_checksum + ")");
      }
    }
  }
  return {};
}

// ---------------------------------------------------------------------------------------
// verify --against

Status MysqlBackend::compare(const BackupReader& in, const ObjectEntry& object,
                             const std::function<void(const Difference&)>& report) {
  auto c = connect();
  if (!c) return c.error();
  auto cols = columns_from_metadata(object);
  if (!cols) return cols.error();
  TableInfo t;
  t.name = object.name;
  t.columns = *cols;
  t.key = object.key;
  RecordIndex index(object.key);
  auto indexed = in.for_each_record(object, [&](std::string_view line, const FileEntry& f, uint64_t) -> Status {
    if (auto st = index.add(line); !st) return st.error().context(f.name);
    return {};
  });
  if (!indexed) return indexed;
  auto rows = c->query(select_sql(t, "", ""), envkit::Fetch::streamed);
  if (!rows) return rows.error().context(object.name);
  RowEncoder encoder(t.columns);
  for (;;) {
    auto more = rows->next_row();
    if (!more) return more.error();
    if (!*more) break;
    auto text = encoder.encode(*rows);
    if (!text) return text.error();
    if (auto st = index.match(*text, object.name, report); !st) return st;
  }
  index.report_unmatched(object.name, report);
  return {};
}

}  // namespace

Result<std::unique_ptr<Backend>> make_mysql_backend(const envkit::Url& url,
                                                    const BackendOptions& options) {
  envkit::Url u = url;
  u.scheme = "mysql";
  return std::unique_ptr<Backend>(std::make_unique<MysqlBackend>(std::move(u), options));
}

}  // namespace db_backup
