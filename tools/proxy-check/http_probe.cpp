// http:// and https://: one HTTP/1.1 request spoken by hand over envkit::Stream, so every
// phase (connect, TLS, first byte) is timed and a hostile server is bounded in time and bytes;
// libcurl would hide the phases behind its own timers and buffers.
#include <algorithm>
#include <cctype>
#include <cstdio>

#include "proxy-check/probes.hpp"

#include <envkit/base64.hpp>
#include <envkit/http1.hpp>

namespace proxy_check {

namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = 1024 * 1024;
constexpr int kMaxRedirects = 10;

/// Query parameters that are proxy-check's own and never sent to the server.
bool own_param(const std::string& key) {
  static const char* const kOwn[] = {"status", "match", "header", "follow", "method", "expect",
                                     "tls", "tls-insecure", "tls-ca", "tls-cert", "tls-key",
                                     "tls-server-name", "warn-days", "crit-days", "warn-ms",
                                     "crit-ms", "name", "via"};
  return std::find(std::begin(kOwn), std::end(kOwn), key) != std::end(kOwn);
}

std::string percent_encode(std::string_view s, bool keep_slash) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}


struct Response {
  int status = 0;
  std::string status_line;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  bool body_truncated = false;

  const std::string* header(const std::string& name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return &v;
    return nullptr;
  }
};

/// Whether `status` is acceptable per ?status= ("200", "200,204", "2xx"); nullopt: no rule.
std::optional<bool> status_allowed(int status, const std::optional<std::string>& rule) {
  if (!rule) return std::nullopt;
  std::string s = std::to_string(status);
  size_t start = 0;
  while (start <= rule->size()) {
    size_t end = rule->find(',', start);
    std::string item = rule->substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (item.size() == 3 && (item[1] == 'x' || item[1] == 'X') && item[0] == s[0]) return true;
    if (item == s) return true;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return false;
}

}  // namespace

ProbeResult probe_http(const envkit::Url& original, const ProbeOptions& options) {
  ProbeResult r;
  PhaseClock clock(r);
  auto method = original.param("method").value_or("GET");
  if (method != "GET" && method != "HEAD") {
    return fail(r, "target", envkit::Error{envkit::Exit::usage, "method= must be GET or HEAD"});
  }
  int follow = 0;
  if (auto f = original.param("follow")) {
    if (*f == "true" || *f == "yes") {
      follow = kMaxRedirects;
    } else {
      try {
        follow = std::stoi(*f);
      } catch (...) {
        follow = -1;
      }
      if (follow < 0 || follow > kMaxRedirects)
        return fail(r, "target", envkit::Error{envkit::Exit::usage, "follow= must be true or 0 to 10"});
    }
  }
  envkit::Url url = original;
  int redirects = 0;
  Response resp;
  State tls_grade = State::ok;
  std::string tls_note;
  for (;;) {
    ProbeOptions hop = options;
    auto tls = envkit::tls_options_from_url(url, options.connection.tls);
    if (!tls) return fail(r, "target", tls.error());
    hop.connection.tls = *tls;
    auto stream = connect_phase(url, hop, r, clock);
    if (!stream) return r;
    if (url.scheme == "https" && !tls_phase(*stream, url, hop, r, clock, tls_grade, tls_note)) return r;

    std::string target = "/" + percent_encode(url.path, true);
    std::string query;
    for (const auto& [k, v] : url.query) {
      if (own_param(k)) continue;
      query += (query.empty() ? "?" : "&") + percent_encode(k, false) + "=" + percent_encode(v, false);
    }
    const auto& h = url.hosts[0];
    std::string host = h.ipv6 ? "[" + h.host + "]" : h.host;
    if (h.port != 0 && h.port != envkit::default_port(url.scheme)) host += ":" + std::to_string(h.port);
    std::string request = method + " " + target + query + " HTTP/1.1\r\nHost: " + host +
                          "\r\nUser-Agent: envkit-proxy-check/" ENVKIT_VERSION
                          "\r\nAccept: */*\r\nConnection: close\r\n";
    if (!url.user.empty() || url.password) {
      request += "Authorization: Basic " + envkit::base64_encode(url.user + ":" + url.password.value_or("")) + "\r\n";
    }
    request += "\r\n";
    if (auto st = stream->write_all(request, options.deadline); !st) return fail(r, "request", st.error());

    std::string raw;
    // The first bytes tell HTTP from anything else: do not wait for a blank line that a
    // stranger may never send.
    while (raw.size() < 5) {
      char first[4096];
      auto n = stream->read_some(first, sizeof first, options.deadline);
      if (!n || *n == 0) break;  // read_until below reports the timeout or the close
      raw.append(first, *n);
      if (std::string_view("HTTP/").substr(0, std::min<size_t>(raw.size(), 5)) !=
          std::string_view(raw).substr(0, std::min<size_t>(raw.size(), 5))) {
        clock.mark("first_byte");
        return fail(r, "response", "not HTTP: '" + printable(raw) + "'");
      }
    }
    auto until = read_until(*stream, raw, "\r\n\r\n", kMaxHeaderBytes, options.deadline);
    clock.mark("first_byte");
    if (!until) {
      return fail(r, "response", until.error().message +
                                     (raw.empty() ? "" : " (after " + std::to_string(raw.size()) + " bytes)"));
    }
    if (*until == ReadUntil::too_large) return fail(r, "response", "headers larger than 64 KiB");
    if (*until == ReadUntil::closed) {
      return fail(r, "response", raw.empty() ? "server closed the connection without answering"
                                             : "server closed mid-headers after '" + printable(raw) + "'");
    }
    size_t head_end = raw.find("\r\n\r\n");
    resp = Response{};
    auto head = envkit::parse_response_head(std::string_view(raw).substr(0, head_end));
    if (!head) return fail(r, "response", "not HTTP: '" + printable(raw.substr(0, raw.find("\r\n"))) + "'");
    resp.status = head->status;
    resp.status_line = std::move(head->status_line);
    for (auto& [name, value] : head->headers) resp.headers.emplace_back(lower(std::move(name)), std::move(value));

    bool is_redirect = resp.status >= 300 && resp.status < 400 && resp.header("location");
    if (is_redirect && redirects < follow) {
      std::string loc = *resp.header("location");
      envkit::Url next;
      if (loc.find("://") != std::string::npos) {
        auto parsed = envkit::parse_url(loc);
        if (!parsed) return fail(r, "redirect", "bad Location '" + printable(loc) + "'");
        next = *parsed;
        if (next.scheme != "http" && next.scheme != "https")
          return fail(r, "redirect", "Location is not http(s): '" + printable(loc) + "'");
      } else {
        auto parsed = envkit::parse_url(url.scheme + "://" + host + (loc.empty() || loc[0] != '/' ? "/" : "") + loc);
        if (!parsed) return fail(r, "redirect", "bad Location '" + printable(loc) + "'");
        next = *parsed;
        next.user = url.user;
        next.password = url.password;
      }
      // proxy-check's own parameters (status, match, ...) apply to the final response.
      for (const auto& [k, v] : original.query)
        if (own_param(k)) next.query.emplace_back(k, v);
      url = next;
      ++redirects;
      continue;
    }

    auto match = original.param("match");
    if (match && method != "HEAD") {
      std::string body = raw.substr(head_end + 4);
      const std::string* te = resp.header("transfer-encoding");
      bool chunked = te && lower(*te).find("chunked") != std::string::npos;
      size_t want = kMaxBodyBytes;
      if (const std::string* cl = resp.header("content-length"); cl && !chunked) {
        try {
          want = std::min<size_t>(std::stoull(*cl), kMaxBodyBytes);
        } catch (...) {
          return fail(r, "response", "bad Content-Length '" + printable(*cl) + "'");
        }
      }
      while (body.size() < want && body.find(*match) == std::string::npos) {
        if (chunked && (envkit::dechunk(body).find(*match) != std::string::npos || body.ends_with("\r\n0\r\n\r\n") ||
                        body == "0\r\n\r\n")) {
          break;  // matched, or the last chunk came: nothing more to wait for
        }
        std::string more;
        auto got = read_until(*stream, more, "", std::min<size_t>(16384, want - body.size()), options.deadline);
        if (!got) return fail(r, "body", got.error().message + " after " + std::to_string(body.size()) + " bytes");
        body += more;
        if (*got == ReadUntil::closed && more.empty()) break;
      }
      resp.body = chunked ? envkit::dechunk(body) : body;
      resp.body_truncated = body.size() >= kMaxBodyBytes;
    }
    clock.mark("body");
    break;
  }
  clock.finish();

  r.facts.emplace_back("status", std::to_string(resp.status));
  if (redirects > 0) {
    r.facts.emplace_back("redirects", std::to_string(redirects));
    r.facts.emplace_back("final_url", url.redacted());
  }
  if (const auto* server = resp.header("server")) r.facts.emplace_back("server", *server);
  if (const auto* server = resp.header("server")) r.identity = "server=" + *server;
  std::string summary = resp.status_line.substr(0, 100);
  if (redirects > 0) summary += " after " + std::to_string(redirects) + " redirect(s)";
  State state = State::ok;
  auto allowed = status_allowed(resp.status, original.param("status"));
  if (allowed) {
    if (!*allowed) {
      state = State::critical;
      summary += " (expected status " + *original.param("status") + ")";
    }
  } else if (resp.status >= 500) {
    state = State::critical;
  } else if (resp.status >= 400) {
    state = State::warning;
  }
  if (auto match = original.param("match"); match && method != "HEAD") {
    if (resp.body.find(*match) == std::string::npos) {
      state = State::critical;
      summary += ", '" + printable(*match) + "' not in the body" +
                 (resp.body_truncated ? std::string(" (first 1 MiB)") : std::string());
    } else {
      summary += ", body matched";
    }
  }
  for (const auto& want : original.params("header")) {
    size_t colon = want.find(':');
    std::string name = lower(want.substr(0, colon));
    std::string value;
    if (colon != std::string::npos) {
      value = want.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
    }
    const std::string* got = resp.header(name);
    if (!got || got->find(value) == std::string::npos) {
      state = State::critical;
      summary += ", header '" + printable(want) + "' missing";
    }
  }
  if (url.scheme == "https" || original.scheme == "https") {
    state = worse(state, tls_grade);
    summary += ", " + tls_note;
  }
  r.state = state;
  r.summary = summary;
  return r;
}

}  // namespace proxy_check
