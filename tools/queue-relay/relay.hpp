// queue-relay's run: one source through the record pipeline to every sink.
#pragma once

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

/// Runs queue-relay as configured and returns the exit status (see --help).
envkit::Result<envkit::Exit> run(const Config& config);

}  // namespace queue_relay
