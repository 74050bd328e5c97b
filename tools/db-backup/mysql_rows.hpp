// MySQL rows as typed JSON records and back: the column kinds of the backup format.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/mysql.hpp>
#include <envkit/result.hpp>

namespace db_backup {

/// How a column's values are written in a record (the manifest's "type" of each column).
enum class ColumnKind {
  integer,    ///< JSON number, exact (TINYINT..BIGINT UNSIGNED, YEAR)
  floating,   ///< JSON number as the server prints it (FLOAT, DOUBLE)
  decimal,    ///< string, exact digits ("12345.678900000000000000000000000000")
  string,     ///< string (CHAR, VARCHAR, TEXT, ENUM, SET, ...)
  binary,     ///< base64 string (BINARY, VARBINARY, BLOB, spatial types)
  bit,        ///< base64 string of the BIT value's bytes
  date,       ///< "2026-11-22"
  time,       ///< "-838:59:59.000000" as the server prints TIME
  datetime,   ///< "2026-11-22T14:15:00.123456", no zone: DATETIME is wall-clock time
  timestamp,  ///< "2026-11-22T14:15:00.123456Z", UTC
  json,       ///< the JSON value itself
};

std::string_view kind_name(ColumnKind k);
std::optional<ColumnKind> parse_kind(std::string_view name);
/// The kind for information_schema.COLUMNS.DATA_TYPE; `json` when the column holds JSON.
ColumnKind column_kind(std::string_view data_type, bool json);

struct Column {
  std::string name;
  std::string data_type;    ///< information_schema DATA_TYPE ("decimal")
  std::string column_type;  ///< full SQL type ("decimal(65,30) unsigned")
  ColumnKind kind = ColumnKind::string;
};

/// A growable byte buffer written through a raw pointer: room is asked for first (reserve),
/// then the end of what was written is told (commit). Nothing is zero-filled or allocated per
/// value; memory grows only to the largest block asked for.
class ByteBuffer {
 public:
  /// A pointer to at least `n` writable bytes after the current end.
  char* reserve(size_t n) {
    if (size_ + n > buf_.size()) buf_.resize(std::max(size_ + n, buf_.size() * 2));
    return buf_.data() + size_;
  }
  /// Ends the buffer at `end`, a pointer into the room the last reserve() gave.
  void commit(char* end) { size_ = static_cast<size_t>(end - buf_.data()); }
  void append(std::string_view s) {
    char* p = reserve(s.size());
    std::memcpy(p, s.data(), s.size());
    size_ += s.size();
  }
  std::string_view view() const { return {buf_.data(), size_}; }
  size_t size() const { return size_; }
  void clear() { size_ = 0; }

 private:
  std::string buf_;
  size_t size_ = 0;
};

/// Turns the current row of a result into one JSON object text, members in column order.
class RowEncoder {
 public:
  explicit RowEncoder(std::vector<Column> columns);
  /// The record text, valid until the next call.
  envkit::Result<std::string_view> encode(const envkit::MysqlResult& row);
  /// Appends the record text and a newline to `out`: the dump's path, many records per block.
  void append_line(const envkit::MysqlResult& row, ByteBuffer& out);

 private:
  void append_record(const envkit::MysqlResult& row, ByteBuffer& out);

  std::vector<Column> columns_;
  std::vector<std::string> keys_;  // '"name":' already escaped, with a leading ',' but the first
  std::string scratch_;            // for the rare values that need a detour
  ByteBuffer out_;
};

/// Appends a JSON string literal for `s` to `out` (RFC 8259 escaping; UTF-8 passes through).
void append_json_string(std::string& out, std::string_view s);

/// True only when `text` is one JSON value (then at most spaces and tabs) that RapidJSON
/// accepts too, checked without it: the dump's fast path for JSON columns. False means "not
/// plainly": invalid, or valid in a way left to RapidJSON (exponents, surrogate escapes, raw
/// control bytes, nesting deeper than 64).
bool plainly_one_json_value(std::string_view text);

/// How LOAD DATA lines carry a table's values.
enum class LoadBytes {
  /// The lines are utf8mb4 text, converted by the server to each column's character set;
  /// binary and bit columns come as hex, through UNHEX().
  hex,
  /// The lines are CHARACTER SET binary: every value's bytes as they are, escaped. Nothing is
  /// converted, so only for a table whose character columns are all utf8mb4 (the records'
  /// own encoding) or binary.
  raw,
};

/// The LOAD DATA LOCAL INFILE statement that takes RowDecoder::append_load_data_line's lines
/// into `table`.
std::string load_data_statement(std::string_view table, const std::vector<Column>& columns,
                                LoadBytes bytes);

/// Turns a record back into "(v1, v2, ...)" SQL for INSERT ... VALUES, or into a line for
/// load_data_statement().
class RowDecoder {
 public:
  RowDecoder(std::vector<Column> columns, const envkit::MysqlConnection& connection);
  ~RowDecoder();
  RowDecoder(const RowDecoder&) = delete;
  RowDecoder& operator=(const RowDecoder&) = delete;
  /// Appends the values of record `json` to `sql`. Exit::data for a record that does not fit.
  envkit::Status append_values(std::string_view json, std::string& sql);
  /// Appends record `json` to `out` as one line of LOAD DATA's default format, the newline
  /// included. Exit::data as append_values.
  envkit::Status append_load_data_line(std::string_view json, LoadBytes bytes, std::string& out);

 private:
  template <class Format>
  envkit::Status append(std::string_view json, Format out);

  struct Buffers;  // parse buffers, reused from record to record
  std::vector<Column> columns_;
  const envkit::MysqlConnection& connection_;
  std::unique_ptr<Buffers> buffers_;
  bool has_json_column_;
};

}  // namespace db_backup
