// sensor-push's run: cities and a source in, records out to every sink, by mode.
#pragma once

#include "sensor-push/config.hpp"
#include <envkit/result.hpp>

namespace sensor_push {

/// Runs sensor-push as configured and returns the exit status (see --help).
/// Errors that stop the run before any reading is made are returned as Error.
envkit::Result<envkit::Exit> run(const Config& config);

}  // namespace sensor_push
