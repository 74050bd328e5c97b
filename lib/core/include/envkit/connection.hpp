// Settings every network connector shares: timeouts and TLS.
#pragma once

#include <chrono>
#include <string>

#include <envkit/result.hpp>
#include <envkit/url.hpp>

namespace envkit {

/// TLS settings for a connection. Also settable per URL: ?tls=true&tls-ca=FILE&...
struct TlsOptions {
  bool enabled = false;      ///< --tls (implied by https://, tls://, rediss://, amqps://)
  bool verify = true;        ///< --tls-insecure turns peer verification off
  std::string ca_file;       ///< --tls-ca FILE; empty: the system store
  std::string cert_file;     ///< --tls-cert FILE (client certificate)
  std::string key_file;      ///< --tls-key FILE
  std::string server_name;   ///< --tls-server-name: SNI and name checked; default: the host
};

/// Bounds on every network call: no connector may wait longer than these.
struct ConnectionOptions {
  std::chrono::milliseconds connect_timeout{5000};  ///< --connect-timeout
  std::chrono::milliseconds io_timeout{30000};      ///< --timeout: one read or write
  TlsOptions tls;
};

/// `base` with the URL's TLS parameters applied: ?tls=true|false, tls-insecure=true|false,
/// tls-ca=FILE, tls-cert=FILE, tls-key=FILE, tls-server-name=NAME. The schemes https, tls,
/// rediss, amqps and mysqls imply TLS; a CA, certificate or key asks for TLS too unless the
/// URL says tls=false. Errors
/// (Exit::usage) name the bad parameter and the redacted URL.
Result<TlsOptions> tls_options_from_url(const Url& url, TlsOptions base);

}  // namespace envkit
