// History lines in and out: the documented JSON Lines form of race-probe(1).
#include "race-probe/history.hpp"

#include <chrono>

#include <envkit/json.hpp>
#include <envkit/jsonl.hpp>

namespace race_probe {

using envkit::Error;
using envkit::Exit;
using envkit::JsonValue;
using envkit::JsonWriter;

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::ok: return "ok";
    case Outcome::fail: return "fail";
    case Outcome::unknown: return "unknown";
  }
  return "unknown";
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string operation_line(const Operation& op) {
  JsonWriter w;
  w.begin_object();
  w.key("type").string("op");
  w.key("client").string(op.client);
  w.key("seq").number(op.seq);
  w.key("worker").number(static_cast<uint64_t>(op.worker));
  w.key("f").string(op.f);
  w.key("id").string(op.id);
  if (!op.checksum.empty()) w.key("checksum").string(op.checksum);
  if (op.f == "read" && op.outcome == Outcome::ok) {
    w.key("value");
    op.value ? w.number(*op.value) : w.null();
  } else if (op.f == "write") {
    w.key("value").number(op.value.value_or(0));
  } else if (op.f == "cas") {
    w.key("from").number(op.from).key("to").number(op.to);
  }
  if (op.intended != op.invoke) w.key("intended").number(op.intended);
  w.key("invoke").number(op.invoke);
  w.key("complete").number(op.complete);
  w.key("outcome").string(outcome_name(op.outcome));
  if (op.status != 0) w.key("status").number(op.status);
  if (!op.error.empty()) w.key("error").string(op.error);
  w.end_object();
  return w.take();
}

std::string snapshot_line(const Snapshot& s) {
  JsonWriter w;
  w.begin_object();
  w.key("type").string("read");
  w.key("client").string(s.client);
  w.key("source").string(s.source);
  w.key("invoke").number(s.invoke);
  w.key("complete").number(s.complete);
  if (!s.initial.empty()) {
    w.key("initial").begin_object();
    for (const auto& [item, n] : s.initial) w.key(item).number(n);
    w.end_object();
  }
  if (!s.stock.empty()) {
    w.key("stock").begin_object();
    for (const auto& [item, n] : s.stock) w.key(item).number(n);
    w.end_object();
  }
  if (s.initial.empty()) {
    w.key("records").begin_array();
    for (const auto& r : s.records) {
      w.begin_object();
      w.key("id").string(r.id);
      if (!r.client.empty()) w.key("client").string(r.client);
      if (!r.checksum.empty()) w.key("checksum").string(r.checksum);
      if (r.corrupt) w.key("corrupt").boolean(true);
      w.end_object();
    }
    w.end_array();
  }
  w.end_object();
  return w.take();
}

namespace {

std::string string_of(const JsonValue& v, std::string_view key) {
  const JsonValue* m = envkit::find_member(v, key);
  return m && m->IsString() ? std::string(m->GetString(), m->GetStringLength()) : std::string();
}

int64_t int_of(const JsonValue& v, std::string_view key) {
  const JsonValue* m = envkit::find_member(v, key);
  return m && m->IsInt64() ? m->GetInt64() : 0;
}

envkit::Result<Outcome> outcome_of(std::string_view name) {
  if (name == "ok") return Outcome::ok;
  if (name == "fail") return Outcome::fail;
  if (name == "unknown") return Outcome::unknown;
  return Error{Exit::data, "outcome is not ok, fail or unknown"};
}

void read_counts(const JsonValue& line, std::string_view key, std::map<std::string, int64_t>& out) {
  const JsonValue* m = envkit::find_member(line, key);
  if (!m || !m->IsObject()) return;
  for (const auto& member : m->GetObject()) {
    if (member.value.IsInt64()) out[member.name.GetString()] = member.value.GetInt64();
  }
}

}  // namespace

envkit::Status read_history(const std::string& path, History& history) {
  auto reader = envkit::JsonLinesReader::open(path);
  if (!reader) return reader.error();
  envkit::JsonDocument doc;
  for (;;) {
    auto more = reader->next(doc);
    if (!more) return more.error();
    if (!*more) return {};
    auto bad = [&](std::string why) {
      return Error{Exit::data, path + ":" + std::to_string(reader->line_number()) + ": " + why};
    };
    std::string type = string_of(doc, "type");
    if (type == "op") {
      Operation op;
      op.client = string_of(doc, "client");
      op.seq = static_cast<uint64_t>(int_of(doc, "seq"));
      op.worker = static_cast<uint32_t>(int_of(doc, "worker"));
      op.f = string_of(doc, "f");
      op.id = string_of(doc, "id");
      op.checksum = string_of(doc, "checksum");
      if (const JsonValue* v = envkit::find_member(doc, "value"); v && v->IsInt64()) op.value = v->GetInt64();
      op.from = int_of(doc, "from");
      op.to = int_of(doc, "to");
      op.invoke = int_of(doc, "invoke");
      op.complete = int_of(doc, "complete");
      op.intended = envkit::find_member(doc, "intended") ? int_of(doc, "intended") : op.invoke;
      op.status = static_cast<int>(int_of(doc, "status"));
      op.error = string_of(doc, "error");
      auto outcome = outcome_of(string_of(doc, "outcome"));
      if (!outcome) return bad(outcome.error().message);
      op.outcome = *outcome;
      if (op.f.empty() || op.id.empty()) return bad("an operation without \"f\" or \"id\"");
      history.operations.push_back(std::move(op));
    } else if (type == "read") {
      Snapshot s;
      s.client = string_of(doc, "client");
      s.source = string_of(doc, "source");
      s.invoke = int_of(doc, "invoke");
      s.complete = int_of(doc, "complete");
      read_counts(doc, "stock", s.stock);
      read_counts(doc, "initial", s.initial);
      if (const JsonValue* records = envkit::find_member(doc, "records");
          records && records->IsArray()) {
        s.records.reserve(records->Size());
        for (const auto& r : records->GetArray()) {
          StoredRecord rec{string_of(r, "id"), string_of(r, "client"), false,
                           string_of(r, "checksum")};
          const JsonValue* corrupt = envkit::find_member(r, "corrupt");
          rec.corrupt = corrupt && corrupt->IsTrue();
          s.records.push_back(std::move(rec));
        }
      }
      history.snapshots.push_back(std::move(s));
    } else {
      return bad("not a history line: \"type\" is neither \"op\" nor \"read\"");
    }
  }
}

}  // namespace race_probe
