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
#include <envkit/http_message.hpp>
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
