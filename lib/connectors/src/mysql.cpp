// MySQL/MariaDB connector on MariaDB Connector/C: connection set-up, error mapping, results.
#include <envkit/mysql.hpp>

#include <errmsg.h>
#include <mysqld_error.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <envkit/exit_status.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace envkit {
namespace {

// Connector/C is initialised lazily by mysql_init(), but not thread-safely: several threads
// open connections at once (db-backup, race-probe), so do it exactly once up front.
Status init_library() {
  static std::once_flag once;
  static int rc = 0;
  std::call_once(once, [] { rc = mysql_library_init(0, nullptr, nullptr); });
  if (rc != 0) return fail(Failure::internal, "cannot initialise the MySQL client library");
  return {};
}

// The client library takes whole seconds; rounding up keeps a short timeout from becoming 0,
// which it would read as "no timeout at all".
unsigned int whole_seconds(std::chrono::milliseconds ms) {
  auto s = (ms.count() + 999) / 1000;
  return static_cast<unsigned int>(s < 1 ? 1 : s);
}


// ?tls=...&tls-ca=... in the URL override the command-wide TLS options for this endpoint.
Result<TlsOptions> tls_for(const Url& url, TlsOptions tls) { return tls_options_from_url(url, std::move(tls)); }

// "Unknown column 'x' (MySQL error 1054)": the number is what the manuals index.
std::string describe(MYSQL* mysql) {
  return std::string(mysql_error(mysql)) + " (MySQL error " + std::to_string(mysql_errno(mysql)) +
         ")";
}

bool is_connection_lost(unsigned int e) {
  return e == CR_SERVER_LOST || e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST_EXTENDED ||
         e == CR_ERR_NET_READ || e == CR_ERR_NET_WRITE;
}

// LOAD DATA LOCAL reads detail::LocalInfile through these, in place of the client library's
// own reader, which would open whatever file the server names.
int infile_init(void** state, const char* /*server's file name*/, void* userdata) {
  auto* infile = static_cast<detail::LocalInfile*>(userdata);
  *state = infile;
  infile->sent = 0;
  return infile->armed ? 0 : 1;
}

int infile_read(void* state, char* buf, unsigned int size) {
  auto* infile = static_cast<detail::LocalInfile*>(state);
  size_t n = std::min<size_t>(size, infile->data.size() - infile->sent);
  std::memcpy(buf, infile->data.data() + infile->sent, n);
  infile->sent += n;
  return static_cast<int>(n);
}

void infile_end(void* /*state*/) {}

// Called only when infile_init refused: the server asked for a file outside load_local().
int infile_error(void* /*state*/, char* buf, unsigned int size) {
  std::snprintf(buf, size, "the server asked for a local file; none is offered");
  return CR_UNKNOWN_ERROR;
}

// What a server without LOAD DATA LOCAL answers: MySQL's "not allowed with this version" and
// 8.0's "disabled on the client or server" (3948, not in MariaDB's headers); MariaDB's own.
bool is_local_infile_refused(unsigned int e) {
  return e == ER_NOT_ALLOWED_COMMAND || e == ER_LOAD_INFILE_CAPABILITY_DISABLED || e == 3948;
}

}  // namespace

namespace detail {
void MysqlCloser::operator()(MYSQL* mysql) const { mysql_close(mysql); }
void MysqlResultFreer::operator()(MYSQL_RES* result) const { mysql_free_result(result); }
}  // namespace detail

Failure mysql_failure(unsigned int e) {
  switch (e) {
    case CR_CONNECTION_ERROR:  // the local socket is missing: nothing listens
    case CR_CONN_HOST_ERROR:   // TCP: refused, or no answer (errno is not kept)
      return Failure::connection_refused;
    case CR_IPSOCK_ERROR:
      return Failure::internal;
    case CR_UNKNOWN_HOST:
      return Failure::name_not_found;  // refined by failure_resolving() where the host is known
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
    case CR_ERR_NET_READ:
    case CR_ERR_NET_WRITE:
    case ER_SERVER_SHUTDOWN:
    case ER_CONNECTION_KILLED:
    case ER_QUERY_INTERRUPTED:
    case ER_NET_READ_ERROR:
    case ER_NET_READ_INTERRUPTED:
    case ER_NET_WRITE_INTERRUPTED:
      return Failure::connection_lost;
    case CR_SERVER_HANDSHAKE_ERR:
    case CR_MALFORMED_PACKET:
    case CR_VERSION_ERROR:
      return Failure::wrong_protocol;
    case ER_ACCESS_DENIED_ERROR:
    case ER_ACCESS_DENIED_NO_PASSWORD_ERROR:
    case ER_NOT_SUPPORTED_AUTH_MODE:
    case ER_MUST_CHANGE_PASSWORD:
    case ER_ACCOUNT_HAS_BEEN_LOCKED:
    case CR_AUTH_PLUGIN_CANNOT_LOAD:
    case CR_AUTH_PLUGIN_ERR:
      return Failure::auth_refused;
    case ER_DBACCESS_DENIED_ERROR:
    case ER_HOST_NOT_PRIVILEGED:
    case ER_HOST_IS_BLOCKED:  // blocked until an operator runs FLUSH HOSTS
    case ER_TABLEACCESS_DENIED_ERROR:
    case ER_COLUMNACCESS_DENIED_ERROR:
    case ER_SPECIFIC_ACCESS_DENIED_ERROR:
      return Failure::permission_denied;
    case ER_BAD_DB_ERROR:
    case ER_NO_SUCH_TABLE:
      return Failure::not_found;
    case ER_UNKNOWN_TIME_ZONE:
    case CR_CANT_READ_CHARSET:
      return Failure::config;
    case CR_SSL_CONNECTION_ERROR:
      return Failure::tls_failed;
    case ER_CON_COUNT_ERROR:
    case ER_TOO_MANY_USER_CONNECTIONS:
    case ER_LOCK_WAIT_TIMEOUT:
    case ER_LOCK_DEADLOCK:
    case ER_STATEMENT_TIMEOUT:
    case ER_READ_ONLY_MODE:
    case ER_OUT_OF_RESOURCES:
    case ER_OUTOFMEMORY:
      return Failure::server_busy;
    default:
      break;
  }
  // Other server errors (unknown column, duplicate key, value out of range, SQL syntax)
  // come from what was asked or the data being written; client-side errors (commands out
  // of sync, out of memory) are the program's own fault.
  bool client_side = (e >= 2000 && e < 3000) || (e >= 5000 && e < 6000);
  return client_side ? Failure::internal : Failure::bad_data;
}

MysqlConnection::MysqlConnection(std::unique_ptr<detail::LocalInfile> infile,
                                 std::unique_ptr<MYSQL, detail::MysqlCloser> mysql,
                                 std::string endpoint, ConnectionOptions options)
    : infile_(std::move(infile)),
      mysql_(std::move(mysql)),
      endpoint_(std::move(endpoint)),
      options_(std::move(options)) {}

Result<MysqlConnection> MysqlConnection::connect(const Url& url, const ConnectionOptions& options) {
  std::string endpoint = url.redacted();
  if (auto st = init_library(); !st) return st.error();
  auto socket_path = url.param("socket");
  if (url.hosts.empty() && !socket_path) {
    return fail(Failure::usage, "cannot connect to " + endpoint + ": the URL names no host");
  }
  if (url.hosts.size() > 1) {
    return fail(Failure::usage, "cannot connect to " + endpoint + ": a MySQL URL takes one host");
  }
  auto tls = tls_for(url, options.tls);
  if (!tls) return tls.error();
  if (tls->enabled && !tls->server_name.empty()) {
    // Connector/C checks the certificate against the host it dials and offers no way to name
    // another; ignoring the option would verify a different name than the user asked for.
    return fail(Failure::config, "cannot connect to " + endpoint +
                                     ": the MySQL client cannot check TLS server names other "
                                     "than the host (--tls-server-name)");
  }

  std::unique_ptr<MYSQL, detail::MysqlCloser> mysql(mysql_init(nullptr));
  if (!mysql) return fail(Failure::internal, "cannot connect to " + endpoint + ": out of memory");
  MYSQL* m = mysql.get();

  unsigned int connect_s = whole_seconds(options.connect_timeout);
  unsigned int io_s = whole_seconds(options.io_timeout);
  mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
  mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &io_s);
  mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
  // utf8mb4, or emoji and other 4-byte characters come back as '?'.
  mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  // LOAD DATA LOCAL is offered, but its bytes come only from load_local()'s memory: the
  // callbacks never open a file, so a server cannot ask for ours.
  auto infile = std::make_unique<detail::LocalInfile>();
  unsigned int local_infile = 1;
  mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &local_infile);
  mysql_set_local_infile_handler(m, infile_init, infile_read, infile_end, infile_error,
                                 infile.get());
  // Never reconnect behind the caller's back: the session's time zone, locks and open
  // transaction would be silently lost; a lost connection is reported instead.
  my_bool no_reconnect = 0;
  mysql_options(m, MYSQL_OPT_RECONNECT, &no_reconnect);
  unsigned int protocol = socket_path ? MYSQL_PROTOCOL_SOCKET : MYSQL_PROTOCOL_TCP;
  mysql_options(m, MYSQL_OPT_PROTOCOL, &protocol);

  if (tls->enabled) {
    my_bool enforce = 1;
    my_bool verify = tls->verify ? 1 : 0;
    mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &enforce);
    mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
    if (!tls->ca_file.empty()) mysql_options(m, MYSQL_OPT_SSL_CA, tls->ca_file.c_str());
    if (!tls->cert_file.empty()) mysql_options(m, MYSQL_OPT_SSL_CERT, tls->cert_file.c_str());
    if (!tls->key_file.empty()) mysql_options(m, MYSQL_OPT_SSL_KEY, tls->key_file.c_str());
  }

  std::string host = url.hosts.empty() ? std::string("localhost") : url.hosts[0].host;
  unsigned int port = socket_path ? 0 : url.port_or_default();
  // An absent password is sent as an empty one, not left to the library, which would read
  // MYSQL_PWD on its own: resolve_password() is the one place that consults the environment.
  const char* password = url.password ? url.password->c_str() : "";
  const char* user = url.user.empty() ? nullptr : url.user.c_str();
  const char* database = url.path.empty() ? nullptr : url.path.c_str();
  auto start = std::chrono::steady_clock::now();
  if (!mysql_real_connect(m, host.c_str(), user, password, database, port,
                          socket_path ? socket_path->c_str() : nullptr, 0)) {
    unsigned int e = mysql_errno(m);
    std::string why = describe(m);
    // A port that accepts but never sends the greeting (a proxy without a backend) shows up
    // as a lost connection; say it was the timeout, which is what the user can act on.
    Failure kind = mysql_failure(e);
    if (is_connection_lost(e) &&
        std::chrono::steady_clock::now() - start >= std::chrono::seconds(connect_s)) {
      why = "no answer within the connect timeout (" + std::to_string(connect_s) + " s): " + why;
      kind = Failure::unreachable;
    } else if (e == CR_CONN_HOST_ERROR &&
               std::chrono::steady_clock::now() - start >= std::chrono::seconds(connect_s)) {
      kind = Failure::unreachable;  // no SYN-ACK within the timeout, not a refusal
    } else if (e == CR_UNKNOWN_HOST) {
      kind = failure_resolving(host);
    }
    return fail(kind, "cannot connect to " + endpoint + ": " + why);
  }

  // With verification off, Connector/C quietly falls back to plain text when the server has
  // no TLS (MYSQL_OPT_SSL_ENFORCE is only enforced together with verification). Asked for
  // TLS means encrypted or nothing.
  if (tls->enabled && mysql_get_ssl_cipher(m) == nullptr) {
    return fail(Failure::tls_failed, "cannot connect to " + endpoint +
                                         ": TLS was asked for, but the server does not support it");
  }

  MysqlConnection conn(std::move(infile), std::move(mysql), std::move(endpoint), options);
  if (auto tz = url.param("time-zone")) {
    if (auto st = conn.run("SET time_zone = " + conn.quote_string(*tz)); !st) {
      Error e = st.error();
      // An unknown zone is a configuration problem whichever way the server words it.
      if (mysql_errno(conn.handle()) == ER_UNKNOWN_TIME_ZONE) e.code = exit_for(Failure::config);
      return e.context("cannot set the time zone");
    }
  }
  return conn;
}

Error MysqlConnection::last_error(std::string_view what) const {
  unsigned int e = mysql_errno(mysql_.get());
  return fail(mysql_failure(e),
              std::string(what) + " on " + endpoint_ + ": " + describe(mysql_.get()));
}

// Sends one statement. A lost connection after at least the read timeout is reported as a
// timeout (Failure::io_timeout: the server is there but slow) rather than as a lost server; the
// client library gives both the same error number.
Status MysqlConnection::run(std::string_view sql) {
  auto start = std::chrono::steady_clock::now();
  if (mysql_real_query(mysql_.get(), sql.data(), static_cast<unsigned long>(sql.size())) == 0) {
    return {};
  }
  Error err = last_error("query failed");
  auto waited = std::chrono::steady_clock::now() - start;
  if (is_connection_lost(mysql_errno(mysql_.get())) &&
      waited >= std::chrono::seconds(whole_seconds(options_.io_timeout))) {
    err.code = exit_for(Failure::io_timeout);
    err.message +=
        ": no answer within the " + std::to_string(options_.io_timeout.count()) + " ms timeout";
  }
  return err;
}

Status MysqlConnection::execute(std::string_view sql) {
  if (auto st = run(sql); !st) return st;
  // Rows nobody asked for must still be read, or the connection is out of sync.
  if (MYSQL_RES* res = mysql_store_result(mysql_.get())) {
    mysql_free_result(res);
  } else if (mysql_field_count(mysql_.get()) != 0) {
    return last_error("reading the result failed");
  }
  return {};
}

Result<uint64_t> MysqlConnection::execute_affected(std::string_view sql) {
  if (auto st = execute(sql); !st) return st.error();
  return static_cast<uint64_t>(mysql_affected_rows(mysql_.get()));
}

Result<MysqlResult> MysqlConnection::query(std::string_view sql, Fetch mode) {
  if (auto st = run(sql); !st) return st.error();
  MYSQL_RES* res =
      mode == Fetch::streamed ? mysql_use_result(mysql_.get()) : mysql_store_result(mysql_.get());
  if (!res && mysql_field_count(mysql_.get()) != 0) return last_error("reading the result failed");
  return MysqlResult(mysql_.get(), res, endpoint_);
}

Result<MysqlLoad> MysqlConnection::load_local(std::string_view sql, std::string_view data) {
  infile_->data = data;
  infile_->armed = true;
  auto st = run(sql);
  infile_->armed = false;
  infile_->data = {};
  if (!st) {
    if (is_local_infile_refused(mysql_errno(mysql_.get()))) return MysqlLoad{.refused = true};
    return st.error();
  }
  MysqlLoad load;
  load.rows = static_cast<uint64_t>(mysql_affected_rows(mysql_.get()));
  load.warnings = mysql_warning_count(mysql_.get());
  return load;
}

Result<std::vector<MysqlWarning>> MysqlConnection::warnings() {
  auto r = query("SHOW WARNINGS");
  if (!r) return r.error();
  std::vector<MysqlWarning> out;
  while (true) {
    auto more = r->next_row();
    if (!more) return more.error();
    if (!*more) break;
    MysqlWarning w;
    w.level = std::string(r->value(0).value_or(""));
    w.code = static_cast<unsigned int>(
        std::strtoul(std::string(r->value(1).value_or("0")).c_str(), nullptr, 10));
    w.message = std::string(r->value(2).value_or(""));
    out.push_back(std::move(w));
  }
  return out;
}

std::string MysqlConnection::quote_string(std::string_view s) const {
  std::string out(s.size() * 2 + 3, '\0');
  out[0] = '\'';
  unsigned long n = mysql_real_escape_string(mysql_.get(), out.data() + 1, s.data(),
                                             static_cast<unsigned long>(s.size()));
  out.resize(n + 1);
  out.push_back('\'');
  return out;
}

std::string MysqlConnection::server_version() const {
  const char* v = mysql_get_server_info(mysql_.get());
  return v ? v : "";
}

unsigned long MysqlConnection::thread_id() const { return mysql_thread_id(mysql_.get()); }

MysqlResult::MysqlResult(MYSQL* mysql, MYSQL_RES* result, std::string endpoint)
    : mysql_(mysql), result_(result), endpoint_(std::move(endpoint)) {
  if (!result) {
    done_ = true;
    return;
  }
  unsigned int n = mysql_num_fields(result);
  MYSQL_FIELD* f = mysql_fetch_fields(result);
  fields_.reserve(n);
  for (unsigned int i = 0; i < n; ++i) {
    // Character set 63 is "binary": the column holds bytes, whatever its type says.
    fields_.push_back(MysqlField{std::string(f[i].name, f[i].name_length), f[i].type, f[i].flags,
                                 f[i].charsetnr == 63});
  }
}

Result<bool> MysqlResult::next_row() {
  if (done_) return false;
  row_ = mysql_fetch_row(result_.get());
  if (!row_) {
    done_ = true;
    lengths_ = nullptr;
    // For a streamed result, NULL means "end of rows" or "the connection broke": only the
    // error number tells which, and a short result must never pass for a complete one.
    if (unsigned int e = mysql_errno(mysql_); e != 0) {
      return fail(mysql_failure(e), "reading rows failed on " + endpoint_ + " after " +
                                        std::to_string(rows_read_) + " rows: " + describe(mysql_));
    }
    return false;
  }
  lengths_ = mysql_fetch_lengths(result_.get());
  ++rows_read_;
  return true;
}

std::optional<std::string_view> MysqlResult::value(size_t i) const {
  if (!row_ || i >= fields_.size() || !row_[i]) return std::nullopt;
  return std::string_view(row_[i], lengths_[i]);
}

std::string quote_identifier(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('`');
  for (char c : name) {
    if (c == '`') out.push_back('`');
    out.push_back(c);
  }
  out.push_back('`');
  return out;
}

namespace {

// The escape letter of a byte LOAD DATA's default format escapes, or 0.
char load_data_escape(char c) {
  switch (c) {
    case '\\':
      return '\\';
    case '\t':
      return 't';
    case '\n':
      return 'n';
    case '\r':
      return 'r';
    case '\0':
      return '0';
    default:
      return 0;
  }
}

}  // namespace

void append_load_data_field(std::string& out, std::string_view text) {
  const char* p = text.data();
  const char* end = p + text.size();
  const char* run = p;
  auto escape = [&](char e) {
    out.append(run, p);
    out += '\\';
    out += e;
    run = ++p;
  };
#if defined(__SSE2__)
  // Sixteen bytes at a time: blobs and long text are mostly bytes that pass as they are, and
  // a byte-by-byte loop was a quarter of restore's client time.
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i newline = _mm_set1_epi8('\n');
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i nul = _mm_setzero_si128();
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i hit = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, backslash), _mm_cmpeq_epi8(v, tab)),
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, newline), _mm_cmpeq_epi8(v, cr)),
                     _mm_cmpeq_epi8(v, nul)));
    auto mask = static_cast<unsigned>(_mm_movemask_epi8(hit));
    if (mask == 0) {
      p += 16;
      continue;
    }
    p += __builtin_ctz(mask);
    escape(load_data_escape(*p));
  }
#endif
  while (p != end) {
    if (char e = load_data_escape(*p)) {
      escape(e);
    } else {
      ++p;
    }
  }
  out.append(run, end);
}

InsertBuilder::InsertBuilder(std::string_view table, const std::vector<std::string>& columns,
                             std::string tail, size_t max_rows, size_t max_bytes)
    : tail_(std::move(tail)), max_rows_(std::max<size_t>(max_rows, 1)), max_bytes_(max_bytes) {
  head_ = "INSERT INTO " + quote_identifier(table) + " (";
  for (size_t i = 0; i < columns.size(); ++i) head_ += (i ? ", " : "") + quote_identifier(columns[i]);
  head_ += ") VALUES ";
}

std::string& InsertBuilder::next_row() {
  if (rows_ == 0) {
    sql_ = head_;
  } else {
    sql_ += ", ";
  }
  ++rows_;
  return sql_;
}

std::string InsertBuilder::take() {
  std::string out = std::move(sql_);
  if (rows_ > 0) out += tail_;
  sql_.clear();
  rows_ = 0;
  return out;
}

void InsertBuilder::recycle(std::string done) {
  if (rows_ == 0 && done.capacity() > sql_.capacity()) sql_ = std::move(done);
}

}  // namespace envkit
