// kafka://: ApiVersions then Metadata, spoken by hand over envkit::Stream. librdkafka's
// metadata call would do, but it owns its own threads, retries and reconnects per broker,
// so neither the phases nor a hostile peer's bytes are in our hands; two requests by hand are
// small, bounded by the deadline, and checked byte by byte.
#include <cstring>

#include <envkit/bytes.hpp>
#include "proxy-check/probes.hpp"

namespace proxy_check {

namespace {

using envkit::ByteReader;
using envkit::Error;
using envkit::Exit;
using envkit::append_u16be;
using envkit::append_u32be;

constexpr uint32_t kMaxResponse = 4 * 1024 * 1024;
constexpr int16_t kApiVersions = 18;
constexpr int16_t kMetadata = 3;

void put_string(std::string& s, std::string_view v) {
  append_u16be(s, static_cast<uint16_t>(v.size()));
  s.append(v);
}

std::string request(int16_t api, int16_t version, int32_t correlation, std::string_view body) {
  std::string msg;
  append_u16be(msg, static_cast<uint16_t>(api));
  append_u16be(msg, static_cast<uint16_t>(version));
  append_u32be(msg, static_cast<uint32_t>(correlation));
  put_string(msg, "envkit-proxy-check");
  msg.append(body);
  std::string out;
  append_u32be(out, static_cast<uint32_t>(msg.size()));
  return out + msg;
}

int16_t i16(ByteReader& r) { return static_cast<int16_t>(r.u16be()); }
int32_t i32(ByteReader& r) { return static_cast<int32_t>(r.u32be()); }
/// A nullable string (length -1 is null, read as empty).
std::string str(ByteReader& r) {
  int16_t n = i16(r);
  if (n < 0) return {};
  return std::string(r.take(static_cast<size_t>(n)));
}
/// An array count, checked against what is left so a hostile count cannot make us loop long.
int32_t count(ByteReader& r, size_t min_item) {
  int32_t n = i32(r);
  if (n < 0) return 0;
  if (static_cast<size_t>(n) * min_item > r.remaining()) {
    r.fail();
    return 0;
  }
  return n;
}

envkit::Result<std::string> exchange(envkit::Stream& s, std::string_view req, int32_t correlation,
                                     envkit::Deadline deadline) {
  if (auto st = s.write_all(req, deadline); !st) return st.error();
  char size_bytes[4];
  if (auto st = s.read_exact(size_bytes, 4, deadline); !st) return st.error();
  ByteReader h(std::string_view(size_bytes, 4));
  int32_t size = i32(h);
  if (size < 4 || static_cast<uint32_t>(size) > kMaxResponse) {
    return Error{Exit::data, "not a Kafka response (size field " + std::to_string(size) + ": '" +
                                 printable(std::string_view(size_bytes, 4)) + "')"};
  }
  std::string body(static_cast<size_t>(size), '\0');
  if (auto st = s.read_exact(body.data(), body.size(), deadline); !st) return st.error();
  ByteReader r(body);
  if (i32(r) != correlation) return Error{Exit::data, "response for another request (correlation id)"};
  return body.substr(4);
}

}  // namespace

ProbeResult probe_kafka(const envkit::Url& target, const ProbeOptions& options) {
  ProbeResult r;
  PhaseClock clock(r);
  auto opened = open_target(target, options, r, clock);
  if (!opened) return r;
  envkit::Stream& stream = opened->stream;

  auto versions = exchange(stream, request(kApiVersions, 0, 1, ""), 1, options.deadline);
  clock.mark("first_byte");
  if (!versions) return fail(r, "ApiVersions", versions.error().message);
  ByteReader v(*versions);
  int16_t error = i16(v);
  if (error != 0) return fail(r, "ApiVersions", "error code " + std::to_string(error));
  int32_t n = count(v, 6);
  int16_t metadata_max = -1;
  for (int32_t i = 0; i < n && !v.bad(); ++i) {
    int16_t key = i16(v);
    i16(v);
    int16_t max = i16(v);
    if (key == kMetadata) metadata_max = max;
  }
  if (v.bad()) return fail(r, "ApiVersions", "malformed response");
  if (metadata_max < 1) return fail(r, "ApiVersions", "broker offers no Metadata v1 or later");
  int16_t mv = metadata_max >= 2 ? 2 : 1;

  std::string topic = target.path;
  // Always every topic (a null array), also when the URL names one: asking for one by name in
  // Metadata v1-v3 lets a broker with auto.create.topics.enable create it, and a check must
  // not change what it checks.
  std::string body;
  append_u32be(body, 0xffffffffu);
  auto meta = exchange(stream, request(kMetadata, mv, 2, body), 2, options.deadline);
  clock.mark("query");
  if (!meta) return fail(r, "Metadata", meta.error().message);
  stream.shutdown_write();
  ByteReader m(*meta);
  int32_t brokers = count(m, 14);
  std::string broker_list;
  for (int32_t i = 0; i < brokers && !m.bad(); ++i) {
    int32_t id = i32(m);
    std::string host = str(m);
    int32_t port = i32(m);
    str(m);  // rack
    if (i < 8) broker_list += (broker_list.empty() ? "" : ",") + std::to_string(id) + "@" + host + ":" + std::to_string(port);
  }
  std::string cluster_id = mv >= 2 ? str(m) : std::string();
  int32_t controller = i32(m);
  int32_t topics = count(m, 9);
  int topic_error = 0;
  bool topic_found = false;
  int leaderless = 0;
  for (int32_t i = 0; i < topics && !m.bad(); ++i) {
    int16_t terr = i16(m);
    std::string name = str(m);
    m.take(1);
    int32_t parts = count(m, 18);
    for (int32_t p = 0; p < parts && !m.bad(); ++p) {
      i16(m);
      i32(m);
      int32_t leader = i32(m);
      if (leader < 0) ++leaderless;
      int32_t replicas = count(m, 4);
      m.take(static_cast<size_t>(replicas) * 4);
      int32_t isr = count(m, 4);
      m.take(static_cast<size_t>(isr) * 4);
    }
    if (name == topic) {
      topic_found = true;
      topic_error = terr;
    }
  }
  if (m.bad()) return fail(r, "Metadata", "malformed response");
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
  r.state = worse(r.state, opened->tls_grade);
  if (!opened->tls_note.empty()) r.summary += ", " + opened->tls_note;
  return r;
}

}  // namespace proxy_check
