// The checkers: a history and a read-back in, a verdict out (the set checker for tasks, the
// bank-like one for stock), and the report that prints them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <envkit/histogram.hpp>

#include "race-probe/history.hpp"
#include "race-probe/linearizability.hpp"

namespace race_probe {

/// Operations by outcome.
struct OutcomeCounts {
  uint64_t ok = 0, fail = 0, unknown = 0;
  uint64_t total() const { return ok + fail + unknown; }
};

/// The set checker's answer for `tasks`: every acknowledged record stored exactly once, intact.
struct TasksVerdict {
  OutcomeCounts operations;
  uint64_t read_back = 0;   ///< records in the snapshot
  uint64_t stored = 0;      ///< acknowledged and found
  uint64_t lost = 0;        ///< acknowledged (ok) before the read, absent
  uint64_t duplicated = 0;  ///< sent once, stored more than once
  uint64_t corrupted = 0;   ///< stored, but its payload does not match the checksum sent
  uint64_t unexpected = 0;  ///< stored, but never sent (by a client of this history) or its write failed
  uint64_t recovered = 0;   ///< outcome unknown, found anyway
  uint64_t unknown_absent = 0;  ///< outcome unknown, absent: not lost, it may never have happened
  uint64_t unchecked = 0;   ///< acknowledged after the read began: may or may not show
  uint64_t foreign = 0;     ///< records of other clients (not in this history): not judged
  /// The first offending ids of each kind (at most kExamples each).
  std::map<std::string, std::vector<std::string>> examples;
  bool valid() const { return lost == 0 && duplicated == 0 && corrupted == 0 && unexpected == 0; }
};

/// One item's ledger in the `stock` checker.
struct ItemVerdict {
  int64_t initial = 0, remaining = 0;
  OutcomeCounts purchases;
  int64_t oversold = 0;  ///< acknowledged purchases beyond the initial stock
  int64_t phantom = 0;   ///< acknowledged purchases that took no stock (lost decrements)
  int64_t unaccounted = 0;  ///< stock gone without a purchase that may have taken it
  std::vector<std::string> suspects;  ///< "client#seq" of purchases that caused them
  bool valid() const { return remaining >= 0 && oversold == 0 && phantom == 0 && unaccounted == 0; }
};

/// The bank-like checker's answer for `stock`: no negative stock, purchases ≤ initial stock,
/// sold + remaining = initial (unknown purchases may go either way).
struct StockVerdict {
  OutcomeCounts operations;
  std::map<std::string, ItemVerdict> items;
  bool valid() const;
};

/// The register checker's answer: per key, linearizable, not, or unknown (out of time).
struct RegisterVerdict {
  OutcomeCounts operations;
  struct Key {
    uint64_t operations = 0;
    Linearizable verdict = Linearizable::yes;
    std::vector<std::string> window;  ///< when not: the failing window, one op a line
  };
  std::map<std::string, Key> keys;
  bool valid() const;    ///< every key linearizable
  bool unknown() const;  ///< no violation, but some key was not decided in time
};

inline constexpr size_t kExamples = 10;

/// Checks the `add` operations of `history` against `snapshot`.
TasksVerdict check_tasks(const std::vector<Operation>& operations, const Snapshot& snapshot);
/// Checks the `buy` operations of `history` against `snapshot` (its initial and stock).
StockVerdict check_stock(const std::vector<Operation>& operations, const Snapshot& snapshot);

/// Checks the read/write/cas operations of each key for linearizability, giving up on a key
/// (unknown) at `deadline`.
RegisterVerdict check_registers(const std::vector<Operation>& operations,
                                std::chrono::steady_clock::time_point deadline);

/// Latency of a run: from the actual send (uncorrected) and, under --rate, from each
/// request's intended send time (corrected, as wrk2 does, free of coordinated omission).
struct LatencyReport {
  envkit::LatencyHistogram uncorrected, corrected;
  bool open_loop = false;
  double asked_rate = 0;     ///< requests/s
  double achieved_rate = 0;  ///< requests/s, sends over the sending time
  double seconds = 0;
};

/// Builds the latency report from the operations (those with both times).
LatencyReport latency_of(const std::vector<Operation>& operations, double asked_rate);

/// What a run or a reconcile found, for printing.
struct Report {
  std::string workload;  ///< "tasks" or "stock"
  std::string target;
  std::string snapshot_source;
  std::optional<TasksVerdict> tasks;
  std::optional<StockVerdict> stock;
  std::optional<RegisterVerdict> registers;
  std::optional<LatencyReport> latency;
  bool valid() const;
  /// Not valid only because a check ran out of time: neither proof nor violation.
  bool undecided() const;
};

/// The report for a terminal: counts, the first offenders, the latency table.
std::string render_human(const Report& report);
/// The report as one JSON object and a newline.
std::string render_json(const Report& report);

}  // namespace race_probe
