// HTTP/1.1 spoken by hand over envkit::Stream: the response head's parser and chunked
// decoding (proxy-check's probe reads responses with them), and a keep-alive connection for
// load generators. It needs no libcurl, so it lives in envkit_net. libcurl (http.hpp) remains the client for everything else: redirects,
// content encodings, many transfers at once. A load generator sends one small request after
// another on a connection it owns, and there libcurl's per-request setup costs more than the
// exchange itself (bench/race-probe: ~50 µs of client CPU a request against wrk's ~15).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <envkit/connection.hpp>
#include <envkit/http_headers.hpp>
#include <envkit/http_message.hpp>
#include <envkit/result.hpp>
#include <envkit/socket.hpp>

namespace envkit {

/// A response's status line and header fields (names as written, values trimmed).
struct HttpResponseHead {
  int status = 0;
  int minor_version = 1;    ///< HTTP/1.0 or HTTP/1.1
  std::string status_line;  ///< "HTTP/1.1 201 Created"
  HttpHeaders headers;
};

/// Parses a response head: the bytes before the blank line that ends it (CRLF line ends).
/// Error (Exit::data, Failure::wrong_protocol): the first line is not "HTTP/1.x NNN ...".
Result<HttpResponseHead> parse_response_head(std::string_view head);

/// Decodes a chunked body as far as it is complete (chunk extensions ignored).
std::string dechunk(std::string_view raw);

/// An http:// or https:// URL as a request target: where to connect, and the request's
/// bytes. The request target is the path and query exactly as the URL wrote them.
struct HttpTarget {
  std::string url;       ///< the text parsed
  std::string redacted;  ///< the URL without its password, for messages
  std::string host;      ///< connected to
  uint16_t port = 0;
  bool tls = false;      ///< https://
  std::string endpoint;  ///< "host:port" ("[::1]:443")
  std::string path;      ///< "/tasks?x=1"
  std::string host_line;  ///< "Host: ...\r\n" (TlsOptions::server_name for https when set)
  std::string auth_line;  ///< "Authorization: Basic ...\r\n" when the URL has credentials

  /// Errors (Exit::usage): a bad URL, another scheme, no host.
  static Result<HttpTarget> parse(const std::string& url, const TlsOptions& tls);
  /// Appends the request line, the fields (the request's own Host and User-Agent replace
  /// ours; Content-Length is always ours) and the body to `out`.
  void encode(const HttpRequest& request, std::string& out) const;
};

/// One response read from bytes as they arrive: the framing HttpConnection reads with, for
/// callers that wait on their sockets themselves. start(), then feed() what was read until
/// it says the response is whole; then response() and keep_alive().
class HttpResponseReader {
 public:
  explicit HttpResponseReader(size_t max_body_bytes = size_t{64} << 20) : max_body_(max_body_bytes) {}

  /// Starts on the response to a request with this method (a HEAD response has no body).
  void start(std::string_view method);
  /// Takes from the front of `in` what belongs to the response; true once it is whole.
  /// `closed`: the stream has ended, which ends a body sent without a length. Errors:
  /// bad_data (a head over 64 KiB, a body over the limit, a bad chunk), wrong_protocol (not
  /// HTTP/1.x, a bad Content-Length), connection_lost (the stream ended mid-response).
  Result<bool> feed(std::string& in, bool closed);
  HttpResponse& response() { return response_; }
  /// Whether the connection may carry another request: not after Connection: close, an
  /// HTTP/1.0 answer without keep-alive, a body to the end, or bytes nobody asked for.
  bool keep_alive() const { return keep_; }

 private:
  enum class Phase { head, length, chunk_size, chunk_data, trailers, to_end, done };
  Result<bool> too_large() const;

  size_t max_body_;
  bool head_request_ = false;
  Phase phase_ = Phase::head;
  size_t left_ = 0;  // body bytes still to come (length), or of this chunk with its CRLF
  bool keep_ = true;
  HttpResponse response_;
};

/// One HTTP/1.1 connection that sends requests one at a time and keeps the connection open
/// between them (http:// and https://, TLS as ConnectionOptions::tls says). It connects on
/// the first request, again when a request names another host or port, and again when the
/// server closed the idle connection (that is seen before anything is sent, so a request is
/// never sent twice). Bodies are framed by Content-Length, chunked encoding or the end of
/// the connection. No redirects are followed and no content encoding is asked for.
///
/// Bounds: connect_timeout on connecting (TCP and TLS), io_timeout on each read or write,
/// HttpRequest::timeout on the whole request; a head over 64 KiB or a body over
/// max_body_bytes is an Error (Exit::data). Errors are classified as HttpClient's are
/// (envkit/exit_status.hpp): connection_refused and name errors mean nothing was sent;
/// connection_lost and io_timeout after sending mean the request may have been served.
/// Not thread-safe: one per thread. Move-only.
class HttpConnection {
 public:
  explicit HttpConnection(ConnectionOptions options, size_t max_body_bytes = size_t{64} << 20);
  HttpConnection(HttpConnection&&) noexcept;
  HttpConnection& operator=(HttpConnection&&) noexcept;
  ~HttpConnection();

  /// Sends one request and reads the whole response; any status is a response.
  Result<HttpResponse> perform(const HttpRequest& request);

 private:
  Status connect(const HttpTarget& target, Deadline deadline);

  ConnectionOptions options_;
  HttpResponseReader reader_;
  std::optional<HttpTarget> target_;  // the last URL's parts, reused while the URL is the same
  std::optional<Stream> stream_;      // the open connection, if any
  std::string endpoint_;              // "host:port" of stream_
  std::string in_;                    // bytes read and not yet taken by the reader
};

/// Connects to the target (TCP, then TLS for https with ConnectionOptions::tls; an
/// untrusted certificate is tls_failed unless verification is off).
Result<Stream> connect_http(const HttpTarget& target, const ConnectionOptions& options, Deadline deadline);

}  // namespace envkit
