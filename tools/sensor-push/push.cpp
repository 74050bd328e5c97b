// The run: resolve cities, then the readings as a source through the record pipeline
// (envkit/pipeline.hpp) to every sink, once, every interval, as a burst, or at a rate.
#include "sensor-push/push.hpp"

#include <algorithm>
#include <filesystem>
#include <set>
#include <thread>

#include "sensor-push/cities.hpp"
#include <envkit/durable_file.hpp>
#include <envkit/json.hpp>
#include <envkit/log.hpp>
#include <envkit/metrics.hpp>
#include <envkit/signals.hpp>
#include <envkit/registry.hpp>
#include <envkit/schedule.hpp>
#include <envkit/pipeline.hpp>
#include "sensor-push/openmeteo.hpp"
#include "sensor-push/sim.hpp"

namespace sensor_push {

using envkit::Error;
using envkit::Exit;
using envkit::Record;
using envkit::Result;
using envkit::Status;
using envkit::SysMillis;
using namespace std::chrono;

namespace {

// The MySQL table sensor-push creates: one row per city and observed time.
envkit::TableSchema reading_schema(const RecordShape& shape) {
  using K = envkit::Column::Kind;
  envkit::TableSchema s;
  if (shape.is_default()) {
    s.columns = {{"id", "VARCHAR(200) NOT NULL", K::text},
                 {"city", "VARCHAR(100) NOT NULL", K::text},
                 {"latitude", "DECIMAL(8,5) NOT NULL", K::number},
                 {"longitude", "DECIMAL(8,5) NOT NULL", K::number},
                 {"elevation", "DECIMAL(6,1)", K::number},
                 {"observed_at", "DATETIME(3) NOT NULL COMMENT 'UTC'", K::timestamp},
                 {"source", "VARCHAR(20) NOT NULL", K::text}};
    for (const auto& v : kVariables) s.columns.push_back({std::string(v.name), std::string(v.sql_type), K::number});
    s.columns.push_back({"units", "JSON", K::json});
    s.unique_key = {"city", "observed_at"};
    return s;
  }
  // A mapped shape: types follow the reading fields; the key is whatever identifies a reading.
  std::string city_col, time_col, id_col;
  for (const auto& [out, in] : shape.fields()) {
    if (in == "observed_at") {
      s.columns.push_back({out, "DATETIME(3)", K::timestamp});
      time_col = out;
    } else if (in == "city" || in == "source" || in == "weather" || in == "id") {
      s.columns.push_back({out, in == "id" ? "VARCHAR(200)" : "VARCHAR(100)", K::text});
      if (in == "city") city_col = out;
      if (in == "id") id_col = out;
    } else {
      std::string type = "DOUBLE";
      for (const auto& v : kVariables) {
        if (v.name == in) type = std::string(v.sql_type);
      }
      s.columns.push_back({out, type, K::number});
    }
  }
  if (!id_col.empty()) s.unique_key = {id_col};
  else if (!city_col.empty() && !time_col.empty()) s.unique_key = {city_col, time_col};
  return s;
}

Result<std::vector<City>> resolve_cities(const Config& c) {
  if (!c.city_specs.empty()) {
    std::vector<City> out;
    std::set<std::string> seen;
    for (const auto& spec : c.city_specs) {
      auto city = parse_city_spec(spec);
      if (!city) return city.error();
      if (!seen.insert(city->name).second) return Error{Exit::usage, "--city '" + city->name + "' given twice"};
      out.push_back(std::move(*city));
    }
    return out;
  }
  if (!c.cities_file.empty()) return load_cities_file(c.cities_file);
  return builtin_cities(c.city_list);
}

// The readings as a record source for the pipeline, in the four modes: --once (one round
// now), --every (a round per tick of the clock's grid), a --count burst of simulated
// readings (as fast as the sinks take them) and --rate (record i due at i/R seconds, open
// loop: a slow sink delays records, never the schedule, and latency runs from due time).
// A record the sinks did not take cannot be made again later: it is counted lost.
class ReadingSource final : public envkit::Source {
 public:
  ReadingSource(const Config& c, const std::vector<City>& cities, const RecordShape& shape,
                std::optional<OpenMeteoSource>& api)
      : c_(c), cities_(cities), shape_(shape), api_(api) {
    start_ = steady_clock::now();
    if (c_.rate > 0) mode_ = Mode::rate;
    else if (c_.every.value.count() > 0) mode_ = Mode::every;
    else if (c_.source == "sim" && c_.count > 0 && !c_.once) mode_ = Mode::burst;
    else mode_ = Mode::once;
    // Paced records start 20 ms out, so the first ones are not born late; --duration
    // counts from there, so a rate R for D seconds makes R x D records.
    t0_ = start_ + milliseconds(20);
    if (c_.duration.value.count() > 0) end_ = t0_ + c_.duration.value;
    // --every ticks on the clock's grid (envkit/schedule.hpp): no drift, and hosts with the
    // same interval tick together.
    if (mode_ == Mode::every) schedule_.emplace(c_.every.value);
    sys0_ = ceil<milliseconds>(system_clock::now() + milliseconds(20));
    burst_t0_ = floor<seconds>(system_clock::now());
  }

  Result<envkit::SourceBatch> next(size_t max, milliseconds wait) override {
    envkit::SourceBatch b;
    switch (mode_) {
      case Mode::once:
        b.records = round(SysMillis(floor<seconds>(system_clock::now())), max);
        b.end = true;
        break;
      case Mode::every: {
        if (remaining() == 0 || steady_clock::now() >= end_) {
          b.end = true;
          break;
        }
        if (!schedule_->due()) {
          envkit::sleep_unless_stopped(std::min<system_clock::duration>(schedule_->next() - system_clock::now(), wait));
          break;
        }
        b.records = round(schedule_->next(), max);
        // Taken after the round, so the ticks a long round overran are skipped, not bunched.
        if (uint64_t skipped = schedule_->advance(); skipped > 0) {
          envkit::log_warning("a round took longer than --every; skipping " + std::to_string(skipped) + " tick(s)");
        }
        break;
      }
      case Mode::burst: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(max, remaining()));
        const size_t ncities = cities_.size();
        for (size_t k = 0; k < n; ++k, ++made_) {
          auto at = SysMillis(burst_t0_ + seconds(static_cast<int64_t>(made_ / ncities)));
          b.records.push_back({shape_.to_record(simulate(cities_[made_ % ncities], at, c_.seed)), made_});
        }
        rounds_ = (made_ + ncities - 1) / ncities;
        b.end = remaining() == 0;
        break;
      }
      case Mode::rate:
        b = paced(max, wait);
        break;
    }
    return b;
  }

  Status settle(std::span<const envkit::Settlement> settled) override {
    for (const auto& s : settled) {
      if (s.verdict == envkit::Verdict::retry) ++lost_;
    }
    return {};
  }

  std::string name() const override { return c_.source; }

  uint64_t made() const { return made_; }
  uint64_t rounds() const { return rounds_; }
  uint64_t lost() const { return lost_; }
  uint64_t api_calls() const { return api_calls_; }
  uint64_t api_retries() const { return api_retries_; }
  uint64_t fetch_failed() const { return fetch_failed_; }
  Exit fetch_failure() const { return fetch_failure_; }
  /// Rate mode: the rate the schedule asked of the records made.
  double scheduled_seconds() const { return mode_ == Mode::rate && made_ > 0 ? static_cast<double>(made_) / c_.rate : 0; }

 private:
  enum class Mode { once, every, burst, rate };

  uint64_t remaining() const { return c_.count == 0 ? UINT64_MAX : c_.count - std::min(c_.count, made_); }

  // One reading per city at time t (at most `limit`), from the API or the simulator.
  std::vector<envkit::Received> round(SysMillis t, size_t limit) {
    limit = static_cast<size_t>(std::min<uint64_t>(limit, remaining()));
    std::vector<envkit::Received> out;
    auto add = [&](const Reading& r) { out.push_back({shape_.to_record(r), made_++}); };
    if (api_) {
      FetchResult f = api_->fetch(cities_);
      api_calls_ += f.calls;
      api_retries_ += f.retries;
      for (const auto& e : f.errors) envkit::log_error(e);
      fetch_failed_ += f.errors.size();
      if (!f.errors.empty() && f.failure == Exit::unavailable) fetch_failure_ = Exit::unavailable;
      else if (!f.errors.empty() && fetch_failure_ == Exit::ok) fetch_failure_ = Exit::data;
      for (const auto& r : f.readings) {
        if (out.size() >= limit) break;
        add(r);
      }
    } else {
      for (const auto& city : cities_) {
        if (out.size() >= limit) break;
        add(simulate(city, t, c_.seed));
      }
    }
    ++rounds_;
    return out;
  }

  steady_clock::time_point due_of(uint64_t k) const {
    return t0_ + duration_cast<steady_clock::duration>(duration<double>(static_cast<double>(k) / c_.rate));
  }

  // Everything due by now (at most `max`); if nothing is, waits for the next due time.
  envkit::SourceBatch paced(size_t max, milliseconds wait) {
    envkit::SourceBatch b;
    if (remaining() == 0 || due_of(made_) >= end_) {
      b.end = true;
      return b;
    }
    auto next_due = due_of(made_);
    auto now = steady_clock::now();
    if (next_due > now) {
      if (next_due - now > wait) {
        envkit::sleep_unless_stopped(wait);
        return b;
      }
      // Coarse sleep, then a short spin so records leave within microseconds of their time.
      if (next_due - now > milliseconds(2)) std::this_thread::sleep_until(next_due - milliseconds(1));
      while (steady_clock::now() < next_due) std::this_thread::yield();
      now = steady_clock::now();
    }
    const size_t ncities = cities_.size();
    while (b.records.size() < max && remaining() > 0) {
      auto due = due_of(made_);
      if (due > now || due >= end_) break;
      double at_ms = static_cast<double>(made_) * 1000.0 / c_.rate;
      Reading r = simulate(cities_[made_ % ncities], sys0_ + milliseconds(std::llround(at_ms)), c_.seed);
      r.millis = true;
      b.records.push_back({shape_.to_record(r), made_, 1, due});
      ++made_;
    }
    rounds_ = 1;
    b.end = remaining() == 0 || due_of(made_) >= end_;
    return b;
  }

  const Config& c_;
  const std::vector<City>& cities_;
  const RecordShape& shape_;
  std::optional<OpenMeteoSource>& api_;
  Mode mode_ = Mode::once;
  steady_clock::time_point start_, t0_, end_ = steady_clock::time_point::max();
  SysMillis sys0_;
  std::optional<envkit::GridSchedule> schedule_;
  time_point<system_clock, seconds> burst_t0_;
  uint64_t made_ = 0, rounds_ = 0, lost_ = 0, api_calls_ = 0, api_retries_ = 0, fetch_failed_ = 0;
  Exit fetch_failure_ = Exit::ok;
};

class Runner {
 public:
  Runner(const Config& c, std::vector<City> cities, RecordShape shape)
      : c_(c), cities_(std::move(cities)), shape_(std::move(shape)) {}

  Result<Exit> run() {
    auto pipeline = open_pipeline();
    if (!pipeline) return pipeline.error();
    pipeline_ = std::move(*pipeline);
    auto at_open = pipeline_->spooled_at_open();
    for (size_t i = 0; i < at_open.size(); ++i) {
      if (at_open[i] > 0) {
        envkit::log_info(redacted(c_.sinks[i]) + ": " + std::to_string(at_open[i]) +
                         " records waiting in the spool from an earlier run");
      }
    }
    warn_about_other_spools();
    if (c_.source == "open-meteo") {
      auto client = envkit::HttpClient::create(c_.connection);
      if (!client) return client.error();
      OpenMeteoOptions o;
      o.api_url = c_.api_url;
      o.batch_size = c_.api_batch;
      o.calls_per_minute = c_.api_calls_per_minute;
      o.max_retries = c_.api_retries;
      o.call_timeout = c_.api_timeout.value;
      api_.emplace(std::move(*client), o, c_.seed ^ static_cast<uint64_t>(steady_clock::now().time_since_epoch().count()));
    }
    start_ = steady_clock::now();
    source_.emplace(c_, cities_, shape_, api_);
    auto status = pipeline_->run(*source_);
    if (!status) fatal_ = status.error();
    if (c_.stats) print_stats();
    return verdict();
  }

 private:
  static std::string redacted(const std::string& url) {
    auto parsed = envkit::parse_url(url);
    return parsed ? parsed->redacted() : url;
  }

  Result<std::unique_ptr<envkit::Pipeline>> open_pipeline() {
    envkit::SinkOptions so;
    so.connection = c_.connection;
    so.password_file = c_.password_file;
    so.table_schema = reading_schema(shape_);
    std::vector<envkit::SinkSpec> specs;
    for (const auto& given : c_.sinks) {
      std::string url = given;
      if (c_.create_table && url.rfind("mysql:", 0) == 0 && url.find("create=") == std::string::npos) {
        url += url.find('?') == std::string::npos ? "?create=true" : "&create=true";
      }
      specs.push_back({given, [url, so] { return envkit::open_sink(url, so); }});
    }
    envkit::PipelineOptions o;
    o.batch = c_.batch;
    o.workers = c_.concurrency;
    // Open loop: records are made on schedule however slow the sinks are, so a backlog of
    // up to a million records may wait for the workers (the schedule slips only past it).
    if (c_.rate > 0) o.max_in_flight = std::max<size_t>(2 * c_.concurrency, 1'000'000 / std::max<size_t>(1, c_.batch));
    o.spool_dir = c_.spool_dir;
    o.spool.max_bytes = c_.spool_max.bytes;
    if (!c_.metrics_file.empty()) {
      o.on_progress = [this] { write_metrics(); };
      o.progress_interval = c_.every.value.count() > 0 ? std::min<milliseconds>(c_.every.value, seconds(1)) : seconds(1);
    }
    return envkit::Pipeline::open(std::move(specs), std::move(o));
  }

  // A spool belongs to a sink URL as written; one left by a URL not given now (changed, or
  // a sink removed) would otherwise wait unseen.
  void warn_about_other_spools() {
    if (c_.spool_dir.empty()) return;
    std::set<std::string> mine;
    for (const auto& url : c_.sinks) mine.insert(envkit::spool_name(redacted(url)));
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(c_.spool_dir, ec)) {
      std::string name = entry.path().filename().string();
      if (!entry.is_directory() || mine.count(name)) continue;
      auto other = envkit::Spool::open(entry.path().string(), {});  // also shows it is not in use
      if (other && other->pending_records() > 0) {
        envkit::log_warning(entry.path().string() + " holds " + std::to_string(other->pending_records()) +
                            " records for a sink not given in this run");
      }
    }
  }

  void write_metrics() {
    envkit::MetricsFile m;
    const ReadingSource* src = source_ ? &*source_ : nullptr;
    m.add("sensor_push_readings_total", "counter", "Readings made (fetched or simulated) in this run.",
          static_cast<double>(src ? src->made() : 0));
    m.add("sensor_push_fetch_failures_total", "counter", "Cities whose reading could not be fetched.",
          static_cast<double>(src ? src->fetch_failed() : 0));
    pipeline_->add_metrics(m, "sensor_push");
    bool healthy = src && src->fetch_failed() == 0 && src->lost() == 0 && !fatal_;
    for (const auto& t : pipeline_->sink_totals()) {
      healthy = healthy && t.spool_pending == 0 && t.counters.rejected == 0;
    }
    double now = duration<double>(system_clock::now().time_since_epoch()).count();
    m.add("sensor_push_last_run_timestamp_seconds", "gauge", "When the last round ended.", now);
    if (healthy) last_success_ = now;
    if (last_success_ > 0) {
      m.add("sensor_push_last_success_timestamp_seconds", "gauge",
            "When a round last ended with every reading in every sink.", last_success_);
    }
    if (auto st = m.write(c_.metrics_file); !st) envkit::log_error(st.error().message);
  }

  void print_stats() {
    const ReadingSource& src = *source_;
    envkit::JsonWriter w;
    auto ms = [](microseconds us) { return static_cast<double>(us.count()) / 1000.0; };
    uint64_t pushed = 0, spooled = 0, replayed = 0;
    for (const auto& t : pipeline_->sink_totals()) {
      pushed += t.counters.delivered;
      spooled += t.counters.spooled;
      replayed += t.counters.replayed;
    }
    const auto& pc = pipeline_->counters();
    w.begin_object();
    w.key("source").string(c_.source);
    w.key("mode").string(c_.rate > 0 ? "rate" : c_.every.value.count() > 0 ? "every" : "once");
    w.key("cities").number(static_cast<uint64_t>(cities_.size()));
    w.key("rounds").number(src.rounds());
    w.key("fetched").number(src.made());
    w.key("pushed").number(pushed);
    w.key("spooled").number(spooled);
    w.key("replayed").number(replayed);
    w.key("failed").number(src.fetch_failed() + pc.dead + src.lost());
    w.key("lost").number(src.lost());
    w.key("fetch_failed").number(src.fetch_failed());
    if (api_) {
      w.key("api_calls").number(src.api_calls());
      w.key("api_retries").number(src.api_retries());
    }
    w.key("elapsed_s").number(duration<double>(steady_clock::now() - start_).count());
    if (c_.rate > 0) {
      double active = pipeline_->active_seconds();
      double answered = static_cast<double>(pc.acked + pc.dead + pc.retried);
      w.key("rate_asked").number(c_.rate);
      w.key("rate_scheduled").number(src.scheduled_seconds() > 0 ? static_cast<double>(src.made()) / src.scheduled_seconds() : 0.0);
      w.key("rate_achieved").number(active > 0 ? answered / active : 0.0);
      w.key("behind_ms").begin_object();
      w.key("p50").number(ms(pipeline_->behind().percentile(50)));
      w.key("p99").number(ms(pipeline_->behind().percentile(99)));
      w.key("max").number(ms(pipeline_->behind().max()));
      w.end_object();
    }
    pipeline_->stats_json(w);
    w.end_object();
    std::string line = w.take() + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }

  Exit verdict() const {
    if (fatal_) return fatal_->code;
    const ReadingSource& src = *source_;
    uint64_t rejected = 0, pending = 0;
    for (const auto& t : pipeline_->sink_totals()) {
      rejected += t.counters.rejected;
      pending += t.spool_pending;
    }
    if (src.lost() > 0) return Exit::unavailable;
    if (src.made() == 0 && src.fetch_failed() > 0) return src.fetch_failure();
    if (pending > 0) {
      envkit::log_warning(std::to_string(pending) + " records wait in the spool for the next run");
      return Exit::temp_fail;
    }
    if (rejected > 0 || src.fetch_failed() > 0) return Exit::failure;
    return Exit::ok;
  }

  const Config& c_;
  std::vector<City> cities_;
  RecordShape shape_;
  std::unique_ptr<envkit::Pipeline> pipeline_;
  std::optional<OpenMeteoSource> api_;
  std::optional<ReadingSource> source_;
  std::optional<Error> fatal_;
  steady_clock::time_point start_;
  double last_success_ = 0;
};

// What a run needs before it opens anything: the cities and the record shape, checked
// against the options. run() and check() share it.
struct Plan {
  std::vector<City> cities;
  RecordShape shape;
};

Result<Plan> prepare(const Config& c) {
  auto cities = resolve_cities(c);
  if (!cities) return cities.error();
  if (c.rate > 0 && c.rate / static_cast<double>(cities->size()) > 1000.0) {
    return Error{Exit::usage, "--rate " + std::to_string(static_cast<long>(c.rate)) + " with " +
                                  std::to_string(cities->size()) +
                                  " cities gives a city more than 1000 readings a second; readings are "
                                  "keyed by city and millisecond, so use more cities or a lower rate"};
  }
  Result<RecordShape> shape = RecordShape();
  if (!c.fields.empty()) shape = RecordShape::from_fields(c.fields);
  else if (!c.template_name.empty()) shape = RecordShape::from_template(c.template_name);
  if (!shape) return shape.error();
  return Plan{std::move(*cities), std::move(*shape)};
}

}  // namespace

Result<Exit> run(const Config& c) {
  auto plan = prepare(c);
  if (!plan) return plan.error();
  Runner runner(c, std::move(plan->cities), std::move(plan->shape));
  return runner.run();
}

Status check(const Config& c) {
  auto plan = prepare(c);
  if (!plan) return plan.error();
  if (c.source == "open-meteo") {
    if (auto api = envkit::parse_url(c.api_url); !api) return api.error().context("--api-url");
  }
  // The same options open_pipeline() gives; open_sink() itself connects to nothing, but a
  // file: sink would be created, so file: and - stop at the URL.
  envkit::SinkOptions o;
  o.connection = c.connection;
  o.password_file = c.password_file;
  o.table_schema = reading_schema(plan->shape);
  for (const auto& text : c.sinks) {
    auto url = envkit::parse_url(text);
    if (!url) return url.error();
    if (url->is_stdio() || url->is_file()) continue;
    std::string with_create = text;
    if (c.create_table && text.rfind("mysql:", 0) == 0 && text.find("create=") == std::string::npos) {
      with_create += text.find('?') == std::string::npos ? "?create=true" : "&create=true";
    }
    if (auto sink = envkit::open_sink(with_create, o); !sink) return sink.error();
  }
  return {};
}

}  // namespace sensor_push
