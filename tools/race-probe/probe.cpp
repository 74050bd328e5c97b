// The probe's run: operations from C workers, the read-back, the check, the report.
#include "race-probe/probe.hpp"
#include "race-probe/http_driver.hpp"
#include "race-probe/registers.hpp"
#include "race-probe/stock.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <map>
#include <random>
#include <thread>

#include <envkit/bytes.hpp>
#include <envkit/durable_file.hpp>
#include <envkit/exit_status.hpp>
#include <envkit/http1.hpp>
#include <envkit/json.hpp>
#include <envkit/jsonl.hpp>
#include <envkit/log.hpp>
#include <envkit/posix.hpp>
#include <envkit/signals.hpp>
#include <envkit/url.hpp>
#include <envkit/worker_pool.hpp>

namespace race_probe {

using envkit::Error;
using envkit::Exit;
using envkit::Failure;

namespace {

constexpr size_t kMaxReadBack = size_t{1} << 30;

const char* kDefaultTaskBody =
    R"({"id":"{id}","client":"{client}","seq":{seq},"payload":"{payload}","checksum":"{checksum}"})";

std::string replace_all(std::string text, std::string_view from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// The outcome of one HTTP exchange, as a checker must read it: refused before sending means
// it never happened; a timeout or a dropped connection after sending, or a 5xx, may have.
void classify(const envkit::Result<envkit::HttpResponse>& r, Operation& op) {
  if (!r) {
    classify_transport_failure(r.error(), op);
    return;
  }
  op.status = static_cast<int>(r->status);
  op.reached = true;
  if (r->status >= 200 && r->status < 300) {
    op.outcome = Outcome::ok;
  } else if (r->status >= 400 && r->status < 500) {
    op.outcome = Outcome::fail;
  } else {
    op.outcome = Outcome::unknown;
  }
  if (op.outcome != Outcome::ok) {
    op.error = r->body.substr(0, 200);
    while (!op.error.empty() && op.error.back() == '\n') op.error.pop_back();
  }
}

std::string id_text(const envkit::JsonValue& v) {
  if (v.IsString()) return {v.GetString(), v.GetStringLength()};
  if (v.IsNumber()) return envkit::to_json(v);
  return {};
}

void add_record(const envkit::JsonValue& obj, const std::string& id_field, Snapshot& s) {
  if (!obj.IsObject()) return;
  StoredRecord rec;
  if (const auto* id = envkit::find_member(obj, id_field)) rec.id = id_text(*id);
  if (const auto* c = envkit::find_member(obj, "client"); c && c->IsString()) rec.client = c->GetString();
  const auto* sum = envkit::find_member(obj, "checksum");
  if (sum && sum->IsString()) rec.checksum = sum->GetString();
  const auto* payload = envkit::find_member(obj, "payload");
  if (payload && payload->IsString() && !rec.checksum.empty()) {
    rec.corrupt = payload_checksum({payload->GetString(), payload->GetStringLength()}) != rec.checksum;
  }
  s.records.push_back(std::move(rec));
}

struct Target {
  std::string base;  // the target URL without a trailing '/'
};

envkit::Result<std::string> fetch(envkit::HttpConnection& client, const std::string& url,
                                  std::chrono::milliseconds timeout) {
  envkit::HttpRequest req;
  req.url = url;
  req.timeout = timeout;
  auto r = client.perform(req);
  if (!r) return r.error().context("reading back " + url);
  if (r->status != 200) {
    return Error{Exit::unavailable, "reading back " + url + ": HTTP " + std::to_string(r->status)};
  }
  return std::move(r->body);
}

envkit::Result<Snapshot> read_back_tasks(const std::string& source, const std::string& id_field,
                                         const envkit::ConnectionOptions& connection,
                                         std::chrono::milliseconds timeout) {
  auto url = envkit::parse_url(source);
  if (!url) return url.error();
  Snapshot snap;
  snap.source = url->redacted();
  snap.invoke = now_us();
  std::string body;
  if (url->scheme == "http" || url->scheme == "https") {
    envkit::HttpConnection client(connection, kMaxReadBack);
    auto text = fetch(client, source, timeout);
    if (!text) return text.error();
    body = std::move(*text);
  } else if (url->is_file()) {
    auto text = envkit::read_file(url->path, kMaxReadBack);
    if (!text) return text.error().context("reading back");
    body = std::move(*text);
  } else {
    return Error{Exit::usage, "--read-back: " + url->redacted() + ": only http(s):// and file: are read back"};
  }
  auto parsed = parse_tasks_snapshot(body, id_field);
  if (!parsed) return parsed.error().context("reading back " + snap.source);
  parsed->source = snap.source;
  parsed->invoke = snap.invoke;
  parsed->complete = now_us();
  return parsed;
}

// A register operation: half reads, a quarter writes of a fresh value (the sequence
// number, unique in this client), a quarter compare-and-sets from what this worker last saw.
void plan_register_op(Operation& op, uint64_t seq, uint64_t keys, std::mt19937_64& rng,
                      const std::map<std::string, int64_t>& last_seen) {
  op.id = "k" + std::to_string(rng() % keys);
  unsigned dice = static_cast<unsigned>(rng() % 4);
  auto seen = last_seen.find(op.id);
  if (dice < 2) {
    op.f = "read";
  } else if (dice == 2 || seen == last_seen.end()) {
    op.f = "write";
    op.value = static_cast<int64_t>(seq);
  } else {
    op.f = "cas";
    op.from = seen->second;
    op.to = static_cast<int64_t>(seq);
  }
}

void register_request(const std::string& base, const Operation& op, envkit::HttpRequest& req) {
  req.url = base + "/" + op.id;
  if (op.f == "read") {
    req.method = "GET";
  } else if (op.f == "write") {
    req.method = "PUT";
    req.body = "{\"value\":" + std::to_string(*op.value) + "}";
  } else {
    req.method = "POST";
    req.url += "/cas";
    req.body = "{\"from\":" + std::to_string(op.from) + ",\"to\":" + std::to_string(op.to) + "}";
  }
}

// A read's 404 is a read of the absent key, not a failure; a read's value is what it saw.
void register_outcome(const envkit::Result<envkit::HttpResponse>& r, Operation& op) {
  if (!r) return;
  if (op.f == "read" && r->status == 404) {
    op.outcome = Outcome::ok;
    op.error.clear();
    op.value.reset();
    return;
  }
  if (op.outcome != Outcome::ok) return;
  if (op.f == "read") {
    auto doc = envkit::parse_json(r->body);
    const envkit::JsonValue* v = doc ? envkit::find_member(*doc, "value") : nullptr;
    if (!v || !v->IsInt64()) {
      op.outcome = Outcome::unknown;  // an answer we cannot read tells nothing
      op.error = "unreadable value: " + r->body.substr(0, 100);
      return;
    }
    op.value = v->GetInt64();
  }
}

// What a worker last saw of each key after an ok operation: the from of its next cas.
void remember(const Operation& op, std::map<std::string, int64_t>& last_seen) {
  if (op.outcome != Outcome::ok) return;
  if (op.f == "read" && op.value) last_seen[op.id] = *op.value;
  if (op.f == "write") last_seen[op.id] = *op.value;
  if (op.f == "cas") last_seen[op.id] = op.to;
}

// One worker's operations: what it sends next, and what an answer means. The HTTP
// workloads' driver (race-probe/http_driver.hpp) and the threads of the workloads that buy
// through a target of their own both take their operations from here.
class WorkerPlan final : public HttpWorker {
 public:
  WorkerPlan(const ProbeConfig& p, const std::string& client_id, size_t worker, const std::string& body_template,
             std::atomic<uint64_t>& next, int64_t start, bool http)
      : p_(p), client_id_(client_id), worker_(worker), body_template_(body_template), next_(next), start_(start),
        http_(http), rng_(std::hash<std::string>{}(client_id) ^ (worker * 0x9E3779B97F4A7C15ull)) {}

  bool next(Operation& op, envkit::HttpRequest& req) override {
    if (envkit::stop_requested()) return false;
    // Closed load: this worker's own N. Open loop: the next due request, whoever is free.
    if (p_.rate <= 0 && sent_ >= p_.requests) return false;
    uint64_t seq = p_.rate > 0 ? next_.fetch_add(1) : worker_ * p_.requests + sent_;
    ++sent_;
    if (seq >= p_.requests * p_.workers) return false;
    op.client = client_id_;
    op.seq = seq;
    op.worker = static_cast<uint32_t>(worker_);
    req.method = p_.method;
    req.timeout = p_.request_timeout.value;
    if (p_.workload == Workload::tasks) {
      op.f = "add";
      op.id = client_id_ + "-" + std::to_string(seq);
      std::string payload = "task " + op.id + " from worker " + std::to_string(worker_);
      op.checksum = payload_checksum(payload);
      std::string body = replace_all(body_template_, "{id}", op.id);
      body = replace_all(body, "{client}", client_id_);
      body = replace_all(body, "{seq}", std::to_string(seq));
      body = replace_all(body, "{payload}", payload);
      req.body = replace_all(body, "{checksum}", op.checksum);
      req.url = p_.target;
    } else if (p_.workload == Workload::register_) {
      plan_register_op(op, seq, p_.keys, rng_, last_seen_);
      if (http_) register_request(p_.target, op, req);
    } else {
      op.f = "buy";
      op.id = item_name(seq % p_.items);
    }
    req.headers.emplace_back("Content-Type", "application/json");
    if (p_.rate > 0) op.intended = start_ + static_cast<int64_t>(static_cast<double>(seq) * 1e6 / p_.rate);
    return true;
  }

  void finish(Operation& op, const envkit::Result<envkit::HttpResponse>& r) override {
    classify(r, op);
    if (p_.workload == Workload::register_) register_outcome(r, op);
    bought(op);
  }

  // After an operation through a buyer (the caller set op's outcome).
  void bought(const Operation& op) {
    if (p_.workload == Workload::register_) remember(op, last_seen_);
  }

 private:
  const ProbeConfig& p_;
  const std::string& client_id_;
  size_t worker_;
  const std::string& body_template_;
  std::atomic<uint64_t>& next_;
  int64_t start_;
  bool http_;
  std::mt19937_64 rng_;
  uint64_t sent_ = 0;
  std::map<std::string, int64_t> last_seen_;  // register: what this worker last saw per key
};

// Sends every operation and returns them in the order they were invoked. HTTP targets go
// through the driver; a buyer (the stock targets, registers in a store) blocks, so each of
// those workers has a thread of its own.
envkit::Result<std::vector<Operation>> send_all(const ProbeConfig& p, const std::string& client_id,
                                                const envkit::ConnectionOptions& connection,
                                                StockTarget* stock, RegisterTarget* registers) {
  std::vector<std::vector<Operation>> per_worker(p.workers);
  std::atomic<uint64_t> next{0};
  const int64_t start = now_us() + 1000;
  const std::string body_template =
      !p.body.empty() ? p.body : (p.workload == Workload::tasks ? kDefaultTaskBody : "");
  const bool http = !stock && !registers;
  std::vector<std::unique_ptr<WorkerPlan>> plans;
  for (size_t w = 0; w < p.workers; ++w) {
    plans.push_back(std::make_unique<WorkerPlan>(p, client_id, w, body_template, next, start, http));
  }
  envkit::Status status;
  if (p.rate <= 0) {
    for (auto& ops : per_worker) ops.reserve(p.requests);
  }
  if (http) {
    std::vector<HttpWorker*> workers;
    for (auto& plan : plans) workers.push_back(plan.get());
    status = drive_http(std::move(workers), connection, p.request_timeout.value, per_worker);
  } else {
    status = envkit::run_concurrently(p.workers, [&](size_t w) -> envkit::Status {
      Buyer buy;
      if (stock) {
        auto b = stock->buyer();
        if (!b) return b.error();
        buy = std::move(*b);
      } else {
        auto c = registers->client();
        if (!c) return c.error();
        buy = std::move(*c);
      }
      auto& ops = per_worker[w];
      for (;;) {
        Operation op;
        envkit::HttpRequest unused;
        if (!plans[w]->next(op, unused)) break;
        if (op.intended > 0) {
          int64_t wait = op.intended - now_us();
          if (wait > 0 && !envkit::sleep_unless_stopped(std::chrono::microseconds(wait))) break;
        }
        op.invoke = now_us();
        if (op.intended == 0) op.intended = op.invoke;
        op.reached = buy(op);
        plans[w]->bought(op);
        op.complete = now_us();
        ops.push_back(std::move(op));
      }
      return {};
    });
  }
  if (!status) return status.error();
  std::vector<Operation> all;
  all.reserve(p.requests * p.workers);
  for (auto& ops : per_worker) {
    for (auto& op : ops) all.push_back(std::move(op));
  }
  std::sort(all.begin(), all.end(), [](const Operation& a, const Operation& b) { return a.invoke < b.invoke; });
  return all;
}

bool human_format(Format f) { return f == Format::human || (f == Format::automatic && ::isatty(1)); }

envkit::Status print_report(const Report& report, Format format) {
  std::string text = human_format(format) ? render_human(report) : render_json(report);
  std::cout << text << std::flush;
  if (!std::cout) return Error{Exit::io, "writing the report to stdout failed"};
  return {};
}

envkit::Status write_history(const std::string& path, const std::vector<Operation>& ops,
                             const std::vector<Snapshot>& snapshots) {
  auto file = envkit::AtomicFile::create(path, 0644);
  if (!file) return file.error();
  std::string buf;
  for (const auto& op : ops) {
    buf += operation_line(op);
    buf += '\n';
    if (buf.size() > (size_t{1} << 20)) {
      if (auto st = file->write(buf); !st) return st;
      buf.clear();
    }
  }
  for (const auto& s : snapshots) {
    buf += snapshot_line(s);
    buf += '\n';
  }
  if (auto st = file->write(buf); !st) return st;
  return file->commit();
}

// Stops the run when every operation failed to reach the target: then nothing was probed.
envkit::Status reached_target(const std::vector<Operation>& ops) {
  if (ops.empty()) return Error{Exit::temp_fail, "stopped before the first operation"};
  for (const auto& op : ops) {
    if (op.reached) return {};
  }
  return Error{Exit::unavailable, "no operation reached the target: " + ops.front().error};
}

envkit::Result<envkit::Exit> finish_registers(const std::vector<Operation>& ops, const Config& config,
                                              std::string target, double rate) {
  Report report;
  report.workload = "register";
  report.target = std::move(target);
  report.registers = check_registers(ops, std::chrono::steady_clock::now() + config.probe.check_budget.value);
  if (rate >= 0) report.latency = latency_of(ops, rate);
  if (auto st = print_report(report, config.format); !st) return st.error();
  if (envkit::stop_requested()) return envkit::fail(Failure::interrupted, "stopped by a signal before every operation was sent");
  if (report.valid()) return Exit::ok;
  if (report.undecided()) {
    return envkit::fail(Failure::io_timeout, "the linearizability check ran out of time (--check-budget): no verdict");
  }
  return Exit::failure;
}

}  // namespace

std::string payload_checksum(std::string_view payload) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(envkit::fnv1a64(payload)));
  return buf;
}

envkit::Result<Snapshot> parse_tasks_snapshot(std::string_view body, const std::string& id_field) {
  Snapshot s;
  size_t first = body.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && body[first] != '[' ) {
    // Either an object holding the array, or JSON Lines.
    auto doc = envkit::parse_json(body);
    if (doc && doc->IsObject()) {
      for (const auto& m : doc->GetObject()) {
        if (!m.value.IsArray()) continue;
        for (const auto& v : m.value.GetArray()) add_record(v, id_field, s);
        return s;
      }
      add_record(*doc, id_field, s);  // a single record
      return s;
    }
    size_t start = 0;
    while (start < body.size()) {
      size_t end = body.find('\n', start);
      if (end == std::string_view::npos) end = body.size();
      auto line = body.substr(start, end - start);
      if (line.find_first_not_of(" \t\r") != std::string_view::npos) {
        auto rec = envkit::parse_json(line);
        if (!rec) return rec.error();
        add_record(*rec, id_field, s);
      }
      start = end + 1;
    }
    return s;
  }
  if (first == std::string_view::npos) return s;
  auto doc = envkit::parse_json(body);
  if (!doc) return doc.error();
  s.records.reserve(doc->Size());
  for (const auto& v : doc->GetArray()) add_record(v, id_field, s);
  return s;
}

namespace {
bool is_http(const std::string& url) { return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0; }
}  // namespace

envkit::Status check(const Config& config, CheckStage stage) {
  if (config.mode == Mode::reconcile) {
    for (const auto& h : config.histories) {
      if (::access(h.c_str(), R_OK) == 0) continue;
      int err = errno;
      if (stage == CheckStage::config && err == ENOENT) {
        auto slash = h.rfind('/');
        std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : h.substr(0, slash);
        if (::access(dir.c_str(), X_OK) == 0) continue;
        return envkit::system_error(dir, "cannot reach the history's directory", errno, Exit::no_input);
      }
      return envkit::system_error(h, "cannot read the history", err, Exit::no_input);
    }
  }
  for (const auto* url : {&config.probe.target, &config.probe.read_back}) {
    if (url->empty()) continue;
    auto parsed = envkit::parse_url(*url);
    if (!parsed) return parsed.error();
  }
  if (config.mode == Mode::probe && config.probe.workload == Workload::stock) {
    // The target's parameters (buy=, window=, the password) as the run reads them; opening
    // it connects to nothing.
    if (auto opened = open_stock_target(config); !opened) return opened.error();
  }
  if (config.mode == Mode::probe && config.probe.workload == Workload::register_ && !is_http(config.probe.target)) {
    if (auto opened = open_register_target(config); !opened) return opened.error();
  }
  return {};
}

envkit::Result<envkit::Exit> run_probe(const Config& config) {
  if (auto st = check(config); !st) return st.error();
  const auto& p = config.probe;
  std::string client_id = p.client_id.empty() ? envkit::host_pid_name() : p.client_id;
  const std::string read_back = p.read_back.empty() ? p.target : p.read_back;
  Snapshot setup;
  std::unique_ptr<StockTarget> stock;
  std::unique_ptr<RegisterTarget> registers;
  if (p.workload == Workload::stock) {
    auto opened = open_stock_target(config);
    if (!opened) return opened.error();
    stock = std::move(*opened);
    auto initial = stock->set_up(p.items, p.stock);
    if (!initial) return initial.error();
    setup.initial = std::move(*initial);
  } else if (p.workload == Workload::register_) {
    // No read-back: the history itself is checked, from every key absent.
    if (!is_http(p.target)) {
      auto opened = open_register_target(config);
      if (!opened) return opened.error();
      registers = std::move(*opened);
      if (auto st = registers->reset(p.keys); !st) return st.error();
    }
  } else if (auto before = read_back_tasks(read_back, p.id_field, config.connection, p.request_timeout.value);
             !before) {
    // Read once before the run: a target that cannot be read back cannot be checked.
    return before.error();
  }
  auto ops = send_all(p, client_id, config.connection, stock.get(), registers.get());
  if (!ops) return ops.error();
  if (auto st = reached_target(*ops); !st) return st.error();
  if (p.workload == Workload::register_) {
    if (!config.history.empty()) {
      if (auto st = write_history(config.history, *ops, {}); !st) return st.error();
    }
    return finish_registers(*ops, config, envkit::parse_url(p.target)->redacted(), p.rate);
  }
  auto snapshot = p.workload == Workload::tasks
                      ? read_back_tasks(read_back, p.id_field, config.connection, p.request_timeout.value)
                      : stock->read();
  if (!snapshot) return snapshot.error();
  snapshot->client = client_id;
  snapshot->initial = setup.initial;
  if (!config.history.empty()) {
    if (auto st = write_history(config.history, *ops, {*snapshot}); !st) return st.error();
  }
  Report report;
  report.workload = p.workload == Workload::tasks ? "tasks" : "stock";
  report.target = envkit::parse_url(p.target)->redacted();
  report.snapshot_source = snapshot->source;
  if (p.workload == Workload::tasks) {
    report.tasks = check_tasks(*ops, *snapshot);
  } else {
    report.stock = check_stock(*ops, *snapshot);
  }
  report.latency = latency_of(*ops, p.rate);
  if (auto st = print_report(report, config.format); !st) return st.error();
  if (envkit::stop_requested()) return envkit::fail(Failure::interrupted, "stopped by a signal before every operation was sent");
  return report.valid() ? Exit::ok : Exit::failure;
}

envkit::Result<envkit::Exit> run_reconcile(const Config& config) {
  if (auto st = check(config); !st) return st.error();
  History history;
  for (const auto& path : config.histories) {
    if (auto st = read_history(path, history); !st) return st.error();
  }
  if (history.operations.empty()) return Error{Exit::data, "the histories hold no operation"};
  if (config.export_jepsen) {
    std::cout << jepsen_edn(history) << std::flush;
    if (!std::cout) return Error{Exit::io, "writing the history to stdout failed"};
    return Exit::ok;
  }
  const std::string& f = history.operations.front().f;
  if (f == "read" || f == "write" || f == "cas") return finish_registers(history.operations, config, "", -1);
  bool stock = f == "buy";
  // The latest snapshot the histories hold, unless --read-back asks for a fresh one; an
  // acknowledged operation completed after the snapshot began is not judged against it.
  Snapshot snapshot;
  for (const auto& s : history.snapshots) {
    if (s.invoke >= snapshot.invoke) {
      auto initial = std::move(snapshot.initial);
      snapshot = s;
      if (snapshot.initial.empty()) snapshot.initial = std::move(initial);
    } else if (snapshot.initial.empty()) {
      snapshot.initial = s.initial;
    }
  }
  const auto& read_back = config.probe.read_back;
  if (!read_back.empty()) {
    Config at = config;
    at.probe.target = read_back;
    auto target = stock ? open_stock_target(at) : envkit::Result<std::unique_ptr<StockTarget>>(nullptr);
    if (!target) return target.error();
    auto fresh = stock ? (*target)->read()
                       : read_back_tasks(read_back, config.probe.id_field, config.connection,
                                         config.probe.request_timeout.value);
    if (!fresh) return fresh.error();
    fresh->initial = snapshot.initial;
    snapshot = std::move(*fresh);
  } else if (history.snapshots.empty()) {
    return Error{Exit::usage, "the histories hold no read-back: give --read-back URL"};
  }
  Report report;
  report.workload = stock ? "stock" : "tasks";
  report.snapshot_source = snapshot.source;
  if (stock) {
    report.stock = check_stock(history.operations, snapshot);
  } else {
    report.tasks = check_tasks(history.operations, snapshot);
  }
  if (auto st = print_report(report, config.format); !st) return st.error();
  return report.valid() ? Exit::ok : Exit::failure;
}

}  // namespace race_probe
