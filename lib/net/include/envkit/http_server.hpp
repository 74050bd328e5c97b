// A small HTTP/1.1 server on libmicrohttpd: keep-alive, size limits, timeouts, a bounded
// pool of handler threads and a graceful stop (chosen by measurement: bench/README.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <envkit/http_headers.hpp>
#include <envkit/result.hpp>
#include <envkit/url.hpp>

namespace envkit {

/// One request as the server read it, whole: the body is complete before a handler runs.
struct HttpServerRequest {
  std::string method;  ///< "GET", "POST", ... as sent
  std::string path;    ///< percent-decoded, without the query: "/ingest"
  std::vector<std::pair<std::string, std::string>> query;  ///< decoded, in order
  HttpHeaders headers;                                     ///< as sent, in order
  std::string body;
  std::string peer;  ///< the client's address, "127.0.0.1:54321"

  /// The value of the first header called `name` (case-insensitive), if any.
  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
  /// The last value of query parameter `key`, if any.
  std::optional<std::string> param(std::string_view key) const;
};

/// What a handler answers. Content-Length is set by the server; Connection too.
struct HttpReply {
  int status = 200;
  HttpHeaders headers;
  std::string body;

  /// A plain-text reply (Content-Type: text/plain; charset=utf-8). The body should end in a
  /// newline, as every line of text does.
  static HttpReply text(int status, std::string body);
  /// A JSON reply (Content-Type: application/json).
  static HttpReply json(int status, std::string body);
};

/// Answers one request. Runs on one of the server's worker threads, never on a thread that
/// does network I/O, so it may block (wait for a sink, sleep, lock a mutex). Up to
/// HttpServerOptions::workers handlers run at once; an exception escaping it becomes a 500.
using HttpHandler = std::function<HttpReply(const HttpServerRequest&)>;

namespace detail {
struct HttpCall;
struct HttpServerLink;
}  // namespace detail

/// A request to be answered later, by whoever finishes the work a deferred handler started.
/// Copyable; reply() may be called from any thread, at any time. The first reply is sent;
/// later ones are dropped, as is a reply after the server answered the request itself (at
/// HttpServerOptions::reply_within, or at stop()) or after the server is gone.
class HttpResponder {
 public:
  void reply(const HttpReply& reply) const;

 private:
  friend class HttpServer;
  explicit HttpResponder(std::shared_ptr<detail::HttpCall> call) : call_(std::move(call)) {}
  std::shared_ptr<detail::HttpCall> call_;
};

/// Starts the work a request asks for and returns without waiting for it: a reply to send
/// now (a refusal, say), or std::nullopt after handing `responder` to whoever will answer.
/// It must not block: a request whose body is at most kInlineBodyBytes runs it on the network
/// thread that read it (no hand-over to a worker), a larger one on a worker. An exception
/// escaping it becomes a 500. What HTTP ingest uses: the sinks answer, no thread waits.
using HttpDeferredHandler = std::function<std::optional<HttpReply>(const HttpServerRequest&, HttpResponder)>;

/// Limits. Every one bounds what a client can make the server hold or wait for.
struct HttpServerOptions {
  /// Handler threads: how many requests are answered at once. A request whose body is read
  /// waits for a free worker (the wait is bounded by max_connections: one request per
  /// connection at a time).
  size_t workers = 8;
  /// Network threads (libmicrohttpd's epoll loops). They only read and write, so 1-2 is plenty.
  unsigned io_threads = 1;
  /// Open connections at most; more are accepted and closed at once by libmicrohttpd.
  size_t max_connections = 256;
  /// Largest request body. A larger Content-Length is answered 413 before any of the body is
  /// read (a client that sent "Expect: 100-continue" is never told to send it); a chunked
  /// body that grows past it is cut off and answered 413 if the connection still allows.
  size_t max_body_bytes = size_t{8} << 20;
  /// Largest request line plus headers (libmicrohttpd's per-connection memory; at least
  /// 8 KiB). Larger headers are answered 431, a longer request line 414, and the
  /// connection closed.
  size_t max_header_bytes = size_t{32} << 10;
  /// A connection on which the client sends nothing for this long is closed, between
  /// requests (idle keep-alive) or in the middle of one. libmicrohttpd counts whole seconds:
  /// rounded up, at least 1 s.
  std::chrono::milliseconds idle_timeout{30000};
  /// From accepting a connection, or from finishing the previous reply on it, to having
  /// read the next request whole (headers and body): a client that trickles bytes to stay
  /// under idle_timeout is cut off here (and a kept-alive connection with no request, if
  /// this is the shorter of the two). Checked about every 100 ms. Time in a handler does
  /// not count.
  std::chrono::milliseconds read_timeout{60000};
  /// Deferred handlers: a request its responder has not answered this long after the
  /// handler returned is answered 503 with Retry-After ("no answer within N ms") by the
  /// server. Checked about every 100 ms.
  std::chrono::milliseconds reply_within{30000};
};

/// An HTTP/1.1 server. Move-only; the destructor calls stop() with its default deadline.
///
/// How concurrency works: io_threads epoll loops (libmicrohttpd) accept connections, read
/// each request whole and write replies; they never run a handler. When a request has been
/// read, its connection is suspended (no further I/O on it) and the request is queued to
/// the pool of `workers` handler threads. A worker runs the handler, hands the reply to the
/// connection and resumes it. So a handler that blocks holds one worker and its own
/// connection, nothing else: other connections keep being read, and are answered while a
/// worker is free. A slow client holds only its connection (bounded by max_connections,
/// idle_timeout and read_timeout), never a worker. A deferred handler
/// (HttpDeferredHandler) holds no thread at all while its request waits for an answer.
class HttpServer {
 public:
  /// Deferred handlers run on the network thread for bodies up to this size.
  static constexpr size_t kInlineBodyBytes = 64 * 1024;

  /// Starts serving on `host`:`port` (port 0: the kernel picks; see port()). Errors name the
  /// address, as Listener::bind's do (a port in use is address_in_use: Exit::unavailable);
  /// Exit::software when libmicrohttpd will not start.
  static Result<HttpServer> start(const std::string& host, uint16_t port, HttpHandler handler,
                                  HttpServerOptions options = {});
  /// The same from a URL: http://HOST:PORT (path and query ignored; the port defaults to 80;
  /// http://[::1]:8080 for IPv6). Exit::usage for any other scheme.
  static Result<HttpServer> start(const Url& url, HttpHandler handler,
                                  HttpServerOptions options = {});
  /// The same with a deferred handler.
  static Result<HttpServer> start(const std::string& host, uint16_t port, HttpDeferredHandler handler,
                                  HttpServerOptions options = {});
  static Result<HttpServer> start(const Url& url, HttpDeferredHandler handler,
                                  HttpServerOptions options = {});

  HttpServer(HttpServer&&) noexcept;
  HttpServer& operator=(HttpServer&&) noexcept;
  ~HttpServer();

  /// The port listened on (the kernel's pick when 0 was asked for).
  uint16_t port() const;
  /// The address listened on, "127.0.0.1:41234".
  const std::string& address() const;

  /// Stops gracefully, and returns once stopped: new connections are refused at once;
  /// requests already being read or answered may finish until `deadline` (their replies
  /// carry "Connection: close"); a new request on a kept-alive connection meanwhile is
  /// answered 503 with Retry-After and the connection closed. At the deadline, a client
  /// whose handler is still running, or whose deferred request is not answered yet, is
  /// answered 503 (given up to a second more for it to be
  /// sent) and every connection is closed. stop() then waits for such handlers to return
  /// (their replies are dropped): a handler should bound its own waits. Idempotent.
  void stop(std::chrono::milliseconds deadline = std::chrono::milliseconds(5000));

 private:
  friend class HttpResponder;
  friend struct detail::HttpServerLink;
  struct Impl;
  static Result<HttpServer> start_impl(const std::string& host, uint16_t port, HttpHandler handler,
                                       HttpDeferredHandler deferred, HttpServerOptions options);
  static Result<HttpServer> start_impl(const Url& url, HttpHandler handler, HttpDeferredHandler deferred,
                                       HttpServerOptions options);
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace envkit
