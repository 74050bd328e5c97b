// `queue-relay spool check DIR`: verify the spools of a --spool directory and say what they hold.
#pragma once

#include <iosfwd>
#include <string>

#include <envkit/result.hpp>

namespace queue_relay {

/// Opens every spool in `dir` (a --spool directory, one spool per sink, or one spool) as a
/// run would, so damage is quarantined exactly as a replay would quarantine it, and prints
/// one JSON line per spool: what it would replay (records, bytes, segments, the oldest
/// record) and what its quarantine holds. Exit::data when a quarantine holds damage (now or
/// from before: an operator should look), Exit::temp_fail when a run holds a spool,
/// Exit::no_input when `dir` does not exist; otherwise Exit::ok.
envkit::Result<envkit::Exit> check_spools(const std::string& dir, std::ostream& out);

/// `queue-relay spool ...`: argv[0] is "spool". Returns the exit status.
int spool_main(int argc, const char* const* argv, std::ostream& out);

}  // namespace queue_relay
