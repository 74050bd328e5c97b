// The set checker (tasks), the bank-like checker (stock), latency, and their reports.
#include "race-probe/check.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <envkit/json.hpp>

namespace race_probe {

namespace {

void example(std::map<std::string, std::vector<std::string>>& examples, const std::string& kind,
             const std::string& id) {
  auto& list = examples[kind];
  if (list.size() < kExamples) list.push_back(id);
}

std::string op_name(const Operation& op) { return op.client + "#" + std::to_string(op.seq); }

void count(OutcomeCounts& counts, Outcome o) {
  switch (o) {
    case Outcome::ok: ++counts.ok; break;
    case Outcome::fail: ++counts.fail; break;
    case Outcome::unknown: ++counts.unknown; break;
  }
}

}  // namespace

TasksVerdict check_tasks(const std::vector<Operation>& operations, const Snapshot& snapshot) {
  TasksVerdict v;
  std::unordered_map<std::string_view, size_t> by_id;
  std::unordered_set<std::string_view> clients;
  by_id.reserve(operations.size());
  for (size_t i = 0; i < operations.size(); ++i) {
    const auto& op = operations[i];
    if (op.f != "add") continue;
    count(v.operations, op.outcome);
    by_id.emplace(op.id, i);
    clients.insert(op.client);
  }
  std::vector<uint32_t> seen(operations.size(), 0);
  v.read_back = snapshot.records.size();
  for (const auto& rec : snapshot.records) {
    auto it = by_id.find(rec.id);
    if (it == by_id.end()) {
      // A record of a client in this history that it never sent is an anomaly; one of
      // another client (an earlier run, another tool) is none of this history's business.
      if (!rec.client.empty() && clients.count(rec.client)) {
        ++v.unexpected;
        example(v.examples, "unexpected", rec.id);
      } else {
        ++v.foreign;
      }
      continue;
    }
    const auto& op = operations[it->second];
    if (++seen[it->second] == 1 &&
        (rec.corrupt || (!op.checksum.empty() && rec.checksum != op.checksum))) {
      ++v.corrupted;
      example(v.examples, "corrupted", rec.id);
    }
  }
  for (size_t i = 0; i < operations.size(); ++i) {
    const auto& op = operations[i];
    if (op.f != "add") continue;
    if (seen[i] > 1) {
      ++v.duplicated;
      example(v.examples, "duplicated", op.id);
    }
    switch (op.outcome) {
      case Outcome::ok:
        if (seen[i] > 0) {
          ++v.stored;
        } else if (op.complete <= snapshot.invoke) {
          ++v.lost;
          example(v.examples, "lost", op.id);
        } else {
          ++v.unchecked;
        }
        break;
      case Outcome::unknown:
        if (seen[i] > 0) {
          ++v.recovered;
          example(v.examples, "recovered", op.id);
        } else {
          ++v.unknown_absent;
        }
        break;
      case Outcome::fail:
        if (seen[i] > 0) {
          ++v.unexpected;  // the server said no, yet it is there
          example(v.examples, "unexpected", op.id);
        }
        break;
    }
  }
  return v;
}

bool StockVerdict::valid() const {
  return std::all_of(items.begin(), items.end(), [](const auto& kv) { return kv.second.valid(); });
}

StockVerdict check_stock(const std::vector<Operation>& operations, const Snapshot& snapshot) {
  StockVerdict v;
  std::map<std::string, std::vector<const Operation*>> acknowledged;
  for (const auto& [item, n] : snapshot.initial) v.items[item].initial = n;
  for (const auto& op : operations) {
    if (op.f != "buy") continue;
    count(v.operations, op.outcome);
    auto& item = v.items[op.id];
    count(item.purchases, op.outcome);
    if (op.outcome == Outcome::ok) acknowledged[op.id].push_back(&op);
  }
  for (auto& [name, item] : v.items) {
    auto it = snapshot.stock.find(name);
    item.remaining = it == snapshot.stock.end() ? item.initial : it->second;
    auto ok = static_cast<int64_t>(item.purchases.ok);
    auto unknown = static_cast<int64_t>(item.purchases.unknown);
    int64_t taken = item.initial - item.remaining;
    item.oversold = std::max<int64_t>(0, ok - item.initial);
    item.phantom = std::max<int64_t>(0, ok - taken);
    item.unaccounted = std::max<int64_t>(0, taken - ok - unknown);
    if (item.valid()) continue;
    // The purchases to blame: acknowledged ones that overlapped another acknowledged one
    // (a lost decrement needs two at once), in completion order; past the stock, the
    // ones acknowledged after it ran out.
    auto& ops = acknowledged[name];
    std::sort(ops.begin(), ops.end(),
              [](const Operation* a, const Operation* b) { return a->complete < b->complete; });
    for (size_t i = 0; i < ops.size() && item.suspects.size() < kExamples; ++i) {
      bool overlapped = false;
      for (size_t j = 0; j < ops.size() && !overlapped; ++j) {
        overlapped = j != i && ops[j]->invoke < ops[i]->complete && ops[i]->invoke < ops[j]->complete;
      }
      if (overlapped || static_cast<int64_t>(i) >= item.initial) item.suspects.push_back(op_name(*ops[i]));
    }
  }
  return v;
}

bool RegisterVerdict::valid() const {
  return std::all_of(keys.begin(), keys.end(),
                     [](const auto& kv) { return kv.second.verdict == Linearizable::yes; });
}

bool RegisterVerdict::unknown() const {
  bool any_no = std::any_of(keys.begin(), keys.end(),
                            [](const auto& kv) { return kv.second.verdict == Linearizable::no; });
  return !any_no && !valid();
}

namespace {

std::string describe(const Operation& op) {
  std::string text = op_name(op) + " " + op.f;
  if (op.f == "read") text += " -> " + (op.value ? std::to_string(*op.value) : std::string("nil"));
  if (op.f == "write") text += " " + std::to_string(op.value.value_or(0));
  if (op.f == "cas") text += " " + std::to_string(op.from) + "->" + std::to_string(op.to);
  text += " [" + std::to_string(op.invoke) + ", " +
          (op.outcome == Outcome::unknown ? std::string("?") : std::to_string(op.complete)) + "] " +
          std::string(outcome_name(op.outcome));
  return text;
}

}  // namespace

RegisterVerdict check_registers(const std::vector<Operation>& operations,
                                std::chrono::steady_clock::time_point deadline) {
  RegisterVerdict v;
  std::map<std::string, std::vector<RegisterOp>> by_key;
  for (size_t i = 0; i < operations.size(); ++i) {
    const auto& op = operations[i];
    RegisterOp r;
    if (op.f == "read") r.kind = RegisterOp::read;
    else if (op.f == "write") r.kind = RegisterOp::write;
    else if (op.f == "cas") r.kind = RegisterOp::cas;
    else continue;
    count(v.operations, op.outcome);
    ++v.keys[op.id].operations;
    // A cas refused with 409 saw the register not hold `from`: an observation to check.
    // Any other failed operation did not happen; an unknown read tells nothing. An unknown
    // write or cas may take effect at any time after its invocation, or never.
    if (op.outcome == Outcome::fail) {
      if (r.kind != RegisterOp::cas || op.status != 409) continue;
      r.kind = RegisterOp::refused_cas;
    }
    if (op.outcome == Outcome::unknown && r.kind == RegisterOp::read) continue;
    r.value = op.value;
    r.from = op.from;
    r.to = op.to;
    r.invoke = op.invoke;
    if (op.outcome != Outcome::unknown) r.complete = op.complete;
    r.index = i;
    by_key[op.id].push_back(r);
  }
  for (auto& [key, ops] : by_key) {
    auto result = check_register(std::move(ops), deadline);
    auto& k = v.keys[key];
    k.verdict = result.verdict;
    for (size_t i : result.window) k.window.push_back(describe(operations[i]));
  }
  return v;
}

LatencyReport latency_of(const std::vector<Operation>& operations, double asked_rate) {
  LatencyReport r;
  r.asked_rate = asked_rate;
  r.open_loop = asked_rate > 0;
  int64_t first = INT64_MAX, last = INT64_MIN;
  uint64_t sent = 0;
  for (const auto& op : operations) {
    if (op.complete <= 0 || op.invoke <= 0) continue;
    r.uncorrected.record(std::chrono::microseconds(std::max<int64_t>(0, op.complete - op.invoke)));
    r.corrected.record(std::chrono::microseconds(std::max<int64_t>(0, op.complete - op.intended)));
    first = std::min(first, op.invoke);
    last = std::max(last, op.invoke);
    ++sent;
  }
  if (sent > 1 && last > first) {
    r.seconds = static_cast<double>(last - first) / 1e6;
    r.achieved_rate = static_cast<double>(sent - 1) / r.seconds;
  }
  return r;
}

bool Report::valid() const {
  return (!tasks || tasks->valid()) && (!stock || stock->valid()) && (!registers || registers->valid());
}

bool Report::undecided() const { return registers && registers->unknown(); }

namespace {
const char* verdict_name(Linearizable l) {
  switch (l) {
    case Linearizable::yes: return "linearizable";
    case Linearizable::no: return "not linearizable";
    case Linearizable::unknown: return "unknown (out of time)";
  }
  return "unknown";
}
}  // namespace

namespace {

constexpr double kPercentiles[] = {50, 90, 99, 99.9};

std::string ms(std::chrono::microseconds us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(us.count()) / 1000.0);
  return buf;
}

std::string latency_row(const char* name, const envkit::LatencyHistogram& h) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %-12s %10s %10s %10s %10s %10s\n", name,
                ms(h.percentile(50)).c_str(), ms(h.percentile(90)).c_str(),
                ms(h.percentile(99)).c_str(), ms(h.percentile(99.9)).c_str(), ms(h.max()).c_str());
  return buf;
}

void write_histogram(envkit::JsonWriter& w, const envkit::LatencyHistogram& h) {
  w.begin_object();
  w.key("count").number(h.count());
  for (double p : kPercentiles) {
    char name[16];
    std::snprintf(name, sizeof name, "p%g", p);
    w.key(name).number(static_cast<int64_t>(h.percentile(p).count()));
  }
  w.key("max").number(static_cast<int64_t>(h.max().count()));
  w.end_object();
}

void write_counts(envkit::JsonWriter& w, const OutcomeCounts& c) {
  w.begin_object();
  w.key("ok").number(c.ok).key("fail").number(c.fail).key("unknown").number(c.unknown);
  w.end_object();
}

std::string join(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : " ") + id;
  return out;
}

}  // namespace

std::string render_human(const Report& r) {
  std::string out;
  auto line = [&out](const std::string& s) { out += s + "\n"; };
  line("workload " + r.workload + (r.target.empty() ? "" : " against " + r.target));
  if (r.tasks) {
    const auto& t = *r.tasks;
    line("operations: " + std::to_string(t.operations.total()) + " (ok " +
         std::to_string(t.operations.ok) + ", fail " + std::to_string(t.operations.fail) +
         ", unknown " + std::to_string(t.operations.unknown) + ")");
    line("read back: " + std::to_string(t.read_back) + " records from " + r.snapshot_source +
         (t.foreign ? " (" + std::to_string(t.foreign) + " of other clients)" : ""));
    line("  stored      " + std::to_string(t.stored));
    line("  lost        " + std::to_string(t.lost));
    line("  duplicated  " + std::to_string(t.duplicated));
    line("  corrupted   " + std::to_string(t.corrupted));
    line("  unexpected  " + std::to_string(t.unexpected));
    line("  recovered   " + std::to_string(t.recovered) + " (unknown outcome, found)");
    line("  not found   " + std::to_string(t.unknown_absent) + " (unknown outcome, not counted lost)");
    if (t.unchecked) line("  unchecked   " + std::to_string(t.unchecked) + " (acknowledged after the read began)");
    for (const auto& [kind, ids] : t.examples) line("first " + kind + ": " + join(ids));
  }
  if (r.stock) {
    const auto& s = *r.stock;
    line("purchases: " + std::to_string(s.operations.total()) + " (ok " +
         std::to_string(s.operations.ok) + ", sold out or refused " + std::to_string(s.operations.fail) +
         ", unknown " + std::to_string(s.operations.unknown) + ")");
    for (const auto& [name, item] : s.items) {
      line("  item " + name + ": initial " + std::to_string(item.initial) + ", sold " +
           std::to_string(item.purchases.ok) + ", remaining " + std::to_string(item.remaining) +
           (item.purchases.unknown ? ", unknown " + std::to_string(item.purchases.unknown) : "") +
           (item.oversold ? ", OVERSOLD " + std::to_string(item.oversold) : "") +
           (item.phantom ? ", PHANTOM " + std::to_string(item.phantom) : "") +
           (item.unaccounted ? ", UNACCOUNTED " + std::to_string(item.unaccounted) : "") +
           (item.remaining < 0 ? ", NEGATIVE STOCK" : ""));
      if (!item.suspects.empty()) line("    purchases to blame: " + join(item.suspects));
    }
  }
  if (r.registers) {
    const auto& g = *r.registers;
    line("operations: " + std::to_string(g.operations.total()) + " (ok " + std::to_string(g.operations.ok) +
         ", fail " + std::to_string(g.operations.fail) + ", unknown " + std::to_string(g.operations.unknown) + ")");
    for (const auto& [key, k] : g.keys) {
      line("  key " + key + ": " + std::to_string(k.operations) + " operations, " + verdict_name(k.verdict));
      if (!k.window.empty()) line("    smallest failing window found:");
      for (const auto& w : k.window) line("      " + w);
    }
  }
  if (r.latency && r.latency->uncorrected.count() > 0) {
    const auto& l = *r.latency;
    char buf[160];
    if (l.open_loop) {
      std::snprintf(buf, sizeof buf, "rate: asked %.1f/s, achieved %.1f/s", l.asked_rate, l.achieved_rate);
    } else {
      std::snprintf(buf, sizeof buf, "rate: %.1f/s (closed load)", l.achieved_rate);
    }
    line(buf);
    char head[160];
    std::snprintf(head, sizeof head, "latency ms   %10s %10s %10s %10s %10s", "p50", "p90", "p99",
                  "p99.9", "max");
    line(head);
    if (l.open_loop) out += latency_row("corrected", l.corrected);
    out += latency_row(l.open_loop ? "uncorrected" : "", l.uncorrected);
  }
  line(std::string("verdict: ") + (r.valid()       ? "ok, every invariant holds"
                                   : r.undecided() ? "UNKNOWN, the check ran out of time"
                                                   : "VIOLATION"));
  return out;
}

std::string render_json(const Report& r) {
  envkit::JsonWriter w;
  w.begin_object();
  w.key("workload").string(r.workload);
  if (!r.target.empty()) w.key("target").string(r.target);
  w.key("valid").boolean(r.valid());
  if (r.tasks) {
    const auto& t = *r.tasks;
    w.key("operations");
    write_counts(w, t.operations);
    w.key("read_back").number(t.read_back);
    w.key("source").string(r.snapshot_source);
    w.key("stored").number(t.stored).key("lost").number(t.lost);
    w.key("duplicated").number(t.duplicated).key("corrupted").number(t.corrupted);
    w.key("unexpected").number(t.unexpected).key("recovered").number(t.recovered);
    w.key("unknown_absent").number(t.unknown_absent).key("unchecked").number(t.unchecked);
    w.key("foreign").number(t.foreign);
    w.key("examples").begin_object();
    for (const auto& [kind, ids] : t.examples) {
      w.key(kind).begin_array();
      for (const auto& id : ids) w.string(id);
      w.end_array();
    }
    w.end_object();
  }
  if (r.stock) {
    w.key("operations");
    write_counts(w, r.stock->operations);
    w.key("items").begin_object();
    for (const auto& [name, item] : r.stock->items) {
      w.key(name).begin_object();
      w.key("initial").number(item.initial).key("remaining").number(item.remaining);
      w.key("purchases");
      write_counts(w, item.purchases);
      w.key("oversold").number(item.oversold).key("phantom").number(item.phantom);
      w.key("unaccounted").number(item.unaccounted);
      w.key("suspects").begin_array();
      for (const auto& s : item.suspects) w.string(s);
      w.end_array();
      w.end_object();
    }
    w.end_object();
  }
  if (r.registers) {
    w.key("operations");
    write_counts(w, r.registers->operations);
    w.key("unknown").boolean(r.undecided());
    w.key("keys").begin_object();
    for (const auto& [key, k] : r.registers->keys) {
      w.key(key).begin_object();
      w.key("operations").number(k.operations);
      w.key("linearizable").string(k.verdict == Linearizable::yes ? "yes" : k.verdict == Linearizable::no ? "no" : "unknown");
      w.key("window").begin_array();
      for (const auto& line : k.window) w.string(line);
      w.end_array();
      w.end_object();
    }
    w.end_object();
  }
  if (r.latency && r.latency->uncorrected.count() > 0) {
    const auto& l = *r.latency;
    w.key("latency_us").begin_object();
    if (l.open_loop) {
      w.key("asked_rate").number(l.asked_rate);
      w.key("corrected");
      write_histogram(w, l.corrected);
    }
    w.key("achieved_rate").number(l.achieved_rate);
    w.key("uncorrected");
    write_histogram(w, l.uncorrected);
    w.end_object();
  }
  w.end_object();
  return w.take() + "\n";
}

}  // namespace race_probe
