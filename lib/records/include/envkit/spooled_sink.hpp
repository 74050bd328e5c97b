// Store-and-forward in front of a sink: what the sink cannot take yet goes to a spool and is
// replayed, oldest first, before anything new; every record's outcome is answered truly.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <envkit/sink.hpp>
#include <envkit/spool.hpp>

namespace envkit {

/// Counters of one sink, summed over a run.
struct SinkCounters {
  uint64_t delivered = 0;  ///< durable in the sink (new records and replayed ones)
  uint64_t replayed = 0;   ///< of those, taken from the spool
  uint64_t spooled = 0;    ///< written to the spool because the sink could not take them
  uint64_t rejected = 0;   ///< refused by the sink for good (bad data): never retried
  uint64_t failed = 0;     ///< not taken, and no spool could keep them: the caller still has them

  SinkCounters& operator+=(const SinkCounters& o);
  SinkCounters operator-(const SinkCounters& o) const;
};

/// A spool shared by the workers that write to one sink (a Spool is not thread-safe).
struct SharedSpool {
  explicit SharedSpool(Spool s) : spool(std::move(s)) {}
  std::mutex mutex;
  Spool spool;
};

/// A sink with an optional spool. Not thread-safe (give each worker its own), but several
/// may share one SharedSpool; then one of them at a time replays it, and records keep
/// their order within each worker's stream but not across workers.
class SpooledSink {
 public:
  SpooledSink(std::unique_ptr<Sink> sink, std::shared_ptr<SharedSpool> spool, size_t batch);

  /// Delivers `records` in order and answers one Delivery per record: durable (the sink has
  /// it), spooled (fsynced to the spool, replayed later), rejected (bad record), or failed
  /// (nobody holds it: no spool, or the spool could not take it). First replays the spool;
  /// while the spool holds records or the sink is backing off after a failure, new records
  /// go behind them in the spool. A record is never answered durable or spooled unless the
  /// sink or the disk has it.
  std::vector<Delivery> deliver(std::span<const Record> records);

  /// Replays the spool until it is empty or the sink fails again; returns at once if another
  /// worker sharing the spool is replaying it, or, unless `now` (the last replay before the
  /// run ends), while the sink is backing off after a failure.
  enum class When { when_due, now };
  void drain(When when = When::when_due);

  /// Set once the run should stop: the sink failed in a way no wait mends (Exit::config:
  /// refused credentials, a missing table or topic), or the spool itself failed (full, I/O,
  /// damaged). The outcomes already answered stay true: records kept are spooled, records
  /// not kept are failed.
  const std::optional<Error>& fatal() const { return fatal_; }

  const SinkCounters& counters() const { return counters_; }
  std::string name() const { return sink_->name(); }
  /// Records waiting in the spool (0 without one).
  uint64_t spool_pending() const;
  /// The last reason the sink gave for not taking records ("" while it is healthy).
  const std::string& last_failure() const { return last_failure_; }

 private:
  // Spools `records` (answered spooled) or, without a spool or when it fails, answers them
  // failed; writes the answers to `out`.
  void keep(std::span<const Record> records, const std::string& why, std::span<Delivery> out);
  void failed(const std::string& why);
  void recovered();
  bool backing_off() const;
  void write_now(std::span<const Record> records, std::span<Delivery> out);
  void stop_with(const Error& e);

  std::unique_ptr<Sink> sink_;
  std::shared_ptr<SharedSpool> spool_;
  size_t batch_;
  SinkCounters counters_;
  std::string last_failure_;
  std::optional<Error> fatal_;
  // After a failure the sink is left alone for a while (0.5 s doubling to 10 s), so a sink
  // that is down costs one timeout per back-off, not one per batch.
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point next_attempt_{};
};

}  // namespace envkit
