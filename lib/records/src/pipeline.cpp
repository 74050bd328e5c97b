// The pipeline: one thread talks to the source (pull, batch, settle, commit); workers, each
// with its own sink instances, deliver batches and apply the ledger's rule record by record.
#include <envkit/pipeline.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include <envkit/durable_file.hpp>
#include <envkit/log.hpp>
#include <envkit/signals.hpp>
#include <envkit/url.hpp>

namespace envkit {

using namespace std::chrono;
using Clock = steady_clock;

Settlement settle_record(uint64_t handle, std::span<const Delivery* const> per_sink) {
  const Delivery* failed = nullptr;
  for (const Delivery* d : per_sink) {
    if (d->outcome == Outcome::rejected) return {handle, Verdict::dead, d->error};
    if (d->outcome == Outcome::failed && failed == nullptr) failed = d;
  }
  if (failed != nullptr) return {handle, Verdict::retry, failed->error};
  return {handle, Verdict::ack, {}};
}

std::string spool_name(std::string_view redacted_url) {
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

namespace {

// How often a spool is offered a replay while no records arrive (the sink's own backoff
// decides whether it is tried).
constexpr milliseconds kReplayInterval{500};

// A batch on its way: the records, what the source said of each, and what became of them.
struct Job {
  struct Meta {
    uint64_t handle = 0;
    uint32_t deliveries = 1;
    Clock::time_point due;
    std::optional<system_clock::time_point> origin;  // with PipelineOptions::origin
  };
  std::vector<Record> records;
  std::vector<Meta> meta;
  std::vector<Settlement> verdicts;  // filled by the worker, one per record
  std::vector<SinkCounters> sink_deltas;
  uint64_t spooled = 0;  // records acked with some sink holding them in its spool only
  Clock::time_point picked, done;
  system_clock::time_point answered;  // done by the wall clock, for end-to-end latency
  std::optional<Error> fatal;
};

}  // namespace

struct Pipeline::State {
  PipelineOptions options;
  std::vector<SinkSpec> specs;
  std::vector<std::shared_ptr<SharedSpool>> spools;  // per sink; null without --spool
  std::vector<uint64_t> spooled_at_open;
  std::vector<std::vector<SpooledSink>> worker_sinks;  // [worker][sink]
  std::vector<std::thread> threads;

  std::mutex mutex;
  std::condition_variable work_cv, done_cv;
  std::deque<Job> work, done;
  size_t idle = 0;
  bool closing = false;
  Source* running = nullptr;  // run()'s source, woken by a worker with a batch done

  PipelineCounters counters;
  std::vector<SinkCounters> sink_counters;
  LatencyHistogram latency, behind, end_to_end;
  uint64_t untimed = 0;
  Clock::time_point first_in{}, last_done{};
  std::unique_ptr<Sink> dead_letter;

  void worker_loop(size_t w);
  void deliver(Job& job, std::vector<SpooledSink>& sinks);
  Status settle(Job& job, Source& source);
  void write_dead_letters(std::vector<Settlement>& verdicts, const Job& job);
};

void Pipeline::State::deliver(Job& job, std::vector<SpooledSink>& sinks) {
  const size_t n = job.records.size();
  job.verdicts.assign(n, Settlement{});
  std::vector<bool> live(n, true);
  if (options.origin) {
    for (size_t i = 0; i < n; ++i) job.meta[i].origin = options.origin(job.records[i]);
  }
  std::vector<Record> transformed;
  std::span<const Record> to_write = job.records;
  std::vector<size_t> index;  // position in job.records of each record written
  if (options.transform) {
    transformed.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      Record r = job.records[i];
      if (auto st = options.transform(r); !st) {
        live[i] = false;
        job.verdicts[i] = {job.meta[i].handle, Verdict::dead, st.error().message};
        continue;
      }
      transformed.push_back(std::move(r));
      index.push_back(i);
    }
    to_write = transformed;
  }
  std::vector<std::vector<Delivery>> answers;
  answers.reserve(sinks.size());
  job.sink_deltas.assign(sinks.size(), {});
  for (size_t s = 0; s < sinks.size(); ++s) {
    SinkCounters before = sinks[s].counters();
    answers.push_back(sinks[s].deliver(to_write));
    job.sink_deltas[s] = sinks[s].counters() - before;
    if (sinks[s].fatal() && !job.fatal) job.fatal = *sinks[s].fatal();
  }
  std::vector<const Delivery*> per_sink(sinks.size());
  for (size_t k = 0; k < to_write.size(); ++k) {
    size_t i = options.transform ? index[k] : k;
    bool spooled = false;
    for (size_t s = 0; s < sinks.size(); ++s) {
      per_sink[s] = &answers[s][k];
      spooled = spooled || answers[s][k].outcome == Outcome::spooled;
    }
    Settlement v = settle_record(job.meta[i].handle, per_sink);
    if (v.verdict == Verdict::retry && options.max_deliveries > 0 && job.meta[i].deliveries >= options.max_deliveries) {
      v = {v.handle, Verdict::dead,
           "not taken after " + std::to_string(job.meta[i].deliveries) + " deliveries: " + v.reason};
    }
    if (v.verdict == Verdict::ack && spooled) ++job.spooled;
    job.verdicts[i] = std::move(v);
  }
}

void Pipeline::State::worker_loop(size_t w) {
  auto& sinks = worker_sinks[w];
  std::unique_lock lock(mutex);
  while (true) {
    // A batch done and this worker idle again are one step under the mutex, so the thread
    // that settles the batch also sees a worker free for the next one.
    ++idle;
    work_cv.wait(lock, [&] { return !work.empty() || closing; });
    --idle;
    if (work.empty()) return;
    Job job = std::move(work.front());
    work.pop_front();
    lock.unlock();
    job.picked = Clock::now();
    deliver(job, sinks);
    job.done = Clock::now();
    job.answered = system_clock::now();
    lock.lock();
    done.push_back(std::move(job));
    // The pipeline's thread may be in the source's next(), not on done_cv. Under the mutex:
    // run() clears `running` under it before it returns and the source may go.
    if (running != nullptr) running->wake();
    done_cv.notify_all();
  }
}

void Pipeline::State::write_dead_letters(std::vector<Settlement>& verdicts, const Job& job) {
  std::vector<Record> letters;
  std::vector<size_t> at;
  for (size_t i = 0; i < verdicts.size(); ++i) {
    if (verdicts[i].verdict != Verdict::dead) continue;
    if (!dead_letter) {
      log_error("dead record " + job.records[i].id + ": " + verdicts[i].reason);
      continue;
    }
    JsonWriter w;
    w.begin_object();
    w.key("id").string(job.records[i].id);
    w.key("reason").string(verdicts[i].reason);
    w.key("deliveries").number(static_cast<uint64_t>(job.meta[i].deliveries));
    w.key("record").string(job.records[i].json);  // the original bytes, whatever they are
    w.end_object();
    letters.push_back({job.records[i].id, w.take()});
    at.push_back(i);
  }
  if (letters.empty()) return;
  auto result = dead_letter->write(letters);
  for (size_t k = 0; k < at.size(); ++k) {
    bool kept = result && (*result)[k].outcome == Outcome::durable;
    if (kept) {
      ++counters.dead_lettered;
      continue;
    }
    // Never dropped: a record the dead letters cannot take comes back from the source.
    std::string why = result ? (*result)[k].error : result.error().message;
    log_error(dead_letter->name() + ": dead letter for " + letters[k].id + " not written: " + why);
    verdicts[at[k]].verdict = Verdict::retry;
  }
}

Status Pipeline::State::settle(Job& job, Source& source) {
  write_dead_letters(job.verdicts, job);
  for (size_t i = 0; i < job.verdicts.size(); ++i) {
    switch (job.verdicts[i].verdict) {
      case Verdict::ack:
        ++counters.acked;
        if (const auto& origin = job.meta[i].origin) {
          end_to_end.record(duration_cast<microseconds>(std::max(job.answered - *origin, system_clock::duration(0))));
        } else {
          ++untimed;
        }
        break;
      case Verdict::dead: ++counters.dead; break;
      case Verdict::retry: ++counters.retried; break;
    }
    latency.record(duration_cast<microseconds>(job.done - job.meta[i].due));
    behind.record(duration_cast<microseconds>(std::max(job.picked - job.meta[i].due, Clock::duration(0))));
  }
  counters.spooled += job.spooled;
  for (size_t s = 0; s < job.sink_deltas.size(); ++s) sink_counters[s] += job.sink_deltas[s];
  if (!job.records.empty()) last_done = std::max(last_done, job.done);
  if (job.verdicts.empty()) return {};
  return source.settle(job.verdicts);
}

Pipeline::Pipeline(std::unique_ptr<State> state) : state_(std::move(state)) {}

Pipeline::~Pipeline() {
  {
    std::lock_guard lock(state_->mutex);
    state_->closing = true;
  }
  state_->work_cv.notify_all();
  for (auto& t : state_->threads) {
    if (t.joinable()) t.join();
  }
}

Result<std::unique_ptr<Pipeline>> Pipeline::open(std::vector<SinkSpec> sinks, PipelineOptions options) {
  auto st = std::make_unique<State>();
  options.batch = std::max<size_t>(1, options.batch);
  options.workers = std::max<size_t>(1, options.workers);
  if (options.max_in_flight == 0) options.max_in_flight = 2 * options.workers;
  if (!options.spool_dir.empty()) {
    if (auto made = make_directories(options.spool_dir); !made) return made.error();
  }
  for (const auto& spec : sinks) {
    if (options.spool_dir.empty()) {
      st->spools.push_back(nullptr);
      st->spooled_at_open.push_back(0);
      continue;
    }
    auto url = parse_url(spec.url);
    if (!url) return url.error();
    auto spool = Spool::open(options.spool_dir + "/" + spool_name(url->redacted()), options.spool);
    if (!spool) return spool.error();
    // Which sink the spool is for, in words (its directory name is cut and hashed), for
    // `queue-relay spool check`; a spool without it still replays.
    if (auto named = write_file_atomically(spool->dir() + "/" + std::string(kSpoolSinkFile), url->redacted() + "\n");
        !named) {
      log_warning(named.error().message);
    }
    st->spooled_at_open.push_back(spool->pending_records());
    st->spools.push_back(std::make_shared<SharedSpool>(std::move(*spool)));
  }
  for (size_t w = 0; w < options.workers; ++w) {
    std::vector<SpooledSink> set;
    for (size_t s = 0; s < sinks.size(); ++s) {
      auto sink = sinks[s].open();
      if (!sink) return sink.error();
      set.emplace_back(std::move(*sink), st->spools[s], options.batch);
    }
    st->worker_sinks.push_back(std::move(set));
  }
  if (options.dead_letter) {
    auto dl = options.dead_letter();
    if (!dl) return dl.error().context("the dead-letter sink");
    st->dead_letter = std::move(*dl);
  }
  st->sink_counters.assign(sinks.size(), {});
  st->specs = std::move(sinks);
  st->options = std::move(options);
  State* raw = st.get();
  for (size_t w = 0; w < raw->options.workers; ++w) raw->threads.emplace_back([raw, w] { raw->worker_loop(w); });
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(st)));
}

Status Pipeline::run(Source& source) {
  State& s = *state_;
  const auto& o = s.options;
  Job pending;
  Clock::time_point pending_since{};
  size_t in_flight = 0;
  bool source_end = false, pulling = true;
  std::optional<Error> failure;
  auto last_commit = Clock::now(), last_progress = Clock::now();
  milliseconds retry_backoff{0};
  Clock::time_point paused_until{};
  {
    std::lock_guard lock(s.mutex);
    s.running = &source;
  }
  // Cleared however run() returns: the caller may destroy the source then.
  struct Unset {
    State& s;
    ~Unset() {
      std::lock_guard lock(s.mutex);
      s.running = nullptr;
    }
  } unset{s};

  auto dispatch = [&] {
    {
      std::lock_guard lock(s.mutex);
      s.work.push_back(std::move(pending));
    }
    s.work_cv.notify_one();
    pending = Job{};
    ++in_flight;
  };
  auto settle_done = [&] {
    std::deque<Job> finished;
    {
      std::lock_guard lock(s.mutex);
      finished.swap(s.done);
    }
    for (auto& job : finished) {
      --in_flight;
      // Records handed back for a passing failure come again soon: pause pulling for a
      // while (0.1 s doubling to 5 s, cleared by a batch with no retry) so that a sink that
      // is down costs one attempt per pause, not a busy loop of redeliveries.
      bool retried = std::any_of(job.verdicts.begin(), job.verdicts.end(),
                                 [](const Settlement& v) { return v.verdict == Verdict::retry; });
      if (retried) {
        retry_backoff = std::clamp(retry_backoff * 2, milliseconds(100), milliseconds(5000));
        paused_until = Clock::now() + retry_backoff;
      } else if (!job.verdicts.empty()) {
        retry_backoff = milliseconds(0);
      }
      if (job.fatal && !failure) {
        failure = job.fatal;
        log_error(failure->message);
      }
      if (auto st = s.settle(job, source); !st && !failure) failure = st.error();
    }
    if (failure) pulling = false;
  };
  auto worker_idle = [&] {
    std::lock_guard lock(s.mutex);
    return s.idle > 0 && s.work.empty();
  };
  // A spool is replayed ahead of new records, and also while none arrive: with nothing in
  // flight, an empty job every replay_interval lets a worker replay whatever is due.
  auto last_replay = Clock::now();
  auto spool_waiting = [&] {
    return std::any_of(s.spools.begin(), s.spools.end(), [](const auto& spool) {
      if (!spool) return false;
      std::lock_guard lock(spool->mutex);
      return !spool->spool.empty();
    });
  };

  while (true) {
    settle_done();
    if (stop_requested()) pulling = false;
    auto now = Clock::now();
    if (now - last_commit >= o.commit_interval) {
      if (auto st = source.commit(); !st && !failure) failure = st.error();
      last_commit = now;
    }
    if (o.on_progress && now - last_progress >= o.progress_interval) {
      o.on_progress();
      last_progress = now;
    }
    bool can_dispatch = in_flight < o.max_in_flight;
    if (pending.records.empty() && in_flight == 0 && pulling && now - last_replay >= kReplayInterval) {
      last_replay = now;
      if (spool_waiting()) {
        dispatch();
        continue;
      }
    }
    if (!pending.records.empty() && can_dispatch &&
        (pending.records.size() >= o.batch || now - pending_since >= o.linger || !pulling || source_end ||
         worker_idle())) {
      dispatch();
      continue;
    }
    if (pulling && !source_end && can_dispatch && pending.records.size() < o.batch && now >= paused_until) {
      auto wait = pending.records.empty() ? o.linger
                                          : duration_cast<milliseconds>(o.linger - (now - pending_since));
      auto got = source.next(o.batch - pending.records.size(), std::max(wait, milliseconds(0)));
      if (!got) {
        failure = got.error();
        pulling = false;
        continue;
      }
      auto arrived = Clock::now();
      if (!got->records.empty()) {
        if (pending.records.empty()) pending_since = arrived;
        if (s.first_in == Clock::time_point{}) s.first_in = arrived;
      }
      for (auto& r : got->records) {
        Clock::time_point due = r.due == Clock::time_point{} ? arrived : r.due;
        pending.meta.push_back({r.handle, r.deliveries, due, std::nullopt});
        pending.records.push_back(std::move(r.record));
        ++s.counters.received;
      }
      source_end = got->end;
      continue;
    }
    if ((!pulling || source_end) && pending.records.empty() && in_flight == 0) break;
    // Nothing to pull now (in-flight work at its bound, or the source done): wait for a
    // worker to answer.
    auto nap = now < paused_until ? std::min<Clock::duration>(o.linger, paused_until - now) : Clock::duration(o.linger);
    std::unique_lock lock(s.mutex);
    s.done_cv.wait_for(lock, nap, [&] { return !s.done.empty(); });
  }

  // One last replay of every spool (unless a sink needs an operator or a spool failed).
  if (!failure) {
    for (auto& sink : s.worker_sinks.front()) {
      SinkCounters before = sink.counters();
      sink.drain(SpooledSink::When::now);
      size_t idx = static_cast<size_t>(&sink - s.worker_sinks.front().data());
      s.sink_counters[idx] += sink.counters() - before;
      if (sink.fatal() && !failure) failure = sink.fatal();
    }
  }
  if (auto st = source.commit(); !st && !failure) failure = st.error();
  if (o.on_progress) o.on_progress();
  if (failure) return *failure;
  return {};
}

const PipelineCounters& Pipeline::counters() const { return state_->counters; }
const LatencyHistogram& Pipeline::latency() const { return state_->latency; }
const LatencyHistogram& Pipeline::behind() const { return state_->behind; }
const LatencyHistogram& Pipeline::end_to_end() const { return state_->end_to_end; }
uint64_t Pipeline::untimed() const { return state_->untimed; }
std::vector<uint64_t> Pipeline::spooled_at_open() const { return state_->spooled_at_open; }

std::vector<SpoolQuarantine> Pipeline::quarantined() const {
  std::vector<SpoolQuarantine> out;
  for (const auto& shared : state_->spools) {
    if (!shared) continue;
    std::lock_guard lock(shared->mutex);
    const auto& q = shared->spool.quarantined();
    out.insert(out.end(), q.begin(), q.end());
  }
  return out;
}

double Pipeline::active_seconds() const {
  if (state_->first_in == Clock::time_point{} || state_->last_done <= state_->first_in) return 0;
  return duration<double>(state_->last_done - state_->first_in).count();
}

std::vector<SinkTotals> Pipeline::sink_totals() const {
  std::vector<SinkTotals> out;
  const auto& first = state_->worker_sinks.front();
  for (size_t s = 0; s < first.size(); ++s) {
    SinkTotals t{first[s].name(), state_->sink_counters[s], first[s].spool_pending(), {}};
    for (const auto& set : state_->worker_sinks) {
      if (!set[s].last_failure().empty()) t.last_failure = set[s].last_failure();
    }
    out.push_back(std::move(t));
  }
  return out;
}

void Pipeline::stats_json(JsonWriter& w) const {
  const auto& c = state_->counters;
  auto ms = [](microseconds us) { return static_cast<double>(us.count()) / 1000.0; };
  w.key("records").begin_object();
  w.key("received").number(c.received);
  w.key("acked").number(c.acked);
  w.key("dead").number(c.dead);
  w.key("dead_lettered").number(c.dead_lettered);
  w.key("retried").number(c.retried);
  w.key("spooled").number(c.spooled);
  w.end_object();
  auto percentiles = [&](const LatencyHistogram& h) {
    for (auto [name, p] : {std::pair{"p50", 50.0}, {"p90", 90.0}, {"p99", 99.0}, {"p999", 99.9}}) {
      w.key(name).number(ms(h.percentile(p)));
    }
    w.key("max").number(ms(h.max()));
  };
  w.key("latency_ms").begin_object();
  percentiles(state_->latency);
  w.end_object();
  if (state_->options.origin) {
    w.key("end_to_end_ms").begin_object();
    w.key("timed").number(state_->end_to_end.count());
    w.key("untimed").number(state_->untimed);
    percentiles(state_->end_to_end);
    w.end_object();
  }
  w.key("sinks").begin_array();
  for (const auto& t : sink_totals()) {
    w.begin_object();
    w.key("sink").string(t.name);
    w.key("delivered").number(t.counters.delivered);
    w.key("replayed").number(t.counters.replayed);
    w.key("spooled").number(t.counters.spooled);
    w.key("rejected").number(t.counters.rejected);
    w.key("failed").number(t.counters.failed);
    w.key("spool_pending").number(t.spool_pending);
    w.end_object();
  }
  w.end_array();
}

void Pipeline::add_metrics(MetricsFile& m, std::string_view prefix) const {
  const std::string p(prefix);
  const auto& c = state_->counters;
  for (auto [verdict, n] : {std::pair{"acked", c.acked}, {"dead", c.dead}, {"retried", c.retried}}) {
    m.add(p + "_settled_total", "counter", "Records settled at the source, by verdict.", static_cast<double>(n),
          {{"verdict", verdict}});
  }
  m.add(p + "_received_total", "counter", "Records handed out by the source.", static_cast<double>(c.received));
  for (const auto& t : sink_totals()) {
    for (auto [outcome, n] : {std::pair{"delivered", t.counters.delivered}, {"replayed", t.counters.replayed},
                              {"spooled", t.counters.spooled}, {"rejected", t.counters.rejected},
                              {"failed", t.counters.failed}}) {
      m.add(p + "_records_total", "counter", "Records by sink and outcome.", static_cast<double>(n),
            {{"sink", t.name}, {"outcome", outcome}});
    }
    m.add(p + "_spool_pending_records", "gauge", "Records waiting in the spool.", static_cast<double>(t.spool_pending),
          {{"sink", t.name}});
  }
  const auto& l = state_->latency;
  for (auto [q, pct] : {std::pair{"0.5", 50.0}, {"0.99", 99.0}}) {
    m.add(p + "_latency_seconds", "gauge", "Latency from a record's due time to every sink's answer.",
          static_cast<double>(l.percentile(pct).count()) / 1e6, {{"quantile", q}});
  }
  if (state_->options.origin) {
    for (auto [q, pct] : {std::pair{"0.5", 50.0}, {"0.99", 99.0}}) {
      m.add(p + "_end_to_end_seconds", "gauge", "Latency from a record's own timestamp to every sink's answer.",
            static_cast<double>(state_->end_to_end.percentile(pct).count()) / 1e6, {{"quantile", q}});
    }
  }
}

}  // namespace envkit
