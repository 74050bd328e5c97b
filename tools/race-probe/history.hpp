// The history of a run: one JSON line per operation (invoke and complete times, outcome) and
// per read-back snapshot, so several clients' runs can be merged and checked as one.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/result.hpp>

namespace race_probe {

/// What became of an operation, as Jepsen classifies it: ok (it happened), fail (it
/// certainly did not), unknown (it may have happened: timed out, connection dropped after
/// sending, a 5xx). An unknown operation is never counted as lost.
enum class Outcome { ok, fail, unknown };

std::string_view outcome_name(Outcome o);

struct Operation;
/// A transport error's outcome: refused before anything was sent (connection refused, name
/// not found, a usage error) it certainly did not happen (fail); anything later may have
/// (unknown). Sets op.outcome and op.error.
void classify_transport_failure(const envkit::Error& e, Operation& op);

/// One operation. Times are microseconds since the Unix epoch (the wall clock, so that
/// histories from several hosts merge; their clocks should be NTP-synchronised).
struct Operation {
  std::string client;   ///< --client-id of the process that ran it
  uint64_t seq = 0;     ///< per client, from 0
  uint32_t worker = 0;  ///< the worker (connection) within the client
  std::string f;        ///< "add" (tasks), "buy" (stock), "read", "write", "cas" (register)
  std::string id;       ///< the record id (add), the item (buy) or the key (register)
  std::string checksum; ///< add: the payload's checksum, 16 hex digits
  std::optional<int64_t> value;  ///< write: the value; read: what it read (nullopt: absent)
  int64_t from = 0, to = 0;      ///< cas: from and to
  int64_t intended = 0; ///< open loop: when it was due; otherwise = invoke
  int64_t invoke = 0;
  int64_t complete = 0;
  Outcome outcome = Outcome::unknown;
  int status = 0;       ///< HTTP status, 0 when none came
  std::string error;    ///< why it failed or is unknown
  bool reached = false; ///< the target answered (not saved: only the run itself needs it)
};

/// One record as read back: its id and what it says about its payload.
struct StoredRecord {
  std::string id;
  std::string client;   ///< "" when the record does not say
  bool corrupt = false; ///< its payload does not match its own checksum
  std::string checksum; ///< its checksum field
};

/// A read-back of the target after the operations: the records it holds (tasks) or the
/// remaining stock of each item (stock). `initial` is the stock the run started with.
struct Snapshot {
  std::string client;
  std::string source;  ///< where it was read, redacted
  int64_t invoke = 0, complete = 0;
  std::vector<StoredRecord> records;
  std::map<std::string, int64_t> stock;
  std::map<std::string, int64_t> initial;
};

/// Everything in one or several history files.
struct History {
  std::vector<Operation> operations;
  std::vector<Snapshot> snapshots;
};

/// The history lines: {"type":"op",...} and {"type":"read",...} (race-probe(1), HISTORY).
std::string operation_line(const Operation& op);
std::string snapshot_line(const Snapshot& snapshot);

/// Appends every line of `path` to `history`. Errors: Exit::no_input for a missing file,
/// Exit::data ("FILE:LINE: why") for a line that is not a history line.
envkit::Status read_history(const std::string& path, History& history);

/// The history in Jepsen's EDN form, one map a line, for Knossos and Elle to re-check: each
/// operation an :invoke and its completion (:ok, :fail, or :info when unknown) at :time
/// nanoseconds from the first invocation, ordered by time. :process is one per client and
/// worker, and a fresh one after an :info (a Jepsen process never completes twice). Values:
/// tasks :add the record id, then each snapshot a :read of the set of ids (Jepsen's set
/// checker); register [key v] tuples (jepsen.independent), a cas [key [from to]] (Knossos's
/// cas-register); stock :buy the item, then a :read of each item's stock.
std::string jepsen_edn(const History& history);

/// Microseconds since the Unix epoch, now.
int64_t now_us();

}  // namespace race_probe
