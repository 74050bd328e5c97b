// The probe: fire the workload's operations from C workers (closed load, or open loop at
// --rate), read the target back, and check; and `reconcile`, which checks saved histories.
#pragma once

#include <envkit/result.hpp>

#include "race-probe/check.hpp"
#include "race-probe/config.hpp"

namespace race_probe {

/// Runs the probe, writes --history, prints the report to stdout. Exit::ok when every
/// invariant holds, Exit::failure when a violation was found; an Error when the probe could
/// not run (the target unreachable before the first operation, a bad read-back).
envkit::Result<envkit::Exit> run_probe(const Config& config);

/// Merges the histories, reads back (--read-back, or the latest snapshot they hold), checks
/// and prints. The same statuses as run_probe().
envkit::Result<envkit::Exit> run_reconcile(const Config& config);

/// When a check runs: before a run every history to reconcile must be readable; at
/// --check-config one not written yet is accepted if its directory exists (the clients that
/// write it may not have run, as in a compose file where reconcile waits for them).
enum class CheckStage { run, config };

/// What --check-config verifies: URLs, the history files to read.
envkit::Status check(const Config& config, CheckStage stage = CheckStage::run);

/// The snapshot of a `tasks` read-back body: a JSON array of objects, an object holding
/// one (its first array member), or JSON Lines. `id_field` names the id.
envkit::Result<Snapshot> parse_tasks_snapshot(std::string_view body, const std::string& id_field);

/// Hex digits of the checksum the probe sends with a payload (FNV-1a, 64 bits).
std::string payload_checksum(std::string_view payload);

}  // namespace race_probe
