// Logging to stderr: "tool: level: message" or one JSON object a line; stdout is never touched.
#pragma once

#include <string>
#include <string_view>

#include <envkit/result.hpp>

namespace envkit {

enum class LogLevel { error = 0, warning = 1, info = 2, debug = 3 };
enum class LogFormat { text, json };

/// Process-wide logger settings; set once by the option parser, read everywhere.
struct LogSettings {
  std::string tool = "envkit";
  LogLevel level = LogLevel::warning;  ///< -q lowers to error, each -v raises by one
  LogFormat format = LogFormat::text;
};

/// Replaces the process-wide settings (call from main, before threads start).
void configure_logging(LogSettings settings);
const LogSettings& log_settings();

/// Writes one line to stderr if `level` is enabled. Thread-safe: one write(2) per line.
void log(LogLevel level, std::string_view message);

inline void log_error(std::string_view m) { log(LogLevel::error, m); }
inline void log_warning(std::string_view m) { log(LogLevel::warning, m); }
inline void log_info(std::string_view m) { log(LogLevel::info, m); }
inline void log_debug(std::string_view m) { log(LogLevel::debug, m); }

/// Logs `error` and returns its exit status: the usual last line of a failing main().
/// A usage error adds the conventional "Try 'tool --help' for more information." line.
int report(const Error& error);

}  // namespace envkit
