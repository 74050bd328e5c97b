// Sources: where records come from. A source hands out records with opaque handles and is
// told, record by record, what became of each (ack, retry, dead), then commits in its own
// protocol's way. The pipeline (envkit/pipeline.hpp) is the only caller in the commands.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <envkit/record.hpp>
#include <envkit/result.hpp>

namespace envkit {

/// One record as a source handed it out.
struct Received {
  Record record;
  /// The source's own token for this delivery (an AMQP delivery tag, a Kafka partition and
  /// offset, a stream entry id...), opaque to everyone else; unique among unsettled records.
  uint64_t handle = 0;
  /// How many times the source has handed this record out, this time included (1: the first
  /// time). From x-delivery-count, XPENDING's counter, or the source's own count.
  uint32_t deliveries = 1;
  /// When the record was due (a load generator's schedule) or arrived; latency runs from
  /// here. The default (epoch) means "when next() returned it".
  std::chrono::steady_clock::time_point due{};
};

/// What the pipeline decided for one record.
enum class Verdict : uint8_t {
  ack,    ///< every sink holds it (durable or spooled): the source may forget it
  retry,  ///< some sink did not take it: hand it out again later
  dead,   ///< it is in the dead letters (or no sink will ever take it): remove it for good
};

/// One record's verdict, by the handle next() gave it.
struct Settlement {
  uint64_t handle = 0;
  Verdict verdict = Verdict::retry;
  std::string reason;  ///< for retry and dead
};

/// What next() returns.
struct SourceBatch {
  std::vector<Received> records;
  /// The source will never hand out anything more (stdin at EOF, a --count reached). Set
  /// only by finite sources; the batch may still hold records.
  bool end = false;
};

/// A source of records. Not thread-safe: the pipeline calls it from one thread (wake() alone
/// may be called from another).
class Source {
 public:
  virtual ~Source() = default;

  /// Up to `max` records, waiting at most `wait` for the first one; fewer, or none, when none
  /// came in time. Errors: the source failed as a whole (Exit::unavailable: the broker is
  /// gone; Exit::config: the queue, topic or group is refused). Records handed out and not
  /// yet settled are not lost by an error: the source's own protocol hands them out again.
  virtual Result<SourceBatch> next(size_t max, std::chrono::milliseconds wait) = 0;

  /// Settles records handed out by next(), each exactly once, in any order. ack and dead
  /// remove the record from the source; retry hands it back (requeue, nack, or keep it
  /// pending to be claimed again).
  virtual Status settle(std::span<const Settlement> settlements) = 0;

  /// Makes a next() that is waiting, or the next call of it, return at once (with the records
  /// there are, maybe none): the pipeline's workers call it when a batch is done, so that it
  /// is settled without waiting for new records. Thread-safe, unlike every other method. For
  /// a source whose records wait for their own settlement (HTTP ingest: a client holds its
  /// request open until then), the only thing that brings new records is that settlement.
  /// The default does nothing: next() then returns when records come or `wait` is over.
  virtual void wake() {}

  /// Makes the settlements so far durable in the source's protocol (a Kafka offset commit,
  /// a file position); the pipeline calls it periodically and before it returns. Sources
  /// whose settle() is durable by itself (AMQP ack, XACK) return at once.
  virtual Status commit() { return {}; }

  /// The source's URL with secrets masked, for logs and --stats.
  virtual std::string name() const = 0;
};

}  // namespace envkit
