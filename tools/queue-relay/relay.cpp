// The relay: the --from source through the record pipeline (envkit/pipeline.hpp) to every
// --to sink, records checked on the way, the rejected ones to the dead letters.
#include "queue-relay/relay.hpp"

#include <chrono>
#include <cstdio>

#include <envkit/durable_file.hpp>
#include <envkit/log.hpp>
#include <envkit/metrics.hpp>
#include <envkit/pipeline.hpp>
#include <envkit/registry.hpp>
#include <envkit/timefmt.hpp>

namespace queue_relay {

using envkit::Error;
using envkit::Exit;
using envkit::Result;
using envkit::Status;
using namespace std::chrono;

envkit::Status check_record(const envkit::Record& record, const std::vector<std::string>& require,
                            uint64_t max_bytes) {
  if (record.json.size() > max_bytes) {
    return Error{Exit::data, "record of " + std::to_string(record.json.size()) + " bytes, over --max-bytes " +
                                 std::to_string(max_bytes)};
  }
  auto doc = envkit::parse_json(record.json);
  if (!doc) return Error{Exit::data, "not JSON: " + doc.error().message};
  if (!doc->IsObject()) return Error{Exit::data, "not a JSON object"};
  for (const auto& field : require) {
    const envkit::JsonValue* v = envkit::find_member(*doc, field);
    if (v == nullptr || v->IsNull()) return Error{Exit::data, "missing required field '" + field + "'"};
  }
  return {};
}

std::optional<system_clock::time_point> record_time(const envkit::Record& record, std::string_view field) {
  auto doc = envkit::parse_json(record.json);
  if (!doc) return std::nullopt;
  const envkit::JsonValue* v = &*doc;
  for (size_t at = 0; v != nullptr;) {
    size_t dot = field.find('.', at);
    v = envkit::find_member(*v, field.substr(at, dot == std::string_view::npos ? dot : dot - at));
    if (dot == std::string_view::npos) break;
    at = dot + 1;
  }
  if (v == nullptr) return std::nullopt;
  if (v->IsString()) {
    auto t = envkit::parse_time({v->GetString(), v->GetStringLength()});
    if (!t) return std::nullopt;
    return system_clock::time_point(*t);
  }
  if (!v->IsNumber()) return std::nullopt;
  // Seconds and milliseconds since the epoch cannot be confused for the next 3000 years:
  // 1e11 s is in the year 5138, 1e11 ms in 1973.
  double n = v->GetDouble();
  double ms = n < 1e11 ? n * 1000.0 : n;
  if (!(n >= 0 && ms < 1e14)) return std::nullopt;
  return system_clock::time_point(milliseconds(static_cast<int64_t>(ms)));
}

namespace {

// Ends the source once nothing has arrived for a while, so a cron job drains a queue and
// exits; records handed out before are still settled.
class IdleStop final : public envkit::Source {
 public:
  IdleStop(envkit::Source& inner, milliseconds idle) : inner_(inner), idle_(idle), last_(steady_clock::now()) {}
  Result<envkit::SourceBatch> next(size_t max, milliseconds wait) override {
    auto b = inner_.next(max, wait);
    if (!b) return b;
    auto now = steady_clock::now();
    if (!b->records.empty()) last_ = now;
    else if (now - last_ >= idle_) b->end = true;
    return b;
  }
  Status settle(std::span<const envkit::Settlement> s) override { return inner_.settle(s); }
  Status commit() override { return inner_.commit(); }
  std::string name() const override { return inner_.name(); }

 private:
  envkit::Source& inner_;
  milliseconds idle_;
  steady_clock::time_point last_;
};

void print_stats(const Config& c, const envkit::Pipeline& p, steady_clock::time_point start) {
  envkit::JsonWriter w;
  w.begin_object();
  // Never the password: a stats file is read by dashboards and pasted into reports.
  auto from = envkit::parse_url(c.from);
  w.key("from").string(from ? from->redacted() : c.from);
  if (!c.timestamp_field.empty()) w.key("timestamp_field").string(c.timestamp_field);
  w.key("elapsed_s").number(duration<double>(steady_clock::now() - start).count());
  double active = p.active_seconds();
  w.key("records_per_s").number(active > 0 ? static_cast<double>(p.counters().acked) / active : 0.0);
  p.stats_json(w);
  w.end_object();
  std::string line = w.take() + "\n";
  if (c.stats_file.empty()) {
    std::fwrite(line.data(), 1, line.size(), stderr);
    return;
  }
  // A reader (the Kafka vs RabbitMQ table) sees the old line or the new one, never half.
  if (auto st = envkit::write_file_atomically(c.stats_file, line, 0644); !st) envkit::log_warning(st.error().message);
}

Status write_metrics(const Config& c, const envkit::Pipeline& p) {
  envkit::MetricsFile m;
  p.add_metrics(m, "queue_relay");
  m.add("queue_relay_last_run_timestamp_seconds", "gauge", "When these metrics were written.",
        duration<double>(system_clock::now().time_since_epoch()).count());
  return m.write(c.metrics_file);
}

}  // namespace

Status check(const Config& c) {
  auto from = envkit::parse_url(c.from);
  if (!from) return from.error();
  const envkit::Connector* connector = envkit::find_connector(from->scheme);
  if (connector == nullptr || connector->open_source == nullptr) {
    return Error{Exit::usage, from->redacted() + ": cannot read records from a " + from->scheme + " URL"};
  }
  if (!from->is_stdio() && !from->is_file()) {
    if (auto st = envkit::resolve_password(*from, {c.password_file, true}); !st) return st.error();
  }
  envkit::SinkOptions sink_options;
  sink_options.connection = c.connection;
  sink_options.password_file = c.password_file;
  std::vector<std::string> sinks = c.sinks;
  if (!c.dead_letter.empty()) sinks.push_back(c.dead_letter);
  for (const auto& text : sinks) {
    auto url = envkit::parse_url(text);
    if (!url) return url.error();
    if (url->is_stdio() || url->is_file()) continue;  // opening would create the file
    if (auto sink = envkit::open_sink(text, sink_options); !sink) return sink.error();
  }
  return {};
}

Result<Exit> run(const Config& c) {
  envkit::SourceOptions so;
  so.connection = c.connection;
  so.password_file = c.password_file;
  so.consumer = c.consumer;
  envkit::SinkOptions sink_options;
  sink_options.connection = c.connection;
  sink_options.password_file = c.password_file;
  // One worker writes each sink's batches in the source's order, which stored positions need.
  sink_options.in_order = c.workers == 1;
  so.stored_positions = envkit::sinks_stored_positions(c.sinks, sink_options);
  auto source = envkit::open_source(c.from, so);
  if (!source) return source.error();

  std::vector<envkit::SinkSpec> specs;
  for (const auto& url : c.sinks) {
    specs.push_back({url, [url, sink_options] { return envkit::open_sink(url, sink_options); }});
  }
  envkit::PipelineOptions o;
  o.batch = c.batch;
  o.linger = c.linger.value;
  o.workers = c.workers;
  o.spool_dir = c.spool_dir;
  o.spool.max_bytes = c.spool_max.bytes;
  o.max_deliveries = c.max_deliveries;
  if (!c.timestamp_field.empty()) {
    o.origin = [&c](const envkit::Record& r) { return record_time(r, c.timestamp_field); };
  }
  o.transform = [&c](envkit::Record& r) { return check_record(r, c.require, c.max_bytes.bytes); };
  if (!c.dead_letter.empty()) {
    std::string url = c.dead_letter;
    o.dead_letter = [url, sink_options] { return envkit::open_sink(url, sink_options); };
  }
  const envkit::Pipeline* running = nullptr;
  if (!c.metrics_file.empty()) {
    o.on_progress = [&c, &running] {
      if (running == nullptr) return;
      if (auto st = write_metrics(c, *running); !st) envkit::log_warning(st.error().message);
    };
  }
  auto pipeline = envkit::Pipeline::open(std::move(specs), std::move(o));
  if (!pipeline) return pipeline.error();
  running = pipeline->get();

  auto start = steady_clock::now();
  Status status;
  if (c.exit_when_idle.value.count() > 0) {
    IdleStop idle(**source, c.exit_when_idle.value);
    status = (*pipeline)->run(idle);
  } else {
    status = (*pipeline)->run(**source);
  }
  if (c.stats) print_stats(c, **pipeline, start);
  if (!status) return status.error();

  size_t damaged = 0;
  for (const auto& q : (*pipeline)->quarantined()) damaged += q.torn ? 0 : 1;
  if (damaged > 0) {
    // Reported one by one by the spool; this is what the exit status says.
    envkit::log_error(std::to_string(damaged) + " damaged spool segment parts quarantined: see `queue-relay spool check " +
                      c.spool_dir + "`");
    return Exit::data;
  }
  uint64_t pending = 0;
  for (const auto& t : (*pipeline)->sink_totals()) pending += t.spool_pending;
  const auto& counters = (*pipeline)->counters();
  if (counters.dead > 0) {
    envkit::log_warning(std::to_string(counters.dead) + " records went to the dead letters");
    return Exit::failure;
  }
  if (pending > 0) {
    envkit::log_warning(std::to_string(pending) + " records wait in the spool for the next run");
    return Exit::temp_fail;
  }
  return Exit::ok;
}

}  // namespace queue_relay
