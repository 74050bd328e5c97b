// Redis connector on hiredis 0.14: connection set-up, timeouts, error mapping, pipelining.
#include <envkit/redis.hpp>

#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include <envkit/exit_status.hpp>

namespace envkit {
namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  // hiredis reads a zero timeout as "wait forever"; the smallest bound it can keep is 1 ms.
  long long total = ms.count() < 1 ? 1 : ms.count();
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(total / 1000);
  tv.tv_usec = static_cast<suseconds_t>((total % 1000) * 1000);
  return tv;
}

// hiredis keeps only the text of a connect error: strerror(errno) for a socket error
// (REDIS_ERR_IO), gai_strerror() for a name that did not resolve (REDIS_ERR_OTHER).
Failure connect_failure(const redisContext& c, const std::string& host) {
  if (c.err == REDIS_ERR_OOM) return Failure::internal;
  if (c.err == REDIS_ERR_EOF) return Failure::connection_lost;
  if (c.err == REDIS_ERR_IO) {
    for (int e : {ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, ECONNRESET, EACCES}) {
      if (std::strcmp(c.errstr, std::strerror(e)) == 0) return failure_from_socket_errno(e);
    }
    return Failure::connection_lost;
  }
  return host.empty() ? Failure::no_input : failure_resolving(host);  // a Unix socket path
}

// An error reply to AUTH, SELECT or PING while connecting, by its code word.
Failure handshake_failure(std::string_view reply) {
  if (reply.starts_with("WRONGPASS") || reply.starts_with("NOAUTH") ||
      reply.find("invalid password") != std::string_view::npos ||
      reply.find("invalid username-password") != std::string_view::npos) {
    return Failure::auth_refused;
  }
  if (reply.starts_with("NOPERM")) return Failure::permission_denied;
  if (reply.find("DB index is out of range") != std::string_view::npos) return Failure::not_found;
  if (reply.starts_with("LOADING") || reply.starts_with("BUSY")) return Failure::server_busy;
  return Failure::config;
}

struct ReplyFreer {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFreer>;

// Commands are sent in batches of about this many bytes (or commands) before their replies
// are read: hiredis keeps the whole unsent output in one buffer and moves what is left after
// every write, so one huge batch costs quadratic copying as well as memory.
constexpr size_t kBatchBytes = 1 << 20;
constexpr size_t kBatchCommands = 16384;

// One command in RESP (an array of bulk strings), appended to `out`.
void append_resp(const std::vector<std::string>& argv, std::string& out) {
  char digits[24];
  auto header = [&](char kind, size_t n) {
    out += kind;
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
    out.append(digits, end);
    out += "\r\n";
  };
  header('*', argv.size());
  for (const auto& a : argv) {
    header('$', a.size());
    out += a;
    out += "\r\n";
  }
}

}  // namespace

namespace detail {
void RedisContextFreer::operator()(redisContext* context) const { redisFree(context); }
}  // namespace detail

RedisReply RedisReply::from(const redisReply& reply) {
  RedisReply out;
  switch (reply.type) {
    case REDIS_REPLY_STRING:
      out.type = Type::string;
      break;
    case REDIS_REPLY_STATUS:
      out.type = Type::status;
      break;
    case REDIS_REPLY_ERROR:
      out.type = Type::error;
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Type::integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Type::array;
      break;
    default:
      out.type = Type::nil;
      break;
  }
  if (out.type == Type::string || out.type == Type::status || out.type == Type::error) {
    if (reply.str) out.str.assign(reply.str, reply.len);
  } else if (out.type == Type::integer) {
    out.integer = reply.integer;
  } else if (out.type == Type::array) {
    out.elements.reserve(reply.elements);
    for (size_t i = 0; i < reply.elements; ++i) out.elements.push_back(from(*reply.element[i]));
  }
  return out;
}

RedisConnection::RedisConnection(std::unique_ptr<redisContext, detail::RedisContextFreer> context,
                                 std::string endpoint, ConnectionOptions options)
    : context_(std::move(context)), endpoint_(std::move(endpoint)), options_(std::move(options)) {}

Result<RedisConnection> RedisConnection::connect(const Url& url, const ConnectionOptions& options) {
  std::string endpoint = url.redacted();
  auto tls_param = url.param("tls");
  if (options.tls.enabled || url.scheme == "rediss" || (tls_param && *tls_param != "false")) {
    return fail(Failure::config, "cannot connect to " + endpoint +
                                     ": TLS was asked for, but the hiredis library envkit is "
                                     "built with (0.14) has no TLS support");
  }
  auto socket_path = url.param("socket");
  if (url.hosts.empty() && !socket_path) {
    return fail(Failure::usage, "cannot connect to " + endpoint + ": the URL names no host");
  }
  long long db = 0;
  if (!url.path.empty()) {
    auto [end, ec] = std::from_chars(url.path.data(), url.path.data() + url.path.size(), db);
    if (ec != std::errc() || end != url.path.data() + url.path.size() || db < 0) {
      return fail(Failure::usage, "bad database number in " + endpoint + ": '" + url.path +
                                      "' is not a non-negative integer");
    }
  }

  timeval connect_tv = to_timeval(options.connect_timeout);
  redisContext* raw = socket_path ? redisConnectUnixWithTimeout(socket_path->c_str(), connect_tv)
                                  : redisConnectWithTimeout(url.hosts[0].host.c_str(),
                                                            url.port_or_default(), connect_tv);
  std::unique_ptr<redisContext, detail::RedisContextFreer> context(raw);
  if (!context) return fail(Failure::internal, "cannot connect to " + endpoint + ": out of memory");
  if (context->err) {
    return fail(connect_failure(*context, socket_path ? std::string() : url.hosts[0].host),
                "cannot connect to " + endpoint + ": " + context->errstr);
  }
  // TCP keep-alive lets a long-idle connection (a relay waiting for work) notice a peer
  // that vanished without a FIN; a Unix socket has no such failure.
  if (!socket_path) redisEnableKeepAlive(context.get());
  // The first round trips belong to connecting: a proxy that accepts the TCP connection but
  // has no server behind it must fail within the connect timeout, as "unavailable".
  if (redisSetTimeout(context.get(), connect_tv) != REDIS_OK) {
    return fail(Failure::internal, "cannot connect to " + endpoint + ": " + context->errstr);
  }
  RedisConnection conn(std::move(context), endpoint, options);

  auto handshake = [&](const std::vector<std::string>& argv, std::string_view what) -> Status {
    auto reply = conn.command(argv);
    if (!reply) return reply.error();
    if (reply->is_error()) {
      // NOAUTH, WRONGPASS, "DB index is out of range": all fixed in the configuration.
      return fail(handshake_failure(reply->str),
                  std::string(what) + " refused by " + endpoint + ": " + reply->str);
    }
    return {};
  };
  bool round_trip = false;
  if (url.password) {
    std::vector<std::string> argv{"AUTH"};
    if (!url.user.empty()) argv.push_back(url.user);
    argv.push_back(*url.password);
    if (auto r = handshake(argv, "authentication"); !r) return r.error();
    round_trip = true;
  }
  if (db != 0) {
    if (auto r = handshake({"SELECT", url.path}, "selecting the database"); !r) return r.error();
    round_trip = true;
  }
  if (!round_trip) {
    if (auto r = handshake({"PING"}, "PING"); !r) return r.error();
  }
  if (redisSetTimeout(conn.context_.get(), to_timeval(options.io_timeout)) != REDIS_OK) {
    return conn.transport_error("cannot set the I/O timeout");
  }
  conn.connecting_ = false;
  return conn;
}

Error RedisConnection::transport_error(std::string_view what) {
  const redisContext* c = context_.get();
  std::string prefix =
      connecting_ ? "cannot connect to " + endpoint_ : std::string(what) + " on " + endpoint_;
  Failure kind = c->err == REDIS_ERR_OOM ? Failure::internal : Failure::connection_lost;
  std::string why = c->err == REDIS_ERR_EOF ? "the server closed the connection" : c->errstr;
  // hiredis turns a read or write that hit the socket timeout (SO_RCVTIMEO/SO_SNDTIMEO)
  // into an I/O error with EAGAIN. Once connected, the server is there but slow: try again
  // soon (io_timeout). While connecting, no answer means it cannot be reached.
  if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    auto timeout = connecting_ ? options_.connect_timeout : options_.io_timeout;
    kind = connecting_ ? Failure::unreachable : Failure::io_timeout;
    why = "no answer within " + std::to_string(timeout.count()) + " ms";
  }
  failure_ = why;
  return fail(kind, prefix + ": " + why);
}

Error RedisConnection::unusable() const {
  std::string why = failure_.empty() ? context_->errstr : failure_;
  return fail(Failure::connection_lost,
              "the connection to " + endpoint_ + " is unusable after an earlier error: " + why);
}

Status RedisConnection::append(const std::vector<std::string>& argv) {
  if (argv.empty()) return fail(Failure::internal, "empty Redis command for " + endpoint_);
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()), ptrs.data(),
                             lens.data()) != REDIS_OK) {
    return transport_error("sending a command failed");
  }
  return {};
}

Status RedisConnection::send_all(std::string_view bytes) {
  redisContext* c = context_.get();
  while (!bytes.empty()) {
    ssize_t n = ::send(c->fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    int e = n < 0 ? errno : EPIPE;
    // Marked as hiredis marks its own I/O errors, so every later call sees a broken connection.
    c->err = REDIS_ERR_IO;
    std::snprintf(c->errstr, sizeof c->errstr, "%s", std::strerror(e));
    errno = e;
    return transport_error("sending a command failed");
  }
  return {};
}

Result<RedisReply> RedisConnection::read_reply() {
  void* raw = nullptr;
  errno = 0;
  if (redisGetReply(context_.get(), &raw) != REDIS_OK || raw == nullptr) {
    return transport_error("reading a reply failed");
  }
  ReplyPtr reply(static_cast<redisReply*>(raw));
  return RedisReply::from(*reply);
}

Result<RedisReply> RedisConnection::command(const std::vector<std::string>& argv) {
  // A context that already failed stays failed in hiredis; say so instead of its stale errno.
  if (context_->err) return unusable();
  if (auto st = append(argv); !st) return st.error();
  return read_reply();
}

Result<std::vector<RedisReply>> RedisConnection::pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  if (context_->err) return unusable();
  // Checked before anything is sent: a command refused half-way through a batch would leave
  // replies on the wire that the next call would take for its own.
  for (const auto& argv : commands) {
    if (argv.empty()) return fail(Failure::internal, "empty Redis command for " + endpoint_);
  }
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  // Each batch is framed here, in RESP, into one reused buffer and written to the socket
  // directly; hiredis then only reads the replies. Through hiredis' output buffer a batch
  // cost an allocation per command, and a move of the unsent rest after every write().
  size_t next = 0;
  while (next < commands.size()) {
    size_t batch_end = next;
    wire_.clear();
    while (batch_end < commands.size() && wire_.size() < kBatchBytes &&
           batch_end - next < kBatchCommands) {
      append_resp(commands[batch_end], wire_);
      ++batch_end;
    }
    if (auto st = send_all(wire_); !st) return st.error();
    for (; next < batch_end; ++next) {
      auto reply = read_reply();
      if (!reply) return reply.error();
      replies.push_back(std::move(*reply));
    }
  }
  return replies;
}

}  // namespace envkit
