// HTTP/1.1 by hand over envkit::Stream: see envkit/http1.hpp.
#include <envkit/http1.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <utility>

#include <envkit/base64.hpp>
#include <envkit/exit_status.hpp>
#include <envkit/url.hpp>

namespace envkit {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr size_t kReadChunk = 16 * 1024;

// True when the comma-separated `value` holds `token` (case-insensitive): Connection: close.
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (header_name_equals(trim_field(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

std::chrono::microseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
}

// A chunk-size line's number ("1a;ext=1" -> 26); nullopt when it is not hex.
std::optional<size_t> chunk_size(std::string_view line) {
  line = trim_field(line.substr(0, line.find(';')));
  size_t n = 0;
  auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), n, 16);
  if (ec != std::errc() || end != line.data() + line.size() || line.empty()) return std::nullopt;
  return n;
}

}  // namespace

Result<HttpResponseHead> parse_response_head(std::string_view head) {
  HttpResponseHead h;
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  auto digit = [&](size_t i) { return std::isdigit(static_cast<unsigned char>(line[i])) != 0; };
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || !digit(7) || line[8] != ' ' || !digit(9) ||
      !digit(10) || !digit(11) || (line.size() > 12 && line[12] != ' ')) {
    return fail(Failure::wrong_protocol, "not an HTTP/1.x status line");
  }
  h.minor_version = line[7] - '0';
  h.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  h.status_line = std::string(line);
  size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    if (next == std::string_view::npos) next = head.size();
    std::string_view field = head.substr(pos, next - pos);
    size_t colon = field.find(':');
    if (colon != std::string_view::npos && colon > 0) {
      h.headers.emplace_back(std::string(trim_field(field.substr(0, colon))),
                             std::string(trim_field(field.substr(colon + 1))));
    }
    pos = next + 2;
  }
  return h;
}

std::string dechunk(std::string_view raw) {
  std::string out;
  while (!raw.empty()) {
    size_t eol = raw.find("\r\n");
    if (eol == std::string_view::npos) break;
    auto len = chunk_size(raw.substr(0, eol));
    if (!len) break;
    raw.remove_prefix(eol + 2);
    if (*len == 0) break;
    out.append(raw.substr(0, *len));
    if (raw.size() < *len + 2) break;
    raw.remove_prefix(*len + 2);
  }
  return out;
}

// --- the connection ------------------------------------------------------------------------

struct HttpConnection::Target {
  std::string url;       // the text parsed, to know when the next request names the same
  std::string redacted;  // for messages
  std::string host;      // connected to
  uint16_t port = 0;
  bool tls = false;
  std::string endpoint;  // "host:port"
  std::string path;      // request target: path and query as the URL wrote them
  std::string host_line;   // "Host: ...\r\n"
  std::string auth_line;   // "Authorization: Basic ...\r\n" when the URL has credentials
};

HttpConnection::HttpConnection(ConnectionOptions options, size_t max_body_bytes)
    : options_(std::move(options)), max_body_bytes_(max_body_bytes) {}
HttpConnection::HttpConnection(HttpConnection&&) noexcept = default;
HttpConnection& HttpConnection::operator=(HttpConnection&&) noexcept = default;
HttpConnection::~HttpConnection() = default;

Status HttpConnection::connect(const Target& t, Deadline deadline) {
  auto stream = Stream::connect(t.host, t.port, deadline);
  if (!stream) return stream.error();
  if (t.tls) {
    auto session = stream->start_tls(options_.tls, t.host, deadline);
    if (!session) return session.error();
    if (options_.tls.verify && !session->verified) {
      return fail(Failure::tls_failed, "TLS certificate not trusted: " + session->verify_error);
    }
  }
  stream_.emplace(std::move(*stream));
  endpoint_ = t.endpoint;
  in_.clear();
  return {};
}

Result<HttpResponse> HttpConnection::perform(const HttpRequest& request) {
  const auto start = Clock::now();
  if (!target_ || target_->url != request.url) {
    auto url = parse_url(request.url);
    if (!url) return url.error().context(request.method + " request failed");
    if ((url->scheme != "http" && url->scheme != "https") || url->hosts.empty()) {
      return fail(Failure::usage, request.method + " " + url->redacted() +
                                      " failed: only http:// and https:// URLs with a host are supported");
    }
    auto t = std::make_unique<Target>();
    t->url = request.url;
    t->redacted = url->redacted();
    const auto& h = url->hosts[0];
    t->host = h.host;
    t->port = url->port_or_default(0);
    t->tls = url->scheme == "https";
    t->endpoint = (h.ipv6 ? "[" + h.host + "]" : h.host) + ":" + std::to_string(t->port);
    // The request target exactly as the URL wrote it: from the first '/' or '?' after the
    // authority to the fragment.
    std::string_view text = request.url;
    size_t authority = text.find("://") + 3;
    size_t from = text.find_first_of("/?#", authority);
    std::string_view rest = from == std::string_view::npos ? std::string_view() : text.substr(from);
    rest = rest.substr(0, rest.find('#'));
    t->path = rest.empty() || rest.front() != '/' ? "/" + std::string(rest) : std::string(rest);
    std::string host_field = t->tls && !options_.tls.server_name.empty() ? options_.tls.server_name
                             : h.ipv6                                    ? "[" + h.host + "]"
                                                                         : h.host;
    if (t->port != default_port(url->scheme)) host_field += ":" + std::to_string(t->port);
    t->host_line = "Host: " + host_field + "\r\n";
    if (!url->user.empty() || url->password) {
      t->auth_line = "Authorization: Basic " + base64_encode(url->user + ":" + url->password.value_or("")) + "\r\n";
    }
    if (stream_ && (t->endpoint != endpoint_ || t->tls != stream_->is_tls())) stream_.reset();
    target_ = std::move(t);
  }
  const Target& t = *target_;
  const std::optional<Deadline> whole =
      request.timeout ? std::optional<Deadline>(start + *request.timeout) : std::nullopt;
  auto bound = [&](std::chrono::milliseconds step) {
    Deadline d = Clock::now() + step;
    return whole && *whole < d ? *whole : d;
  };
  auto failed = [&](const Error& e) {
    stream_.reset();
    in_.clear();
    return e.context(request.method + " " + t.redacted + " failed");
  };

  HttpResponse r;
  // An idle connection the server has closed takes no request: connect afresh instead, so
  // that nothing is sent on a connection already gone.
  if (stream_ && stream_->peer_closed()) stream_.reset();
  if (!stream_) {
    if (auto st = connect(t, bound(options_.connect_timeout)); !st) return failed(st.error());
    r.timings.connect = since(start);
  }

  // The request's own Host and User-Agent replace ours; the length is always ours.
  std::string out;
  out.reserve(request.method.size() + t.path.size() + request.body.size() + 256);
  out.append(request.method).append(" ").append(t.path).append(" HTTP/1.1\r\n");
  if (!find_header(request.headers, "Host")) out.append(t.host_line);
  if (!find_header(request.headers, "User-Agent")) out.append("User-Agent: envkit/" ENVKIT_VERSION "\r\n");
  out.append(t.auth_line);
  for (const auto& [name, value] : request.headers) {
    if (header_name_equals(name, "Content-Length")) continue;
    out.append(name).append(": ").append(value).append("\r\n");
  }
  const bool send_length = !request.body.empty() || request.method == "POST" || request.method == "PUT" ||
                           request.method == "PATCH";
  if (send_length) out.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
  out.append("\r\n").append(request.body);
  if (auto st = stream_->write_all(out, bound(options_.io_timeout)); !st) return failed(st.error());

  // Reads more of the response into in_; false at the end of the stream.
  char chunk[kReadChunk];
  auto read_more = [&]() -> Result<bool> {
    auto n = stream_->read_some(chunk, sizeof chunk, bound(options_.io_timeout));
    if (!n) return n.error();
    in_.append(chunk, *n);
    if (r.timings.first_byte.count() == 0) r.timings.first_byte = since(start);
    return *n > 0;
  };

  // The head; informational (1xx) responses before the final one are skipped.
  HttpResponseHead head;
  size_t body_at = 0;
  for (;;) {
    size_t end = in_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (in_.size() > kMaxHeadBytes) return failed(fail(Failure::bad_data, "response head over 64 KiB"));
      auto more = read_more();
      if (!more) return failed(more.error());
      if (!*more) {
        return failed(fail(Failure::connection_lost, in_.empty() ? "server closed the connection without answering"
                                                                 : "server closed the connection mid-head"));
      }
      continue;
    }
    auto parsed = parse_response_head(std::string_view(in_).substr(0, end));
    if (!parsed) return failed(parsed.error());
    if (parsed->status >= 100 && parsed->status < 200 && parsed->status != 101) {
      in_.erase(0, end + 4);
      continue;
    }
    head = std::move(*parsed);
    body_at = end + 4;
    break;
  }

  auto field = [&](std::string_view name) { return find_header(head.headers, name); };
  auto connection = field("Connection");
  bool keep = head.minor_version >= 1 ? !(connection && has_token(*connection, "close"))
                                      : connection && has_token(*connection, "keep-alive");
  const bool no_body = request.method == "HEAD" || head.status == 204 || head.status == 304 || head.status == 101;
  auto coding = field("Transfer-Encoding");
  auto length = field("Content-Length");
  auto too_large = [&] {
    return failed(fail(Failure::bad_data, "the response body is larger than the " + std::to_string(max_body_bytes_) +
                                              "-byte limit"));
  };
  size_t consumed = body_at;
  if (no_body) {
    if (head.status == 101) keep = false;
  } else if (coding && has_token(*coding, "chunked")) {
    size_t at = body_at;
    for (bool last = false; !last;) {
      size_t eol = in_.find("\r\n", at);
      if (eol == std::string::npos) {
        if (in_.size() - at > kMaxHeadBytes) return failed(fail(Failure::bad_data, "chunk-size line over 64 KiB"));
      } else if (auto n = chunk_size(std::string_view(in_).substr(at, eol - at)); !n) {
        return failed(fail(Failure::bad_data, "bad chunk-size line in the response"));
      } else if (*n == 0) {
        // The last chunk, then trailer fields up to a blank line.
        size_t blank = in_.compare(eol + 2, 2, "\r\n") == 0 ? eol + 2 : in_.find("\r\n\r\n", eol + 2);
        if (blank != std::string::npos) {
          consumed = blank + 2 + (blank == eol + 2 ? 0 : 2);
          last = true;
          continue;
        }
      } else if (*n > max_body_bytes_ - r.body.size()) {
        return too_large();
      } else if (in_.size() >= eol + 2 + *n + 2) {
        r.body.append(in_, eol + 2, *n);
        at = eol + 2 + *n + 2;
        continue;
      }
      auto more = read_more();
      if (!more) return failed(more.error());
      if (!*more) return failed(fail(Failure::connection_lost, "server closed the connection mid-body"));
    }
  } else if (length) {
    size_t n = 0;
    auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), n);
    if (ec != std::errc() || end != length->data() + length->size()) {
      return failed(fail(Failure::wrong_protocol, "bad Content-Length in the response"));
    }
    if (n > max_body_bytes_) return too_large();
    while (in_.size() < body_at + n) {
      auto more = read_more();
      if (!more) return failed(more.error());
      if (!*more) return failed(fail(Failure::connection_lost, "server closed the connection mid-body"));
    }
    r.body.assign(in_, body_at, n);
    consumed = body_at + n;
  } else {
    // Neither: the body ends with the connection.
    for (;;) {
      if (in_.size() - body_at > max_body_bytes_) return too_large();
      auto more = read_more();
      if (!more) return failed(more.error());
      if (!*more) break;
    }
    r.body.assign(in_, body_at);
    consumed = in_.size();
    keep = false;
  }
  // Nothing may follow a response the client did not ask for: such a connection is not reused.
  if (consumed != in_.size()) keep = false;
  in_.clear();
  if (!keep) stream_.reset();

  r.status = head.status;
  r.headers = std::move(head.headers);
  r.effective_url = t.redacted;
  r.timings.total = since(start);
  if (r.timings.first_byte.count() == 0) r.timings.first_byte = r.timings.total;
  return r;
}

}  // namespace envkit
