// Sinks: where records go. A sink takes records in batches and says, record by record,
// which it now holds durably, so callers acknowledge or spool exactly the rest.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "envkit/connection.hpp"
#include "envkit/result.hpp"
#include "envkit/url.hpp"

namespace envkit {

/// One record on its way to a sink: a JSON object as text, and an id that is the same
/// every time the same record is produced (sensor-push: city + observed time), so a sink
/// with a unique key absorbs duplicates from retries and spool replays.
struct Record {
  std::string id;
  std::string json;
};

/// What a sink did with one record of a batch.
struct Delivery {
  enum class State {
    durable,   ///< the sink has it (committed, confirmed, acknowledged by all replicas)
    retry,     ///< not delivered for a passing reason: spool it and try again later
    rejected,  ///< the sink refuses this record for good (bad data): report, do not retry
  };
  State state = State::retry;
  std::string error;  ///< why, for retry and rejected
};

/// A destination for records. Implementations: MySQL, Redis, HTTP, AMQP, Kafka, file, stdout.
class Sink {
 public:
  virtual ~Sink() = default;

  /// Delivers `batch` and returns one Delivery per record, in order. Returns an Error only
  /// when the sink as a whole failed (unreachable, connection lost): then no record of the
  /// batch may be taken as durable. A sink reconnects by itself on the next call.
  virtual Result<std::vector<Delivery>> write(std::span<const Record> batch) = 0;

  /// The sink's URL with secrets masked, for logs and --stats.
  virtual std::string name() const = 0;
};

}  // namespace envkit
