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

// --- targets and responses ----------------------------------------------------------------

Result<HttpTarget> HttpTarget::parse(const std::string& text, const TlsOptions& tls) {
  auto url = parse_url(text);
  if (!url) return url.error();
  if ((url->scheme != "http" && url->scheme != "https") || url->hosts.empty()) {
    return fail(Failure::usage, url->redacted() + ": only http:// and https:// URLs with a host are supported");
  }
  HttpTarget t;
  t.url = text;
  t.redacted = url->redacted();
  const auto& h = url->hosts[0];
  t.host = h.host;
  t.port = url->port_or_default(0);
  t.tls = url->scheme == "https";
  std::string bracketed = h.ipv6 ? "[" + h.host + "]" : h.host;
  t.endpoint = bracketed + ":" + std::to_string(t.port);
  // From the first '/' or '?' after the authority to the fragment.
  std::string_view rest = text;
  size_t from = rest.find_first_of("/?#", rest.find("://") + 3);
  rest = from == std::string_view::npos ? std::string_view() : rest.substr(from);
  rest = rest.substr(0, rest.find('#'));
  t.path = rest.empty() || rest.front() != '/' ? "/" + std::string(rest) : std::string(rest);
  std::string host_field = t.tls && !tls.server_name.empty() ? tls.server_name : bracketed;
  if (t.port != default_port(url->scheme)) host_field += ":" + std::to_string(t.port);
  t.host_line = "Host: " + host_field + "\r\n";
  if (!url->user.empty() || url->password) {
    t.auth_line = "Authorization: Basic " + base64_encode(url->user + ":" + url->password.value_or("")) + "\r\n";
  }
  return t;
}

void HttpTarget::encode(const HttpRequest& request, std::string& out) const {
  out.reserve(out.size() + request.method.size() + path.size() + request.body.size() + 256);
  out.append(request.method).append(" ").append(path).append(" HTTP/1.1\r\n");
  if (!find_header(request.headers, "Host")) out.append(host_line);
  if (!find_header(request.headers, "User-Agent")) out.append("User-Agent: envkit/" ENVKIT_VERSION "\r\n");
  out.append(auth_line);
  for (const auto& [name, value] : request.headers) {
    if (header_name_equals(name, "Content-Length")) continue;
    out.append(name).append(": ").append(value).append("\r\n");
  }
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
    out.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
  }
  out.append("\r\n").append(request.body);
}

void HttpResponseReader::start(std::string_view method) {
  head_request_ = method == "HEAD";
  phase_ = Phase::head;
  left_ = 0;
  keep_ = true;
  response_ = HttpResponse{};
}

Result<bool> HttpResponseReader::too_large() const {
  return fail(Failure::bad_data, "the response body is larger than the " + std::to_string(max_body_) + "-byte limit");
}

Result<bool> HttpResponseReader::feed(std::string& in, bool closed) {
  auto cut_short = [&](const char* where) -> Result<bool> {
    return fail(Failure::connection_lost, std::string("server closed the connection ") + where);
  };
  std::string& body = response_.body;
  for (;;) {
    switch (phase_) {
      case Phase::head: {
        size_t end = in.find("\r\n\r\n");
        if (end == std::string::npos) {
          if (in.size() > kMaxHeadBytes) return fail(Failure::bad_data, "response head over 64 KiB");
          if (closed) return cut_short(in.empty() ? "without answering" : "mid-head");
          return false;
        }
        auto head = parse_response_head(std::string_view(in).substr(0, end));
        if (!head) return head.error();
        in.erase(0, end + 4);
        if (head->status >= 100 && head->status < 200 && head->status != 101) continue;  // 100 Continue
        response_.status = head->status;
        response_.headers = std::move(head->headers);
        auto connection = response_.header("Connection");
        keep_ = head->minor_version >= 1 ? !(connection && has_token(*connection, "close"))
                                         : connection && has_token(*connection, "keep-alive");
        auto coding = response_.header("Transfer-Encoding");
        auto length = response_.header("Content-Length");
        if (head_request_ || head->status == 204 || head->status == 304 || head->status == 101) {
          if (head->status == 101) keep_ = false;
          phase_ = Phase::done;
        } else if (coding && has_token(*coding, "chunked")) {
          phase_ = Phase::chunk_size;
        } else if (length) {
          size_t n = 0;
          auto [at, ec] = std::from_chars(length->data(), length->data() + length->size(), n);
          if (ec != std::errc() || at != length->data() + length->size()) {
            return fail(Failure::wrong_protocol, "bad Content-Length in the response");
          }
          if (n > max_body_) return too_large();
          body.reserve(n);
          left_ = n;
          phase_ = n == 0 ? Phase::done : Phase::length;
        } else {
          keep_ = false;  // the body ends with the connection
          phase_ = Phase::to_end;
        }
        continue;
      }
      case Phase::length: {
        size_t take = std::min(left_, in.size());
        body.append(in, 0, take);
        in.erase(0, take);
        left_ -= take;
        if (left_ == 0) {
          phase_ = Phase::done;
          continue;
        }
        return closed ? cut_short("mid-body") : Result<bool>(false);
      }
      case Phase::chunk_size: {
        size_t eol = in.find("\r\n");
        if (eol == std::string::npos) {
          if (in.size() > kMaxHeadBytes) return fail(Failure::bad_data, "chunk-size line over 64 KiB");
          return closed ? cut_short("mid-body") : Result<bool>(false);
        }
        auto n = chunk_size(std::string_view(in).substr(0, eol));
        if (!n) return fail(Failure::bad_data, "bad chunk-size line in the response");
        in.erase(0, eol + 2);
        if (*n == 0) {
          phase_ = Phase::trailers;
        } else {
          if (*n > max_body_ - body.size()) return too_large();
          left_ = *n + 2;
          phase_ = Phase::chunk_data;
        }
        continue;
      }
      case Phase::chunk_data: {
        size_t data = left_ > 2 ? std::min(left_ - 2, in.size()) : 0;
        body.append(in, 0, data);
        size_t take = std::min(left_, in.size());  // the data, then its CRLF
        in.erase(0, take);
        left_ -= take;
        if (left_ == 0) {
          phase_ = Phase::chunk_size;
          continue;
        }
        return closed ? cut_short("mid-body") : Result<bool>(false);
      }
      case Phase::trailers: {
        size_t eol = in.find("\r\n");
        if (eol == std::string::npos) {
          if (in.size() > kMaxHeadBytes) return fail(Failure::bad_data, "trailer over 64 KiB");
          return closed ? cut_short("mid-body") : Result<bool>(false);
        }
        in.erase(0, eol + 2);
        if (eol == 0) phase_ = Phase::done;  // the blank line
        continue;
      }
      case Phase::to_end: {
        if (body.size() + in.size() > max_body_) return too_large();
        body.append(in);
        in.clear();
        if (!closed) return false;
        phase_ = Phase::done;
        continue;
      }
      case Phase::done:
        if (!in.empty()) keep_ = false;  // bytes nobody asked for
        return true;
    }
  }
}

Result<Stream> connect_http(const HttpTarget& t, const ConnectionOptions& options, Deadline deadline) {
  auto stream = Stream::connect(t.host, t.port, deadline);
  if (!stream) return stream.error();
  if (t.tls) {
    auto session = stream->start_tls(options.tls, t.host, deadline);
    if (!session) return session.error();
    if (options.tls.verify && !session->verified) {
      return fail(Failure::tls_failed, "TLS certificate not trusted: " + session->verify_error);
    }
  }
  return stream;
}

// --- the connection ------------------------------------------------------------------------

HttpConnection::HttpConnection(ConnectionOptions options, size_t max_body_bytes)
    : options_(std::move(options)), reader_(max_body_bytes) {}
HttpConnection::HttpConnection(HttpConnection&&) noexcept = default;
HttpConnection& HttpConnection::operator=(HttpConnection&&) noexcept = default;
HttpConnection::~HttpConnection() = default;

Status HttpConnection::connect(const HttpTarget& t, Deadline deadline) {
  auto stream = connect_http(t, options_, deadline);
  if (!stream) return stream.error();
  stream_.emplace(std::move(*stream));
  endpoint_ = t.endpoint;
  in_.clear();
  return {};
}

Result<HttpResponse> HttpConnection::perform(const HttpRequest& request) {
  const auto start = Clock::now();
  if (!target_ || target_->url != request.url) {
    auto t = HttpTarget::parse(request.url, options_.tls);
    if (!t) return t.error().context(request.method + " request failed");
    if (stream_ && (t->endpoint != endpoint_ || t->tls != stream_->is_tls())) stream_.reset();
    target_ = std::move(*t);
  }
  const HttpTarget& t = *target_;
  const Deadline whole = request.timeout ? start + *request.timeout : Deadline::max();
  auto bound = [&](std::chrono::milliseconds step) { return std::min(Clock::now() + step, whole); };
  auto failed = [&](const Error& e) {
    stream_.reset();
    in_.clear();
    return e.context(request.method + " " + t.redacted + " failed");
  };

  HttpTimings timings;
  // An idle connection the server has closed takes no request: connect afresh instead, so
  // that nothing is sent on a connection already gone.
  if (stream_ && stream_->peer_closed()) stream_.reset();
  if (!stream_) {
    if (auto st = connect(t, bound(options_.connect_timeout)); !st) return failed(st.error());
    timings.connect = since(start);
  }
  std::string out;
  t.encode(request, out);
  if (auto st = stream_->write_all(out, bound(options_.io_timeout)); !st) return failed(st.error());

  reader_.start(request.method);
  in_.clear();
  char chunk[kReadChunk];
  for (bool closed = false;;) {
    auto whole_response = reader_.feed(in_, closed);
    if (!whole_response) return failed(whole_response.error());
    if (*whole_response) break;
    auto n = stream_->read_some(chunk, sizeof chunk, bound(options_.io_timeout));
    if (!n) return failed(n.error());
    if (timings.first_byte.count() == 0) timings.first_byte = since(start);
    in_.append(chunk, *n);
    closed = *n == 0;
  }
  if (!reader_.keep_alive()) stream_.reset();
  in_.clear();
  HttpResponse r = std::move(reader_.response());
  r.effective_url = t.redacted;
  r.timings = timings;
  r.timings.total = since(start);
  if (r.timings.first_byte.count() == 0) r.timings.first_byte = r.timings.total;
  return r;
}

}  // namespace envkit
