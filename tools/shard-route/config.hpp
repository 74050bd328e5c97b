// shard-route's typed configuration, filled by parse_options() and checked in one place.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/options.hpp>

namespace shard_route {

struct Config {
  std::string command;            ///< explain, put, get, del, find, count, verify, plan, rebalance
  std::vector<std::string> args;  ///< the words after the subcommand
  std::string map_path;           ///< --map
  std::string ns;                 ///< --namespace ("" : the map's only namespace)
  bool why = false;               ///< -v on explain: say why
  std::string key_field;          ///< --key-field (put; default: the namespace's key)
  size_t batch = 1000;            ///< put, rebalance: documents per shard write
  int64_t limit = 0;              ///< find: 0 no limit
  std::string sort;               ///< find: FIELD or -FIELD
  bool partial = false;           ///< find/count: a down shard is reported, not fatal
  std::string keys_file;          ///< plan: count on these keys ("-" stdin) instead of the live data
  std::string state_path;         ///< rebalance: --state (default NEW.yaml.rebalance)
  std::string switch_path;        ///< rebalance: --switch, the live map file NEW replaces
  envkit::Duration pause{};       ///< rebalance: --pause after each shard write, for the shards' other clients
  std::string write_concern = "majority";  ///< MongoDB w:
  envkit::ConnectionOptions connection;
  std::optional<std::string> password_file;
};

/// Parses argv (then ENVKIT_*, then --config) into `config` and checks the options against
/// each other and the subcommand. exit_now after --help/--version.
envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv,
                                                   Config& config, std::ostream& out);

}  // namespace shard_route
