// The record pipeline every command moves records with: source → batcher → transform →
// sinks (each behind its own spool) → ledger → ack, retry or dead at the source.
// docs/architecture.md, "How records flow", draws it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <envkit/histogram.hpp>
#include <envkit/json.hpp>
#include <envkit/metrics.hpp>
#include <envkit/sink.hpp>
#include <envkit/source.hpp>
#include <envkit/spool.hpp>
#include <envkit/spooled_sink.hpp>

namespace envkit {

/// The ledger's rule, one record at a time: what the source is told given what every sink
/// answered. ack only when every sink answered durable or spooled; dead when one rejected
/// it (it is a bad record: retrying cannot help); retry otherwise (some sink does not hold
/// it). `per_sink[s]` is sink s's answer for this record.
Settlement settle_record(uint64_t handle, std::span<const Delivery* const> per_sink);

/// One sink of a pipeline.
struct SinkSpec {
  /// The URL as the user gave it: names the sink's spool directory, so a spool follows its
  /// sink however --to options are reordered.
  std::string url;
  /// Opens one instance of the sink; called once per worker (sinks are not thread-safe).
  std::function<Result<std::unique_ptr<Sink>>()> open;
};

/// Turns a record into what the sinks get, in place; an Error makes the record dead (to the
/// dead letters, with the error's message as the reason). Runs on the workers, in parallel.
using Transform = std::function<Status(Record&)>;

/// When a record was made, by its own timestamp (a load generator's or a sensor's clock);
/// nullopt when it carries none that can be read. Runs on the workers, in parallel.
using Origin = std::function<std::optional<std::chrono::system_clock::time_point>(const Record&)>;

/// How a pipeline runs.
struct PipelineOptions {
  size_t batch = 500;  ///< records a batch holds at most (and a sink write takes at most)
  /// A partial batch leaves when this old, or at once when a worker is idle, so a trickle
  /// is not delayed and a flood still travels in full batches.
  std::chrono::milliseconds linger{50};
  size_t workers = 1;  ///< batches delivered at once, each worker with its own sinks
  /// Batches handed out and not yet settled, at most: the bound on memory and on what a
  /// crash can redeliver. 0: twice the workers.
  size_t max_in_flight = 0;
  /// Where each sink's spool lives (a directory per sink); empty: no spool, and a record a
  /// sink cannot take is answered failed and retried at the source.
  std::string spool_dir;
  SpoolOptions spool;
  /// A record handed out this many times and still not taken goes to the dead letters
  /// instead of coming back again. 0: no limit.
  uint32_t max_deliveries = 0;
  /// How often settled work is committed at the source (also at the end).
  std::chrono::milliseconds commit_interval{1000};
  Transform transform;  ///< optional
  /// Optional: times every acked record end to end, from its origin to the moment every
  /// sink answered for it, by the wall clock (end_to_end()); records without one are counted.
  Origin origin;
  /// Where rejected records go, as {"id","reason","record"} objects; none: they are logged
  /// and counted. A dead letter that cannot be written is retried, never dropped.
  std::function<Result<std::unique_ptr<Sink>>()> dead_letter;
  /// Called on the pipeline's thread after records were settled, at most once per
  /// `progress_interval` (and once at the end): metrics files and the like.
  std::function<void()> on_progress;
  std::chrono::milliseconds progress_interval{1000};
};

/// What happened to the records of a run.
struct PipelineCounters {
  uint64_t received = 0;   ///< handed out by the source (redeliveries included)
  uint64_t acked = 0;      ///< every sink holds them
  uint64_t dead = 0;       ///< rejected, dead-lettered (or logged) and removed from the source
  uint64_t retried = 0;    ///< handed back to the source to come again
  uint64_t spooled = 0;    ///< acked with at least one sink holding them in its spool only
  uint64_t dead_lettered = 0;  ///< of the dead, written to the dead-letter sink
};

/// A sink's counters summed over every worker, and its spool.
struct SinkTotals {
  std::string name;
  SinkCounters counters;
  uint64_t spool_pending = 0;
  std::string last_failure;
};

/// Moves records from one source to every sink until the source ends or a stop is
/// requested (SIGINT/SIGTERM), then drains: what is in flight is delivered or spooled and
/// settled, spools get one last replay, the source commits. Memory is bounded by
/// max_in_flight batches whatever the source's or the sinks' speed (backpressure). After a
/// batch with records to retry, pulling pauses (0.1 s doubling to 5 s, cleared by a batch
/// with none) so that a sink that is down is not hammered with redeliveries.
class Pipeline {
 public:
  /// Opens the spools (one directory per sink under spool_dir) and one instance of every
  /// sink per worker. Errors: a spool in use or damaged, a sink URL that makes no sense.
  static Result<std::unique_ptr<Pipeline>> open(std::vector<SinkSpec> sinks, PipelineOptions options);
  ~Pipeline();

  /// Runs until `source` ends or a stop is requested. Errors: the source failed, a sink
  /// needs an operator (Exit::config: its records kept in the spool), or a spool failed;
  /// in each case what was in flight was settled first.
  Status run(Source& source);

  const PipelineCounters& counters() const;
  /// Per sink, in the order given.
  std::vector<SinkTotals> sink_totals() const;
  /// From each record's due time (Received::due) to every sink's answer.
  const LatencyHistogram& latency() const;
  /// From each record's due time until a worker picked its batch: how far behind it ran.
  const LatencyHistogram& behind() const;
  /// From each acked record's origin (PipelineOptions::origin) to every sink's answer, by the
  /// wall clock; an origin in the future (a clock ahead of ours) counts as 0.
  const LatencyHistogram& end_to_end() const;
  /// Acked records end_to_end() could not time: no origin, or no PipelineOptions::origin.
  uint64_t untimed() const;
  /// Seconds from the first record handed out to the last one answered.
  double active_seconds() const;
  /// Spooled records found at open, per sink (from an earlier run).
  std::vector<uint64_t> spooled_at_open() const;
  /// What the sinks' spools moved to their quarantine, at open or while replaying.
  std::vector<SpoolQuarantine> quarantined() const;

  /// The common --stats members: "records" {received, acked, dead, retried, spooled},
  /// "latency_ms" {p50, p90, p99, p999, max}, with an origin "end_to_end_ms" {timed,
  /// untimed, p50, p90, p99, p999, max}, and "sinks" [...]; the caller wraps them.
  void stats_json(JsonWriter& w) const;
  /// The common metrics, named `<prefix>_records_total{outcome}` and so on.
  void add_metrics(MetricsFile& m, std::string_view prefix) const;

  struct State;

 private:
  explicit Pipeline(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// The spool directory name for a sink URL: readable, and unique by a hash of the whole
/// URL: "mysql-127.0.0.1-33060-iot-5f1c2a9b".
std::string spool_name(std::string_view redacted_url);

/// The file in each sink's spool directory naming its sink (the redacted URL and a newline).
inline constexpr std::string_view kSpoolSinkFile = "sink";

}  // namespace envkit
