// db-backup's typed configuration, filled by parse_options() and checked in one place.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/options.hpp>

namespace db_backup {

struct Config {
  std::string command;            ///< dump, restore, verify, diff, list, prune
  std::vector<std::string> args;  ///< positional arguments after the subcommand
  // dump
  std::string from;  ///< dump: source URL; restore: backup directory
  std::string out;
  std::string to;
  std::vector<std::string> tables;
  std::vector<std::string> exclude;
  std::string where;
  size_t threads = 2;
  uint64_t chunk_rows = 500000;
  std::string compress = "none";
  envkit::Duration every{};
  // prune (also after each dump when given)
  int keep_last = 0, keep_daily = 0, keep_weekly = 0, keep_monthly = 0;
  bool dry_run = false;
  // restore
  bool replace = false;
  bool force = false;
  size_t batch_rows = 5000;
  // verify
  std::string against;
  // reporting
  std::string metrics_file;
  bool progress = true;  ///< --no-progress turns it off even on a terminal
  // connection
  envkit::ConnectionOptions connection;
  std::optional<std::string> password_file;

  bool keeps_given() const {
    return keep_last > 0 || keep_daily > 0 || keep_weekly > 0 || keep_monthly > 0;
  }
};

/// Parses argv ("db-backup SUBCOMMAND [OPTION]..."), then ENVKIT_*, then --config, into
/// `config`, and checks the options against the subcommand. exit_now after --help/--version.
envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv,
                                                   Config& config, std::ostream& out);

}  // namespace db_backup
