// A request and its response, as both HTTP clients take and give them: libcurl's
// (http.hpp) and the keep-alive connection spoken by hand (http1.hpp).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <envkit/http_headers.hpp>

namespace envkit {

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

}  // namespace envkit
