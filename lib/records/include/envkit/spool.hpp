// The spool: a local append-only, crash-safe queue of records kept while a sink is down.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <optional>
#include <string>
#include <vector>

#include <envkit/posix.hpp>
#include <envkit/result.hpp>
#include <envkit/sink.hpp>

namespace envkit {

/// Limits and durability of a Spool.
struct SpoolOptions {
  /// The most bytes the spool's segment files may occupy on disk. An append that would go
  /// past it is refused whole (see Spool::append()).
  uint64_t max_bytes = uint64_t{1} << 30;
  /// A new segment file is started when the next batch would take the current one past
  /// this size. A batch is never split across segments, so one large batch may exceed it.
  uint64_t segment_bytes = uint64_t{16} << 20;
  /// Fsync appended data, new and removed segments (`ack` is always written durably). Only
  /// tests and benchmarks turn it off: without it an append that returned ok may be lost
  /// to a power cut.
  bool fsync = true;
};

/// Bytes of a segment moved aside because they could not be read back as records: the
/// damaged frame and everything after it in that segment (see Spool, "Quarantine").
struct SpoolQuarantine {
  std::string segment;     ///< the segment file the bytes came from
  uint64_t offset = 0;     ///< where the damage starts in it
  uint64_t bytes = 0;      ///< how many bytes were moved aside (to the segment's old end)
  std::string path;        ///< where they are now: DIR/quarantine/SEGMENT@OFFSET.{torn,damaged}
  std::string reason;      ///< what was wrong ("record checksum mismatch")
  uint64_t recovered = 0;  ///< whole records found after the damage, appended to the spool again
  /// An interrupted write at the end of the newest segment (an incomplete frame, or zeros
  /// the file system never filled in): what a crash leaves, holding no acknowledged record.
  /// Anything else is damage to records the spool acknowledged.
  bool torn = false;
};

/// Records that could not be delivered yet, kept in order in a directory until a sink has
/// them (docs/architecture.md, "Nothing lost").
///
///   auto spool = Spool::open("/var/spool/sensor-push", {});
///   if (!spool) return spool.error();
///   if (auto st = spool->append(failed); !st) return st;   // full: fail loudly, never drop
///   ...
///   auto batch = spool->peek(1000);                         // when the sink is back
///   if (!batch) return batch.error();
///   ... deliver *batch, then acknowledge what the sink now holds durably ...
///   if (auto st = spool->consume(delivered); !st) return st;
///
/// On disk: `lock`, `ack` and segment files `NNNNNNNNNNNNNNNNNNNN.spool` (20-digit
/// sequence, mode 0600; the directory is created 0700). A segment starts with an 8-byte
/// magic and holds frames `[u32 length][u32 crc32c(payload)][u32 crc32c(length, crc)]
/// [payload]`, little-endian; the payload is `[u32 id length][id][json]`. A batch never
/// spans two segments, so a crash can tear only the end of the last one. The header has its
/// own checksum, so a damaged length is recognised as damage instead of being followed to a
/// wrong offset. `ack` holds how far the spool has been consumed; it is replaced
/// atomically, and segments are removed only after it, so a consumed record never comes
/// back.
///
/// Quarantine: a frame that does not verify (on open, or in peek()) is never skipped in
/// silence. The bytes from it to the end of its segment are first written durably to
/// `DIR/quarantine/SEGMENT@OFFSET.torn` or `.damaged`, then cut from the segment; whole
/// frames found after the damage are appended to the spool again (so they are replayed,
/// late, and only the damaged frames are lost to replay); each event is logged with the
/// quarantine file's path and listed by quarantined(). `.torn` is the shape of an
/// interrupted write at the end of the newest segment, whose records were never
/// acknowledged (a warning); `.damaged` is everything else (an error: callers end with
/// Exit::data). A crash between the cut and the append leaves the recovered records in the
/// quarantine file only, never nowhere.
///
/// Delivery is at-least-once: records delivered but not yet consumed when the process dies
/// are replayed, and sinks absorb them by Record::id. A Spool holds an exclusive lock on
/// its directory for its lifetime. It is not thread-safe: use it from one thread at a time.
class Spool {
 public:
  /// Opens (creating if needed) the spool in `dir`, takes its lock, and scans every segment
  /// to verify the frames and count what is pending; damaged frames are quarantined. Errors:
  /// Exit::temp_fail when another process holds the spool, Exit::data for a damaged ack
  /// file, Exit::io for file system failures, Exit::usage for nonsensical options.
  static Result<Spool> open(const std::string& dir, SpoolOptions options = {});

  Spool(Spool&& other) noexcept = default;
  Spool& operator=(Spool&& other) noexcept = default;
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;
  /// Releases the lock. Everything appended with an ok Status is already on disk.
  ~Spool() = default;

  /// Appends `batch` after every record already spooled, with one write and one fsync, so
  /// once it returns ok the records survive a crash or power loss. All or nothing: if the
  /// batch would take the spool past SpoolOptions::max_bytes, nothing is written and the
  /// error (Exit::io: the local disk budget is exhausted, as with ENOSPC) says the spool is
  /// full and how full; a failed write is rolled back. After a failed fsync the spool
  /// refuses further appends, because the kernel may already have dropped the data.
  Status append(std::span<const Record> batch);

  /// The oldest records not yet consumed, at most `max_records` of them, in append order.
  /// Calling it again without consume() returns the same records. Checksums are verified: a
  /// frame damaged since open is quarantined (see above) and the records after it returned.
  Result<std::vector<Record>> peek(size_t max_records);

  /// Marks the oldest `n` pending records as delivered, durably: after it returns ok they
  /// never come back, even after a crash. Fully consumed segments are removed. Asking for
  /// more than pending_records() is Exit::software and consumes nothing.
  Status consume(size_t n);

  /// True when no record is pending.
  bool empty() const { return pending_records_ == 0; }
  /// Records appended and not yet consumed.
  uint64_t pending_records() const { return pending_records_; }
  /// Bytes those records take in the segment files, framing included.
  uint64_t pending_bytes() const;
  /// Bytes of segment files on disk: what SpoolOptions::max_bytes limits. It can exceed
  /// pending_bytes() by the consumed head of the oldest segment.
  uint64_t disk_bytes() const { return disk_bytes_; }
  /// Segment files holding pending records.
  size_t segment_count() const { return segments_.size(); }
  /// The directory given to open().
  const std::string& dir() const { return dir_; }
  /// What this Spool has moved to the quarantine since it was opened, oldest first.
  const std::vector<SpoolQuarantine>& quarantined() const { return quarantined_; }
  /// True when any of those is damage, not a torn write.
  bool found_damage() const;

 private:
  /// One segment file: its sequence number, valid size and how many records it holds.
  struct Segment {
    uint64_t seq = 0;
    uint64_t bytes = 0;
    uint64_t records = 0;
  };

  /// A place in the spool: a byte offset in a segment, and how many records precede it there.
  struct Position {
    uint64_t seq = 0;
    uint64_t offset = 0;
    uint64_t index = 0;
  };

  /// Bytes of one segment read ahead of the frames being decoded, so that peek() costs
  /// one read(2) per megabyte instead of two per record.
  struct ReadBuffer {
    std::string bytes;
    uint64_t start = 0;  // the file offset of bytes[0]
  };

  Spool() = default;
  std::string segment_path(uint64_t seq) const;
  Status load();
  Result<Position> advance(size_t n);
  Status open_reader(uint64_t seq);
  void forget_segment_fds(uint64_t seq);
  Result<SpoolQuarantine> quarantine(uint64_t seq, uint64_t offset, uint64_t size, std::string reason,
                                     bool torn);
  Status quarantine_in_peek(size_t segment, Position at, const char* reason);
  void report(const SpoolQuarantine& q) const;

  std::string dir_;
  SpoolOptions options_;
  std::optional<FileLock> lock_;  // held for the Spool's life
  UniqueFd write_fd_;  // the newest segment, segments_.back(), opened on first append
  UniqueFd read_fd_;   // the segment peek() last read from
  uint64_t read_fd_seq_ = 0;
  ReadBuffer read_buf_;            // bytes of that segment
  std::vector<Segment> segments_;  // oldest first; the oldest is never fully consumed
  Position read_;                  // the first pending record, in segments_.front()
  std::vector<Position> peeked_;   // where each record returned by the last peek() ends
  uint64_t next_seq_ = 1;
  uint64_t pending_records_ = 0;
  uint64_t disk_bytes_ = 0;
  std::vector<SpoolQuarantine> quarantined_;
  Error broken_;  // set once an fsync failed: appends repeat it
  bool is_broken_ = false;
};

}  // namespace envkit
