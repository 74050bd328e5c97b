// The one endpoint URL parser. Strict about syntax (every error is a message, never a crash),
// lenient only where users really type things (upper-case schemes, '@' in passwords).
#include <envkit/url.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <fstream>

#include <envkit/log.hpp>

namespace envkit {
namespace {

constexpr size_t kMaxUrlLength = 64 * 1024;

struct SchemeInfo {
  std::string_view name;
  uint16_t port;
  bool needs_port;  // no sensible default: the URL must name one
};

constexpr std::array<SchemeInfo, 13> kSchemes{{
    {"mysql", 3306, false},
    {"redis", 6379, false},
    {"rediss", 6379, false},
    {"mongodb", 27017, false},
    {"amqp", 5672, false},
    {"amqps", 5671, false},
    {"kafka", 9092, false},
    {"http", 80, false},
    {"https", 443, false},
    {"tcp", 0, true},
    {"tls", 443, false},
    {"file", 0, false},
    {"udp", 0, true},
}};

const SchemeInfo* find_scheme(std::string_view name) {
  for (const auto& s : kSchemes) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string known_schemes() {
  std::string out;
  for (const auto& s : kSchemes) {
    if (!out.empty()) out += ", ";
    out += s.name;
  }
  return out;
}

Error bad(std::string why) { return Error{Exit::usage, "invalid URL: " + std::move(why)}; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Characters that may stand unescaped in a component when we print a URL back.
bool is_unreserved(unsigned char c, std::string_view also) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~' ||
         also.find(static_cast<char>(c)) != std::string_view::npos ||
         c >= 0x80;  // UTF-8 stays readable (Bogotá, not Bogot%C3%A1)
}

std::string percent_encode(std::string_view s, std::string_view also = {}) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (is_unreserved(c, also)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Result<std::string> decode_component(std::string_view raw, std::string_view what) {
  auto decoded = percent_decode(raw);
  if (!decoded) return bad(std::string(what) + ": " + decoded.error().message);
  if (decoded->find('\0') != std::string::npos) {
    return bad(std::string(what) + " contains a NUL byte");
  }
  return decoded;
}

Result<uint16_t> parse_port(std::string_view s) {
  if (s.empty()) return bad("empty port");
  if (s.size() > 5) return bad("port '" + std::string(s) + "' is out of range (1-65535)");
  unsigned value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return bad("port '" + std::string(s) + "' is not a number");
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) {
    return bad("port '" + std::string(s) + "' is out of range (1-65535)");
  }
  return static_cast<uint16_t>(value);
}

Result<HostPort> parse_host(std::string_view s) {
  HostPort hp;
  std::string_view port_text;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in IPv6 address");
    std::string_view addr = s.substr(1, close - 1);
    if (addr.empty()) return bad("empty IPv6 address");
    size_t zone = addr.find("%25");  // fe80::1%25eth0: the zone id may hold any name
    for (char c : addr.substr(0, zone)) {
      bool ok = hex_value(c) >= 0 || c == ':' || c == '.';
      if (!ok) return bad("invalid character in IPv6 address '" + std::string(addr) + "'");
    }
    if (addr.find(':') == std::string_view::npos) {
      return bad("'" + std::string(addr) + "' in brackets is not an IPv6 address");
    }
    auto decoded = decode_component(addr, "IPv6 address");  // zone ids are written %25eth0
    if (!decoded) return decoded.error();
    hp.host = std::move(*decoded);
    hp.ipv6 = true;
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':')
        return bad("unexpected text after IPv6 address: '" + std::string(rest) + "'");
      port_text = rest.substr(1);
      auto port = parse_port(port_text);
      if (!port) return port.error();
      hp.port = *port;
    }
    return hp;
  }
  size_t colon = s.rfind(':');
  std::string_view host = s;
  if (colon != std::string_view::npos) {
    if (s.find(':') != colon) {
      return bad("host '" + std::string(s) +
                 "' has several ':' (write IPv6 addresses in [brackets])");
    }
    host = s.substr(0, colon);
    auto port = parse_port(s.substr(colon + 1));
    if (!port) return port.error();
    hp.port = *port;
  }
  if (host.empty()) return bad("empty host name");
  auto decoded = decode_component(host, "host");
  if (!decoded) return decoded.error();
  for (unsigned char c : *decoded) {
    if (c <= 0x20 || c == 0x7f || c == '/' || c == '@' || c == '[' || c == ']' || c == '?' ||
        c == '#') {
      return bad("invalid character in host name '" + percent_encode(*decoded) + "'");
    }
  }
  hp.host = std::move(*decoded);
  return hp;
}

Result<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view q) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view item = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (item.empty()) continue;  // "a=1&&b=2" and a trailing '&' are harmless
    size_t eq = item.find('=');
    auto key = decode_component(item.substr(0, eq), "query key");
    if (!key) return key.error();
    if (key->empty()) return bad("query parameter with an empty name");
    std::string value;
    if (eq != std::string_view::npos) {
      auto v = decode_component(item.substr(eq + 1), "query value '" + *key + "'");
      if (!v) return v.error();
      value = std::move(*v);
    }
    out.emplace_back(std::move(*key), std::move(value));
  }
  return out;
}

// Any parameter whose name says it holds a secret, including pass-through settings such as
// kafka's ?X.sasl.password= or ?X.ssl.key.password=.
bool is_secret_param(std::string_view key) {
  std::string k(key);
  for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static constexpr std::array<std::string_view, 7> kWords{"pass", "pwd", "secret", "token",
                                                          "apikey", "api-key", "api_key"};
  for (auto w : kWords) {
    if (k.find(w) != std::string::npos) return true;
  }
  return k == "auth" || k.ends_with(".pem") || k.find("oauthbearer") != std::string::npos;
}

Result<Url> parse_file_url(std::string_view rest) {
  // file:relative/path, file:/abs/path, file:///abs/path, file://localhost/abs/path
  Url url;
  url.scheme = "file";
  if (rest.substr(0, 2) == "//") {
    rest.remove_prefix(2);
    size_t slash = rest.find('/');
    std::string_view host = rest.substr(0, slash);
    if (!host.empty() && host != "localhost") {
      return bad("file: URLs name local files only, not host '" + std::string(host) + "'");
    }
    if (slash == std::string_view::npos) return bad("file: URL has no path");
    rest = rest.substr(slash);
  }
  size_t qmark = rest.find('?');
  auto path = decode_component(rest.substr(0, qmark), "path");
  if (!path) return path.error();
  if (path->empty()) return bad("file: URL has no path");
  url.path = std::move(*path);
  if (qmark != std::string_view::npos) {
    auto query = parse_query(rest.substr(qmark + 1));
    if (!query) return query.error();
    url.query = std::move(*query);
  }
  return url;
}

}  // namespace

Result<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return Error{Exit::usage, "bad percent-escape at offset " + std::to_string(i) +
                                    " (expected %XX with two hex digits)"};
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

Result<Url> parse_url(std::string_view text) {
  if (text.empty()) return bad("empty URL");
  if (text.size() > kMaxUrlLength) return bad("longer than 64 KiB");
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return bad("contains a control character");
  }
  if (text == "-") {
    Url url;
    url.scheme = "-";
    return url;
  }

  size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return bad("'" + std::string(text.substr(0, 40)) +
               "' has no scheme (write e.g. mysql://host/db, file:path or - for stdio)");
  }
  std::string scheme(text.substr(0, colon));
  for (char& c : scheme) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.';
    if (!ok) return bad("'" + percent_encode(scheme) + "' is not a valid scheme");
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  const SchemeInfo* info = find_scheme(scheme);
  if (info == nullptr) {
    return bad("unknown scheme '" + percent_encode(scheme) + "' (known: " + known_schemes() + ")");
  }
  std::string_view rest = text.substr(colon + 1);
  if (scheme == "file") return parse_file_url(rest);
  if (rest.substr(0, 2) != "//") return bad(scheme + ": URL must start with " + scheme + "://");
  rest.remove_prefix(2);

  Url url;
  url.scheme = scheme;

  size_t hash = rest.find('#');
  if (hash != std::string_view::npos) rest = rest.substr(0, hash);  // fragments mean nothing here
  size_t auth_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, auth_end);
  rest = auth_end == std::string_view::npos ? std::string_view{} : rest.substr(auth_end);

  // The last '@' ends the user info, so an unescaped '@' in a password still parses.
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    size_t pw = userinfo.find(':');
    auto user = decode_component(userinfo.substr(0, pw), "user name");
    if (!user) return user.error();
    url.user = std::move(*user);
    if (pw != std::string_view::npos) {
      // Never quote the password back in an error: say only that it is malformed.
      auto password = percent_decode(userinfo.substr(pw + 1));
      if (!password) return bad("password: bad percent-escape");
      if (password->find('\0') != std::string::npos) return bad("password contains a NUL byte");
      url.password = std::move(*password);
    }
  }
  if (authority.empty()) return bad(scheme + ": URL has no host");
  while (true) {
    // Commas separate hosts, but never inside [IPv6] brackets.
    size_t comma = std::string_view::npos;
    bool in_brackets = false;
    for (size_t i = 0; i < authority.size(); ++i) {
      if (authority[i] == '[') in_brackets = true;
      if (authority[i] == ']') in_brackets = false;
      if (authority[i] == ',' && !in_brackets) {
        comma = i;
        break;
      }
    }
    auto host = parse_host(authority.substr(0, comma));
    if (!host) return host.error();
    if (host->port == 0 && info->needs_port) return bad(scheme + ":// needs a port (host:port)");
    url.hosts.push_back(std::move(*host));
    if (comma == std::string_view::npos) break;
    authority = authority.substr(comma + 1);
  }

  size_t qmark = rest.find('?');
  std::string_view path = rest.substr(0, qmark);
  if (!path.empty()) {
    auto decoded = decode_component(path.substr(1), "path");  // drop the leading '/'
    if (!decoded) return decoded.error();
    url.path = std::move(*decoded);
  }
  if (qmark != std::string_view::npos) {
    auto query = parse_query(rest.substr(qmark + 1));
    if (!query) return query.error();
    url.query = std::move(*query);
  }
  return url;
}

std::optional<std::string> Url::param(std::string_view key) const {
  for (auto it = query.rbegin(); it != query.rend(); ++it) {
    if (it->first == key) return it->second;
  }
  return std::nullopt;
}

std::vector<std::string> Url::params(std::string_view key) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : query) {
    if (k == key) out.push_back(v);
  }
  return out;
}

uint16_t Url::port_or_default(size_t i) const {
  if (i < hosts.size() && hosts[i].port != 0) return hosts[i].port;
  return default_port(scheme);
}

std::string Url::format(bool redact) const {
  if (is_stdio()) return "-";
  std::string out = scheme + ":";
  if (is_file()) {
    // Absolute paths print as file:///abs, so a path starting "//" is not read as a host.
    if (!path.empty() && path.front() == '/') out += "//";
    out += percent_encode(path, "/");
  } else {
    out += "//";
    if (!user.empty() || password) {
      out += percent_encode(user);
      if (password) out += redact ? std::string(":***") : ":" + percent_encode(*password);
      out += '@';
    }
    for (size_t i = 0; i < hosts.size(); ++i) {
      if (i > 0) out += ',';
      const HostPort& h = hosts[i];
      out += h.ipv6 ? "[" + percent_encode(h.host, ":.") + "]" : percent_encode(h.host);
      if (h.port != 0) out += ":" + std::to_string(h.port);
    }
    if (!path.empty()) out += "/" + percent_encode(path, "/");
  }
  for (size_t i = 0; i < query.size(); ++i) {
    out += i == 0 ? '?' : '&';
    out += percent_encode(query[i].first) + "=";
    out += redact && is_secret_param(query[i].first) ? "***" : percent_encode(query[i].second, "/:,");
  }
  return out;
}

uint16_t default_port(std::string_view scheme) {
  const SchemeInfo* info = find_scheme(scheme);
  return info == nullptr ? 0 : info->port;
}

std::string password_env_var(std::string_view scheme) {
  if (scheme == "mysql") return "MYSQL_PWD";
  if (scheme == "redis" || scheme == "rediss") return "REDISCLI_AUTH";
  if (scheme == "amqps") return "ENVKIT_AMQP_PASSWORD";
  if (scheme == "https") return "ENVKIT_HTTP_PASSWORD";
  std::string name = "ENVKIT_";
  for (char c : scheme) name += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  return name + "_PASSWORD";
}

namespace {

// The first line of a password file, without its line ending.
Result<std::string> read_password_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error{Exit::no_input, path + ": cannot read the password file"};
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

Status resolve_password(Url& url, const SecretSources& sources) {
  if (url.password) {
    if (sources.url_from_argv) {
      log_warning("a password in the URL " + url.redacted() +
                  " is visible to other users in the process list; prefer " +
                  password_env_var(url.scheme) + " or --password-file");
    }
    return {};
  }
  if (sources.password_file) {
    auto line = read_password_file(*sources.password_file);
    if (!line) return line.error();
    url.password = std::move(*line);
    return {};
  }
  // VAR_FILE names a file holding VAR's value, the convention of Docker secrets: each
  // scheme's password can then come from its own file when one command talks to several
  // servers (queue-relay from RabbitMQ to MySQL).
  const std::string var = password_env_var(url.scheme);
  if (const char* file = std::getenv((var + "_FILE").c_str()); file != nullptr && *file != '\0') {
    auto line = read_password_file(file);
    if (!line) return Error{line.error().code, var + "_FILE: " + line.error().message};
    url.password = std::move(*line);
    return {};
  }
  if (const char* env = std::getenv(var.c_str())) url.password = env;
  return {};
}

}  // namespace envkit
