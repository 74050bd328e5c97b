// MySQL sink: a batch becomes one LOAD DATA LOCAL INFILE ... IGNORE, streamed from memory,
// in one transaction, so it is durable all at once and a re-sent record changes nothing (a
// duplicate of the unique key is skipped). LOAD DATA LOCAL turns a bad value into a warning
// where INSERT would fail, so any warning but a duplicate key rolls the batch back, and the
// batch goes again as INSERT ... ON DUPLICATE KEY UPDATE, one record at a time, which names the
// bad record while the others land. A server with local_infile off gets the INSERTs for every
// batch. Records with a source position (Kafka) also store, in that transaction, the highest
// offset per (group, topic, partition) in the positions table, and a record at or below its
// stored position is answered durable without being written again: a crash between this
// commit and the source's own cannot duplicate records that have no id (docs/architecture.md,
// "Source positions").
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <map>
#include <unordered_map>

#include <mysqld_error.h>

#include <envkit/log.hpp>
#include <envkit/mysql.hpp>
#include <envkit/positions.hpp>
#include <envkit/timefmt.hpp>
#include "records_internal.hpp"

namespace envkit {
namespace {

class MysqlSink : public Sink {
 public:
  MysqlSink(Url url, SinkOptions options, std::string table, bool create, std::string positions_table)
      : url_(std::move(url)),
        options_(std::move(options)),
        table_(std::move(table)),
        create_(create),
        positions_table_(std::move(positions_table)) {
    // Test-only: the kill -9 test shows that without positions records without an id come
    // out twice (tests/bats/queue-relay-positions.bats).
    const char* off = std::getenv("ENVKIT_TEST_MYSQL_NO_POSITIONS");
    bool disabled = off != nullptr && std::string_view(off) == "1";
    keep_positions_ = options_.in_order && !disabled;
  }

  std::string name() const override { return url_.redacted(); }

  void answered_without(std::span<const Record> records, Outcome outcome) override {
    if (outcome == Outcome::spooled) {
      keeper_.forget(records);
    } else if (outcome == Outcome::failed) {
      keeper_.failed(records);
    }
  }

  Result<std::optional<std::vector<LogPosition>>> stored_positions(std::string_view group,
                                                                 std::string_view topic) override {
    if (!keep_positions_) return std::optional<std::vector<LogPosition>>();
    if (auto st = ensure_connected(); !st) return st.error();
    if (auto st = ensure_positions_table(); !st) {
      drop_connection();
      return st.error();
    }
    std::map<PositionKeeper::Partition, int64_t> stored;
    if (auto st = load_positions(std::string(group), std::string(topic), false, stored); !st) {
      drop_connection();
      return st.error();
    }
    std::vector<LogPosition> out;
    for (const auto& [key, offset] : stored) {
      out.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), offset});
    }
    return std::optional<std::vector<LogPosition>>(std::move(out));
  }

  Result<std::vector<Delivery>> write(std::span<const Record> batch) override {
    auto out = write_batch(batch);
    if (!keep_positions_) return out;
    // What was not written holds the positions back until it is (the source hands it out again).
    if (!out) {
      keeper_.failed(batch);
      return out;
    }
    std::vector<Record> failed;
    for (size_t i = 0; i < batch.size(); ++i) {
      if ((*out)[i].outcome == Outcome::failed && batch[i].position) failed.push_back(batch[i]);
    }
    keeper_.failed(failed);
    return out;
  }

 private:
  Result<std::vector<Delivery>> write_batch(std::span<const Record> batch) {
    if (auto st = ensure_connected(); !st) return st.error();
    // The batch's documents share one pool: a pool each (64 KiB apiece) cost a page-faulting
    // allocation per record.
    JsonDocument::AllocatorType pool;
    std::vector<JsonDocument> docs;
    docs.reserve(batch.size());
    std::vector<Delivery> out(batch.size());
    std::vector<size_t> good;  // records that parsed, in order
    for (size_t i = 0; i < batch.size(); ++i) {
      docs.emplace_back(&pool);
      docs[i].Parse<rapidjson::kParseFullPrecisionFlag>(batch[i].json.data(), batch[i].json.size());
      if (docs[i].HasParseError() || !docs[i].IsObject()) {
        out[i] = {Outcome::rejected, "not a JSON object"};
      } else {
        good.push_back(i);
      }
    }
    if (good.empty()) return out;

    auto whole =
        write_in_transaction(batch, docs, good, load_data_ ? Method::load_data : Method::insert);
    if (whole) {
      for (size_t i : good) out[i] = {Outcome::durable, {}};
      return out;
    }
    if (whole.error().code != Exit::data) {
      drop_connection();
      return whole.error();
    }
    // Some record is bad: INSERT one by one, which refuses a bad value where LOAD DATA only
    // warns, so the others still land and the bad one is named.
    for (size_t n = 0; n < good.size(); ++n) {
      size_t i = good[n];
      auto one =
          write_in_transaction(batch, docs, std::span<const size_t>(&good[n], 1), Method::insert);
      if (one) {
        out[i] = {Outcome::durable, {}};
      } else if (one.error().code == Exit::data) {
        out[i] = {Outcome::rejected, one.error().message};
      } else {
        drop_connection();
        for (size_t m = n; m < good.size(); ++m) out[good[m]] = {Outcome::failed, one.error().message};
        break;
      }
    }
    return out;
  }

  struct TableColumn {
    std::string name;
    Column::Kind kind;
  };

  void drop_connection() { conn_.reset(); }

  Status ensure_connected() {
    if (conn_) return {};
    auto c = MysqlConnection::connect(url_, options_.connection);
    if (!c) return c.error();
    // Timestamps are written as UTC instants, whatever zone the server runs in. A batch's
    // warnings must all be listed to be checked (LOAD DATA warns once per duplicate).
    if (auto st = c->execute("SET time_zone = '+00:00', max_error_count = 65535"); !st) return st;
    conn_ = std::make_unique<MysqlConnection>(std::move(*c));
    if (columns_.empty()) {
      if (create_) {
        if (auto st = create_table(); !st) {
          drop_connection();
          return st;
        }
      }
      if (auto st = load_columns(); !st) {
        drop_connection();
        return st;
      }
    }
    return {};
  }

  Status create_table() {
    if (!options_.table_schema) {
      return Error{Exit::usage, url_.redacted() + ": create=true needs a table schema from the command"};
    }
    const TableSchema& schema = *options_.table_schema;
    std::string sql = "CREATE TABLE IF NOT EXISTS " + quote_identifier(table_) +
                      " (row_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY";
    for (const auto& c : schema.columns) sql += ", " + quote_identifier(c.name) + " " + c.sql_type;
    if (!schema.unique_key.empty()) {
      sql += ", UNIQUE KEY record_identity (";
      for (size_t i = 0; i < schema.unique_key.size(); ++i) {
        sql += (i ? ", " : "") + quote_identifier(schema.unique_key[i]);
      }
      sql += ")";
    }
    sql += ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci";
    return conn_->execute(sql);
  }

  // The table's own columns decide what is inserted and how values are converted.
  Status load_columns() {
    auto r = conn_->query(
        "SELECT COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = " + conn_->quote_string(table_) + " ORDER BY ORDINAL_POSITION");
    if (!r) return r.error();
    while (true) {
      auto more = r->next_row();
      if (!more) return more.error();
      if (!*more) break;
      std::string name(r->value(0).value_or(""));
      std::string type(r->value(1).value_or(""));
      std::string extra(r->value(2).value_or(""));
      if (extra.find("auto_increment") != std::string::npos || extra.find("GENERATED") != std::string::npos) {
        continue;
      }
      Column::Kind kind = Column::Kind::text;
      if (type == "datetime" || type == "timestamp") kind = Column::Kind::timestamp;
      else if (type == "json" || type == "longtext") kind = Column::Kind::json;
      else if (type.find("int") != std::string::npos || type == "decimal" || type == "double" ||
               type == "float") kind = Column::Kind::number;
      columns_.push_back({name, kind});
    }
    for (size_t c = 0; c < columns_.size(); ++c) column_of_.emplace(columns_[c].name, c);
    if (columns_.empty()) {
      return Error{Exit::config, url_.redacted() + ": table '" + table_ +
                                     "' does not exist (add create=true to the URL to create it)"};
    }
    return {};
  }

  // A member's value for a column: absent (the record has no such member: the column's
  // default), SQL NULL, or text the server converts to the column's type (`bare`: a number,
  // unquoted in SQL).
  struct ColumnValue {
    enum class Kind { absent, null, bare, text } kind = Kind::absent;
    std::string_view text;  // into the record's document, `number` or `owned`
    char number[32];        // a number's text: most columns of a reading are numbers
    std::string owned;
  };

  Status column_value(const JsonValue* v, const TableColumn& col, ColumnValue& out) {
    using Kind = ColumnValue::Kind;
    auto own = [&out](Kind kind, std::string s) {
      out.kind = kind;
      out.owned = std::move(s);
      out.text = out.owned;
    };
    if (v == nullptr || v->IsNull()) {
      out.kind = v == nullptr ? Kind::absent : Kind::null;
      return {};
    }
    switch (col.kind) {
      case Column::Kind::timestamp: {
        if (!v->IsString()) return Error{Exit::data, "'" + col.name + "' is not a time string"};
        auto t = parse_time(v->GetString());
        if (!t) return Error{Exit::data, "'" + col.name + "': " + t.error().message};
        std::string s = format_utc(*t, true);  // 2026-11-22T16:45:00.000Z -> DATETIME text
        s[10] = ' ';
        s.pop_back();
        own(Kind::text, std::move(s));
        return {};
      }
      case Column::Kind::number:
        if (v->IsNumber()) {
          // The shortest text that reads back as the same number, without a string each.
          char* end = out.number + sizeof out.number;
          auto r = v->IsInt64()    ? std::to_chars(out.number, end, v->GetInt64())
                   : v->IsUint64() ? std::to_chars(out.number, end, v->GetUint64())
                                   : std::to_chars(out.number, end, v->GetDouble());
          out.kind = Kind::bare;
          out.text = std::string_view(out.number, static_cast<size_t>(r.ptr - out.number));
        } else if (v->IsBool()) {
          out.kind = Kind::bare;
          out.text = v->IsTrue() ? "1" : "0";
        } else if (v->IsString()) {
          out.kind = Kind::text;  // the server converts or refuses
          out.text = std::string_view(v->GetString(), v->GetStringLength());
        } else {
          return Error{Exit::data, "'" + col.name + "' is not a number"};
        }
        return {};
      case Column::Kind::text:
        if (v->IsString()) {
          out.kind = Kind::text;
          out.text = std::string_view(v->GetString(), v->GetStringLength());
        } else {
          own(Kind::text, to_json(*v));
        }
        return {};
      case Column::Kind::json:
        own(Kind::text, to_json(*v));
        return {};
    }
    return Error{Exit::software, "unknown column kind"};
  }

  // The value as an SQL literal, for INSERT.
  std::string sql_literal(const ColumnValue& v) const {
    switch (v.kind) {
      case ColumnValue::Kind::absent:
        return "DEFAULT";
      case ColumnValue::Kind::null:
        return "NULL";
      case ColumnValue::Kind::bare:
        return std::string(v.text);
      case ColumnValue::Kind::text:
        return conn_->quote_string(v.text);
    }
    return "NULL";
  }

  // The value as a field of LOAD DATA's default format: \N for NULL (an absent value too: its
  // flag field says which).
  static void append_load_field(std::string& out, const ColumnValue& v) {
    if (v.kind == ColumnValue::Kind::absent || v.kind == ColumnValue::Kind::null) {
      out += kLoadDataNull;
      return;
    }
    append_load_data_field(out, v.text);
  }

  // The positions table, created if missing: ours, so its schema needs no command. Keyed by
  // the records' table too: two sinks into one database each hold their own records.
  Status ensure_positions_table() {
    if (positions_ready_) return {};
    auto st = conn_->execute(
        "CREATE TABLE IF NOT EXISTS " + quote_identifier(positions_table_) +
        " (sink_table VARCHAR(64) NOT NULL, consumer_group VARCHAR(255) NOT NULL, topic VARCHAR(249) NOT NULL,"
        " `partition` INT NOT NULL, `offset` BIGINT NOT NULL,"
        " updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),"
        " PRIMARY KEY (sink_table, consumer_group, topic, `partition`))"
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin");
    if (st) positions_ready_ = true;
    return st;
  }

  // The stored offsets of a group's topic; `lock`: FOR UPDATE, inside the batch's transaction.
  Status load_positions(const std::string& group, const std::string& topic, bool lock,
                        std::map<PositionKeeper::Partition, int64_t>& stored) {
    auto r = conn_->query("SELECT `partition`, `offset` FROM " + quote_identifier(positions_table_) +
                          " WHERE sink_table = " + conn_->quote_string(table_) +
                          " AND consumer_group = " + conn_->quote_string(group) +
                          " AND topic = " + conn_->quote_string(topic) + (lock ? " FOR UPDATE" : ""));
    if (!r) return r.error();
    while (true) {
      auto more = r->next_row();
      if (!more) return more.error();
      if (!*more) break;
      auto partition = std::strtol(std::string(r->value(0).value_or("0")).c_str(), nullptr, 10);
      auto offset = std::strtoll(std::string(r->value(1).value_or("-1")).c_str(), nullptr, 10);
      stored[{group, topic, static_cast<int32_t>(partition)}] = offset;
    }
    return {};
  }

  Status store_positions(std::span<const LogPosition> positions) {
    if (positions.empty()) return {};
    std::string sql = "INSERT INTO " + quote_identifier(positions_table_) +
                      " (sink_table, consumer_group, topic, `partition`, `offset`) VALUES ";
    for (size_t i = 0; i < positions.size(); ++i) {
      const auto& p = positions[i];
      sql += (i ? ", (" : "(") + conn_->quote_string(table_) + ", " + conn_->quote_string(p.group) + ", " + conn_->quote_string(p.topic) + ", " +
             std::to_string(p.partition) + ", " + std::to_string(p.offset) + ")";
    }
    // Never backwards: a position only grows.
    sql += " ON DUPLICATE KEY UPDATE `offset` = GREATEST(`offset`, VALUES(`offset`))";
    return conn_->execute(sql);
  }

  enum class Method { load_data, insert };

  // The records `which` in one transaction, with their source positions when they have them;
  // records already held by their stored position are not written again.
  Status write_in_transaction(std::span<const Record> batch, const std::vector<JsonDocument>& docs,
                              std::span<const size_t> which, Method method) {
    std::vector<Record> positioned;  // `which`'s records, for the keeper (it reads positions only)
    if (keep_positions_) {
      for (size_t i : which) {
        if (batch[i].position) positioned.push_back({{}, {}, batch[i].position});
      }
    }
    if (!positioned.empty()) {
      if (auto st = ensure_positions_table(); !st) return st;
    }
    // One transaction from the positions read (FOR UPDATE) to the commit: a second START
    // TRANSACTION would commit the first and release those locks before the rows are written.
    if (auto st = conn_->execute("START TRANSACTION"); !st) return st;
    auto rollback = [this](Status st) {
      (void)conn_->execute("ROLLBACK");
      return st;
    };
    std::vector<size_t> rows;  // what to write: `which` less what the stored positions hold
    rows.reserve(which.size());
    PositionKeeper::Plan plan;
    if (!positioned.empty()) {
      std::map<PositionKeeper::Partition, int64_t> stored;
      std::map<std::pair<std::string, std::string>, bool> logs;
      for (const auto& r : positioned) logs[{r.position->group, r.position->topic}] = true;
      for (const auto& [log, unused] : logs) {
        if (auto st = load_positions(log.first, log.second, true, stored); !st) return rollback(st);
      }
      plan = keeper_.plan(positioned, stored);
    }
    size_t k = 0;
    for (size_t i : which) {
      // Stored with an earlier batch: writing it again would duplicate it.
      bool held = !positioned.empty() && batch[i].position && plan.held[k++];
      if (!held) rows.push_back(i);
    }
    if (!rows.empty()) {
      auto st = method == Method::load_data ? load_rows(docs, rows) : insert_rows(docs, rows);
      if (!st) return rollback(st);
    }
    if (auto st = store_positions(plan.store); !st) return rollback(st);
    if (auto st = conn_->execute("COMMIT"); !st) return st;
    keeper_.written(positioned);
    return {};
  }

  // Each record's members under their columns (nullptr: no such member), row by row.
  std::vector<const JsonValue*> members_by_column(const std::vector<JsonDocument>& docs,
                                                  std::span<const size_t> rows) const {
    std::vector<const JsonValue*> values(rows.size() * columns_.size(), nullptr);
    for (size_t r = 0; r < rows.size(); ++r) {
      const JsonDocument& doc = docs[rows[r]];
      for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
        auto it = column_of_.find(std::string_view(m->name.GetString(), m->name.GetStringLength()));
        if (it != column_of_.end()) values[r * columns_.size() + it->second] = &m->value;
      }
    }
    return values;
  }

  // One LOAD DATA LOCAL INFILE ... IGNORE of the rows, from memory. IGNORE skips a duplicate of
  // the unique key with a warning, leaving the stored row as it was; every other warning is a
  // value the server coerced or a row it dropped, where INSERT would have refused: Exit::data,
  // so the caller rolls back and goes record by record with INSERT. A server that refuses
  // LOAD DATA LOCAL gets INSERT from then on, starting with these rows.
  Status load_rows(const std::vector<JsonDocument>& docs, std::span<const size_t> rows) {
    const size_t ncols = columns_.size();
    auto values = members_by_column(docs, rows);
    // A column some record lacks is loaded through a variable, with a flag field saying when
    // to take the column's default instead (LOAD DATA has no DEFAULT of its own).
    std::vector<size_t> defaultable;
    for (size_t c = 0; c < ncols; ++c) {
      for (size_t r = 0; r < rows.size(); ++r) {
        if (values[r * ncols + c] == nullptr) {
          defaultable.push_back(c);
          break;
        }
      }
    }
    load_buffer_.clear();
    ColumnValue v;
    for (size_t r = 0; r < rows.size(); ++r) {
      for (size_t c = 0; c < ncols; ++c) {
        if (auto st = column_value(values[r * ncols + c], columns_[c], v); !st) return st;
        if (c > 0) load_buffer_ += '\t';
        append_load_field(load_buffer_, v);
      }
      for (size_t c : defaultable) {
        load_buffer_ += values[r * ncols + c] == nullptr ? "\t1" : "\t0";
      }
      load_buffer_ += '\n';
    }

    std::string sql = "LOAD DATA LOCAL INFILE 'envkit-batch' IGNORE INTO TABLE " +
                      quote_identifier(table_) + " CHARACTER SET utf8mb4 (";
    std::string set;
    size_t d = 0;
    for (size_t c = 0; c < ncols; ++c) {
      if (c > 0) sql += ", ";
      std::string name = quote_identifier(columns_[c].name);
      if (d < defaultable.size() && defaultable[d] == c) {
        std::string n = std::to_string(c);
        sql += "@v" + n;
        set += (set.empty() ? " SET " : ", ") + name + " = IF(@d" + n + " = '1', DEFAULT(" + name +
               "), @v" + n + ")";
        ++d;
      } else {
        sql += name;
      }
    }
    for (size_t c : defaultable) sql += ", @d" + std::to_string(c);
    sql += ")" + set;

    auto loaded = conn_->load_local(sql, load_buffer_);
    if (!loaded) return loaded.error();
    if (loaded->refused) {
      log_info(url_.redacted() +
               ": the server refuses LOAD DATA LOCAL (local_infile is off): writing with INSERT");
      load_data_ = false;
      return insert_rows(docs, rows);
    }
    uint64_t duplicates = 0;
    if (loaded->warnings > 0) {
      auto warnings = conn_->warnings();
      if (!warnings) return warnings.error();
      for (const auto& w : *warnings) {
        if (w.code == ER_DUP_ENTRY) {
          ++duplicates;
        } else if (w.level != "Note") {  // a note (a decimal rounded) is what INSERT accepts too
          return Error{Exit::data, "LOAD DATA: " + w.message};
        }
      }
      if (warnings->size() < loaded->warnings) {
        return Error{Exit::data, "LOAD DATA: " + std::to_string(loaded->warnings) + " warnings, " +
                                     std::to_string(warnings->size()) + " of them listed"};
      }
    }
    // Every row is inserted or skipped as a duplicate; anything else went missing.
    if (loaded->rows + duplicates != rows.size()) {
      return Error{Exit::data, "LOAD DATA: " + std::to_string(rows.size()) + " rows sent, " +
                                   std::to_string(loaded->rows) + " inserted and " +
                                   std::to_string(duplicates) + " duplicates"};
    }
    return {};
  }

  // INSERT ... ON DUPLICATE KEY UPDATE in statements of bounded size.
  Status insert_rows(const std::vector<JsonDocument>& docs, std::span<const size_t> rows) {
    const size_t ncols = columns_.size();
    auto values = members_by_column(docs, rows);
    std::vector<std::string> names;
    for (const auto& column : columns_) names.push_back(column.name);
    // A no-op update: a duplicate of the unique key leaves the stored row as it was.
    InsertBuilder insert(table_, names,
                         " ON DUPLICATE KEY UPDATE " + quote_identifier(columns_[0].name) + " = " +
                             quote_identifier(columns_[0].name));
    ColumnValue v;
    for (size_t r = 0; r < rows.size(); ++r) {
      std::string& sql = insert.next_row();
      sql += '(';
      for (size_t c = 0; c < ncols; ++c) {
        if (auto st = column_value(values[r * ncols + c], columns_[c], v); !st) return st;
        if (c > 0) sql += ", ";
        sql += sql_literal(v);
      }
      sql += ')';
      if (insert.full()) {
        if (auto st = conn_->execute(insert.take()); !st) return st;
      }
    }
    if (insert.empty()) return {};
    return conn_->execute(insert.take());
  }

  Url url_;
  SinkOptions options_;
  std::string table_;
  bool create_;
  std::string positions_table_;
  bool keep_positions_ = true;
  bool positions_ready_ = false;  // the positions table exists
  bool load_data_ = true;         // false once the server has refused LOAD DATA LOCAL
  std::string load_buffer_;       // a batch as LOAD DATA reads it, kept for its capacity
  PositionKeeper keeper_;
  std::unique_ptr<MysqlConnection> conn_;
  std::vector<TableColumn> columns_;
  std::unordered_map<std::string_view, size_t> column_of_;  // views into columns_' names
};

}  // namespace

Result<std::unique_ptr<Sink>> open_mysql_sink(Url url, const SinkOptions& options) {
  auto table = url.param("table");
  if (!table || table->empty()) return Error{Exit::usage, url.redacted() + ": name the table: ?table=NAME"};
  if (url.path.empty()) return Error{Exit::usage, url.redacted() + ": name the database: mysql://host/DATABASE"};
  std::string create = url.param("create").value_or("false");
  if (create != "true" && create != "false" && create != "1" && create != "0") {
    return Error{Exit::usage, url.redacted() + ": create must be true or false"};
  }
  std::string positions = url.param("positions").value_or("envkit_positions");
  if (positions.empty()) return Error{Exit::usage, url.redacted() + ": positions= names a table"};
  std::string t = *table;
  return std::unique_ptr<Sink>(
      new MysqlSink(std::move(url), options, t, create == "true" || create == "1", std::move(positions)));
}

}  // namespace envkit
