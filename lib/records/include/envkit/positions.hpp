// Source positions a sink keeps with its records: which records of a batch the sink already
// holds (at or below the position stored for their partition) and the position to store
// with the batch, never past a record this sink failed and the source will hand out again.
// Pure logic, tested without a server (tests/unit/lib/positions_test.cpp); the MySQL sink
// stores what it decides in the same transaction as the rows (docs/architecture.md,
// "Source positions").
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include <envkit/record.hpp>

namespace envkit {

/// The positions of one sink instance. Sound only when the instance gets each partition's
/// records in the source's order (one worker): then "at or below the stored position"
/// means "written", except past a record it failed, which `failed()` holds the position
/// below until that record is written. Not thread-safe.
class PositionKeeper {
 public:
  /// (group, topic, partition): one partition of one consumer group's log.
  using Partition = std::tuple<std::string, std::string, int32_t>;
  static Partition partition_of(const LogPosition& p) { return {p.group, p.topic, p.partition}; }

  /// What to do with a batch, given the positions stored for its partitions.
  struct Plan {
    std::vector<bool> held;                ///< per record: at or below its stored position
    std::vector<LogPosition> store;        ///< the positions to store with the batch
  };

  /// `stored` holds the stored offset of each partition of the batch that has one.
  /// Records without a position are never held and move no position.
  Plan plan(std::span<const Record> batch, const std::map<Partition, int64_t>& stored) const;

  /// The batch's records are in the sink (written or held): they no longer hold positions.
  void written(std::span<const Record> records);
  /// The sink answered failed for these records: the source hands them out again, so no
  /// position is stored at or above them until they are written.
  void failed(std::span<const Record> records);
  /// These failed records are kept elsewhere now (the sink's spool, acknowledged at the
  /// source): the source will not hand them out again, so they hold nothing.
  void forget(std::span<const Record> records) { written(records); }

  /// Failed records holding positions back.
  size_t holes() const;

 private:
  std::map<Partition, std::set<int64_t>> holes_;
};

}  // namespace envkit
