// Endpoint URLs: one parser for every source, sink and target (mysql://, redis://, mongodb://,
// amqp://, kafka://, http(s)://, tcp://, tls://, file:, and "-" for stdin/stdout).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <envkit/result.hpp>

namespace envkit {

/// One host of a URL. `port` is 0 when the URL names none (use Url::port_or_default()).
struct HostPort {
  std::string host;  ///< percent-decoded; IPv6 literals without the brackets
  uint16_t port = 0;
  bool ipv6 = false;  ///< written as [addr] in the URL
};

/// A parsed endpoint. Every part is percent-decoded. The password is never printed by
/// redacted(), and nothing else in Url holds it.
struct Url {
  std::string scheme;  ///< lower-case: "mysql", "redis", "https", "file", "-" for stdio, ...
  std::string user;
  std::optional<std::string> password;
  std::vector<HostPort> hosts;  ///< empty for file: and "-"; several for mongodb:// and kafka://
  std::string path;  ///< without the leading '/': database, vhost, topic, Redis db; file path for file:
  std::vector<std::pair<std::string, std::string>> query;  ///< in order of appearance

  bool is_stdio() const { return scheme == "-"; }
  bool is_file() const { return scheme == "file"; }

  /// The last value of query parameter `key`, if present.
  std::optional<std::string> param(std::string_view key) const;
  /// Every value of `key`, in order.
  std::vector<std::string> params(std::string_view key) const;
  /// The port of host `i`, or the scheme's default port when the URL gave none.
  uint16_t port_or_default(size_t i = 0) const;

  /// The URL as text with the password replaced by "***": safe for logs and errors.
  std::string redacted() const { return format(true); }
  /// The URL as text, password included: only for handing to a client library.
  std::string text() const { return format(false); }

 private:
  std::string format(bool redact) const;
};

/// Parses `text`. Errors (Exit::usage) name what is wrong and never contain the password.
Result<Url> parse_url(std::string_view text);

/// The scheme's usual port (3306, 6379, 27017, 5672, 9092, 80, 443), or 0 if it has none.
uint16_t default_port(std::string_view scheme);

/// The environment variable the scheme's own ecosystem reads a password from:
/// MYSQL_PWD for mysql, REDISCLI_AUTH for redis, ENVKIT_AMQP_PASSWORD,
/// ENVKIT_MONGODB_PASSWORD, ENVKIT_KAFKA_PASSWORD, ENVKIT_HTTP_PASSWORD otherwise.
std::string password_env_var(std::string_view scheme);

/// Where a password may come from besides the URL itself.
struct SecretSources {
  std::optional<std::string> password_file;  ///< --password-file: first line, no newline
  bool url_from_argv = true;  ///< warn when the URL itself carries a password
};

/// Fills url.password when the URL has none: from the password file, else from the file
/// the scheme's environment variable with _FILE appended names (MYSQL_PWD_FILE, Docker's
/// secrets convention: one file per server when a command talks to several), else from
/// the variable itself. A password in the URL wins, with a warning when the URL came from
/// argv (other users can read it in ps). Errors: an unreadable password file.
Status resolve_password(Url& url, const SecretSources& sources);

/// Percent-decodes `s` ("%41" -> "A"; '+' stays '+'). Error on a bad escape.
Result<std::string> percent_decode(std::string_view s);

}  // namespace envkit
