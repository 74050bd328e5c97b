// MongoDB connector on mongo-c-driver 1.23: URI and timeouts, error mapping, cursors,
// snapshot sessions, Extended JSON in and out.
#include <envkit/mongo.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>

#include <envkit/log.hpp>

// bson_t is declared with an alignment attribute that template arguments (std::vector of
// bson_t pointers) drop; the pointers are only handed back to libbson, which is fine.
#pragma GCC diagnostic ignored "-Wignored-attributes"

namespace envkit {
namespace {

using Clock = std::chrono::steady_clock;

// The driver's log goes through envkit's: its warnings are worth seeing with -v, its chatter
// is not.
void forward_driver_log(mongoc_log_level_t level, const char* domain, const char* message,
                        void*) {
  std::string line = std::string("mongoc: ") + (domain ? domain : "") + ": " + (message ? message : "");
  if (level <= MONGOC_LOG_LEVEL_WARNING) {
    log_debug(line);
  }
}

// mongoc_init() once per process, mongoc_cleanup() at exit: several threads may connect at
// once (db-backup), and the driver's global state must outlive every client.
void init_driver() {
  static std::once_flag once;
  std::call_once(once, [] {
    // The handler first, so that what mongoc_init() itself logs goes through it too.
    mongoc_log_set_handler(forward_driver_log, nullptr);
    mongoc_init();
    std::atexit([] { mongoc_cleanup(); });
  });
}

struct DatabaseDestroyer {
  void operator()(mongoc_database_t* d) const { mongoc_database_destroy(d); }
};
struct ReadPrefsDestroyer {
  void operator()(mongoc_read_prefs_t* p) const { mongoc_read_prefs_destroy(p); }
};
struct SessionOptsDestroyer {
  void operator()(mongoc_session_opt_t* o) const { mongoc_session_opts_destroy(o); }
};

BsonPtr new_bson() { return BsonPtr(bson_new()); }

std::string percent_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// URL parameters the driver understands pass through; envkit's own (tls-*, and whatever a
// command reads for itself) do not, so the driver never warns about them.
bool driver_option(const std::string& key) {
  std::string k = lower(key);
  if (k == "tls" || k == "ssl" || k.rfind("tls-", 0) == 0) return false;
  static const char* const extra[] = {"readpreferencetags", "authmechanismproperties",
                                      "authmechanism", "authsource", "readconcernlevel", "w"};
  for (const char* e : extra) {
    if (k == e) return true;
  }
  return mongoc_uri_option_is_int32(k.c_str()) || mongoc_uri_option_is_int64(k.c_str()) ||
         mongoc_uri_option_is_bool(k.c_str()) || mongoc_uri_option_is_utf8(k.c_str());
}

int32_t clamp_ms(std::chrono::milliseconds ms) {
  auto v = ms.count();
  if (v < 1) v = 1;
  if (v > INT32_MAX) v = INT32_MAX;
  return static_cast<int32_t>(v);
}

std::string describe(const bson_error_t& e) {
  return std::string(e.message) + " (mongoc error " + std::to_string(e.domain) + "." +
         std::to_string(e.code) + ")";
}

// A stream error after the whole socket timeout is the server being slow, not gone.
Error driver_error(const bson_error_t& e, std::string_view what, Clock::time_point start,
                   std::chrono::milliseconds io_timeout) {
  Error err = fail(mongo_failure(e), std::string(what) + ": " + describe(e));
  auto waited = Clock::now() - start;
  if (e.domain == MONGOC_ERROR_STREAM && waited >= io_timeout - io_timeout / 10) {
    err.code = exit_for(Failure::io_timeout);
    err.message += ": no answer within the " + std::to_string(io_timeout.count()) + " ms timeout";
  }
  return err;
}

// The server's own error inside a reply, when the driver's message lacks it.
std::string reply_errmsg(const bson_t* reply) {
  bson_iter_t it;
  if (reply && bson_iter_init_find(&it, reply, "errmsg") && BSON_ITER_HOLDS_UTF8(&it)) {
    return bson_iter_utf8(&it, nullptr);
  }
  return {};
}

std::string iter_string(const bson_t& doc, const char* key) {
  bson_iter_t it;
  if (bson_iter_init_find(&it, &doc, key) && BSON_ITER_HOLDS_UTF8(&it)) {
    return bson_iter_utf8(&it, nullptr);
  }
  return {};
}

bool iter_bool(const bson_t& doc, const char* key) {
  bson_iter_t it;
  return bson_iter_init_find(&it, &doc, key) && bson_iter_as_bool(&it);
}

Result<BsonPtr> parse_or_empty(std::string_view json, std::string_view what) {
  if (json.empty()) return new_bson();
  auto doc = bson_from_json(json);
  if (!doc) return doc.error().context(what);
  return doc;
}

}  // namespace

namespace detail {
void BsonDestroyer::operator()(bson_t* b) const { bson_destroy(b); }
void MongoClientDestroyer::operator()(mongoc_client_t* c) const { mongoc_client_destroy(c); }
void MongoCollectionDestroyer::operator()(mongoc_collection_t* c) const {
  mongoc_collection_destroy(c);
}
void MongoCursorDestroyer::operator()(mongoc_cursor_t* c) const { mongoc_cursor_destroy(c); }
void MongoSessionDestroyer::operator()(mongoc_client_session_t* s) const {
  mongoc_client_session_destroy(s);
}
void MongoUriDestroyer::operator()(mongoc_uri_t* u) const { mongoc_uri_destroy(u); }
}  // namespace detail

Result<BsonPtr> bson_from_json(std::string_view json) {
  // libbson would take a top-level array as a document keyed "0", "1", ...: not a document.
  size_t first = json.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || json[first] != '{') {
    return fail(Failure::bad_data, "invalid Extended JSON: expected a document ({...})");
  }
  bson_error_t err;
  bson_t* doc = bson_new_from_json(reinterpret_cast<const uint8_t*>(json.data()),
                                   static_cast<ssize_t>(json.size()), &err);
  if (!doc) return fail(Failure::bad_data, std::string("invalid Extended JSON: ") + err.message);
  return BsonPtr(doc);
}

std::string bson_to_canonical_json(const bson_t& doc) {
  size_t len = 0;
  char* text = bson_as_canonical_extended_json(&doc, &len);
  if (!text) return {};
  std::string out(text, len);
  bson_free(text);
  return out;
}

Failure mongo_failure(const bson_error_t& e) {
  switch (e.domain) {
    case MONGOC_ERROR_STREAM:
      if (e.code == MONGOC_ERROR_STREAM_NAME_RESOLUTION) return Failure::name_not_found;
      if (e.code == MONGOC_ERROR_STREAM_CONNECT) return Failure::connection_refused;
      return Failure::connection_lost;
    case MONGOC_ERROR_SERVER_SELECTION:
      // No server selectable within serverSelectionTimeoutMS: refused, silent or gone.
      return Failure::unreachable;
    case MONGOC_ERROR_CLIENT:
      if (e.code == MONGOC_ERROR_CLIENT_AUTHENTICATE) return Failure::auth_refused;
      return Failure::internal;
    case MONGOC_ERROR_PROTOCOL:
      return Failure::wrong_protocol;
    case MONGOC_ERROR_BSON:
    case MONGOC_ERROR_COMMAND:
      return e.code == MONGOC_ERROR_COMMAND_INVALID_ARG ? Failure::usage : Failure::bad_data;
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_QUERY:
    case MONGOC_ERROR_WRITE_CONCERN:
    case MONGOC_ERROR_COLLECTION:
    case MONGOC_ERROR_CURSOR:
      break;
    default:
      return Failure::internal;
  }
  switch (e.code) {
    case 13:     // Unauthorized
      return Failure::permission_denied;
    case 18:     // AuthenticationFailed
      return Failure::auth_refused;
    case 26:     // NamespaceNotFound
      return Failure::not_found;
    case 6:      // HostUnreachable
    case 7:      // HostNotFound
      return Failure::unreachable;
    case 91:     // ShutdownInProgress
    case 189:    // PrimarySteppedDown
    case 9001:   // SocketException
    case 10107:  // NotWritablePrimary
    case 11600:  // InterruptedAtShutdown
    case 11602:  // InterruptedDueToReplStateChange
    case 13435:  // NotPrimaryNoSecondaryOk
    case 13436:  // NotPrimaryOrSecondary
      return Failure::connection_lost;
    case 50:     // MaxTimeMSExpired
    case 89:     // NetworkTimeout
    case 262:    // ExceededTimeLimit
      return Failure::io_timeout;
    case 112:    // WriteConflict
    case 239:    // SnapshotTooOld
    case 246:    // SnapshotUnavailable
      return Failure::server_busy;
    default:
      return Failure::bad_data;
  }
}

Result<std::unique_ptr<mongoc_uri_t, detail::MongoUriDestroyer>> make_mongo_uri(
    const Url& url, const ConnectionOptions& options) {
  init_driver();
  std::string endpoint = url.redacted();
  if (url.scheme != "mongodb") {
    return fail(Failure::usage, "cannot connect to " + endpoint + ": not a mongodb:// URL");
  }
  if (url.hosts.empty()) {
    return fail(Failure::usage, "cannot connect to " + endpoint + ": the URL names no host");
  }
  auto tls = tls_options_from_url(url, options.tls);
  if (!tls) return tls.error();
  if (tls->enabled && !tls->server_name.empty()) {
    return fail(Failure::config, "cannot connect to " + endpoint +
                                   ": the MongoDB driver cannot check TLS server names other "
                                   "than the host (--tls-server-name)");
  }
  if (tls->enabled && !tls->key_file.empty() && tls->key_file != tls->cert_file) {
    return fail(Failure::config, "cannot connect to " + endpoint +
                                   ": the MongoDB driver reads the client key from the "
                                   "certificate file: give one PEM file holding both (--tls-cert)");
  }

  // The text handed to the driver has neither user nor password: those are set below, so no
  // escaping rule of the driver's URI parser can mangle them.
  std::string text = "mongodb://";
  for (size_t i = 0; i < url.hosts.size(); ++i) {
    if (i) text += ',';
    const HostPort& h = url.hosts[i];
    text += h.ipv6 ? "[" + h.host + "]" : percent_encode(h.host);
    text += ':' + std::to_string(h.port ? h.port : url.port_or_default(i));
  }
  text += '/';
  if (!url.path.empty()) text += percent_encode(url.path);
  char sep = '?';
  for (const auto& [key, value] : url.query) {
    if (!driver_option(key)) continue;
    text += sep;
    text += percent_encode(key) + '=' + percent_encode(value);
    sep = '&';
  }
  bson_error_t err;
  std::unique_ptr<mongoc_uri_t, detail::MongoUriDestroyer> uri(
      mongoc_uri_new_with_error(text.c_str(), &err));
  if (!uri) {
    return fail(Failure::config, "cannot connect to " + endpoint + ": " + err.message);
  }
  mongoc_uri_t* u = uri.get();
  if (!url.user.empty() && !mongoc_uri_set_username(u, url.user.c_str())) {
    return fail(Failure::config, "cannot connect to " + endpoint + ": the user name is not valid UTF-8");
  }
  if (url.password && !mongoc_uri_set_password(u, url.password->c_str())) {
    return fail(Failure::config, "cannot connect to " + endpoint + ": the password is not valid UTF-8");
  }
  // No call may wait longer than the command's timeouts, whatever the URL says. Server
  // selection tries once within the connect timeout, unless the URL asks to wait out an
  // election (serverSelectionTryOnce=false): then it keeps trying up to the I/O timeout, so
  // a write during a failover reaches the new primary (and a retryable write is retried).
  int32_t connect_ms = clamp_ms(options.connect_timeout);
  bool wait_for_primary = mongoc_uri_has_option(u, MONGOC_URI_SERVERSELECTIONTRYONCE) &&
                          !mongoc_uri_get_option_as_bool(u, MONGOC_URI_SERVERSELECTIONTRYONCE, true);
  mongoc_uri_set_option_as_int32(u, MONGOC_URI_CONNECTTIMEOUTMS, connect_ms);
  mongoc_uri_set_option_as_int32(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                 wait_for_primary ? std::max(connect_ms, clamp_ms(options.io_timeout)) : connect_ms);
  mongoc_uri_set_option_as_bool(u, MONGOC_URI_SERVERSELECTIONTRYONCE, !wait_for_primary);
  mongoc_uri_set_option_as_int32(u, MONGOC_URI_SOCKETTIMEOUTMS, clamp_ms(options.io_timeout));
  if (tls->enabled) {
    mongoc_uri_set_option_as_bool(u, MONGOC_URI_TLS, true);
    if (!tls->ca_file.empty()) mongoc_uri_set_option_as_utf8(u, MONGOC_URI_TLSCAFILE, tls->ca_file.c_str());
    if (!tls->cert_file.empty()) {
      mongoc_uri_set_option_as_utf8(u, MONGOC_URI_TLSCERTIFICATEKEYFILE, tls->cert_file.c_str());
    }
    if (!tls->verify) mongoc_uri_set_option_as_bool(u, MONGOC_URI_TLSINSECURE, true);
  }
  return uri;
}

// --- MongoCursor ----------------------------------------------------------------------------

MongoCursor::MongoCursor(std::unique_ptr<mongoc_collection_t, detail::MongoCollectionDestroyer> coll,
                         std::unique_ptr<mongoc_cursor_t, detail::MongoCursorDestroyer> cursor,
                         std::string what, std::chrono::milliseconds io_timeout)
    : coll_(std::move(coll)), cursor_(std::move(cursor)), what_(std::move(what)),
      io_timeout_(io_timeout) {}

Result<bool> MongoCursor::next() {
  current_ = nullptr;
  json_ready_ = false;
  if (failed_) return *failed_;
  if (!cursor_) return false;
  auto start = Clock::now();
  const bson_t* doc = nullptr;
  if (mongoc_cursor_next(cursor_.get(), &doc)) {
    current_ = doc;
    ++read_;
    return true;
  }
  bson_error_t err;
  const bson_t* reply = nullptr;
  if (mongoc_cursor_error_document(cursor_.get(), &err, &reply)) {
    failed_ = driver_error(err, what_ + " failed after " + std::to_string(read_) + " documents",
                           start, io_timeout_);
    cursor_.reset();
    return *failed_;
  }
  cursor_.reset();
  return false;
}

const std::string& MongoCursor::json() const {
  if (!json_ready_) {
    json_ = current_ ? bson_to_canonical_json(*current_) : std::string();
    json_ready_ = true;
  }
  return json_;
}

// --- MongoClient ----------------------------------------------------------------------------

MongoClient::MongoClient(std::unique_ptr<mongoc_client_t, detail::MongoClientDestroyer> client,
                         std::string endpoint, ConnectionOptions options)
    : client_(std::move(client)), endpoint_(std::move(endpoint)), options_(std::move(options)) {}

Result<MongoClient> MongoClient::connect(const Url& url, const ConnectionOptions& options) {
  auto uri = make_mongo_uri(url, options);
  if (!uri) return uri.error();
  std::string endpoint = url.redacted();
  bson_error_t err;
  std::unique_ptr<mongoc_client_t, detail::MongoClientDestroyer> client(
      mongoc_client_new_from_uri_with_error(uri->get(), &err));
  if (!client) return fail(Failure::config, "cannot connect to " + endpoint + ": " + err.message);
  mongoc_client_set_error_api(client.get(), MONGOC_ERROR_API_VERSION_2);
  mongoc_client_set_appname(client.get(), "envkit");
  MongoClient c(std::move(client), endpoint, options);
  BsonPtr ping(BCON_NEW("ping", BCON_INT32(1)));
  // Any member will do: a replica set without a primary is still there to be asked about.
  if (auto r = c.command("admin", *ping, "cannot connect to " + endpoint, true); !r) {
    Error e = r.error();
    if (e.code == exit_for(Failure::bad_data)) e.code = exit_for(Failure::wrong_protocol);  // not a MongoDB server
    return e;
  }
  return c;
}

std::unique_ptr<mongoc_collection_t, detail::MongoCollectionDestroyer> MongoClient::collection(
    std::string_view db, std::string_view coll) const {
  return std::unique_ptr<mongoc_collection_t, detail::MongoCollectionDestroyer>(
      mongoc_client_get_collection(client_.get(), std::string(db).c_str(), std::string(coll).c_str()));
}

Result<BsonPtr> MongoClient::command(std::string_view db, const bson_t& cmd, std::string_view what,
                                     bool any_member) {
  std::unique_ptr<mongoc_read_prefs_t, ReadPrefsDestroyer> prefs;
  if (any_member) prefs.reset(mongoc_read_prefs_new(MONGOC_READ_PRIMARY_PREFERRED));
  bson_error_t err;
  auto start = Clock::now();
  bson_t out;  // initialised by the driver, even on failure
  bool ok = mongoc_client_command_simple(client_.get(), std::string(db).c_str(), &cmd, prefs.get(),
                                         &out, &err);
  BsonPtr result(bson_copy(&out));
  bson_destroy(&out);
  if (!ok) return driver_error(err, what, start, options_.io_timeout);
  return result;
}

Result<MongoHello> MongoClient::hello() {
  std::string what = "hello on " + endpoint_;
  BsonPtr cmd(BCON_NEW("hello", BCON_INT32(1)));
  auto reply = command("admin", *cmd, what, true);
  if (!reply && reply.error().code == Exit::data) {
    BsonPtr legacy(BCON_NEW("isMaster", BCON_INT32(1)));
    reply = command("admin", *legacy, what, true);
  }
  if (!reply) return reply.error();
  const bson_t& r = **reply;
  MongoHello h;
  h.set_name = iter_string(r, "setName");
  h.primary = iter_string(r, "primary");
  h.me = iter_string(r, "me");
  h.writable_primary = iter_bool(r, "isWritablePrimary") || iter_bool(r, "ismaster");
  h.secondary = iter_bool(r, "secondary");
  bson_iter_t it, child;
  if (bson_iter_init_find(&it, &r, "maxWireVersion") && BSON_ITER_HOLDS_NUMBER(&it)) {
    h.max_wire_version = static_cast<int32_t>(bson_iter_as_int64(&it));
  }
  if (bson_iter_init_find(&it, &r, "hosts") && BSON_ITER_HOLDS_ARRAY(&it) &&
      bson_iter_recurse(&it, &child)) {
    while (bson_iter_next(&child)) {
      if (BSON_ITER_HOLDS_UTF8(&child)) h.hosts.emplace_back(bson_iter_utf8(&child, nullptr));
    }
  }
  h.reply_json = bson_to_canonical_json(r);
  if (auto v = server_version()) h.server_version = *v;
  return h;
}

Result<std::string> MongoClient::server_version() {
  BsonPtr cmd(BCON_NEW("buildInfo", BCON_INT32(1)));
  auto reply = command("admin", *cmd, "buildInfo on " + endpoint_, true);
  if (!reply) return reply.error();
  return iter_string(**reply, "version");
}

Result<std::vector<MongoCollectionInfo>> MongoClient::list_collections(std::string_view db) {
  std::unique_ptr<mongoc_database_t, DatabaseDestroyer> database(
      mongoc_client_get_database(client_.get(), std::string(db).c_str()));
  std::unique_ptr<mongoc_cursor_t, detail::MongoCursorDestroyer> cursor(
      mongoc_database_find_collections_with_opts(database.get(), nullptr));
  std::vector<MongoCollectionInfo> out;
  auto start = Clock::now();
  const bson_t* doc = nullptr;
  while (mongoc_cursor_next(cursor.get(), &doc)) {
    MongoCollectionInfo info;
    info.name = iter_string(*doc, "name");
    info.type = iter_string(*doc, "type");
    bson_iter_t it;
    info.options_json = "{ }";
    if (bson_iter_init_find(&it, doc, "options") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
      uint32_t len = 0;
      const uint8_t* data = nullptr;
      bson_iter_document(&it, &len, &data);
      bson_t sub;
      if (bson_init_static(&sub, data, len)) info.options_json = bson_to_canonical_json(sub);
    }
    out.push_back(std::move(info));
  }
  bson_error_t err;
  if (mongoc_cursor_error(cursor.get(), &err)) {
    return driver_error(err, "listCollections of " + std::string(db) + " on " + endpoint_, start,
                        options_.io_timeout);
  }
  return out;
}

Result<MongoCursor> MongoClient::find(std::string_view db, std::string_view coll,
                                      std::string_view filter, const FindOptions& options) {
  std::string what = "find on " + std::string(db) + "." + std::string(coll) + " at " + endpoint_;
  auto f = parse_or_empty(filter, what + ": filter");
  if (!f) return f.error();
  BsonPtr opts = new_bson();
  if (!options.sort.empty()) {
    auto s = bson_from_json(options.sort);
    if (!s) return s.error().context(what + ": sort");
    BSON_APPEND_DOCUMENT(opts.get(), "sort", s->get());
  }
  if (!options.projection.empty()) {
    auto p = bson_from_json(options.projection);
    if (!p) return p.error().context(what + ": projection");
    BSON_APPEND_DOCUMENT(opts.get(), "projection", p->get());
  }
  if (options.batch_size > 0) BSON_APPEND_INT32(opts.get(), "batchSize", options.batch_size);
  if (options.limit > 0) BSON_APPEND_INT64(opts.get(), "limit", options.limit);
  if (options.snapshot && options.snapshot->session()) {
    bson_error_t err;
    if (!mongoc_client_session_append(options.snapshot->session(), opts.get(), &err)) {
      return fail(Failure::internal, what + ": " + describe(err));
    }
  }
  auto c = collection(db, coll);
  std::unique_ptr<mongoc_cursor_t, detail::MongoCursorDestroyer> cursor(
      mongoc_collection_find_with_opts(c.get(), f->get(), opts.get(), nullptr));
  bson_error_t err;
  if (mongoc_cursor_error(cursor.get(), &err)) {
    return fail(mongo_failure(err), what + ": " + describe(err));
  }
  return MongoCursor(std::move(c), std::move(cursor), what, options_.io_timeout);
}

Result<MongoSnapshot> MongoClient::begin_snapshot(std::string_view db) {
  MongoSnapshot snap;
  std::string what = "starting a snapshot on " + endpoint_;
  std::unique_ptr<mongoc_session_opt_t, SessionOptsDestroyer> sopts(mongoc_session_opts_new());
  mongoc_session_opts_set_snapshot(sopts.get(), true);
  bson_error_t err;
  std::unique_ptr<mongoc_client_session_t, detail::MongoSessionDestroyer> session(
      mongoc_client_start_session(client_.get(), sopts.get(), &err));
  if (!session) {
    // No sessions (an old server, or a deployment without them): say so, read without.
    if (err.domain == MONGOC_ERROR_SERVER_SELECTION || err.domain == MONGOC_ERROR_STREAM) {
      return fail(mongo_failure(err), what + ": " + describe(err));
    }
    snap.fallback_reason_ = std::string("no sessions: ") + err.message;
    return snap;
  }
  snap.session_ = std::move(session);
  // A first read pins the snapshot's time: the server answers it with atClusterTime, which
  // the driver sends with every later read in the session.
  FindOptions probe;
  probe.limit = 1;
  probe.snapshot = &snap;
  auto cursor = find(db, "envkit_snapshot_probe", "{}", probe);
  Status status;
  if (cursor) {
    auto r = cursor->next();
    if (!r) status = r.error();
  } else {
    status = cursor.error();
  }
  if (!status) {
    const Error& e = status.error();
    if (e.code == Exit::unavailable || e.code == Exit::temp_fail || e.code == Exit::config) {
      return e.context(what);
    }
    snap.session_.reset();
    snap.fallback_reason_ = e.message;
    return snap;
  }
  uint32_t t = 0, i = 0;
  mongoc_client_session_get_operation_time(snap.session_.get(), &t, &i);
  if (t != 0) {
    snap.cluster_time_json_ = "{\"$timestamp\":{\"t\":" + std::to_string(t) +
                              ",\"i\":" + std::to_string(i) + "}}";
  }
  return snap;
}

Result<int64_t> MongoClient::insert_many(std::string_view db, std::string_view coll,
                                         const std::vector<std::string>& documents, bool ordered) {
  std::string what = "insert into " + std::string(db) + "." + std::string(coll) + " at " + endpoint_;
  if (documents.empty()) return int64_t{0};
  std::vector<BsonPtr> docs;
  docs.reserve(documents.size());
  for (size_t i = 0; i < documents.size(); ++i) {
    auto d = bson_from_json(documents[i]);
    if (!d) return d.error().context(what + ": document " + std::to_string(i + 1));
    docs.push_back(std::move(*d));
  }
  std::vector<const bson_t*> ptrs;
  ptrs.reserve(docs.size());
  for (const auto& d : docs) ptrs.push_back(d.get());
  BsonPtr opts(BCON_NEW("ordered", BCON_BOOL(ordered)));
  auto c = collection(db, coll);
  bson_t reply;
  bson_error_t err;
  auto start = Clock::now();
  bool ok = mongoc_collection_insert_many(c.get(), ptrs.data(), ptrs.size(), opts.get(), &reply, &err);
  int64_t inserted = 0;
  bson_iter_t it;
  if (bson_iter_init_find(&it, &reply, "insertedCount") && BSON_ITER_HOLDS_NUMBER(&it)) {
    inserted = bson_iter_as_int64(&it);
  }
  bson_destroy(&reply);
  if (!ok) {
    Error e = driver_error(err, what, start, options_.io_timeout);
    e.message += " (" + std::to_string(inserted) + " of " + std::to_string(documents.size()) +
                 " documents inserted)";
    return e;
  }
  return inserted;
}

Result<std::vector<std::string>> MongoClient::list_indexes(std::string_view db,
                                                           std::string_view coll) {
  auto c = collection(db, coll);
  std::unique_ptr<mongoc_cursor_t, detail::MongoCursorDestroyer> cursor(
      mongoc_collection_find_indexes_with_opts(c.get(), nullptr));
  std::vector<std::string> out;
  auto start = Clock::now();
  const bson_t* doc = nullptr;
  while (mongoc_cursor_next(cursor.get(), &doc)) out.push_back(bson_to_canonical_json(*doc));
  bson_error_t err;
  if (mongoc_cursor_error(cursor.get(), &err)) {
    if (err.code == 26) return std::vector<std::string>{};  // NamespaceNotFound
    return driver_error(err, "listIndexes of " + std::string(db) + "." + std::string(coll) +
                                 " on " + endpoint_,
                        start, options_.io_timeout);
  }
  return out;
}

Status MongoClient::create_indexes(std::string_view db, std::string_view coll,
                                   const std::vector<std::string>& specs) {
  std::string what = "createIndexes on " + std::string(db) + "." + std::string(coll) + " at " + endpoint_;
  BsonPtr cmd = new_bson();
  BSON_APPEND_UTF8(cmd.get(), "createIndexes", std::string(coll).c_str());
  bson_t array;
  BSON_APPEND_ARRAY_BEGIN(cmd.get(), "indexes", &array);
  int n = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    auto spec = bson_from_json(specs[i]);
    if (!spec) return spec.error().context(what + ": index " + std::to_string(i + 1));
    if (iter_string(**spec, "name") == "_id_") continue;
    bson_t entry;
    std::string key = std::to_string(n++);
    bson_append_document_begin(&array, key.c_str(), -1, &entry);
    bson_iter_t it;
    bson_iter_init(&it, spec->get());
    while (bson_iter_next(&it)) {
      std::string_view field = bson_iter_key(&it);
      if (field == "v" || field == "ns") continue;
      bson_append_iter(&entry, nullptr, 0, &it);
    }
    bson_append_document_end(&array, &entry);
  }
  bson_append_array_end(cmd.get(), &array);
  if (n == 0) return {};
  auto reply = command(db, *cmd, what, false);
  if (!reply) return reply.error();
  return {};
}

Status MongoClient::drop_collection(std::string_view db, std::string_view coll) {
  auto c = collection(db, coll);
  bson_error_t err;
  auto start = Clock::now();
  if (!mongoc_collection_drop_with_opts(c.get(), nullptr, &err)) {
    if (err.code == 26) return {};  // NamespaceNotFound: already gone
    return driver_error(err, "drop of " + std::string(db) + "." + std::string(coll) + " at " + endpoint_,
                        start, options_.io_timeout);
  }
  return {};
}

Result<int64_t> MongoClient::count(std::string_view db, std::string_view coll,
                                   std::string_view filter) {
  std::string what = "count on " + std::string(db) + "." + std::string(coll) + " at " + endpoint_;
  auto f = parse_or_empty(filter, what + ": filter");
  if (!f) return f.error();
  auto c = collection(db, coll);
  bson_error_t err;
  auto start = Clock::now();
  int64_t n = mongoc_collection_count_documents(c.get(), f->get(), nullptr, nullptr, nullptr, &err);
  if (n < 0) return driver_error(err, what, start, options_.io_timeout);
  return n;
}

Result<std::string> MongoClient::run_command(std::string_view db, std::string_view command_json) {
  std::string what = "command on " + std::string(db) + " at " + endpoint_;
  auto cmd = bson_from_json(command_json);
  if (!cmd) return cmd.error().context(what);
  bson_t reply;
  bson_error_t err;
  auto start = Clock::now();
  bool ok = mongoc_client_command_with_opts(client_.get(), std::string(db).c_str(), cmd->get(),
                                            nullptr, nullptr, &reply, &err);
  std::string json = bson_to_canonical_json(reply);
  std::string server_msg = reply_errmsg(&reply);
  bson_destroy(&reply);
  if (!ok) {
    Error e = driver_error(err, what, start, options_.io_timeout);
    if (!server_msg.empty() && e.message.find(server_msg) == std::string::npos) {
      e.message += ": " + server_msg;
    }
    return e;
  }
  return json;
}

}  // namespace envkit
