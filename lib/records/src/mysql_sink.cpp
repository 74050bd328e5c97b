// MySQL sink: a batch becomes multi-row INSERT ... ON DUPLICATE KEY UPDATE statements in one
// transaction, so it is durable all at once and a re-sent record changes nothing.
#include <algorithm>
#include <unordered_map>

#include <envkit/log.hpp>
#include <envkit/mysql.hpp>
#include <envkit/timefmt.hpp>
#include "records_internal.hpp"

namespace envkit {
namespace {

class MysqlSink : public Sink {
 public:
  MysqlSink(Url url, SinkOptions options, std::string table, bool create)
      : url_(std::move(url)), options_(std::move(options)), table_(std::move(table)), create_(create) {}

  std::string name() const override { return url_.redacted(); }

  Result<std::vector<Delivery>> write(std::span<const Record> batch) override {
    if (auto st = ensure_connected(); !st) return st.error();
    std::vector<JsonDocument> docs(batch.size());
    std::vector<Delivery> out(batch.size());
    std::vector<size_t> good;  // records that parsed, in order
    for (size_t i = 0; i < batch.size(); ++i) {
      docs[i].Parse<rapidjson::kParseFullPrecisionFlag>(batch[i].json.data(), batch[i].json.size());
      if (docs[i].HasParseError() || !docs[i].IsObject()) {
        out[i] = {Outcome::rejected, "not a JSON object"};
      } else {
        good.push_back(i);
      }
    }
    if (good.empty()) return out;

    auto whole = insert_in_transaction(docs, good);
    if (whole) {
      for (size_t i : good) out[i] = {Outcome::durable, {}};
      return out;
    }
    if (whole.error().code != Exit::data) {
      drop_connection();
      return whole.error();
    }
    // Some record is bad: insert one by one so the others still land and the bad one is named.
    for (size_t n = 0; n < good.size(); ++n) {
      size_t i = good[n];
      auto one = insert_in_transaction(docs, std::span<const size_t>(&good[n], 1));
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

 private:
  struct TableColumn {
    std::string name;
    Column::Kind kind;
  };

  void drop_connection() { conn_.reset(); }

  Status ensure_connected() {
    if (conn_) return {};
    auto c = MysqlConnection::connect(url_, options_.connection);
    if (!c) return c.error();
    // Timestamps are written as UTC instants, whatever zone the server runs in.
    if (auto st = c->execute("SET time_zone = '+00:00'"); !st) return st;
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

  // A member's value (nullptr: the record has no such member) as an SQL literal for a column.
  Result<std::string> literal(const JsonValue* v, const TableColumn& col) {
    if (v == nullptr || v->IsNull()) return std::string(v == nullptr ? "DEFAULT" : "NULL");
    switch (col.kind) {
      case Column::Kind::timestamp: {
        if (!v->IsString()) return Error{Exit::data, "'" + col.name + "' is not a time string"};
        auto t = parse_time(v->GetString());
        if (!t) return Error{Exit::data, "'" + col.name + "': " + t.error().message};
        std::string s = format_utc(*t, true);  // 2026-11-22T16:45:00.000Z -> DATETIME text
        s[10] = ' ';
        s.pop_back();
        return conn_->quote_string(s);
      }
      case Column::Kind::number:
        if (v->IsNumber()) return to_json(*v);
        if (v->IsBool()) return std::string(v->IsTrue() ? "1" : "0");
        if (v->IsString()) return conn_->quote_string(v->GetString());  // the server converts or refuses
        return Error{Exit::data, "'" + col.name + "' is not a number"};
      case Column::Kind::text:
        if (v->IsString()) return conn_->quote_string(std::string_view(v->GetString(), v->GetStringLength()));
        return conn_->quote_string(to_json(*v));
      case Column::Kind::json:
        return conn_->quote_string(to_json(*v));
    }
    return Error{Exit::software, "unknown column kind"};
  }

  // INSERT ... ON DUPLICATE KEY UPDATE in statements of bounded size, all in one transaction.
  Status insert_in_transaction(const std::vector<JsonDocument>& docs, std::span<const size_t> which) {
    std::vector<std::string> names;
    for (const auto& column : columns_) names.push_back(column.name);
    // A no-op update: a duplicate of the unique key leaves the stored row as it was.
    InsertBuilder insert(table_, names,
                         " ON DUPLICATE KEY UPDATE " + quote_identifier(columns_[0].name) + " = " +
                             quote_identifier(columns_[0].name));
    if (auto st = conn_->execute("START TRANSACTION"); !st) return st;
    auto flush = [&]() -> Status {
      if (insert.empty()) return {};
      return conn_->execute(insert.take());
    };
    std::vector<const JsonValue*> values(columns_.size());
    for (size_t i : which) {
      // One pass over the record's members puts each under its column.
      std::fill(values.begin(), values.end(), nullptr);
      for (auto m = docs[i].MemberBegin(); m != docs[i].MemberEnd(); ++m) {
        auto it = column_of_.find(std::string_view(m->name.GetString(), m->name.GetStringLength()));
        if (it != column_of_.end()) values[it->second] = &m->value;
      }
      std::string& sql = insert.next_row();
      sql += '(';
      for (size_t c = 0; c < columns_.size(); ++c) {
        auto lit = literal(values[c], columns_[c]);
        if (!lit) {
          (void)conn_->execute("ROLLBACK");
          return lit.error();
        }
        if (c > 0) sql += ", ";
        sql += *lit;
      }
      sql += ')';
      if (insert.full()) {
        if (auto st = flush(); !st) {
          (void)conn_->execute("ROLLBACK");
          return st;
        }
      }
    }
    if (auto st = flush(); !st) {
      (void)conn_->execute("ROLLBACK");
      return st;
    }
    return conn_->execute("COMMIT");
  }

  Url url_;
  SinkOptions options_;
  std::string table_;
  bool create_;
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
  std::string t = *table;
  return std::unique_ptr<Sink>(new MysqlSink(std::move(url), options, t, create == "true" || create == "1"));
}

}  // namespace envkit
