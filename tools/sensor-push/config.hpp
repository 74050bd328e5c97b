// sensor-push's typed configuration, filled by parse_options() and checked in one place.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/options.hpp>

namespace sensor_push {

struct Config {
  // Source
  std::string source = "open-meteo";  ///< open-meteo | sim
  std::string api_url = "https://api.open-meteo.com/v1/forecast";
  size_t api_batch = 50;
  double api_calls_per_minute = 500;
  int api_retries = 4;
  envkit::Duration api_timeout{std::chrono::seconds(15)};
  uint64_t seed = 1;
  // Cities
  std::string city_list = "colombia";
  std::string cities_file;
  std::vector<std::string> city_specs;
  // Records
  std::vector<std::string> fields;
  std::string template_name;
  // Sinks
  std::vector<std::string> sinks;
  bool create_table = false;
  size_t batch = 500;
  std::string spool_dir;
  envkit::ByteSize spool_max{uint64_t{1} << 30};
  // Mode
  bool once = false;
  envkit::Duration every{};
  uint64_t count = 0;
  double rate = 0;
  envkit::Duration duration{};
  size_t concurrency = 1;
  // Reporting
  bool stats = false;
  std::string metrics_file;
  // Connection settings shared by every sink
  envkit::ConnectionOptions connection;
  std::optional<std::string> password_file;
};

/// Parses argv (then ENVKIT_*, then --config) into `config`, and checks the options
/// against each other. exit_now after --help/--version.
envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv, Config& config,
                                                   std::ostream& out);

}  // namespace sensor_push
