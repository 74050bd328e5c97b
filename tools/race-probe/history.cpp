// History lines in and out: the documented JSON Lines form of race-probe(1).
#include "race-probe/history.hpp"

#include <algorithm>
#include <chrono>

#include <envkit/exit_status.hpp>
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

void classify_transport_failure(const envkit::Error& e, Operation& op) {
  using envkit::Failure;
  bool never_sent = envkit::is(e, Failure::connection_refused) || envkit::is(e, Failure::name_not_found) ||
                    envkit::is(e, Failure::usage);
  op.outcome = never_sent ? Outcome::fail : Outcome::unknown;
  op.error = e.message;
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

namespace {

std::string edn_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string edn_value(const Operation& op, bool completion) {
  std::string key = edn_string(op.id);
  if (op.f == "read") {
    bool seen = completion && op.outcome == Outcome::ok;
    return "[" + key + " " + (seen && op.value ? std::to_string(*op.value) : "nil") + "]";
  }
  if (op.f == "write") return "[" + key + " " + std::to_string(op.value.value_or(0)) + "]";
  if (op.f == "cas") return "[" + key + " [" + std::to_string(op.from) + " " + std::to_string(op.to) + "]]";
  return key;  // add, buy
}

// Times are microseconds; an event's nanosecond is chosen so that operations that touch in
// the same microsecond stay concurrent (an invocation at its first nanosecond, a completion
// at its last), except a worker's own next operation, which follows its previous one.
struct EdnEvent {
  int64_t time;  // ns
  int order;     // completions before invocations at the same nanosecond
  std::string line;
};

}  // namespace

std::string jepsen_edn(const History& history) {
  int64_t start = INT64_MAX;
  for (const auto& op : history.operations) start = std::min(start, op.invoke);
  for (const auto& s : history.snapshots) start = std::min(start, s.invoke);
  if (start == INT64_MAX) return {};
  auto first_ns = [start](int64_t us) { return (us - start) * 1000; };
  auto last_ns = [start](int64_t us) { return (us - start) * 1000 + 999; };

  // Operations by invocation, so that each worker's process numbers follow its own order.
  std::vector<const Operation*> ops;
  ops.reserve(history.operations.size());
  for (const auto& op : history.operations) ops.push_back(&op);
  std::stable_sort(ops.begin(), ops.end(), [](const Operation* a, const Operation* b) { return a->invoke < b->invoke; });

  std::map<std::pair<std::string, uint32_t>, int64_t> process;
  std::map<std::pair<std::string, uint32_t>, int64_t> previous_complete;
  int64_t next_process = 0;
  std::vector<EdnEvent> events;
  events.reserve(2 * ops.size() + 2 * history.snapshots.size());
  for (const Operation* op : ops) {
    auto [it, fresh] = process.try_emplace({op->client, op->worker}, next_process);
    if (fresh) ++next_process;
    const std::string p = std::to_string(it->second);
    const std::string f = ":" + op->f;
    auto& before = previous_complete[{op->client, op->worker}];
    int64_t invoked = op->invoke <= before ? last_ns(before) : first_ns(op->invoke);
    int64_t completed = std::max(last_ns(op->complete), invoked);
    before = op->complete;
    events.push_back({invoked, 1, "{:type :invoke, :f " + f + ", :value " + edn_value(*op, false) +
                                      ", :process " + p + ", :time " + std::to_string(invoked)});
    const char* type = op->outcome == Outcome::ok ? ":ok" : op->outcome == Outcome::fail ? ":fail" : ":info";
    std::string line = std::string("{:type ") + type + ", :f " + f + ", :value " + edn_value(*op, true) +
                       ", :process " + p + ", :time " + std::to_string(completed);
    if (!op->error.empty()) line += ", :error " + edn_string(op->error);
    events.push_back({completed, 0, std::move(line)});
    if (op->outcome == Outcome::unknown) it->second = next_process++;  // that process crashed
  }
  for (const auto& s : history.snapshots) {
    const std::string p = std::to_string(next_process++);
    std::string value;
    if (!s.initial.empty() || !s.stock.empty()) {
      value = "{";
      for (const auto& [item, n] : s.stock) value += (value.size() > 1 ? ", " : "") + edn_string(item) + " " + std::to_string(n);
      value += "}";
    } else {
      value = "#{";
      for (const auto& r : s.records) value += (value.size() > 2 ? " " : "") + edn_string(r.id);
      value += "}";
    }
    int64_t invoked = first_ns(s.invoke), completed = std::max(last_ns(s.complete), invoked);
    events.push_back({invoked, 1, "{:type :invoke, :f :read, :value nil, :process " + p + ", :time " + std::to_string(invoked)});
    events.push_back({completed, 0, "{:type :ok, :f :read, :value " + value + ", :process " + p + ", :time " + std::to_string(completed)});
  }
  std::stable_sort(events.begin(), events.end(), [](const EdnEvent& a, const EdnEvent& b) {
    return a.time != b.time ? a.time < b.time : a.order < b.order;
  });
  std::string out;
  size_t index = 0;
  for (const auto& e : events) {
    out += e.line;
    out += ", :index " + std::to_string(index++) + "}\n";
  }
  return out;
}

}  // namespace race_probe
