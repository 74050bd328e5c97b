// amqp:// (RabbitMQ): the AMQP 0-9-1 connection handshake spoken by hand over envkit::Stream
// (protocol header, Start/Start-Ok with PLAIN, Tune/Tune-Ok, Open/Open-Ok, Close/Close-Ok).
// rabbitmq-c blocks in its own timers and hides the phases; by hand every step is timed,
// bounded by the deadline, and a hostile peer's frame sizes are checked before allocating.
#include <cstring>

#include <envkit/bytes.hpp>
#include "proxy-check/probes.hpp"

namespace proxy_check {

namespace {

constexpr uint32_t kMaxFrame = 1024 * 1024;
constexpr uint8_t kFrameMethod = 1;
constexpr uint8_t kFrameHeartbeat = 8;
constexpr uint8_t kFrameEnd = 0xCE;

using envkit::ByteReader;
using envkit::Error;
using envkit::Exit;
using envkit::append_u16be;
using envkit::append_u32be;

void put_short(std::string& s, std::string_view v) {
  s += static_cast<char>(std::min<size_t>(v.size(), 255));
  s.append(v.substr(0, 255));
}
void put_long(std::string& s, std::string_view v) {
  append_u32be(s, static_cast<uint32_t>(v.size()));
  s.append(v);
}

std::string method_frame(uint16_t cls, uint16_t method, std::string_view args) {
  std::string payload;
  append_u16be(payload, cls);
  append_u16be(payload, method);
  payload.append(args);
  std::string f;
  f += static_cast<char>(kFrameMethod);
  append_u16be(f, 0);
  append_u32be(f, static_cast<uint32_t>(payload.size()));
  f += payload;
  f += static_cast<char>(kFrameEnd);
  return f;
}

std::string shortstr(ByteReader& r) { return std::string(r.take(r.u8())); }
std::string longstr(ByteReader& r) { return std::string(r.take(r.u32be())); }

/// Skips one field value of type `t` (AMQP 0-9-1 / RabbitMQ field table types).
void skip_value(ByteReader& r, char t) {
  switch (t) {
    case 't': case 'b': case 'B': r.take(1); break;
    case 's': case 'u': r.take(2); break;
    case 'I': case 'i': case 'f': r.take(4); break;
    case 'l': case 'L': case 'd': case 'T': r.take(8); break;
    case 'D': r.take(5); break;
    case 'S': case 'x': case 'A': case 'F': r.take(r.u32be()); break;
    case 'V': break;
    default: r.fail();
  }
}

/// The long-string entries of a field table (others skipped).
std::vector<std::pair<std::string, std::string>> read_table(ByteReader& r) {
  std::vector<std::pair<std::string, std::string>> out;
  ByteReader t(r.take(r.u32be()));
  while (!t.bad() && !t.empty()) {
    std::string key = shortstr(t);
    char type = static_cast<char>(t.u8());
    if (type == 'S') {
      out.emplace_back(key, longstr(t));
    } else {
      skip_value(t, type);
    }
  }
  if (t.bad()) r.fail();
  return out;
}

struct Method {
  uint16_t cls = 0, id = 0;
  std::string args;
};

envkit::Result<Method> read_method(envkit::Stream& s, envkit::Deadline deadline) {
  for (int frames = 0; frames < 16; ++frames) {
    char header[7];
    if (auto st = s.read_exact(header, sizeof header, deadline); !st) return st.error();
    if (std::memcmp(header, "AMQP", 4) == 0) {
      return Error{Exit::unavailable, "server does not speak AMQP 0-9-1 (it answered with its own protocol header)"};
    }
    ByteReader h(std::string_view(header, 7));
    uint8_t type = h.u8();
    h.u16be();
    uint32_t size = h.u32be();
    if (type != kFrameMethod && type != kFrameHeartbeat && type != 2 && type != 3) {
      return Error{Exit::data, "not an AMQP frame (type " + std::to_string(type) + "): '" +
                                   printable(std::string_view(header, 7)) + "'"};
    }
    if (size > kMaxFrame) return Error{Exit::data, "frame of " + std::to_string(size) + " bytes is too large"};
    std::string payload(size + 1, '\0');
    if (auto st = s.read_exact(payload.data(), payload.size(), deadline); !st) return st.error();
    if (static_cast<uint8_t>(payload.back()) != kFrameEnd) return Error{Exit::data, "frame without its end marker"};
    payload.pop_back();
    if (type != kFrameMethod) continue;
    ByteReader p(payload);
    Method m;
    m.cls = p.u16be();
    m.id = p.u16be();
    if (p.bad()) return Error{Exit::data, "method frame too short"};
    m.args = std::string(p.rest());
    return m;
  }
  return Error{Exit::data, "no method frame in 16 frames"};
}

/// "403 ACCESS_REFUSED - Login was refused ..." from a Connection.Close.
std::string close_reason(const Method& m) {
  ByteReader r(m.args);
  uint16_t code = r.u16be();
  std::string text = shortstr(r);
  return std::to_string(code) + " " + text;
}

}  // namespace

ProbeResult probe_amqp(const envkit::Url& target, const ProbeOptions& options) {
  ProbeResult r;
  PhaseClock clock(r);
  auto opened = open_target(target, options, r, clock);
  if (!opened) return r;
  envkit::Stream& stream = opened->stream;
  auto d = options.deadline;

  if (auto st = stream.write_all(std::string_view("AMQP\x00\x00\x09\x01", 8), d); !st)
    return fail(r, "protocol header", st.error());
  auto start = read_method(stream, d);
  clock.mark("greeting");
  if (!start) return fail(r, "greeting", start.error().message);
  if (start->cls != 10 || start->id != 10) {
    return fail(r, "greeting", "expected Connection.Start, got method " + std::to_string(start->cls) + "." +
                                   std::to_string(start->id));
  }
  ByteReader sr(start->args);
  uint8_t major = sr.u8(), minor = sr.u8();
  auto props = read_table(sr);
  std::string mechanisms = longstr(sr);
  if (sr.bad()) return fail(r, "greeting", "malformed Connection.Start");
  std::string product, version, cluster;
  for (const auto& [k, v] : props) {
    if (k == "product") product = v;
    if (k == "version") version = v;
    if (k == "cluster_name") cluster = v;
  }
  if (mechanisms.find("PLAIN") == std::string::npos)
    return fail(r, "auth", "server offers no PLAIN mechanism (" + printable(mechanisms) + ")");

  std::string user = target.user.empty() ? "guest" : target.user;
  std::string password = target.password.value_or(target.user.empty() ? "guest" : "");
  std::string client_props;
  {
    std::string entries;
    put_short(entries, "product");
    entries += 'S';
    put_long(entries, "envkit proxy-check");
    // Ask for a Connection.Close with a reason on bad credentials rather than a bare close.
    std::string caps;
    put_short(caps, "authentication_failure_close");
    caps += 't';
    caps += '\x01';
    put_short(entries, "capabilities");
    entries += 'F';
    put_long(entries, caps);
    put_long(client_props, entries);
  }
  std::string start_ok = client_props;
  put_short(start_ok, "PLAIN");
  put_long(start_ok, std::string(1, '\0') + user + std::string(1, '\0') + password);
  put_short(start_ok, "en_US");
  if (auto st = stream.write_all(method_frame(10, 11, start_ok), d); !st) return fail(r, "auth", st.error());
  auto tune = read_method(stream, d);
  clock.mark("auth");
  if (!tune) {
    return fail(r, "auth", tune.error().message == "connection closed after 0 of 7 bytes"
                               ? "server closed the connection (credentials refused?)"
                               : tune.error().message);
  }
  if (tune->cls == 10 && tune->id == 50) return fail(r, "auth", close_reason(*tune));
  if (tune->cls != 10 || tune->id != 30) return fail(r, "auth", "expected Connection.Tune");
  ByteReader tr(tune->args);
  uint16_t channel_max = tr.u16be();
  uint32_t frame_max = tr.u32be();
  if (tr.bad()) return fail(r, "auth", "malformed Connection.Tune");
  std::string tune_ok;
  append_u16be(tune_ok, channel_max);
  append_u32be(tune_ok, frame_max);
  append_u16be(tune_ok, 0);  // no heartbeats: the connection lives for milliseconds
  std::string vhost = target.path.empty() ? "/" : target.path;
  std::string open;
  put_short(open, vhost);
  put_short(open, "");
  open += '\0';
  if (auto st = stream.write_all(method_frame(10, 31, tune_ok) + method_frame(10, 40, open), d); !st)
    return fail(r, "open", st.error());
  auto open_ok = read_method(stream, d);
  clock.mark("open");
  if (!open_ok) return fail(r, "open", open_ok.error().message);
  if (open_ok->cls == 10 && open_ok->id == 50) return fail(r, "open vhost '" + vhost + "'", close_reason(*open_ok));
  if (open_ok->cls != 10 || open_ok->id != 41) return fail(r, "open", "expected Connection.Open-Ok");

  std::string close;
  append_u16be(close, 200);
  put_short(close, "proxy-check done");
  append_u16be(close, 0);
  append_u16be(close, 0);
  if (stream.write_all(method_frame(10, 50, close), d)) {
    auto close_ok = read_method(stream, d);  // best effort: the check already passed
    (void)close_ok;
  }
  clock.mark("close");
  clock.finish();
  if (!product.empty()) r.facts.emplace_back("product", product);
  if (!version.empty()) r.facts.emplace_back("server_version", version);
  if (!cluster.empty()) r.facts.emplace_back("cluster_name", cluster);
  r.facts.emplace_back("protocol", "0-" + std::to_string(major) + "-" + std::to_string(minor));
  r.facts.emplace_back("frame_max", std::to_string(frame_max));
  r.identity = "cluster_name=" + cluster + ",version=" + version;
  r.state = worse(State::ok, opened->tls_grade);
  r.summary = (product.empty() ? std::string("AMQP") : product) + " " + version + ", vhost '" + vhost +
              "' opened as " + user + (opened->tls_note.empty() ? "" : ", " + opened->tls_note);
  return r;
}

}  // namespace proxy_check
