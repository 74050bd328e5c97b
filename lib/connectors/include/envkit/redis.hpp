// Redis connector on hiredis: one RAII connection, bounded by timeouts, with pipelining.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/result.hpp>
#include <envkit/url.hpp>

struct redisContext;
struct redisReply;

namespace envkit {

namespace detail {
struct RedisContextFreer {
  void operator()(redisContext* context) const;
};
}  // namespace detail

/// An owning copy of one server reply: no hiredis pointer escapes the connector.
struct RedisReply {
  enum class Type { string, array, integer, nil, status, error };

  Type type = Type::nil;
  std::string str;                   ///< the bytes of a string, status or error reply (binary-safe)
  long long integer = 0;             ///< an integer reply
  std::vector<RedisReply> elements;  ///< an array reply

  bool is_error() const { return type == Type::error; }
  bool is_nil() const { return type == Type::nil; }

  /// Copies a hiredis reply, arrays recursively.
  static RedisReply from(const redisReply& reply);
};

/// An open connection to a Redis (or Valkey) server. Not thread-safe: one per thread.
///
/// URL: redis://[user][:password]@host[:port][/db], or ?socket=PATH for a Unix socket.
/// A password in the URL is sent with AUTH (with the user too, for Redis 6 ACLs) and a
/// db number with SELECT. hiredis 0.14 speaks no TLS: asking for it is a Failure::config error.
/// After a transport error or a timeout the connection is unusable; open a new one.
class RedisConnection {
 public:
  /// Connects, authenticates and selects the database; at least one round trip is made, so
  /// a port that accepts but does not answer (a proxy with no backend) fails here.
  /// Errors (envkit/exit_status.hpp): connection_refused, unreachable (no answer within the
  /// connect timeout), name_not_found, io_timeout (connected but no answer within the I/O
  /// timeout), auth_refused, not_found (db number out of range), config (TLS asked for).
  static Result<RedisConnection> connect(const Url& url, const ConnectionOptions& options);

  RedisConnection(RedisConnection&&) noexcept = default;
  RedisConnection& operator=(RedisConnection&&) noexcept = default;

  /// Sends one command (binary-safe arguments) and waits for its reply. An error reply
  /// ("WRONGTYPE ...") is a RedisReply of Type::error for the caller to judge; a broken
  /// connection or a timeout is an Error.
  Result<RedisReply> command(const std::vector<std::string>& argv);

  /// Sends many commands without waiting for each reply and returns the replies in order.
  /// Commands go out in batches, so memory stays bounded for any number of them. If the
  /// connection breaks part-way the whole call is an Error: which commands the server ran
  /// is then unknown, so callers retry only idempotent work.
  Result<std::vector<RedisReply>> pipeline(const std::vector<std::vector<std::string>>& commands);

  /// The URL with its password replaced by "***", for messages.
  const std::string& endpoint() const { return endpoint_; }
  /// The C handle, for calls this class does not wrap. Owned by the connection.
  redisContext* handle() const { return context_.get(); }

 private:
  RedisConnection(std::unique_ptr<redisContext, detail::RedisContextFreer> context,
                  std::string endpoint, ConnectionOptions options);
  Error transport_error(std::string_view what);
  Error unusable() const;
  Status append(const std::vector<std::string>& argv);
  Status send_all(std::string_view bytes);
  Result<RedisReply> read_reply();

  std::unique_ptr<redisContext, detail::RedisContextFreer> context_;
  std::string endpoint_;
  ConnectionOptions options_;
  bool connecting_ = true;  // still in connect(): timeouts are the connect timeout's
  std::string failure_;     // why the connection broke; hiredis refuses every later call
  std::string wire_;        // pipeline(): one batch of commands in RESP, reused
};

}  // namespace envkit
