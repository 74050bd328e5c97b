// Logging to stderr, one write(2) per line so lines from threads never interleave.
#include <envkit/log.hpp>

#include <unistd.h>

#include <chrono>
#include <ctime>

#include <envkit/json.hpp>
#include <envkit/posix.hpp>

namespace envkit {
namespace {

LogSettings g_settings;

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::error: return "error";
    case LogLevel::warning: return "warning";
    case LogLevel::info: return "info";
    case LogLevel::debug: return "debug";
  }
  return "?";
}

std::string utc_now() {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t t = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

// A failing stderr is not reported: there is nowhere left to report it.
void write_stderr(std::string_view s) { (void)write_all(STDERR_FILENO, s); }

}  // namespace

void configure_logging(LogSettings settings) { g_settings = std::move(settings); }
const LogSettings& log_settings() { return g_settings; }

void log(LogLevel level, std::string_view message) {
  if (level > g_settings.level) return;
  std::string line;
  if (g_settings.format == LogFormat::json) {
    JsonWriter w;
    w.begin_object();
    w.key("time").string(utc_now());
    w.key("tool").string(g_settings.tool);
    w.key("level").string(level_name(level));
    w.key("message").string(message);
    w.end_object();
    line = w.take();
  } else {
    line.reserve(g_settings.tool.size() + message.size() + 16);
    line.append(g_settings.tool).append(": ").append(level_name(level)).append(": ");
    line.append(message);
  }
  line.push_back('\n');
  write_stderr(line);
}

int report(const Error& error) {
  log_error(error.message);
  if (error.code == Exit::usage) {
    write_stderr("Try '" + g_settings.tool + " --help' for more information.\n");
  }
  return to_int(error.code);
}

}  // namespace envkit
