// Sinks: where records go. A sink takes records in batches and answers, record by record,
// what it did with each, so the pipeline acknowledges, spools or dead-letters exactly those.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
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

  /// Records SpooledSink answered for this sink without the sink holding them: `spooled`
  /// (in the spool and acknowledged at the source, which will not hand them out again) or
  /// `failed` (the source hands them out again). A sink that keeps source positions never
  /// stores one past a record failed here until it has that record.
  virtual void answered_without(std::span<const Record> records, Outcome outcome) {
    (void)records;
    (void)outcome;
  }

  /// The source positions this sink stores with its records, for a consumer group's topic:
  /// one per partition, the highest offset it holds every record of the partition up to
  /// (docs/architecture.md, "Source positions"). nullopt: the sink keeps no positions.
  virtual Result<std::optional<std::vector<LogPosition>>> stored_positions(std::string_view group,
                                                                         std::string_view topic) {
    (void)group;
    (void)topic;
    return std::optional<std::vector<LogPosition>>();
  }
};

}  // namespace envkit
