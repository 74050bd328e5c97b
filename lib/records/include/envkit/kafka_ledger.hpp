// The Kafka source's offset ledger: which records of each partition are out, settled or
// waiting to be handed out again, and the offset that is safe to commit. Pure logic, so
// its rules are tested without a broker (tests/unit/lib/kafka_ledger_test.cpp).
//
// The rule: a partition's commit position only moves up to the lowest offset below which
// every record handed out is settled (ack or dead). An out-of-order ack never moves it past
// a record still out or waiting for a retry. Offsets need not be contiguous (compaction,
// transaction markers): the ledger only knows the records it handed out, and Kafka hands
// a partition's records out in offset order, so "lowest open offset, else highest settled
// + 1" is the position.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include <envkit/kafka.hpp>
#include <envkit/source.hpp>

namespace envkit {

/// The offset ledger of one consumer of one topic. Not thread-safe.
class KafkaOffsetLedger {
 public:
  /// The most revoked-but-unsettled offsets remembered for delivery counting (oldest
  /// forgotten first), so the memory stays bounded across rebalances.
  static constexpr size_t kRememberedRedeliveries = 65536;

  /// What a handle stands for.
  struct Entry {
    int32_t partition = 0;
    int64_t offset = 0;
    uint32_t deliveries = 1;  ///< this hand-out included
  };

  /// A record Kafka delivered: returns its handle (never 0, never reused) and how many times
  /// this process handed it out. An offset the ledger already holds open (Kafka sent it
  /// again after a seek) gets a new handle; the old one becomes unknown.
  Entry handed_out(int32_t partition, int64_t offset, uint64_t* handle);

  /// A retried record handed out again from the local redelivery queue: a new handle for
  /// the same open offset. Returns nullopt when the offset is no longer waiting (its
  /// partition was revoked meanwhile).
  std::optional<Entry> handed_out_again(int32_t partition, int64_t offset, uint64_t* handle);

  /// Settles a handle. ack and dead settle the offset; retry keeps it open (the commit stays
  /// below it) until it is handed out again. Returns the entry, or nullopt for a handle the
  /// ledger does not know (settled already, or its partition was revoked: the record goes
  /// to the partition's next owner from the last commit).
  std::optional<Entry> settle(uint64_t handle, Verdict verdict);

  /// Per partition whose safe position moved above what was last committed: the offset to
  /// commit (Kafka's convention: the next record to read).
  std::vector<KafkaOffset> committable() const;
  /// Records that `offsets` were committed.
  void committed(std::span<const KafkaOffset> offsets);

  /// A partition goes to another member: returns what is safe to commit for it (if above
  /// the last commit), and forgets its open records and their handles. Delivery counts of
  /// its unsettled offsets are remembered (bounded), so if it comes back here they count on.
  std::optional<KafkaOffset> revoke(int32_t partition);

  /// Records handed out and not settled (retries waiting to go out again included).
  size_t open() const;
  /// Handles handed out and not settled.
  size_t out() const { return handles_.size(); }

 private:
  struct Open {
    uint64_t handle = 0;  // 0 while waiting to be handed out again after a retry
    uint32_t deliveries = 0;
  };
  struct Partition {
    std::map<int64_t, Open> open;  // by offset
    std::optional<int64_t> highest_settled;
    std::optional<int64_t> committed;
    std::optional<int64_t> position() const;  // what is safe to commit, if anything settled
  };
  uint64_t issue(int32_t partition, int64_t offset, Open& open);
  uint32_t remembered_deliveries(int32_t partition, int64_t offset);

  std::map<int32_t, Partition> partitions_;
  std::unordered_map<uint64_t, KafkaOffset> handles_;  // handle -> (partition, offset)
  uint64_t next_handle_ = 1;
  // Delivery counts of offsets revoked while unsettled, oldest first by insertion.
  std::map<std::pair<int32_t, int64_t>, uint32_t> remembered_;
  std::deque<std::pair<int32_t, int64_t>> remembered_order_;
};

}  // namespace envkit
