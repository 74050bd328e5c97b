// Timestamps as text: RFC 3339 in UTC for records and logs, and back.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <envkit/result.hpp>

namespace envkit {

using SysMillis = std::chrono::sys_time<std::chrono::milliseconds>;

/// "2026-11-22T16:45:00Z", or with milliseconds ("...:00.250Z") when `millis` is true or
/// the time has a fractional second.
std::string format_utc(SysMillis t, bool millis = false);

/// Parses RFC 3339 / ISO 8601 date-times: "2026-11-22T16:45:00Z", "...T11:45:00-05:00",
/// fractions up to nanoseconds (kept to the millisecond), and, when `default_offset_seconds`
/// is given, local times without an offset ("2026-11-22T11:45", as Open-Meteo writes them).
Result<SysMillis> parse_time(std::string_view text, int default_offset_seconds = 0,
                             bool offset_required = true);

}  // namespace envkit
