// Records: what every command moves. A record is one JSON object with a stable id; a
// Delivery is what one destination did with it (docs/architecture.md, "How records flow").
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace envkit {

/// A record's place in a log read by a consumer group: Kafka's (group, topic, partition,
/// offset). Offsets grow within a partition in the order the log hands records out.
struct LogPosition {
  std::string group;
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
};

/// One record: a JSON object as text, and an id that is the same every time the same record
/// is produced (sensor-push: city + observed time; queue-relay: the message's id), so a sink
/// with a unique key absorbs duplicates from retries, redeliveries and spool replays.
struct Record {
  std::string id;
  std::string json;
  /// Where the record sits in a source that has positions (a Kafka partition's offset), so
  /// a sink can store it with the record (docs/architecture.md, "Source positions").
  std::optional<LogPosition> position = std::nullopt;
};

/// What became of one record at one destination.
enum class Outcome : uint8_t {
  durable,   ///< the destination holds it (committed, confirmed by the broker or all replicas)
  spooled,   ///< not there yet, but fsynced to the local spool and replayed later
  rejected,  ///< refused for good (bad record): dead-letter it, never retry
  failed,    ///< not taken, for a passing reason: nobody holds it, so try again later
};

/// The outcome for one record of a batch, and why when it is not durable.
struct Delivery {
  Outcome outcome = Outcome::failed;
  std::string error;
};

/// "durable", "spooled", "rejected", "failed": for logs, --stats and metrics labels.
constexpr const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::durable: return "durable";
    case Outcome::spooled: return "spooled";
    case Outcome::rejected: return "rejected";
    case Outcome::failed: return "failed";
  }
  return "failed";
}

}  // namespace envkit
