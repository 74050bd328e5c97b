// AMQP connector on rabbitmq-c 0.11: bounded connect and login, publisher confirms, consuming,
// and the AMQP sink.
#include <envkit/amqp.hpp>

#include <envkit/exit_status.hpp>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>

#include <envkit/log.hpp>

namespace envkit {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr amqp_channel_t kChannel = 1;
// RabbitMQ refuses messages over max_message_size (128 MiB by default) by closing the
// channel, which would fail the whole batch: such a record is rejected before it is sent.
constexpr size_t kMaxBody = 128u << 20;
// message-id is an AMQP short string: one length byte.
constexpr size_t kMaxMessageId = 255;
constexpr int kFrameMax = 131072;

amqp_bytes_t bytes_of(std::string_view s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());  // rabbitmq-c only reads what it is given
  return b;
}

std::string to_string(amqp_bytes_t b) {
  return b.bytes == nullptr ? std::string() : std::string(static_cast<const char*>(b.bytes), b.len);
}

timeval to_timeval(milliseconds ms) {
  long long total = ms.count() < 0 ? 0 : ms.count();
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(total / 1000);
  tv.tv_usec = static_cast<suseconds_t>((total % 1000) * 1000);
  return tv;
}

milliseconds until(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? milliseconds(0) : left;
}

std::string ms_text(milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

std::string describe_status(int status) { return amqp_error_string2(status); }

// AMQP reply codes (the spec's constants) as failure kinds (envkit/exit_status.hpp).
Failure reply_failure(uint16_t code) {
  switch (code) {
    case 403:  // ACCESS_REFUSED: at login, refused credentials (see connect()); later, an ACL
      return Failure::permission_denied;
    case 404:  // NOT_FOUND: no such queue or exchange
      return Failure::not_found;
    case 530:  // NOT_ALLOWED: an unknown vhost, or one the user may not use
      return Failure::not_found;
    case 402:  // INVALID_PATH
    case 406:  // PRECONDITION_FAILED: a queue declared with other arguments
      return Failure::config;
    case 311:  // CONTENT_TOO_LARGE
      return Failure::bad_data;
    case 405:  // RESOURCE_LOCKED (an exclusive queue of another connection)
      return Failure::lock_held;
    case 506:  // RESOURCE_ERROR: the broker is short of a resource
      return Failure::server_busy;
    case 501:  // FRAME_ERROR
    case 502:  // SYNTAX_ERROR
    case 503:  // COMMAND_INVALID
    case 505:  // UNEXPECTED_FRAME
    case 540:  // NOT_IMPLEMENTED
      return Failure::internal;
    default:  // 320 CONNECTION_FORCED, 504 CHANNEL_ERROR, 541 INTERNAL_ERROR
      return Failure::connection_lost;
  }
}

// A headers table copied out of rabbitmq-c's pools: integers and strings, which is what
// brokers put there (x-delivery-count, x-death's counts live in nested tables, left out).
std::vector<AmqpArgument> headers_of(const amqp_table_t& table) {
  std::vector<AmqpArgument> out;
  for (int i = 0; i < table.num_entries; ++i) {
    const amqp_table_entry_t& e = table.entries[i];
    std::string key = to_string(e.key);
    const amqp_field_value_t& v = e.value;
    switch (v.kind) {
      case AMQP_FIELD_KIND_I8: out.emplace_back(key, int64_t{v.value.i8}); break;
      case AMQP_FIELD_KIND_U8: out.emplace_back(key, int64_t{v.value.u8}); break;
      case AMQP_FIELD_KIND_I16: out.emplace_back(key, int64_t{v.value.i16}); break;
      case AMQP_FIELD_KIND_U16: out.emplace_back(key, int64_t{v.value.u16}); break;
      case AMQP_FIELD_KIND_I32: out.emplace_back(key, int64_t{v.value.i32}); break;
      case AMQP_FIELD_KIND_U32: out.emplace_back(key, int64_t{v.value.u32}); break;
      case AMQP_FIELD_KIND_I64: out.emplace_back(key, int64_t{v.value.i64}); break;
      case AMQP_FIELD_KIND_U64:
        out.emplace_back(key, static_cast<int64_t>(std::min<uint64_t>(v.value.u64, INT64_MAX)));
        break;
      case AMQP_FIELD_KIND_UTF8:
      case AMQP_FIELD_KIND_BYTES: out.emplace_back(key, to_string(v.value.bytes)); break;
      default: break;
    }
  }
  return out;
}

template <class Int>
std::optional<Int> parse_int(std::string_view text) {
  Int value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// A TCP connection opened by hand rather than by rabbitmq-c, whose errors say only "a socket
// error occurred": the operator wants "connection refused" or "no answer within 300 ms".
Result<int> tcp_connect(const std::string& host, uint16_t port, Clock::time_point deadline,
                        milliseconds connect_timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  addrinfo* list = nullptr;
  std::string port_text = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &list); rc != 0) {
    std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
    return fail(failure_from_gai(rc), "cannot resolve host '" + host + "': " + why);
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owner(list, ::freeaddrinfo);
  std::string why = "no address";
  Failure kind = Failure::name_not_found;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      kind = Failure::internal;
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int n = 0;
      do {
        n = ::poll(&p, 1, static_cast<int>(until(deadline).count()));
      } while (n < 0 && errno == EINTR);
      if (n == 0) {
        ::close(fd);
        return fail(Failure::unreachable, "no answer within " + ms_text(connect_timeout));
      }
      int err = 0;
      socklen_t len = sizeof err;
      if (n < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc == 0) return fd;
    why = std::strerror(errno);
    kind = failure_from_socket_errno(errno);
    ::close(fd);
  }
  // strerror says "Connection refused"; messages here read in lower case.
  if (!why.empty()) why[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(why[0])));
  return fail(kind, why);
}

}  // namespace

// Shuts the socket down when publishing makes no progress for the I/O timeout. rabbitmq-c
// sends with no deadline at all: a broker that stops reading (a connection blocked by a
// memory or disk alarm) would hold basic_publish for ever. shutdown(2) makes its poll and
// send fail at once, from another thread, without closing the descriptor under it.
class detail::AmqpWatchdog {
 public:
  AmqpWatchdog(int fd, milliseconds timeout) : fd_(fd), timeout_(timeout) {}
  AmqpWatchdog(const AmqpWatchdog&) = delete;
  AmqpWatchdog& operator=(const AmqpWatchdog&) = delete;
  ~AmqpWatchdog() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void arm() {
    {
      std::lock_guard lock(mu_);
      touch();
      armed_ = true;
      if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    }
    cv_.notify_all();
  }
  // Called after every message: the deadline only ever moves later, so no wake-up is needed.
  void touch() {
    deadline_.store((Clock::now() + timeout_).time_since_epoch().count(),
                    std::memory_order_relaxed);
  }
  void disarm() {
    std::lock_guard lock(mu_);
    armed_ = false;
  }
  bool fired() const { return fired_.load(); }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (!armed_) {
        cv_.wait(lock);
        continue;
      }
      Clock::time_point deadline{Clock::duration(deadline_.load(std::memory_order_relaxed))};
      if (Clock::now() >= deadline) {
        fired_ = true;
        armed_ = false;
        ::shutdown(fd_, SHUT_RDWR);
        continue;
      }
      cv_.wait_until(lock, deadline);
    }
  }

  int fd_;
  milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false;
  bool stop_ = false;
  std::atomic<Clock::rep> deadline_{0};
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

namespace detail {
void AmqpStateDestroyer::operator()(amqp_connection_state_t_* state) const {
  amqp_destroy_connection(state);
}
void AmqpWatchdogDeleter::operator()(AmqpWatchdog* watchdog) const { delete watchdog; }
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Settings

Result<AmqpSettings> amqp_settings(const Url& url, const ConnectionOptions& options) {
  AmqpSettings s;
  s.endpoint = url.redacted();
  auto bad = [&](std::string why) { return fail(Failure::usage, why + " in " + s.endpoint); };
  if (url.scheme != "amqp" && url.scheme != "amqps") {
    return bad("not an AMQP URL (amqp:// or amqps://)");
  }
  if (url.hosts.empty()) return bad("no host");
  for (size_t i = 0; i < url.hosts.size(); ++i) {
    HostPort h = url.hosts[i];
    h.port = url.port_or_default(i);
    s.hosts.push_back(std::move(h));
  }
  // The path is already percent-decoded: "/%2f" arrives as "/", and "" means the default.
  s.vhost = url.path.empty() ? "/" : url.path;
  if (url.user.empty() && !url.password) {
    s.user = "guest";
    s.password = "guest";
  } else {
    s.user = url.user;
    s.password = url.password.value_or("");
  }
  s.queue = url.param("queue").value_or("");
  s.exchange = url.param("exchange").value_or("");
  s.routing_key = url.param("routing-key").value_or(s.queue);
  if (auto v = url.param("heartbeat")) {
    auto n = parse_int<int>(*v);
    if (!n || *n < 0 || *n > 65535) return bad("bad heartbeat=" + *v + " (seconds, 0 to 65535)");
    s.heartbeat_seconds = *n;
  }
  if (auto v = url.param("prefetch")) {
    auto n = parse_int<uint16_t>(*v);
    if (!n || *n == 0) return bad("bad prefetch=" + *v + " (1 to 65535)");
    s.prefetch = *n;
  }
  for (const auto& [key, value] : url.query) {
    constexpr std::string_view kPrefix = "queue-arg.";
    if (key.size() <= kPrefix.size() || key.compare(0, kPrefix.size(), kPrefix) != 0) continue;
    std::string name = key.substr(kPrefix.size());
    if (auto n = parse_int<int64_t>(value)) {
      s.queue_arguments.emplace_back(name, *n);
    } else {
      s.queue_arguments.emplace_back(name, value);
    }
  }
  if (s.queue.empty() && s.exchange.empty() && url.param("routing-key")) {
    return bad("routing-key without exchange= or queue=");
  }

  // ?tls=...&tls-ca=... override the command-wide TLS options for this endpoint.
  auto tls = tls_options_from_url(url, options.tls);
  if (!tls) return tls.error();
  s.tls = *tls;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Confirm bookkeeping

void AmqpConfirmTracker::begin(uint64_t first_tag) {
  first_tag_ = first_tag;
  entries_.clear();
  unresolved_ = 0;
  settled_below_ = 0;
  return_cursor_ = 0;
}

void AmqpConfirmTracker::published(size_t index, std::string_view message_id) {
  Entry e;
  e.index = index;
  e.message_id = std::string(message_id);
  entries_.push_back(std::move(e));
  ++unresolved_;
}

void AmqpConfirmTracker::settle(uint64_t tag, bool multiple, State state) {
  // "multiple" with tag 0 means every outstanding message (AMQP 0-9-1, basic.ack).
  size_t end = 0;
  if (multiple && tag == 0) {
    end = entries_.size();
  } else if (tag >= first_tag_) {
    end = std::min<uint64_t>(tag - first_tag_ + 1, entries_.size());
    if (tag - first_tag_ >= entries_.size()) return;  // not ours: a tag we never sent
  }
  if (end == 0) return;  // a previous batch's straggler
  size_t begin = multiple ? settled_below_ : end - 1;
  for (size_t i = begin; i < end; ++i) {
    if (entries_[i].state == State::pending) {
      entries_[i].state = state;
      --unresolved_;
    }
  }
  while (settled_below_ < entries_.size() && entries_[settled_below_].state != State::pending) {
    ++settled_below_;
  }
}

void AmqpConfirmTracker::acked(uint64_t tag, bool multiple) { settle(tag, multiple, State::acked); }
void AmqpConfirmTracker::nacked(uint64_t tag, bool multiple) {
  settle(tag, multiple, State::nacked);
}

bool AmqpConfirmTracker::returned(std::string_view message_id, std::string reason) {
  auto matches = [&](const Entry& e) {
    return e.state == State::pending && !e.returned && e.message_id == message_id;
  };
  // Returns come in publish order, so the next one is almost always at or after the cursor.
  for (size_t pass = 0; pass < 2; ++pass) {
    size_t from = pass == 0 ? std::max(return_cursor_, settled_below_) : settled_below_;
    size_t to = pass == 0 ? entries_.size() : std::min(return_cursor_, entries_.size());
    for (size_t i = from; i < to; ++i) {
      if (matches(entries_[i])) {
        entries_[i].returned = true;
        entries_[i].return_reason = std::move(reason);
        return_cursor_ = i + 1;
        return true;
      }
    }
  }
  return false;
}

std::vector<AmqpConfirmTracker::Outcome> AmqpConfirmTracker::outcomes(
    std::string_view unresolved_reason) const {
  std::vector<Outcome> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) {
    Outcome o;
    o.index = e.index;
    if (e.returned) {
      o.delivery = {envkit::Outcome::failed, e.return_reason};
    } else if (e.state == State::acked) {
      o.delivery = {envkit::Outcome::durable, ""};
    } else if (e.state == State::nacked) {
      o.delivery = {envkit::Outcome::failed,
                    "the broker refused the message (basic.nack): a queue is full with "
                    "x-overflow=reject-publish, or the broker failed internally"};
    } else {
      o.delivery = {envkit::Outcome::failed, std::string(unresolved_reason)};
    }
    out.push_back(std::move(o));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Connection

struct AmqpConnection::Frame {
  amqp_frame_t frame{};
};

AmqpConnection::AmqpConnection(
    std::unique_ptr<amqp_connection_state_t_, detail::AmqpStateDestroyer> state,
    std::string endpoint, ConnectionOptions options)
    : state_(std::move(state)), endpoint_(std::move(endpoint)), options_(std::move(options)) {}

AmqpConnection::AmqpConnection(AmqpConnection&&) noexcept = default;

AmqpConnection& AmqpConnection::operator=(AmqpConnection&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::move(other.state_);
    watchdog_ = std::move(other.watchdog_);
    endpoint_ = std::move(other.endpoint_);
    options_ = std::move(other.options_);
    failure_ = std::move(other.failure_);
    failure_code_ = other.failure_code_;
    confirms_ = other.confirms_;
    next_tag_ = other.next_tag_;
    tracker_ = std::move(other.tracker_);
    deliveries_ = std::move(other.deliveries_);
    consumer_tag_ = std::move(other.consumer_tag_);
  }
  return *this;
}

AmqpConnection::~AmqpConnection() { close(); }

void AmqpConnection::close() {
  if (!state_) return;
  if (usable()) {
    // A polite close lets the broker log "client closed" instead of "connection lost"; it
    // must not hold a command that is exiting, so it gets a second at most.
    milliseconds bound = std::min(options_.io_timeout, milliseconds(1000));
    timeval tv = to_timeval(bound);
    amqp_set_rpc_timeout(state_.get(), &tv);
    if (watchdog_) {
      watchdog_->arm();
    }
    amqp_channel_close(state_.get(), kChannel, AMQP_REPLY_SUCCESS);
    amqp_connection_close(state_.get(), AMQP_REPLY_SUCCESS);
    if (watchdog_) watchdog_->disarm();
  }
  watchdog_.reset();  // before the descriptor it watches is closed
  state_.reset();
}

Result<AmqpConnection> AmqpConnection::connect(const Url& url, const ConnectionOptions& options) {
  auto settings = amqp_settings(url, options);
  if (!settings) return settings.error();
  return connect(*settings, options);
}

Result<AmqpConnection> AmqpConnection::connect(const AmqpSettings& s,
                                               const ConnectionOptions& options) {
  const std::string prefix = "cannot connect to " + s.endpoint;
  const Clock::time_point deadline = Clock::now() + options.connect_timeout;
  std::unique_ptr<amqp_connection_state_t_, detail::AmqpStateDestroyer> state(
      amqp_new_connection());
  if (!state) return envkit::fail(Failure::internal, prefix + ": out of memory");

  std::string failures;
  Exit failed_with = exit_for(Failure::unreachable);  // the last host's failure decides
  bool opened = false;
  for (const HostPort& h : s.hosts) {
    std::string where = s.hosts.size() > 1 ? h.host + ":" + std::to_string(h.port) + ": " : "";
    if (Clock::now() >= deadline) {
      failures += (failures.empty() ? "" : "; ") + where + "no time left";
      continue;
    }
    if (!s.tls.enabled) {
      auto fd = tcp_connect(h.host, h.port, deadline, options.connect_timeout);
      if (!fd) {
        failures += (failures.empty() ? "" : "; ") + where + fd.error().message;
        failed_with = fd.error().code;
        continue;
      }
      amqp_socket_t* socket = amqp_tcp_socket_new(state.get());
      if (socket == nullptr) {
        ::close(*fd);
        return envkit::fail(Failure::internal, prefix + ": out of memory");
      }
      amqp_tcp_socket_set_sockfd(socket, *fd);  // the socket owns the descriptor now
      opened = true;
      break;
    }
    amqp_socket_t* socket = amqp_ssl_socket_new(state.get());
    if (socket == nullptr) return envkit::fail(Failure::internal, prefix + ": cannot create a TLS socket");
    auto* ctx = static_cast<SSL_CTX*>(amqp_ssl_socket_get_context(socket));
    if (!s.tls.ca_file.empty()) {
      if (amqp_ssl_socket_set_cacert(socket, s.tls.ca_file.c_str()) != AMQP_STATUS_OK) {
        return envkit::fail(Failure::config, prefix + ": cannot load the CA file " + s.tls.ca_file);
      }
    } else if (ctx != nullptr) {
      SSL_CTX_set_default_verify_paths(ctx);  // the system store, as curl and kcat use
    }
    if (!s.tls.cert_file.empty() &&
        amqp_ssl_socket_set_key(socket, s.tls.cert_file.c_str(), s.tls.key_file.c_str()) !=
            AMQP_STATUS_OK) {
      return envkit::fail(Failure::config, prefix + ": cannot load the client certificate " +
                                       s.tls.cert_file + " and key " + s.tls.key_file);
    }
    amqp_ssl_socket_set_verify_peer(socket, s.tls.verify ? 1 : 0);
    if (s.tls.verify && !s.tls.server_name.empty() && ctx != nullptr) {
      // rabbitmq-c checks the name it connected to; another expected name is OpenSSL's job.
      amqp_ssl_socket_set_verify_hostname(socket, 0);
      X509_VERIFY_PARAM_set1_host(SSL_CTX_get0_param(ctx), s.tls.server_name.c_str(), 0);
    } else {
      amqp_ssl_socket_set_verify_hostname(socket, s.tls.verify ? 1 : 0);
    }
    timeval tv = to_timeval(until(deadline));
    int rc = amqp_socket_open_noblock(socket, h.host.c_str(), h.port, &tv);
    if (rc == AMQP_STATUS_OK) {
      opened = true;
      break;
    }
    if (rc == AMQP_STATUS_SSL_PEER_VERIFY_FAILED) {
      return envkit::fail(Failure::tls_failed, prefix + ": " + describe_status(rc) +
                                           " (is its CA in tls-ca= / --tls-ca, or the system store?)");
    }
    if (rc == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED) {
      return envkit::fail(Failure::tls_failed, prefix + ": " + describe_status(rc) +
                                           " (the certificate does not name '" + h.host +
                                           "'; see tls-server-name=)");
    }
    std::string why = rc == AMQP_STATUS_TIMEOUT
                          ? "no answer within " + ms_text(options.connect_timeout)
                          : describe_status(rc);
    failures += (failures.empty() ? "" : "; ") + where + why;
    failed_with = exit_for(rc == AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED ? failure_resolving(h.host)
                           : rc == AMQP_STATUS_SSL_CONNECTION_FAILED    ? Failure::tls_failed
                           : rc == AMQP_STATUS_TIMEOUT                  ? Failure::unreachable
                                                                        : Failure::connection_lost);
  }
  if (!opened) return Error{failed_with, prefix + ": " + failures};

  // Login and channel set-up belong to connecting: a port that accepts and never speaks AMQP
  // must fail within the connect timeout.
  timeval handshake = to_timeval(until(deadline));
  amqp_set_handshake_timeout(state.get(), &handshake);

  // Capabilities the broker only uses when the client claims them: a connection.close naming
  // refused credentials instead of a bare hang-up, and word of resource-alarm blocks.
  amqp_table_entry_t capabilities[] = {
      {amqp_cstring_bytes("authentication_failure_close"), {AMQP_FIELD_KIND_BOOLEAN, {}}},
      {amqp_cstring_bytes("connection.blocked"), {AMQP_FIELD_KIND_BOOLEAN, {}}},
      {amqp_cstring_bytes("consumer_cancel_notify"), {AMQP_FIELD_KIND_BOOLEAN, {}}},
  };
  for (auto& c : capabilities) c.value.value.boolean = 1;
  amqp_table_entry_t properties[] = {
      {amqp_cstring_bytes("product"), {AMQP_FIELD_KIND_UTF8, {}}},
      {amqp_cstring_bytes("version"), {AMQP_FIELD_KIND_UTF8, {}}},
      {amqp_cstring_bytes("connection_name"), {AMQP_FIELD_KIND_UTF8, {}}},
      {amqp_cstring_bytes("capabilities"), {AMQP_FIELD_KIND_TABLE, {}}},
  };
  properties[0].value.value.bytes = amqp_cstring_bytes("envkit");
  properties[1].value.value.bytes = amqp_cstring_bytes(ENVKIT_VERSION);
  properties[2].value.value.bytes = amqp_cstring_bytes(log_settings().tool.c_str());
  properties[3].value.value.table = {static_cast<int>(std::size(capabilities)), capabilities};
  amqp_table_t client_properties{static_cast<int>(std::size(properties)), properties};

  amqp_rpc_reply_t reply = amqp_login_with_properties(
      state.get(), s.vhost.c_str(), 0, kFrameMax, s.heartbeat_seconds, &client_properties,
      AMQP_SASL_METHOD_PLAIN, s.user.c_str(), s.password.c_str());
  if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
    int rc = reply.library_error;
    if (rc == AMQP_STATUS_TIMEOUT) {
      return envkit::fail(Failure::unreachable, prefix + ": no answer within " +
                                            ms_text(options.connect_timeout) +
                                            " (is it an AMQP 0-9-1 broker?)");
    }
    if (rc == AMQP_STATUS_CONNECTION_CLOSED || rc == AMQP_STATUS_SOCKET_ERROR) {
      return envkit::fail(Failure::connection_lost,
                  prefix + ": the server closed the connection during the handshake");
    }
    return envkit::fail(Failure::connection_lost, prefix + ": login failed: " + describe_status(rc));
  }
  if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
    uint16_t code = 0;
    std::string text;
    if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
      auto* close = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
      code = close->reply_code;
      text = to_string(close->reply_text);
      amqp_connection_close_ok_t ok{};
      amqp_send_method(state.get(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    }
    // At login, 403 is refused credentials; 530 an unknown vhost or one the user may not use.
    Failure kind = code == 0     ? Failure::connection_lost
                   : code == 403 ? Failure::auth_refused
                                 : reply_failure(code);
    std::string what = code == 403 ? "login refused" : code == 530 ? "vhost refused" : "refused";
    return envkit::fail(kind, prefix + ": " + what + ": " + std::to_string(code) + " " + text);
  }

  // What is left of the connect timeout bounds opening the channel (rabbitmq-c reads a zero
  // timeout as "return at once", so it gets a millisecond at least).
  timeval rpc = to_timeval(std::max(until(deadline), milliseconds(1)));
  amqp_set_rpc_timeout(state.get(), &rpc);
  int fd = amqp_get_sockfd(state.get());
  AmqpConnection conn(std::move(state), s.endpoint, options);
  conn.watchdog_.reset(new detail::AmqpWatchdog(fd, options.io_timeout));
  if (auto st = conn.open_channel(); !st) {
    return Error{st.error().code, prefix + ": " + st.error().message};
  }
  if (auto st = conn.set_rpc_timeout(options.io_timeout); !st) return st.error();
  return conn;
}

Status AmqpConnection::set_rpc_timeout(milliseconds timeout) {
  timeval tv = to_timeval(timeout);
  if (amqp_set_rpc_timeout(state_.get(), &tv) != AMQP_STATUS_OK) {
    return fail(Failure::internal, "cannot set the RPC timeout");
  }
  return {};
}

Error AmqpConnection::fail(Failure kind, std::string why) {
  if (failure_.empty()) {
    failure_ = why;
    failure_code_ = exit_for(kind);
  }
  return Error{exit_for(kind), endpoint_ + ": " + why};
}

Error AmqpConnection::unusable() const {
  return Error{failure_code_, "the connection to " + endpoint_ +
                                  " is unusable after an earlier error: " + failure_};
}

// Turns the last RPC reply into a Status; a channel or connection closed by the broker makes
// the connection unusable (its channel is gone; a fresh connection starts clean).
Status AmqpConnection::check_rpc(std::string_view what) {
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_.get());
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return {};
    case AMQP_RESPONSE_NONE:
      return fail(Failure::internal, std::string(what) + ": no reply");
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: {
      int rc = reply.library_error;
      if (rc == AMQP_STATUS_TIMEOUT) {
        return fail(Failure::io_timeout,
                    std::string(what) + ": no answer within " + ms_text(options_.io_timeout));
      }
      return fail(Failure::connection_lost, std::string(what) + ": " + describe_status(rc));
    }
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      break;
  }
  uint16_t code = 0;
  std::string text;
  if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    auto* close = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
    code = close->reply_code;
    text = to_string(close->reply_text);
    amqp_channel_close_ok_t ok{};
    amqp_send_method(state_.get(), kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
  } else if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    auto* close = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
    code = close->reply_code;
    text = to_string(close->reply_text);
    amqp_connection_close_ok_t ok{};
    amqp_send_method(state_.get(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
  }
  return fail(code == 0 ? Failure::connection_lost : reply_failure(code), std::string(what) + ": " + std::to_string(code) + " " + text);
}

Status AmqpConnection::open_channel() {
  amqp_channel_open(state_.get(), kChannel);
  return check_rpc("opening a channel");
}

Status AmqpConnection::enable_confirms() {
  if (confirms_) return {};
  amqp_confirm_select(state_.get(), kChannel);
  if (auto st = check_rpc("enabling publisher confirms"); !st) return st;
  confirms_ = true;
  next_tag_ = 1;
  return {};
}

Status AmqpConnection::declare_queue(std::string_view name, bool durable,
                                     const std::vector<AmqpArgument>& arguments) {
  if (!usable()) return unusable();
  std::vector<amqp_table_entry_t> entries(arguments.size());
  for (size_t i = 0; i < arguments.size(); ++i) {
    entries[i].key = bytes_of(arguments[i].first);
    if (const auto* n = std::get_if<int64_t>(&arguments[i].second)) {
      entries[i].value.kind = AMQP_FIELD_KIND_I64;
      entries[i].value.value.i64 = *n;
    } else {
      entries[i].value.kind = AMQP_FIELD_KIND_UTF8;
      entries[i].value.value.bytes = bytes_of(std::get<std::string>(arguments[i].second));
    }
  }
  amqp_table_t table{static_cast<int>(entries.size()), entries.data()};
  amqp_queue_declare(state_.get(), kChannel, bytes_of(name), /*passive=*/0, durable ? 1 : 0,
                     /*exclusive=*/0, /*auto_delete=*/0, table);
  return check_rpc("declaring queue '" + std::string(name) + "'");
}

Result<uint32_t> AmqpConnection::queue_message_count(std::string_view name) {
  if (!usable()) return unusable();
  auto* ok = amqp_queue_declare(state_.get(), kChannel, bytes_of(name), /*passive=*/1, 0, 0, 0,
                                amqp_empty_table);
  if (auto st = check_rpc("looking up queue '" + std::string(name) + "'"); !st) return st.error();
  return ok->message_count;
}

Result<uint32_t> AmqpConnection::delete_queue(std::string_view name) {
  if (!usable()) return unusable();
  auto* ok = amqp_queue_delete(state_.get(), kChannel, bytes_of(name), 0, 0);
  if (auto st = check_rpc("deleting queue '" + std::string(name) + "'"); !st) return st.error();
  return ok->message_count;
}

void AmqpConnection::release_buffers() {
  // Frames rabbitmq-c queued while sending live in its channel pools: recycling a pool under
  // them would corrupt them, so release only when nothing is queued.
  if (!amqp_frames_enqueued(state_.get())) {
    amqp_maybe_release_buffers_on_channel(state_.get(), kChannel);
    amqp_maybe_release_buffers_on_channel(state_.get(), 0);
  }
}

Result<bool> AmqpConnection::read_frame(Clock::time_point deadline, Frame& out) {
  timeval tv = to_timeval(until(deadline));
  int rc = amqp_simple_wait_frame_noblock(state_.get(), &out.frame, &tv);
  if (rc == AMQP_STATUS_OK) return true;
  if (rc == AMQP_STATUS_TIMEOUT) return false;
  if (watchdog_ && watchdog_->fired()) {
    return fail(Failure::server_busy, "no progress within " + ms_text(options_.io_timeout) +
                                       " (is the broker blocking publishers on a resource alarm?)");
  }
  if (rc == AMQP_STATUS_HEARTBEAT_TIMEOUT) {
    return fail(Failure::connection_lost, "the broker stopped sending heartbeats");
  }
  if (rc == AMQP_STATUS_CONNECTION_CLOSED || rc == AMQP_STATUS_SOCKET_ERROR) {
    return fail(Failure::connection_lost, "the connection was lost (" + describe_status(rc) + ")");
  }
  return fail(Failure::connection_lost, "reading from the broker failed: " + describe_status(rc));
}

// The header and body frames that follow basic.deliver and basic.return, copied out of
// rabbitmq-c's pools. Only body, message_id, content_type and headers of the result are filled.
Result<AmqpMessage> AmqpConnection::read_content(Clock::time_point deadline) {
  AmqpMessage out;
  Frame f;
  auto incomplete = [&] {
    return fail(Failure::io_timeout,
                "a message arrived incomplete: no content within " + ms_text(options_.io_timeout));
  };
  auto got = read_frame(deadline, f);
  if (!got) return got.error();
  if (!*got) return incomplete();
  if (f.frame.frame_type != AMQP_FRAME_HEADER) {
    return fail(Failure::wrong_protocol, "expected a content header frame from the broker");
  }
  const auto* props =
      static_cast<const amqp_basic_properties_t*>(f.frame.payload.properties.decoded);
  if (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) out.message_id = to_string(props->message_id);
  if (props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) {
    out.content_type = to_string(props->content_type);
  }
  if (props->_flags & AMQP_BASIC_HEADERS_FLAG) out.headers = headers_of(props->headers);
  uint64_t size = f.frame.payload.properties.body_size;
  out.body.reserve(size);
  while (out.body.size() < size) {
    got = read_frame(deadline, f);
    if (!got) return got.error();
    if (!*got) return incomplete();
    if (f.frame.frame_type != AMQP_FRAME_BODY) {
      return fail(Failure::wrong_protocol, "expected a content body frame from the broker");
    }
    out.body.append(static_cast<const char*>(f.frame.payload.body_fragment.bytes),
                    f.frame.payload.body_fragment.len);
  }
  return out;
}

Status AmqpConnection::dispatch(const Frame& f, Clock::time_point deadline) {
  const amqp_frame_t& frame = f.frame;
  if (frame.frame_type != AMQP_FRAME_METHOD) return {};  // stray content: nothing waits for it
  const amqp_method_t& method = frame.payload.method;
  switch (method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      auto* m = static_cast<amqp_basic_ack_t*>(method.decoded);
      tracker_.acked(m->delivery_tag, m->multiple != 0);
      return {};
    }
    case AMQP_BASIC_NACK_METHOD: {
      auto* m = static_cast<amqp_basic_nack_t*>(method.decoded);
      tracker_.nacked(m->delivery_tag, m->multiple != 0);
      return {};
    }
    case AMQP_BASIC_RETURN_METHOD: {
      auto* m = static_cast<amqp_basic_return_t*>(method.decoded);
      std::string reason =
          "the broker could not route the message: " + std::to_string(m->reply_code) + " " +
          to_string(m->reply_text) + " (exchange '" + to_string(m->exchange) + "', routing key '" +
          to_string(m->routing_key) + "': is a queue bound?)";
      auto content = read_content(deadline);
      if (!content) return content.error();
      if (!tracker_.returned(content->message_id, std::move(reason))) {
        log_debug("a returned message matched no published one on " + endpoint_);
      }
      return {};
    }
    case AMQP_BASIC_DELIVER_METHOD: {
      auto* m = static_cast<amqp_basic_deliver_t*>(method.decoded);
      AmqpMessage msg;
      msg.delivery_tag = m->delivery_tag;
      msg.redelivered = m->redelivered != 0;
      msg.exchange = to_string(m->exchange);
      msg.routing_key = to_string(m->routing_key);
      auto content = read_content(deadline);
      if (!content) return content.error();
      msg.body = std::move(content->body);
      msg.message_id = std::move(content->message_id);
      msg.content_type = std::move(content->content_type);
      msg.headers = std::move(content->headers);
      deliveries_.push_back(std::move(msg));
      return {};
    }
    case AMQP_BASIC_CANCEL_METHOD:
      consumer_tag_.clear();
      return fail(Failure::not_found, "the broker cancelled the consumer (was the queue deleted?)");
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto* m = static_cast<amqp_channel_close_t*>(method.decoded);
      uint16_t code = m->reply_code;
      std::string text = to_string(m->reply_text);
      amqp_channel_close_ok_t ok{};
      amqp_send_method(state_.get(), kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
      return fail(reply_failure(code),
                  "the broker closed the channel: " + std::to_string(code) + " " + text);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto* m = static_cast<amqp_connection_close_t*>(method.decoded);
      uint16_t code = m->reply_code;
      std::string text = to_string(m->reply_text);
      amqp_connection_close_ok_t ok{};
      amqp_send_method(state_.get(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      return fail(reply_failure(code),
                  "the broker closed the connection: " + std::to_string(code) + " " + text);
    }
    case AMQP_CONNECTION_BLOCKED_METHOD: {
      auto* m = static_cast<amqp_connection_blocked_t*>(method.decoded);
      log_warning(endpoint_ + ": the broker blocks publishing: " + to_string(m->reason));
      return {};
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
      log_info(endpoint_ + ": the broker accepts publishing again");
      return {};
    default:
      log_debug(endpoint_ + ": ignoring AMQP method " + amqp_method_name(method.id));
      return {};
  }
}

bool AmqpConnection::alive() {
  if (!usable()) return false;
  Frame f;
  // Bounded: at most what is already buffered, never a wait.
  for (int i = 0; i < 1024; ++i) {
    auto got = read_frame(Clock::now(), f);
    if (!got || !*got) break;
    if (!dispatch(f, Clock::now() + options_.io_timeout)) break;
  }
  release_buffers();
  return usable();
}

Result<std::vector<Delivery>> AmqpConnection::publish(std::span<const Record> records,
                                                      const AmqpRoute& route) {
  if (!usable()) return unusable();
  std::vector<Delivery> out(records.size());
  if (records.empty()) return out;
  if (auto st = enable_confirms(); !st) return st.error();

  tracker_.begin(next_tag_);
  amqp_basic_properties_t props{};
  props._flags =
      AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.content_type = amqp_cstring_bytes("application/json");
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  amqp_bytes_t exchange = bytes_of(route.exchange);
  amqp_bytes_t routing_key = bytes_of(route.routing_key);

  // Pipelined: every message goes out before any confirm is awaited. rabbitmq-c reads (and
  // queues) whatever the broker sends whenever a send would block, so this cannot deadlock.
  std::string send_failure;
  watchdog_->arm();
  size_t sent_to = 0;
  for (; sent_to < records.size(); ++sent_to) {
    const Record& r = records[sent_to];
    if (r.id.size() > kMaxMessageId) {
      out[sent_to] = {envkit::Outcome::rejected,
                      "the id is " + std::to_string(r.id.size()) +
                          " bytes long; an AMQP message-id holds at most 255"};
      continue;
    }
    if (r.json.size() > kMaxBody) {
      out[sent_to] = {envkit::Outcome::rejected,
                      "the record is " + std::to_string(r.json.size()) +
                          " bytes long; RabbitMQ takes at most 128 MiB per message"};
      continue;
    }
    props.message_id = bytes_of(r.id);
    int rc = amqp_basic_publish(state_.get(), kChannel, exchange, routing_key, /*mandatory=*/1,
                                /*immediate=*/0, &props, bytes_of(r.json));
    if (rc != AMQP_STATUS_OK) {
      send_failure = watchdog_->fired()
                         ? "no progress within " + ms_text(options_.io_timeout) +
                               " while publishing (is the broker blocking publishers on a "
                               "resource alarm?)"
                         : "publishing failed: " + describe_status(rc);
      break;
    }
    tracker_.published(sent_to, r.id);
    ++next_tag_;
    watchdog_->touch();
  }
  watchdog_->disarm();
  if (!send_failure.empty()) fail(Failure::connection_lost, send_failure);
  bool broke_while_sending = !usable();

  // Collect confirms. Each wait is bounded by the I/O timeout from the last frame that
  // settled something, so a slow but working broker is waited for and a silent one is not.
  // After a send failure, what already arrived is still read (without waiting): records
  // the broker confirmed before the connection broke are durable.
  Clock::time_point deadline = Clock::now() + options_.io_timeout;
  bool timed_out = false;
  if (broke_while_sending) deadline = Clock::now();  // read only what already arrived
  while (tracker_.unresolved() > 0 && (usable() || broke_while_sending)) {
    Frame f;
    auto got = read_frame(deadline, f);
    if (!got) break;
    if (!*got) {
      timed_out = true;
      break;
    }
    size_t before = tracker_.unresolved();
    if (!dispatch(f, deadline)) break;
    if (tracker_.unresolved() != before && !broke_while_sending) {
      deadline = Clock::now() + options_.io_timeout;
    }
  }
  if (usable()) release_buffers();
  if (timed_out) {
    // Unconfirmed tags would settle later, in the middle of the next batch: start afresh.
    fail(Failure::io_timeout, "no publisher confirm within " + ms_text(options_.io_timeout));
  }

  std::string unresolved_reason =
      usable() ? "not confirmed by the broker" : "not confirmed: " + failure_;
  bool any_settled = false;  // durable or rejected: something the caller must hear about
  for (auto& o : tracker_.outcomes(unresolved_reason)) out[o.index] = std::move(o.delivery);
  for (size_t i = 0; i < records.size(); ++i) {
    if (out[i].outcome != envkit::Outcome::failed) {
      any_settled = true;
    } else if (out[i].error.empty()) {
      out[i].error = "not published: " + failure_;  // after the send that failed
    }
  }
  // The Sink contract: an Error when the batch failed as a whole. When the connection broke
  // before the broker settled anything, say so once instead of N times.
  if (!usable() && !any_settled) {
    return Error{failure_code_, "publishing to " + endpoint_ + " failed: " + failure_};
  }
  return out;
}

std::optional<int64_t> AmqpMessage::int_header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) {
      if (const auto* n = std::get_if<int64_t>(&value)) return *n;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

Status AmqpConnection::consume(std::string_view queue, uint16_t prefetch) {
  if (!usable()) return unusable();
  amqp_basic_qos(state_.get(), kChannel, 0, prefetch, 0);
  if (auto st = check_rpc("setting the prefetch count"); !st) return st;
  auto* ok = amqp_basic_consume(state_.get(), kChannel, bytes_of(queue), amqp_empty_bytes,
                                /*no_local=*/0, /*no_ack=*/0, /*exclusive=*/0, amqp_empty_table);
  if (auto st = check_rpc("consuming from queue '" + std::string(queue) + "'"); !st) return st;
  consumer_tag_ = to_string(ok->consumer_tag);
  return {};
}

Result<std::optional<AmqpMessage>> AmqpConnection::next(milliseconds timeout) {
  auto pop = [&]() -> std::optional<AmqpMessage> {
    AmqpMessage m = std::move(deliveries_.front());
    deliveries_.pop_front();
    return m;
  };
  if (!deliveries_.empty()) return pop();
  if (!usable()) return unusable();
  Clock::time_point deadline = Clock::now() + timeout;
  while (deliveries_.empty()) {
    Frame f;
    auto got = read_frame(deadline, f);
    if (!got) return got.error();
    if (!*got) break;
    if (auto st = dispatch(f, Clock::now() + options_.io_timeout); !st) return st.error();
  }
  release_buffers();
  if (deliveries_.empty()) return std::optional<AmqpMessage>{};
  return pop();
}

Status AmqpConnection::ack(uint64_t delivery_tag, bool multiple) {
  if (!usable()) return unusable();
  int rc = amqp_basic_ack(state_.get(), kChannel, delivery_tag, multiple ? 1 : 0);
  if (rc != AMQP_STATUS_OK) return fail(Failure::connection_lost, "ack failed: " + describe_status(rc));
  return {};
}

Status AmqpConnection::nack(uint64_t delivery_tag, bool requeue, bool multiple) {
  if (!usable()) return unusable();
  int rc = amqp_basic_nack(state_.get(), kChannel, delivery_tag, multiple ? 1 : 0, requeue ? 1 : 0);
  if (rc != AMQP_STATUS_OK) return fail(Failure::connection_lost, "nack failed: " + describe_status(rc));
  return {};
}

}  // namespace envkit
