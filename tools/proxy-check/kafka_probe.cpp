// kafka://: ApiVersions then Metadata, spoken by hand over envkit::Stream. librdkafka's
// metadata call would do, but it owns its own threads, retries and reconnects per broker,
// so neither the phases nor a hostile peer's bytes are in our hands; two requests by hand are
// small, bounded by the deadline, and checked byte by byte.
#include <cstring>

#include "probes.hpp"

namespace proxy_check {

namespace {

using envkit::Error;
using envkit::Exit;

constexpr uint32_t kMaxResponse = 4 * 1024 * 1024;
constexpr int16_t kApiVersions = 18;
constexpr int16_t kMetadata = 3;

void put16(std::string& s, uint16_t v) {
  s += static_cast<char>(v >> 8);
  s += static_cast<char>(v & 0xff);
}
void put32(std::string& s, uint32_t v) {
  put16(s, static_cast<uint16_t>(v >> 16));
  put16(s, static_cast<uint16_t>(v & 0xffff));
}
void put_string(std::string& s, std::string_view v) {
  put16(s, static_cast<uint16_t>(v.size()));
  s.append(v);
}

std::string request(int16_t api, int16_t version, int32_t correlation, std::string_view body) {
  std::string msg;
  put16(msg, static_cast<uint16_t>(api));
  put16(msg, static_cast<uint16_t>(version));
  put32(msg, static_cast<uint32_t>(correlation));
  put_string(msg, "envkit-proxy-check");
  msg.append(body);
  std::string out;
  put32(out, static_cast<uint32_t>(msg.size()));
  return out + msg;
}

struct Reader {
  std::string_view in;
  bool bad = false;
  std::string_view take(size_t n) {
    if (bad || in.size() < n) {
      bad = true;
      return {};
    }
    auto out = in.substr(0, n);
    in.remove_prefix(n);
    return out;
  }
  int16_t i16() {
    auto b = take(2);
    return b.size() < 2 ? 0 : static_cast<int16_t>((uint8_t(b[0]) << 8) | uint8_t(b[1]));
  }
  int32_t i32() {
    auto b = take(4);
    if (b.size() < 4) return 0;
    return static_cast<int32_t>((uint32_t(uint8_t(b[0])) << 24) | (uint32_t(uint8_t(b[1])) << 16) |
                                (uint32_t(uint8_t(b[2])) << 8) | uint32_t(uint8_t(b[3])));
  }
  std::string str() {
    int16_t n = i16();
    if (n < 0) return {};
    return std::string(take(static_cast<size_t>(n)));
  }
  /// An array count, checked against what is left so a hostile count cannot make us loop long.
  int32_t count(size_t min_item) {
    int32_t n = i32();
    if (n < 0) return 0;
    if (static_cast<size_t>(n) * min_item > in.size()) {
      bad = true;
      return 0;
    }
    return n;
  }
};

envkit::Result<std::string> exchange(envkit::Stream& s, std::string_view req, int32_t correlation,
                                     envkit::Deadline deadline) {
  if (auto st = s.write_all(req, deadline); !st) return st.error();
  char size_bytes[4];
  if (auto st = s.read_exact(size_bytes, 4, deadline); !st) return st.error();
  Reader h{std::string_view(size_bytes, 4)};
  int32_t size = h.i32();
  if (size < 4 || static_cast<uint32_t>(size) > kMaxResponse) {
    return Error{Exit::data, "not a Kafka response (size field " + std::to_string(size) + ": '" +
                                 printable(std::string_view(size_bytes, 4)) + "')"};
  }
  std::string body(static_cast<size_t>(size), '\0');
  if (auto st = s.read_exact(body.data(), body.size(), deadline); !st) return st.error();
  Reader r{body};
  if (r.i32() != correlation) return Error{Exit::data, "response for another request (correlation id)"};
  return body.substr(4);
}

}  // namespace

ProbeResult probe_kafka(const envkit::Url& target, const ProbeOptions& options) {
  ProbeResult r;
  PhaseClock clock(r);
  ProbeOptions opts = options;
  auto tls = envkit::tls_options_from_url(target, options.connection.tls);
  if (!tls) return fail(r, "target", tls.error());
  opts.connection.tls = *tls;
  auto stream = connect_phase(target, opts, r, clock);
  if (!stream) return r;
  State tls_grade = State::ok;
  std::string tls_note;
  if (tls->enabled && !tls_phase(*stream, target, opts, r, clock, tls_grade, tls_note)) return r;

  auto versions = exchange(*stream, request(kApiVersions, 0, 1, ""), 1, options.deadline);
  clock.mark("first_byte");
  if (!versions) return fail(r, "ApiVersions", versions.error().message);
  Reader v{*versions};
  int16_t error = v.i16();
  if (error != 0) return fail(r, "ApiVersions", "error code " + std::to_string(error));
  int32_t n = v.count(6);
  int16_t metadata_max = -1;
  for (int32_t i = 0; i < n && !v.bad; ++i) {
    int16_t key = v.i16();
    v.i16();
    int16_t max = v.i16();
    if (key == kMetadata) metadata_max = max;
  }
  if (v.bad) return fail(r, "ApiVersions", "malformed response");
  if (metadata_max < 1) return fail(r, "ApiVersions", "broker offers no Metadata v1 or later");
  int16_t mv = metadata_max >= 2 ? 2 : 1;

  std::string topic = target.path;
  // Always every topic (a null array), also when the URL names one: asking for one by name in
  // Metadata v1-v3 lets a broker with auto.create.topics.enable create it, and a check must
  // not change what it checks.
  std::string body;
  put32(body, 0xffffffffu);
  auto meta = exchange(*stream, request(kMetadata, mv, 2, body), 2, options.deadline);
  clock.mark("query");
  if (!meta) return fail(r, "Metadata", meta.error().message);
  stream->shutdown_write();
  Reader m{*meta};
  int32_t brokers = m.count(14);
  std::string broker_list;
  for (int32_t i = 0; i < brokers && !m.bad; ++i) {
    int32_t id = m.i32();
    std::string host = m.str();
    int32_t port = m.i32();
    m.str();  // rack
    if (i < 8) broker_list += (broker_list.empty() ? "" : ",") + std::to_string(id) + "@" + host + ":" + std::to_string(port);
  }
  std::string cluster_id = mv >= 2 ? m.str() : std::string();
  int32_t controller = m.i32();
  int32_t topics = m.count(9);
  int topic_error = 0;
  bool topic_found = false;
  int leaderless = 0;
  for (int32_t i = 0; i < topics && !m.bad; ++i) {
    int16_t terr = m.i16();
    std::string name = m.str();
    m.take(1);
    int32_t parts = m.count(18);
    for (int32_t p = 0; p < parts && !m.bad; ++p) {
      m.i16();
      m.i32();
      int32_t leader = m.i32();
      if (leader < 0) ++leaderless;
      int32_t replicas = m.count(4);
      m.take(static_cast<size_t>(replicas) * 4);
      int32_t isr = m.count(4);
      m.take(static_cast<size_t>(isr) * 4);
    }
    if (name == topic) {
      topic_found = true;
      topic_error = terr;
    }
  }
  if (m.bad) return fail(r, "Metadata", "malformed response");
  clock.finish();
  r.facts.emplace_back("brokers", std::to_string(brokers));
  r.facts.emplace_back("controller_id", std::to_string(controller));
  r.facts.emplace_back("topics", std::to_string(topics));
  if (!cluster_id.empty()) r.facts.emplace_back("cluster_id", cluster_id);
  r.identity = "cluster_id=" + cluster_id + ",brokers=" + broker_list;
  r.summary = "Kafka metadata: " + std::to_string(brokers) + " broker(s) [" + broker_list + "], controller " +
              std::to_string(controller) + ", " + std::to_string(topics) + " topic(s)";
  r.state = State::ok;
  if (!topic.empty()) {
    if (!topic_found || topic_error != 0) {
      r.state = State::critical;
      r.summary += ", topic '" + topic + "' " +
                   (topic_error == 3 || !topic_found ? std::string("does not exist")
                                                     : "has error code " + std::to_string(topic_error));
    } else {
      r.summary += ", topic '" + topic + "' present";
    }
  }
  if (leaderless > 0) {
    r.state = worse(r.state, State::warning);
    r.summary += ", " + std::to_string(leaderless) + " partition(s) without a leader";
  }
  r.state = worse(r.state, tls_grade);
  if (!tls_note.empty()) r.summary += ", " + tls_note;
  return r;
}

}  // namespace proxy_check
