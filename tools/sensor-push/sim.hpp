// Simulated readings: seeded, repeatable, plausible for each city's altitude and latitude.
#pragma once

#include <cstdint>

#include "sensor-push/cities.hpp"
#include "sensor-push/reading.hpp"

namespace sensor_push {

/// The reading of `city` at `t` for `seed`. A pure function: the same inputs always give
/// the same reading, whatever order or process asks, so a re-sent reading is a true duplicate.
Reading simulate(const City& city, envkit::SysMillis t, uint64_t seed);

}  // namespace sensor_push
