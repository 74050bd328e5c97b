// The run: resolve cities, open sinks (each behind its spool), then once, every, or rate.
#include "push.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "cities.hpp"
#include "envkit/durable_file.hpp"
#include "envkit/histogram.hpp"
#include "envkit/json.hpp"
#include "envkit/log.hpp"
#include "envkit/metrics.hpp"
#include "envkit/signals.hpp"
#include "envkit/sinks.hpp"
#include "envkit/spooled_sink.hpp"
#include "openmeteo.hpp"
#include "sim.hpp"

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

// A spool directory per sink, named after the sink so that reordering --to keeps each
// sink's backlog with it: "mysql-127.0.0.1-33060-iot-5f1c2a9b".
std::string spool_name(const std::string& redacted_url) {
  std::string name;
  for (char ch : redacted_url) {
    bool keep = std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_';
    if (keep) name += ch;
    else if (!name.empty() && name.back() != '-') name += '-';
    if (name.size() >= 60) break;
  }
  while (!name.empty() && name.back() == '-') name.pop_back();
  uint32_t h = 2166136261u;
  for (unsigned char ch : redacted_url) h = (h ^ ch) * 16777619u;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", h);
  return name + "-" + hex;
}

double seconds_of(steady_clock::duration d) { return duration<double>(d).count(); }

class Runner {
 public:
  Runner(const Config& c, std::vector<City> cities, RecordShape shape)
      : c_(c), cities_(std::move(cities)), shape_(std::move(shape)) {}

  Result<Exit> run() {
    if (auto st = open_spools(); !st) return st.error();
    auto sinks = open_sinks();
    if (!sinks) return sinks.error();
    sinks_ = std::move(*sinks);
    if (c_.source == "open-meteo") {
      envkit::ConnectionOptions api_conn = c_.connection;
      auto client = envkit::HttpClient::create(api_conn);
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
    if (c_.rate > 0) run_pipeline();
    else run_rounds();
    finish();
    return verdict();
  }

 private:
  Status open_spools() {
    if (c_.spool_dir.empty()) return {};
    if (auto st = envkit::make_directories(c_.spool_dir); !st) return st;
    std::set<std::string> mine;
    for (const auto& url : c_.sinks) {
      auto parsed = envkit::parse_url(url);
      if (!parsed) return parsed.error();
      envkit::SpoolOptions o;
      o.max_bytes = c_.spool_max.bytes;
      auto spool = envkit::Spool::open(c_.spool_dir + "/" + spool_name(parsed->redacted()), o);
      if (!spool) return spool.error();
      if (spool->pending_records() > 0) {
        envkit::log_info(parsed->redacted() + ": " + std::to_string(spool->pending_records()) +
                         " records waiting in the spool from an earlier run");
      }
      spools_.push_back(std::make_shared<envkit::SharedSpool>(std::move(*spool)));
      mine.insert(spool_name(parsed->redacted()));
    }
    warn_about_other_spools(mine);
    return {};
  }

  // A spool belongs to a sink URL as written; one left by a URL not given now (changed, or
  // a sink removed) would otherwise wait unseen.
  void warn_about_other_spools(const std::set<std::string>& mine) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(c_.spool_dir, ec)) {
      std::string name = entry.path().filename().string();
      if (!entry.is_directory() || mine.count(name)) continue;
      envkit::SpoolOptions o;
      auto other = envkit::Spool::open(entry.path().string(), o);  // also shows it is not in use
      if (other && other->pending_records() > 0) {
        envkit::log_warning(entry.path().string() + " holds " + std::to_string(other->pending_records()) +
                            " records for a sink not given in this run");
      }
    }
  }

  // One set of sinks; rate mode opens one per worker (sinks are not thread-safe).
  Result<std::vector<envkit::SpooledSink>> open_sinks() {
    envkit::SinkOptions o;
    o.connection = c_.connection;
    o.password_file = c_.password_file;
    o.table_schema = reading_schema(shape_);
    std::vector<envkit::SpooledSink> out;
    for (size_t i = 0; i < c_.sinks.size(); ++i) {
      std::string url = c_.sinks[i];
      if (c_.create_table && url.rfind("mysql:", 0) == 0 && url.find("create=") == std::string::npos) {
        url += url.find('?') == std::string::npos ? "?create=true" : "&create=true";
      }
      auto sink = envkit::open_sink(url, o);
      if (!sink) return sink.error();
      out.emplace_back(std::move(*sink), spools_.empty() ? nullptr : spools_[i], c_.batch);
    }
    return out;
  }

  // The readings of one round at time t, as records; at most `limit` of them.
  std::vector<Record> make_records(SysMillis t, size_t limit) {
    std::vector<Record> out;
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
        out.push_back(shape_.to_record(r));
      }
    } else {
      for (const auto& city : cities_) {
        if (out.size() >= limit) break;
        out.push_back(shape_.to_record(simulate(city, t, c_.seed)));
      }
    }
    readings_ += out.size();
    return out;
  }

  // Hands records to every sink; false when a spool failed and the run must stop.
  bool deliver(std::vector<envkit::SpooledSink>& sinks, std::span<const Record> records) {
    for (auto& s : sinks) {
      if (auto st = s.deliver(records); !st) {
        record_fatal(st.error());
        return false;
      }
    }
    return true;
  }

  void record_fatal(const Error& e) {
    std::lock_guard lock(mutex_);
    if (!fatal_) {
      envkit::log_error(e.message);
      fatal_ = e;
      stopping_ = true;
    }
  }

  uint64_t remaining() const { return c_.count == 0 ? UINT64_MAX : c_.count - std::min(c_.count, readings_); }

  // One reading per city at time t, delivered to every sink.
  void one_round(SysMillis t) {
    auto begun = steady_clock::now();
    auto records = make_records(t, static_cast<size_t>(std::min<uint64_t>(remaining(), SIZE_MAX)));
    ++rounds_;
    if (!records.empty() && deliver(sinks_, records)) {
      auto took = duration_cast<microseconds>(steady_clock::now() - begun);
      for (size_t i = 0; i < records.size(); ++i) latency_.record(took);
    }
    completed_ += records.size();
    write_metrics();
  }

  // --once, --every and the --count burst: rounds of one reading per city.
  void run_rounds() {
    auto now_s = floor<seconds>(system_clock::now());
    if (c_.every.value.count() <= 0) {
      if (c_.source != "sim" || c_.count == 0 || c_.once) {
        one_round(SysMillis(now_s));
        return;
      }
      run_pipeline();  // a sim --count burst: as fast as the sinks take it
      return;
    }
    // Ticks sit on the clock's grid (multiples of --every since the epoch), so the schedule
    // never drifts and two hosts with the same interval tick together.
    auto period = c_.every.value;
    auto deadline = c_.duration.value.count() > 0 ? start_ + c_.duration.value : steady_clock::time_point::max();
    SysMillis next = ceil<milliseconds>(system_clock::now());
    next = SysMillis((next.time_since_epoch() + period - milliseconds(1)) / period * period);
    while (!envkit::stop_requested() && !stopping_ && remaining() > 0) {
      if (!envkit::sleep_unless_stopped(next - system_clock::now())) break;
      if (steady_clock::now() >= deadline) break;
      one_round(next);
      next += period;
      auto now = system_clock::now();
      if (next < now) {
        auto skipped = (now - next) / period + 1;
        envkit::log_warning("a round took longer than --every; skipping " + std::to_string(skipped) + " tick(s)");
        next += skipped * period;
      }
    }
  }

  // A generator thread makes records and workers (--concurrency, each with its own sinks)
  // write them, so making and writing overlap. With --rate, record i falls due at i/R
  // seconds whatever the sinks do (open loop), and latency runs from the due time, so a slow
  // sink cannot hide its stalls. Without it (a --count burst) records are made as fast as
  // the workers take them, one round of cities per simulated second, and latency runs from
  // when each record was made.
  void run_pipeline() {
    const bool paced = c_.rate > 0;
    struct Due {
      Record record;
      steady_clock::time_point due;
    };
    std::deque<Due> queue;
    std::mutex qm;
    std::condition_variable qcv;
    bool generating = true;
    // Paced, the backlog may grow (the schedule is the point) up to a cap; unpaced, the
    // generator simply waits for the workers.
    const size_t backlog_cap = paced ? 1'000'000 : std::max<size_t>(4 * c_.batch * c_.concurrency, 10'000);

    std::vector<std::vector<envkit::SpooledSink>> worker_sinks;
    worker_sinks.push_back(std::move(sinks_));
    for (size_t w = 1; w < c_.concurrency; ++w) {
      auto s = open_sinks();
      if (!s) {
        record_fatal(s.error());
        sinks_ = std::move(worker_sinks.front());
        return;
      }
      worker_sinks.push_back(std::move(*s));
    }

    auto t0 = steady_clock::now() + milliseconds(20);
    SysMillis sys0 = ceil<milliseconds>(system_clock::now() + milliseconds(20));
    std::vector<envkit::LatencyHistogram> latencies(c_.concurrency), behinds(c_.concurrency);
    std::vector<uint64_t> done_counts(c_.concurrency, 0);
    std::atomic<int64_t> last_done_ns{0};

    std::vector<std::thread> workers;
    for (size_t w = 0; w < c_.concurrency; ++w) {
      workers.emplace_back([&, w] {
        std::vector<Due> batch;
        std::vector<Record> records;
        while (true) {
          {
            std::unique_lock lock(qm);
            qcv.wait(lock, [&] { return !queue.empty() || !generating; });
            if (queue.empty()) return;
            size_t n = std::min(queue.size(), c_.batch);
            batch.clear();
            for (size_t i = 0; i < n; ++i) {
              batch.push_back(std::move(queue.front()));
              queue.pop_front();
            }
          }
          qcv.notify_all();  // the generator may be waiting on the backlog cap
          auto picked = steady_clock::now();
          records.clear();
          for (auto& d : batch) {
            behinds[w].record(duration_cast<microseconds>(picked - d.due));
            records.push_back(std::move(d.record));
          }
          if (!stopping_) deliver(worker_sinks[w], records);
          auto done = steady_clock::now();
          for (const auto& d : batch) latencies[w].record(duration_cast<microseconds>(done - d.due));
          done_counts[w] += batch.size();
          int64_t ns = (done - t0).count();
          int64_t prev = last_done_ns.load();
          while (ns > prev && !last_done_ns.compare_exchange_weak(prev, ns)) {
          }
        }
      });
    }

    auto end = c_.duration.value.count() > 0 ? t0 + c_.duration.value : steady_clock::time_point::max();
    uint64_t limit = c_.count > 0 ? c_.count : UINT64_MAX;
    uint64_t i = 0;
    auto due_of = [&](uint64_t k) {
      if (!paced) return steady_clock::now();
      return t0 + duration_cast<steady_clock::duration>(duration<double>(static_cast<double>(k) / c_.rate));
    };
    const auto burst_t0 = floor<seconds>(system_clock::now());
    const size_t ncities = cities_.size();
    bool capped = false;
    while (i < limit && !envkit::stop_requested() && !stopping_) {
      auto next_due = due_of(i);
      if (next_due >= end) break;
      auto now = steady_clock::now();
      if (paced && next_due > now) {
        // Coarse sleep, then a short spin so records leave within microseconds of their time.
        if (next_due - now > milliseconds(2)) std::this_thread::sleep_until(next_due - milliseconds(1));
        while (steady_clock::now() < next_due) std::this_thread::yield();
        now = steady_clock::now();
      }
      std::vector<Due> made;
      // Unpaced, a chunk of one batch at a time; paced, everything due by now.
      uint64_t chunk_end = paced ? limit : std::min<uint64_t>(limit, i + c_.batch);
      while (i < chunk_end && (!paced || (due_of(i) <= now && due_of(i) < end))) {
        Reading r;
        if (paced) {
          double at_ms = static_cast<double>(i) * 1000.0 / c_.rate;
          r = simulate(cities_[i % ncities], sys0 + milliseconds(std::llround(at_ms)), c_.seed);
          r.millis = true;
        } else {
          r = simulate(cities_[i % ncities], SysMillis(burst_t0 + seconds(static_cast<int64_t>(i / ncities))), c_.seed);
        }
        made.push_back({shape_.to_record(r), paced ? due_of(i) : now});
        ++i;
      }
      {
        std::unique_lock lock(qm);
        if (queue.size() > backlog_cap) {
          if (paced && !capped) envkit::log_warning("the sinks are more than 1,000,000 records behind; the schedule slips");
          capped = true;
          qcv.wait(lock, [&] { return queue.size() < backlog_cap / 2 || envkit::stop_requested(); });
        }
        for (auto& d : made) queue.push_back(std::move(d));
      }
      qcv.notify_all();
    }
    readings_ = i;
    {
      std::lock_guard lock(qm);
      generating = false;
    }
    qcv.notify_all();
    for (auto& t : workers) t.join();

    for (size_t w = 0; w < c_.concurrency; ++w) {
      latency_.merge(latencies[w]);
      behind_.merge(behinds[w]);
      completed_ += done_counts[w];
    }
    rate_elapsed_s_ = static_cast<double>(last_done_ns.load()) / 1e9;
    scheduled_s_ = paced && readings_ > 0 ? static_cast<double>(readings_) / c_.rate : 0;
    rounds_ = paced ? 1 : (readings_ + ncities - 1) / ncities;
    // Keep every worker's counters: the summary adds them up.
    sinks_ = std::move(worker_sinks.front());
    for (size_t w = 1; w < worker_sinks.size(); ++w) {
      for (auto& s : worker_sinks[w]) extra_sinks_.push_back(std::move(s));
    }
  }

  // Whatever is still spooled gets one last chance before the process ends.
  void finish() {
    for (auto& s : sinks_) {
      if (stopping_) break;
      if (auto st = s.drain(); !st) record_fatal(st.error());
    }
    write_metrics();
    if (c_.stats) print_stats();
  }

  struct Totals {
    std::string name;
    envkit::SinkCounters counters;
    uint64_t pending = 0;
    std::string failure;
  };

  std::vector<Totals> totals() const {
    std::vector<Totals> out;
    for (const auto& s : sinks_) out.push_back({s.name(), s.counters(), s.spool_pending(), s.last_failure()});
    for (size_t k = 0; k < extra_sinks_.size(); ++k) {
      auto& t = out[k % out.size()];
      const auto& x = extra_sinks_[k].counters();
      t.counters.delivered += x.delivered;
      t.counters.replayed += x.replayed;
      t.counters.spooled += x.spooled;
      t.counters.rejected += x.rejected;
      t.counters.lost += x.lost;
    }
    return out;
  }

  void write_metrics() {
    if (c_.metrics_file.empty()) return;
    envkit::MetricsFile m;
    m.add("sensor_push_readings_total", "counter", "Readings made (fetched or simulated) in this run.",
          static_cast<double>(readings_));
    m.add("sensor_push_fetch_failures_total", "counter", "Cities whose reading could not be fetched.",
          static_cast<double>(fetch_failed_));
    bool healthy = fetch_failed_ == 0 && !fatal_;
    for (const auto& t : totals()) {
      for (auto [outcome, n] : {std::pair{"delivered", t.counters.delivered}, {"replayed", t.counters.replayed},
                                {"spooled", t.counters.spooled}, {"rejected", t.counters.rejected},
                                {"lost", t.counters.lost}}) {
        m.add("sensor_push_records_total", "counter", "Records by sink and outcome.", static_cast<double>(n),
              {{"sink", t.name}, {"outcome", outcome}});
      }
      m.add("sensor_push_spool_pending_records", "gauge", "Records waiting in the spool.",
            static_cast<double>(t.pending), {{"sink", t.name}});
      healthy = healthy && t.pending == 0 && t.counters.lost == 0 && t.counters.rejected == 0;
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
    envkit::JsonWriter w;
    auto ms = [](microseconds us) { return static_cast<double>(us.count()) / 1000.0; };
    uint64_t pushed = 0, spooled = 0, replayed = 0, failed = fetch_failed_;
    for (const auto& t : totals()) {
      pushed += t.counters.delivered;
      spooled += t.counters.spooled;
      replayed += t.counters.replayed;
      failed += t.counters.rejected + t.counters.lost;
    }
    w.begin_object();
    w.key("source").string(c_.source);
    w.key("mode").string(c_.rate > 0 ? "rate" : c_.every.value.count() > 0 ? "every" : "once");
    w.key("cities").number(static_cast<uint64_t>(cities_.size()));
    w.key("rounds").number(rounds_);
    w.key("fetched").number(readings_);
    w.key("pushed").number(pushed);
    w.key("spooled").number(spooled);
    w.key("replayed").number(replayed);
    w.key("failed").number(failed);
    w.key("fetch_failed").number(fetch_failed_);
    if (api_) {
      w.key("api_calls").number(api_calls_);
      w.key("api_retries").number(api_retries_);
    }
    w.key("elapsed_s").number(seconds_of(steady_clock::now() - start_));
    if (c_.rate > 0) {
      w.key("rate_asked").number(c_.rate);
      w.key("rate_scheduled").number(scheduled_s_ > 0 ? static_cast<double>(readings_) / scheduled_s_ : 0.0);
      w.key("rate_achieved").number(rate_elapsed_s_ > 0 ? static_cast<double>(completed_) / rate_elapsed_s_ : 0.0);
      w.key("behind_ms").begin_object();
      w.key("p50").number(ms(behind_.percentile(50)));
      w.key("p99").number(ms(behind_.percentile(99)));
      w.key("max").number(ms(behind_.max()));
      w.end_object();
    }
    w.key("latency_ms").begin_object();
    for (auto [name, p] : {std::pair{"p50", 50.0}, {"p90", 90.0}, {"p99", 99.0}, {"p999", 99.9}}) {
      w.key(name).number(ms(latency_.percentile(p)));
    }
    w.key("max").number(ms(latency_.max()));
    w.end_object();
    w.key("sinks").begin_array();
    for (const auto& t : totals()) {
      w.begin_object();
      w.key("sink").string(t.name);
      w.key("delivered").number(t.counters.delivered);
      w.key("replayed").number(t.counters.replayed);
      w.key("spooled").number(t.counters.spooled);
      w.key("rejected").number(t.counters.rejected);
      w.key("lost").number(t.counters.lost);
      w.key("spool_pending").number(t.pending);
      w.end_object();
    }
    w.end_array();
    w.end_object();
    std::string line = w.take() + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }

  Exit verdict() const {
    if (fatal_) return fatal_->code;
    uint64_t lost = 0, rejected = 0, pending = 0;
    for (const auto& t : totals()) {
      lost += t.counters.lost;
      rejected += t.counters.rejected;
      pending += t.pending;
    }
    if (lost > 0) return Exit::unavailable;
    if (readings_ == 0 && fetch_failed_ > 0) return fetch_failure_;
    if (pending > 0) {
      envkit::log_warning(std::to_string(pending) + " records wait in the spool for the next run");
      return Exit::temp_fail;
    }
    if (rejected > 0 || fetch_failed_ > 0) return Exit::failure;
    return Exit::ok;
  }

  const Config& c_;
  std::vector<City> cities_;
  RecordShape shape_;
  std::vector<std::shared_ptr<envkit::SharedSpool>> spools_;
  std::vector<envkit::SpooledSink> sinks_;
  std::vector<envkit::SpooledSink> extra_sinks_;  // rate mode's other workers, for the totals
  std::optional<OpenMeteoSource> api_;
  std::mutex mutex_;
  std::optional<Error> fatal_;          // the first error that stopped the run (under mutex_)
  std::atomic<bool> stopping_{false};  // set with fatal_, read by every loop and worker
  steady_clock::time_point start_;
  uint64_t readings_ = 0, completed_ = 0, rounds_ = 0, fetch_failed_ = 0, api_calls_ = 0, api_retries_ = 0;
  Exit fetch_failure_ = Exit::ok;
  envkit::LatencyHistogram latency_, behind_;
  double rate_elapsed_s_ = 0, scheduled_s_ = 0, last_success_ = 0;
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
  // The same options open_sinks() gives; open_sink() itself connects to nothing, but a
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
