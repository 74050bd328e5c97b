// probe_mongodb: one OP_MSG {hello: 1, $db: "admin"} by hand over envkit::Stream, built and
// read with libbson, and the replica-set state it reports graded.
#include <bson/bson.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <envkit/bytes.hpp>
#include "proxy-check/probe.hpp"
#include "proxy-check/probes.hpp"

namespace proxy_check {
namespace {

using envkit::Error;
using envkit::Exit;
using envkit::Result;

constexpr int32_t kOpMsg = 2013;
constexpr uint32_t kChecksumPresent = 1u << 0;
constexpr size_t kHeaderSize = 16;
// A hello reply is a few hundred bytes; a reply claiming more than this is not one.
constexpr int32_t kMaxReplyLength = 1 << 20;
// CommandNotFound: servers before 4.4.2 know only isMaster.
constexpr int32_t kCommandNotFound = 59;

// A bson_t on the stack (it is over-aligned, so not for unique_ptr), destroyed on scope exit.
struct BsonDocument {
  bson_t doc;
  BsonDocument() { bson_init(&doc); }
  ~BsonDocument() { bson_destroy(&doc); }
  BsonDocument(const BsonDocument&) = delete;
  BsonDocument& operator=(const BsonDocument&) = delete;
};

// The little-endian int32 at the front of `bytes` (which holds at least 4).
int32_t front_le32(std::string_view bytes) {
  return static_cast<int32_t>(envkit::ByteReader(bytes).u32le());
}

// OP_MSG with one kind-0 section: {<command>: 1, $db: "admin"}.
std::string build_op_msg(int32_t request_id, const char* command) {
  BsonDocument command_doc;
  bson_t* doc = &command_doc.doc;
  BSON_APPEND_INT32(doc, command, 1);
  BSON_APPEND_UTF8(doc, "$db", "admin");
  std::string body;
  envkit::append_u32le(body, 0);  // flagBits
  body.push_back('\0');  // section kind 0: the body document
  body.append(reinterpret_cast<const char*>(bson_get_data(doc)), doc->len);
  std::string msg;
  envkit::append_u32le(msg, static_cast<uint32_t>(kHeaderSize + body.size()));
  envkit::append_u32le(msg, static_cast<uint32_t>(request_id));
  envkit::append_u32le(msg, 0);  // responseTo
  envkit::append_u32le(msg, static_cast<uint32_t>(kOpMsg));
  return msg + body;
}

// What hello says, as far as the probe cares.
struct Hello {
  bool ok = false;
  std::string errmsg;
  int32_t code = 0;
  std::string set_name, me, primary, msg;
  std::optional<bool> writable_primary;
  bool secondary = false, arbiter = false, hidden = false;
  bool is_replica_set = false;  // a member without a config yet (STARTUP) says so
  std::string info;
  std::vector<std::string> hosts;
  std::optional<int32_t> max_wire_version;
  std::string process_id;  // topologyVersion.processId, hex
};

std::string utf8_of(const bson_iter_t& it) {
  if (!BSON_ITER_HOLDS_UTF8(&it)) return {};
  uint32_t len = 0;
  const char* s = bson_iter_utf8(&it, &len);
  return printable(std::string_view(s, len), 200);
}

// Reads the reply body (flagBits + sections) of an OP_MSG.
Result<Hello> parse_hello_reply(std::string_view body) {
  if (body.size() < 5) return Error{Exit::data, "OP_MSG reply too short"};
  auto flags = static_cast<uint32_t>(front_le32(body));
  body.remove_prefix(4);
  if (flags & kChecksumPresent) {
    if (body.size() < 4) return Error{Exit::data, "OP_MSG reply too short for its checksum"};
    body.remove_suffix(4);
  }
  if (body[0] != '\0') return Error{Exit::data, "OP_MSG reply does not start with a body section"};
  body.remove_prefix(1);
  if (body.size() < 5) return Error{Exit::data, "OP_MSG reply body truncated"};
  auto doc_len = front_le32(body);
  if (doc_len < 5 || static_cast<size_t>(doc_len) > body.size()) {
    return Error{Exit::data, "OP_MSG reply document length " + std::to_string(doc_len) + " does not fit"};
  }
  bson_t doc;
  if (!bson_init_static(&doc, reinterpret_cast<const uint8_t*>(body.data()), static_cast<size_t>(doc_len))) {
    return Error{Exit::data, "reply is not a BSON document"};
  }
  size_t bad_offset = 0;
  if (!bson_validate(&doc, BSON_VALIDATE_NONE, &bad_offset)) {
    return Error{Exit::data, "reply is malformed BSON (at byte " + std::to_string(bad_offset) + ")"};
  }
  Hello h;
  bson_iter_t it;
  if (!bson_iter_init(&it, &doc)) return Error{Exit::data, "reply is not a BSON document"};
  while (bson_iter_next(&it)) {
    std::string_view key = bson_iter_key(&it);
    if (key == "ok") {
      h.ok = bson_iter_as_double(&it) == 1.0;
    } else if (key == "errmsg") {
      h.errmsg = utf8_of(it);
    } else if (key == "code") {
      h.code = static_cast<int32_t>(bson_iter_as_int64(&it));
    } else if (key == "setName") {
      h.set_name = utf8_of(it);
    } else if (key == "me") {
      h.me = utf8_of(it);
    } else if (key == "primary") {
      h.primary = utf8_of(it);
    } else if (key == "isreplicaset") {
      h.is_replica_set = bson_iter_as_bool(&it);
    } else if (key == "info") {
      h.info = utf8_of(it);
    } else if (key == "msg") {
      h.msg = utf8_of(it);
    } else if (key == "isWritablePrimary" || key == "ismaster") {
      h.writable_primary = bson_iter_as_bool(&it);
    } else if (key == "secondary") {
      h.secondary = bson_iter_as_bool(&it);
    } else if (key == "arbiterOnly") {
      h.arbiter = bson_iter_as_bool(&it);
    } else if (key == "hidden") {
      h.hidden = bson_iter_as_bool(&it);
    } else if (key == "maxWireVersion" && (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it))) {
      h.max_wire_version = static_cast<int32_t>(bson_iter_as_int64(&it));
    } else if (key == "hosts" && BSON_ITER_HOLDS_ARRAY(&it)) {
      bson_iter_t child;
      if (bson_iter_recurse(&it, &child)) {
        for (int n = 0; n < 100 && bson_iter_next(&child); ++n) h.hosts.push_back(utf8_of(child));
      }
    } else if (key == "topologyVersion" && BSON_ITER_HOLDS_DOCUMENT(&it)) {
      bson_iter_t child;
      if (bson_iter_recurse(&it, &child) && bson_iter_find(&child, "processId") &&
          BSON_ITER_HOLDS_OID(&child)) {
        char hex[25];
        bson_oid_to_string(bson_iter_oid(&child), hex);
        h.process_id = hex;
      }
    }
  }
  return h;
}

class MongoProbe {
 public:
  MongoProbe(const envkit::Url& target, const ProbeOptions& options)
      : target_(target), options_(options), clock_(r_) {}

  ProbeResult run() {
    steps();
    clock_.finish();
    return std::move(r_);
  }

 private:
  void fact(std::string key, std::string value) { r_.facts.emplace_back(std::move(key), std::move(value)); }

  Result<std::string> exchange(int32_t request_id, const char* command) {
    if (auto st = stream_->write_all(build_op_msg(request_id, command), options_.deadline); !st) {
      return st.error();
    }
    char header[kHeaderSize];
    if (auto st = stream_->read_exact(header, kHeaderSize, options_.deadline); !st) return st.error();
    envkit::ByteReader h(std::string_view(header, kHeaderSize));
    auto length = static_cast<int32_t>(h.u32le());
    h.u32le();  // requestID
    auto response_to = static_cast<int32_t>(h.u32le());
    auto op_code = static_cast<int32_t>(h.u32le());
    if (length < static_cast<int32_t>(kHeaderSize) + 5 || length > kMaxReplyLength) {
      return Error{Exit::data, "reply length " + std::to_string(length) + " is not that of a hello reply"};
    }
    if (op_code != kOpMsg) return Error{Exit::data, "reply is not an OP_MSG (opCode " + std::to_string(op_code) + ")"};
    if (response_to != request_id) return Error{Exit::data, "reply answers another request"};
    std::string body(static_cast<size_t>(length) - kHeaderSize, '\0');
    if (auto st = stream_->read_exact(body.data(), body.size(), options_.deadline); !st) return st.error();
    return body;
  }

  void steps() {
    if (target_.hosts.size() != 1 || target_.hosts[0].host.empty()) {
      // A seed list is a driver's business; a health check looks at one member.
      r_.state = State::unknown;
      r_.summary = "a mongodb:// target names exactly one host (check each member on its own): " +
                   target_.redacted();
      return;
    }
    ProbeOptions tls_options = options_;
    if (auto v = target_.param("tls"); v && (*v == "true" || *v == "1")) tls_options.connection.tls.enabled = true;

    stream_ = connect_phase(target_, options_, r_, clock_);
    if (!stream_) return;
    State tls_grade = State::ok;
    std::string tls_note;
    if (tls_options.connection.tls.enabled) {
      if (!tls_phase(*stream_, target_, tls_options, r_, clock_, tls_grade, tls_note)) return;
      if (tls_grade == State::critical) {
        r_.state = State::critical;
        r_.summary = "tls: " + tls_note;
        return;
      }
    }

    auto body = exchange(1, "hello");
    if (!body) {
      fail(r_, "hello", body.error());
      return;
    }
    auto hello = parse_hello_reply(*body);
    if (hello && !hello->ok && hello->code == kCommandNotFound) {
      body = exchange(2, "isMaster");
      if (!body) {
        fail(r_, "isMaster", body.error());
        return;
      }
      hello = parse_hello_reply(*body);
    }
    if (!hello) {
      fail(r_, "hello", hello.error());
      return;
    }
    clock_.mark("hello");
    stream_->shutdown_write();
    grade(*hello);
    fold_tls_grade(r_, tls_grade, tls_note);
  }

  void grade(const Hello& h) {
    if (!h.ok) {
      r_.state = State::critical;
      r_.summary = "hello failed: " + (h.errmsg.empty() ? std::string("ok is not 1") : h.errmsg);
      return;
    }
    bool writable = h.writable_primary.value_or(false);
    std::string role = writable ? "primary" : h.secondary ? "secondary" : h.arbiter ? "arbiter" : "other";
    if (!h.set_name.empty()) fact("replica_set", h.set_name);
    if (!h.me.empty()) fact("me", h.me);
    if (!h.primary.empty()) fact("primary", h.primary);
    fact("is_writable_primary", writable ? "true" : "false");
    fact("secondary", h.secondary ? "true" : "false");
    if (!h.hosts.empty()) {
      std::string hosts;
      for (const auto& host : h.hosts) hosts += (hosts.empty() ? "" : ",") + host;
      fact("hosts", hosts);
    }
    if (h.max_wire_version) fact("max_wire_version", std::to_string(*h.max_wire_version));
    fact("member_state", h.is_replica_set && h.set_name.empty() ? "startup"
                         : h.set_name.empty() ? (h.msg == "isdbgrid" ? "mongos" : "standalone")
                                              : role);

    if (!h.me.empty() || !h.set_name.empty()) {
      r_.identity = "me=" + h.me + ",setName=" + h.set_name;
    } else if (!h.process_id.empty()) {
      r_.identity = "processId=" + h.process_id;
    }
    std::string wire = h.max_wire_version ? ", wire version " + std::to_string(*h.max_wire_version) : "";

    auto wanted_set = target_.param("replicaSet");
    if (wanted_set && h.set_name != *wanted_set && !(h.is_replica_set && h.set_name.empty())) {
      r_.state = State::critical;
      r_.summary = h.set_name.empty() ? "not a replica set member (expected replica set " + printable(*wanted_set) + ")"
                                      : "member of replica set " + h.set_name + ", expected " + printable(*wanted_set);
      return;
    }
    if (h.set_name.empty() && h.is_replica_set) {
      r_.state = State::critical;
      r_.summary = "replica set member without a configuration, no primary known" +
                   (h.info.empty() ? std::string() : " (" + h.info + ")") + wire;
      return;
    }
    if (h.set_name.empty()) {
      r_.state = writable ? State::ok : State::critical;
      r_.summary = (h.msg == "isdbgrid" ? std::string("mongos") : std::string("standalone")) +
                   (writable ? ", writable" : ", not writable") + wire;
      return;
    }
    std::string who = h.me.empty() ? "this member" : h.me;
    if (writable) {
      r_.state = State::ok;
      r_.summary = "replica set " + h.set_name + ": " + who + " is primary" + wire;
    } else if (h.primary.empty()) {
      r_.state = State::critical;
      r_.summary = "replica set " + h.set_name + " has no primary (" + who + " is " + role + ")" + wire;
    } else {
      // Healthy for reads, but a check of a write endpoint that lands on a secondary is wrong.
      r_.state = State::warning;
      r_.summary = "replica set " + h.set_name + ": " + who + " is " + role + ", primary is " + h.primary + wire;
    }
  }

  const envkit::Url& target_;
  const ProbeOptions& options_;
  ProbeResult r_;
  PhaseClock clock_;  // after r_, which it writes to
  std::optional<envkit::Stream> stream_;
};

}  // namespace

ProbeResult probe_mongodb(const envkit::Url& target, const ProbeOptions& options) {
  return without_exceptions([&] { return MongoProbe(target, options).run(); });
}

}  // namespace proxy_check
