// queue-relay's typed configuration, filled by parse_options() and checked in one place.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/options.hpp>

namespace queue_relay {

struct Config {
  std::string from;                   ///< the source URL
  std::vector<std::string> sinks;     ///< --to URLs
  std::string dead_letter;            ///< --dead-letter URL ("" none)
  std::vector<std::string> require;   ///< fields every record must have (non-null)
  envkit::ByteSize max_bytes{uint64_t{1} << 20};
  uint32_t max_deliveries = 0;
  size_t batch = 500;
  envkit::Duration linger{std::chrono::milliseconds(50)};
  size_t workers = 1;
  std::string spool_dir;
  envkit::ByteSize spool_max{uint64_t{1} << 30};
  envkit::Duration exit_when_idle{};
  std::string consumer;
  bool stats = false;
  std::string stats_file;        ///< --stats-file: the --stats line there instead of stderr
  std::string timestamp_field;   ///< --timestamp-field: end-to-end latency from this member
  std::string metrics_file;
  envkit::ConnectionOptions connection;
  std::optional<std::string> password_file;
};

/// Parses argv (then ENVKIT_*, then --config) into `config` and checks the options against
/// each other. exit_now after --help/--version.
envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv, Config& config,
                                                   std::ostream& out);

}  // namespace queue_relay
