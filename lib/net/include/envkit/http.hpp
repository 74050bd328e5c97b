// HTTP(S) client on libcurl: one request at a time with keep-alive, or many concurrently.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/http_headers.hpp>
#include <envkit/result.hpp>

namespace envkit {

namespace detail {
struct CurlEasyCleanup {
  void operator()(CURL* easy) const;
};
struct CurlMultiCleanup {
  void operator()(CURLM* multi) const;
};
}  // namespace detail

/// One request. Credentials in the URL (https://user:password@host/) are sent as Basic
/// auth and never appear in messages or in HttpResponse::effective_url.
struct HttpRequest {
  std::string method = "GET";  ///< GET, HEAD, POST, PUT, PATCH, DELETE, ...
  std::string url;             ///< http:// or https:// only
  HttpHeaders headers;         ///< added to (or replacing) curl's own
  std::string body;            ///< sent when non-empty, or always for POST/PUT/PATCH
  /// Bound on the whole request, connect to last byte; without it only the client's connect
  /// and I/O timeouts apply (a slow but steady download may then take any time).
  std::optional<std::chrono::milliseconds> timeout;
};

/// Where the time went: each is measured from the start of the request (curl's *_TIME_T).
struct HttpTimings {
  std::chrono::microseconds connect{0};        ///< TCP connection made
  std::chrono::microseconds tls_handshake{0};  ///< TLS handshake done (0 for http://)
  std::chrono::microseconds first_byte{0};     ///< first byte of the response
  std::chrono::microseconds total{0};
};

/// A response: any status (404, 500 too) is a response, not an Error.
struct HttpResponse {
  long status = 0;
  HttpHeaders headers;  ///< of the last response when redirects were followed
  std::string body;
  HttpTimings timings;
  std::string effective_url;  ///< after redirects, without credentials

  /// The value of the first header called `name` (case-insensitive), if any.
  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

struct HttpClientOptions {
  /// A response body larger than this is an Error (Exit::data), never an unbounded buffer.
  size_t max_body_bytes = size_t{64} << 20;
  bool follow_redirects = false;
  long max_redirects = 5;
  std::string user_agent = "envkit/" ENVKIT_VERSION;
};

/// An HTTP client. Reuse one for many requests to the same hosts: connections are kept
/// alive between calls. Not thread-safe: one per thread.
///
/// Bounds: ConnectionOptions::connect_timeout limits connecting (TCP and TLS);
/// io_timeout limits how long a transfer may make no progress at all (libcurl counts it in
/// whole seconds, so it is rounded up); HttpRequest::timeout limits the whole request.
/// TLS: ca_file, cert_file, key_file and verify apply to https:// URLs; server_name makes
/// the client connect to the URL's host but send and check that name instead.
class HttpClient {
 public:
  static Result<HttpClient> create(const ConnectionOptions& options,
                                   HttpClientOptions client_options = {});

  HttpClient(HttpClient&&) noexcept = default;
  HttpClient& operator=(HttpClient&&) noexcept = default;

  /// Sends one request and reads the whole response. Errors are transport failures only:
  /// Exit::unavailable (refused, unreachable, connection dropped, connect timeout),
  /// Exit::temp_fail (connected but timed out), Exit::config (TLS verification or
  /// certificate files), Exit::data (body over max_body_bytes), Exit::usage (bad URL).
  Result<HttpResponse> perform(const HttpRequest& request);

  /// Sends all `requests`, at most `max_concurrency` at a time (0 counts as 1), and returns
  /// one result per request, in the same order. Each result fails or succeeds on its own;
  /// the outer Error is only for a failure of the client itself.
  Result<std::vector<Result<HttpResponse>>> perform_all(const std::vector<HttpRequest>& requests,
                                                        size_t max_concurrency);

 private:
  HttpClient(ConnectionOptions options, HttpClientOptions client_options);

  ConnectionOptions options_;
  HttpClientOptions client_options_;
  std::unique_ptr<CURL, detail::CurlEasyCleanup> easy_;     // kept for its live connections
  std::unique_ptr<CURLM, detail::CurlMultiCleanup> multi_;  // perform_all's, with its own
};

}  // namespace envkit
