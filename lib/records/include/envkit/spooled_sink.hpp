// Store-and-forward in front of a sink: what the sink cannot take yet goes to a spool and is
// replayed, oldest first, before anything new; nothing is dropped without being counted.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include <envkit/sink.hpp>
#include <envkit/spool.hpp>

namespace envkit {

/// Counters of one sink, summed over a run.
struct SinkCounters {
  uint64_t delivered = 0;  ///< durable in the sink (new records and replayed ones)
  uint64_t replayed = 0;   ///< of those, taken from the spool
  uint64_t spooled = 0;    ///< written to the spool because the sink could not take them
  uint64_t rejected = 0;   ///< refused by the sink for good (bad data): reported, not retried
  uint64_t lost = 0;       ///< could not be delivered and there was no spool to keep them
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

  /// Delivers `records` in order: first replays the spool; if the spool still holds records
  /// (the sink is down), appends these behind them; else writes them and spools whatever the
  /// sink could not take. After a failure the sink is retried only once its back-off has
  /// passed; meanwhile records go straight to the spool.
  /// Errors mean the caller should stop: the spool failed (full, I/O; records not kept are
  /// counted lost), or the sink failed in a way no wait mends (Exit::config: refused
  /// credentials, a missing table or topic), after the records were kept.
  Status deliver(std::span<const Record> records);

  /// Replays the spool until it is empty or the sink fails again; returns at once if
  /// another worker sharing the spool is replaying it. Errors as deliver().
  Status drain();

  const SinkCounters& counters() const { return counters_; }
  std::string name() const { return sink_->name(); }
  /// Records waiting in the spool (0 without one).
  uint64_t spool_pending() const;
  /// The last reason the sink gave for not taking records ("" while it is healthy).
  const std::string& last_failure() const { return last_failure_; }

 private:
  Status keep(std::span<const Record> records, const std::string& why);
  void failed(const std::string& why);
  void recovered();
  bool backing_off() const;
  Status write_now(std::span<const Record> records);

  std::unique_ptr<Sink> sink_;
  std::shared_ptr<SharedSpool> spool_;
  size_t batch_;
  SinkCounters counters_;
  std::string last_failure_;
  // After a failure the sink is left alone for a while (0.5 s doubling to 10 s), so a sink
  // that is down costs one timeout per back-off, not one per batch.
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point next_attempt_{};
};

}  // namespace envkit
