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
  struct Target;
  Status connect(const Target& target, Deadline deadline);

  ConnectionOptions options_;
  size_t max_body_bytes_;
  std::unique_ptr<Target> target_;  // the last URL's parts, reused while the URL is the same
  std::optional<Stream> stream_;    // the open connection, if any
  std::string endpoint_;            // "host:port" of stream_
  std::string in_;                  // bytes read past the last response (none expected)
};

}  // namespace envkit
