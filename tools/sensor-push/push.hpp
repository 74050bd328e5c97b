// sensor-push's run: cities and a source in, records out to every sink, by mode.
#pragma once

#include "sensor-push/config.hpp"
#include <envkit/result.hpp>

namespace sensor_push {

/// Runs sensor-push as configured and returns the exit status (see --help).
/// Errors that stop the run before any reading is made are returned as Error.
envkit::Result<envkit::Exit> run(const Config& config);

/// --check-config: resolves the cities (reading --cities-file), the record shape and every
/// sink URL with its parameters and password exactly as run() does, but opens no file or
/// spool and connects to nothing. AMQP and Kafka sinks are opened on their first write, so
/// their parameters past the URL itself are checked then.
envkit::Status check(const Config& config);

}  // namespace sensor_push
