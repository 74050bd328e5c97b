// db-backup's subcommands, called by main() with a checked Config.
#pragma once

#include "db-backup/config.hpp"
#include <envkit/result.hpp>

namespace db_backup {

/// Runs config.command. The value is the exit status for outcomes that are not errors
/// (diff and verify --against finding differences: Exit::failure).
envkit::Result<envkit::Exit> run(const Config& config);

}  // namespace db_backup
