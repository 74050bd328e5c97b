// queue-relay's run: one source through the record pipeline to every sink.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include <envkit/json.hpp>
#include <envkit/record.hpp>
#include <envkit/result.hpp>

#include "queue-relay/config.hpp"

namespace queue_relay {

/// The check every record passes before a sink sees it: a JSON object, at most `max_bytes`,
/// with every `require`d member present and not null. Errors (Exit::data) say what is wrong;
/// the pipeline sends such a record to the dead letters with that reason.
envkit::Status check_record(const envkit::Record& record, const std::vector<std::string>& require,
                            uint64_t max_bytes);

/// When a record was made, from its member `field` ("a.b" reaches into objects): an RFC 3339
/// date-time with an offset, or a number of seconds since the epoch below 1e11 (fractions
/// kept to the millisecond) or of milliseconds from 1e11 to 1e14. nullopt otherwise.
std::optional<std::chrono::system_clock::time_point> record_time(const envkit::Record& record,
                                                                 std::string_view field);

/// Runs queue-relay as configured and returns the exit status (see --help).
envkit::Result<envkit::Exit> run(const Config& config);

/// --check-config: the --from URL (a scheme records can be read from, its password), every
/// --to and --dead-letter URL with its parameters and password, as run() resolves them, but
/// nothing is opened or connected to. A source's own parameters are read when it opens (at
/// the start of a run, which may connect), so only its URL, scheme and password are checked.
envkit::Status check(const Config& config);

}  // namespace queue_relay
