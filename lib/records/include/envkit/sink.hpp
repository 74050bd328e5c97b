// Sinks: where records go. A sink takes records in batches and answers, record by record,
// what it did with each, so the pipeline acknowledges, spools or dead-letters exactly those.
#pragma once

#include <span>
#include <string>
#include <vector>

#include <envkit/record.hpp>
#include <envkit/result.hpp>

namespace envkit {

/// A destination for records. Implementations: MySQL, Redis, HTTP, AMQP, Kafka, file, stdout
/// (the registry in envkit/registry.hpp opens them by URL), and SpooledSink in front of any.
class Sink {
 public:
  virtual ~Sink() = default;

  /// Delivers `batch` and returns one Delivery per record, in order: durable, rejected or
  /// failed (only SpooledSink answers spooled). Returns an Error only when the sink as a
  /// whole failed (unreachable, connection lost): then every record of the batch counts as
  /// failed, none as durable. A sink reconnects by itself on the next call.
  virtual Result<std::vector<Delivery>> write(std::span<const Record> batch) = 0;

  /// The sink's URL with secrets masked, for logs and --stats.
  virtual std::string name() const = 0;
};

}  // namespace envkit
