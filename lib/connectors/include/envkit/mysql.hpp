// MySQL/MariaDB connector: one RAII connection per thread, bounded by timeouts, with streamed
// results.
#pragma once

#include <mysql.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/exit_status.hpp>
#include <envkit/result.hpp>
#include <envkit/url.hpp>

namespace envkit {

namespace detail {
struct MysqlCloser {
  void operator()(MYSQL* mysql) const;
};
struct MysqlResultFreer {
  void operator()(MYSQL_RES* result) const;
};
/// The bytes of the LOAD DATA LOCAL statement running now, which the client library's infile
/// callbacks read; on the heap, so the handle's pointer to it survives moving the connection.
struct LocalInfile {
  std::string_view data;
  size_t sent = 0;
  bool armed = false;  ///< a load_local() is running: anything else asking for a file is refused
};
}  // namespace detail

/// How query() hands out rows.
enum class Fetch {
  buffered,  ///< the whole result is read into client memory first (mysql_store_result)
  streamed,  ///< rows are read from the socket one at a time: memory stays flat (mysql_use_result)
};

/// One column of a result set.
struct MysqlField {
  std::string name;
  enum_field_types type = MYSQL_TYPE_NULL;
  unsigned int flags = 0;  ///< NOT_NULL_FLAG, UNSIGNED_FLAG, ... from mysql_com.h
  bool binary = false;     ///< binary collation (BLOB, BINARY, VARBINARY): bytes, not text
};

/// The rows of one query. Belongs to the connection that ran it and must be destroyed (or
/// read to the end) before that connection runs anything else; it must not outlive it.
/// Destroying a streamed result early reads and discards the rows left on the wire (the
/// protocol has no other way back to a usable session), so abandon a huge one by closing
/// the connection instead.
class MysqlResult {
 public:
  MysqlResult(MysqlResult&&) noexcept = default;
  MysqlResult& operator=(MysqlResult&&) noexcept = default;

  /// The columns; empty for a statement that returns no rows (INSERT, SET, ...).
  const std::vector<MysqlField>& fields() const { return fields_; }
  size_t column_count() const { return fields_.size(); }

  /// Moves to the next row: true when one is ready, false at the end of the rows. A
  /// connection lost or killed part-way is an Error, never a silently short result.
  Result<bool> next_row();

  /// Column `i` of the current row, binary-safe; nullopt for SQL NULL. The view stays valid
  /// until the next call to next_row().
  std::optional<std::string_view> value(size_t i) const;
  bool is_null(size_t i) const { return !value(i).has_value(); }

  /// Rows handed out by next_row() so far.
  uint64_t rows_read() const { return rows_read_; }

 private:
  friend class MysqlConnection;
  MysqlResult(MYSQL* mysql, MYSQL_RES* result, std::string endpoint);

  MYSQL* mysql_ = nullptr;  // not owned: the connection that produced the result
  std::unique_ptr<MYSQL_RES, detail::MysqlResultFreer> result_;
  std::string endpoint_;  // redacted URL, for error messages
  std::vector<MysqlField> fields_;
  MYSQL_ROW row_ = nullptr;
  unsigned long* lengths_ = nullptr;
  uint64_t rows_read_ = 0;
  bool done_ = false;
};

/// What a LOAD DATA LOCAL INFILE statement did (MysqlConnection::load_local).
struct MysqlLoad {
  bool refused = false;       ///< local_infile is off at the server: nothing was loaded
  uint64_t rows = 0;          ///< rows it inserted (mysql_affected_rows)
  unsigned int warnings = 0;  ///< mysql_warning_count(): notes and warnings, read by warnings()
};

/// One row of SHOW WARNINGS.
struct MysqlWarning {
  std::string level;  ///< "Note", "Warning" or "Error"
  unsigned int code = 0;
  std::string message;
};

/// An open session with a MySQL or MariaDB server. Not thread-safe: give each thread its own.
///
/// URL: mysql://user[:password]@host[:port]/database with optional parameters
///   socket=PATH       connect over a Unix socket instead of TCP
///   time-zone=ZONE    SET time_zone for the session ("America/Bogota", "-05:00")
///   tls=true|false, tls-ca=FILE, tls-cert=FILE, tls-key=FILE, tls-insecure=true
///                     override the TlsOptions given to connect()
/// "localhost" is reached over TCP like any other host name (the C client would silently
/// use its default socket instead). Other parameters are ignored: they belong to the caller.
/// The client library counts timeouts in whole seconds: they are rounded up.
class MysqlConnection {
 public:
  /// Connects, authenticates, selects the database and sets the session up (utf8mb4,
  /// time zone). Errors are classified by mysql_failure() (envkit/exit_status.hpp):
  /// connection_refused, unreachable (no answer within the connect timeout), name_not_found,
  /// auth_refused, not_found (unknown database), tls_failed, config (unknown time zone).
  static Result<MysqlConnection> connect(const Url& url, const ConnectionOptions& options);

  MysqlConnection(MysqlConnection&&) noexcept = default;
  MysqlConnection& operator=(MysqlConnection&&) noexcept = default;

  /// Runs one statement and discards any rows it returns.
  Status execute(std::string_view sql);
  /// Runs one statement and returns the number of rows it changed.
  Result<uint64_t> execute_affected(std::string_view sql);
  /// Runs one statement that returns rows. With Fetch::streamed, nothing else may run on
  /// this connection until the result is read to the end or destroyed.
  Result<MysqlResult> query(std::string_view sql, Fetch mode = Fetch::buffered);

  /// Runs `sql`, a LOAD DATA LOCAL INFILE statement, with `data` as the contents of the file it
  /// names. The bytes come from memory: no local file is ever opened, whatever file name the
  /// server asks for, and a request for a file at any other time is refused. A server with
  /// local_infile off answers MysqlLoad::refused, not an Error, so the caller can fall back.
  Result<MysqlLoad> load_local(std::string_view sql, std::string_view data);
  /// The last statement's notes, warnings and errors (SHOW WARNINGS): at most the session's
  /// max_error_count of them (64 by default), however many mysql_warning_count() says.
  Result<std::vector<MysqlWarning>> warnings();

  /// `s` as an SQL string literal, quotes included, escaped for this session's character
  /// set and SQL mode (NO_BACKSLASH_ESCAPES is honoured).
  std::string quote_string(std::string_view s) const;

  /// "10.11.6-MariaDB-0+deb12u1"
  std::string server_version() const;
  /// The server's id for this session (what KILL takes).
  unsigned long thread_id() const;
  /// The URL with its password replaced by "***", for messages.
  const std::string& endpoint() const { return endpoint_; }
  /// The C handle, for calls this class does not wrap. Owned by the connection.
  MYSQL* handle() const { return mysql_.get(); }

 private:
  MysqlConnection(std::unique_ptr<detail::LocalInfile> infile,
                  std::unique_ptr<MYSQL, detail::MysqlCloser> mysql, std::string endpoint,
                  ConnectionOptions options);
  Error last_error(std::string_view what) const;
  Status run(std::string_view sql);

  std::unique_ptr<detail::LocalInfile> infile_;  // before mysql_: the handle points at it
  std::unique_ptr<MYSQL, detail::MysqlCloser> mysql_;
  std::string endpoint_;
  ConnectionOptions options_;
};

/// `name` as an SQL identifier: in backticks, with backticks inside doubled.
std::string quote_identifier(std::string_view name);

/// `text` appended to `out` as one field of LOAD DATA's default format (fields separated by
/// tabs, lines ended by \n, backslash escapes): backslash, tab, newline, carriage return and
/// NUL are escaped, every other byte passes. A NULL is the field kLoadDataNull.
void append_load_data_field(std::string& out, std::string_view text);
inline constexpr std::string_view kLoadDataNull = "\\N";

/// Multi-row INSERT statements of bounded size, for bulk writers (db-backup restore, the
/// MySQL sink): rows go into the current statement until it holds `max_rows` rows or
/// `max_bytes` bytes, then take() hands it over and a new one starts. A statement can pass
/// `max_bytes` by its last row only, so keep the bound well under the server's
/// max_allowed_packet (16 MiB by default; 4 MiB here).
class InsertBuilder {
 public:
  static constexpr size_t kDefaultMaxBytes = 4 << 20;

  /// "INSERT INTO `table` (`c1`, `c2`) VALUES " ... `tail` (e.g. " ON DUPLICATE KEY UPDATE ...").
  InsertBuilder(std::string_view table, const std::vector<std::string>& columns,
                std::string tail = {}, size_t max_rows = SIZE_MAX,
                size_t max_bytes = kDefaultMaxBytes);

  /// The statement to append the next row's "(v1, v2, ...)" to (its separator is already
  /// there). Call once per row.
  std::string& next_row();
  /// True once the statement has reached max_rows rows or max_bytes bytes: send take() now.
  bool full() const { return rows_ >= max_rows_ || sql_.size() >= max_bytes_; }
  bool empty() const { return rows_ == 0; }
  size_t rows() const { return rows_; }
  /// The finished statement, tail included; the builder starts the next one.
  std::string take();
  /// Gives back a statement take() handed out, once it is sent: the next statement is built
  /// in its memory rather than in new memory.
  void recycle(std::string done);

 private:
  std::string head_;
  std::string tail_;
  size_t max_rows_;
  size_t max_bytes_;
  std::string sql_;
  size_t rows_ = 0;
};

/// The failure kind (envkit/exit_status.hpp) of a client or server error number
/// (mysql_errno()): refused, lost, refused credentials, unknown database or table, missing
/// grants, lock waits and deadlocks (server_busy); other server errors are bad_data, client
/// misuse internal.
Failure mysql_failure(unsigned int error_number);

}  // namespace envkit
