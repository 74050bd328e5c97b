// redis:// (and Valkey): AUTH, PING, INFO server spoken as RESP by hand over envkit::Stream:
// exact phases, TLS through the shared stream (hiredis 0.14 has none), and a hostile server
// bounded in bytes and time.
#include "proxy-check/probes.hpp"

namespace proxy_check {

namespace {

constexpr size_t kMaxReply = 1024 * 1024;

std::string command(std::initializer_list<std::string_view> args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (auto a : args) out += "$" + std::to_string(a.size()) + "\r\n" + std::string(a) + "\r\n";
  return out;
}

/// One reply: simple string, error, integer or bulk string (arrays are not needed here).
struct Reply {
  char type = 0;
  std::string text;
};

/// Reads one reply; `buffer` keeps bytes already read past it.
envkit::Result<Reply> read_reply(envkit::Stream& s, std::string& buffer, envkit::Deadline deadline) {
  // The first byte tells a Redis reply from anything else: do not wait for a line end that
  // a stranger may never send.
  if (buffer.empty()) {
    char first[4096];
    auto n = s.read_some(first, sizeof first, deadline);
    if (!n) return n.error();
    if (*n == 0) return envkit::Error{envkit::Exit::unavailable, "server closed the connection"};
    buffer.append(first, *n);
  }
  if (std::string_view("+-:$*_,#").find(buffer[0]) == std::string_view::npos) {
    return envkit::Error{envkit::Exit::data, "not a Redis reply: '" + printable(buffer) + "'"};
  }
  auto until = read_until(s, buffer, "\r\n", kMaxReply, deadline);
  if (!until) return until.error();
  if (*until == ReadUntil::closed) {
    return envkit::Error{envkit::Exit::unavailable,
                         buffer.empty() ? "server closed the connection" : "server closed mid-reply"};
  }
  if (*until == ReadUntil::too_large) return envkit::Error{envkit::Exit::data, "reply line longer than 1 MiB"};
  size_t eol = buffer.find("\r\n");
  std::string line = buffer.substr(0, eol);
  buffer.erase(0, eol + 2);
  Reply r;
  r.type = line.empty() ? 0 : line[0];
  if (r.type == '+' || r.type == '-' || r.type == ':') {
    r.text = line.substr(1);
    return r;
  }
  if (r.type == '$') {
    long long len = -2;
    try {
      len = std::stoll(line.substr(1));
    } catch (...) {
    }
    if (len == -1) return r;
    if (len < 0 || static_cast<size_t>(len) > kMaxReply) {
      return envkit::Error{envkit::Exit::data, "bad bulk length '" + printable(line) + "'"};
    }
    size_t need = static_cast<size_t>(len) + 2;
    if (buffer.size() < need) {
      std::string more(need - buffer.size(), '\0');
      if (auto st = s.read_exact(more.data(), more.size(), deadline); !st) return st.error();
      buffer += more;
    }
    r.text = buffer.substr(0, static_cast<size_t>(len));
    buffer.erase(0, need);
    return r;
  }
  return envkit::Error{envkit::Exit::data, "not a Redis reply: '" + printable(line) + "'"};
}

std::string info_field(const std::string& info, const std::string& key) {
  size_t pos = info.find(key + ":");
  if (pos == std::string::npos || (pos > 0 && info[pos - 1] != '\n')) return {};
  size_t start = pos + key.size() + 1;
  size_t end = info.find_first_of("\r\n", start);
  return info.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

}  // namespace

ProbeResult probe_redis(const envkit::Url& target, const ProbeOptions& options) {
  ProbeResult r;
  PhaseClock clock(r);
  auto opened = open_target(target, options, r, clock);
  if (!opened) return r;
  envkit::Stream& stream = opened->stream;

  std::string buffer;
  // Pipelined: AUTH (when a password is known), PING, INFO server: one round trip.
  std::string out;
  bool auth = target.password.has_value();
  if (auth) {
    out += target.user.empty() ? command({"AUTH", *target.password})
                               : command({"AUTH", target.user, *target.password});
  }
  out += command({"PING"}) + command({"INFO", "server"});
  if (auto st = stream.write_all(out, options.deadline); !st) return fail(r, "send", st.error());
  if (auth) {
    auto reply = read_reply(stream, buffer, options.deadline);
    clock.mark("auth");
    if (!reply) return fail(r, "auth", reply.error().message);
    if (reply->type == '-') return fail(r, "auth", reply->text);
  }
  auto pong = read_reply(stream, buffer, options.deadline);
  clock.mark(auth ? "ping" : "first_byte");
  if (!pong) return fail(r, "ping", pong.error().message);
  if (pong->type == '-') return fail(r, "ping", pong->text);  // NOAUTH Authentication required.
  if (pong->type != '+' || pong->text != "PONG") return fail(r, "ping", "expected PONG, got '" + printable(pong->text) + "'");
  auto info = read_reply(stream, buffer, options.deadline);
  clock.mark("query");
  if (!info) return fail(r, "info", info.error().message);
  if (info->type == '-') return fail(r, "info", info->text);
  stream.shutdown_write();
  clock.finish();
  std::string version = info_field(info->text, "redis_version");
  std::string run_id = info_field(info->text, "run_id");
  std::string port = info_field(info->text, "tcp_port");
  std::string mode = info_field(info->text, "redis_mode");
  if (!version.empty()) r.facts.emplace_back("server_version", version);
  if (!mode.empty()) r.facts.emplace_back("redis_mode", mode);
  if (!run_id.empty()) r.facts.emplace_back("run_id", run_id);
  if (!run_id.empty()) r.identity = "run_id=" + run_id + ",port=" + port + ",version=" + version;
  r.state = worse(State::ok, opened->tls_grade);
  r.summary = "Redis " + (version.empty() ? std::string("?") : version) + " PONG" +
              (auth ? ", authenticated" : "") +
              (opened->tls_note.empty() ? "" : ", " + opened->tls_note);
  return r;
}

}  // namespace proxy_check
