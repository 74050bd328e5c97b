// db-backup's subcommands, called by main() with a checked Config.
#pragma once

#include "db-backup/config.hpp"
#include <envkit/result.hpp>

namespace db_backup {

/// Runs config.command. The value is the exit status for outcomes that are not errors
/// (diff and verify --against finding differences: Exit::failure).
envkit::Result<envkit::Exit> run(const Config& config);

/// --check-config: parses the database URLs (--from of dump, --to of restore, --against of
/// verify) with their passwords and backends and the compression, as run() does, but
/// connects to nothing and reads or writes no backup directory.
envkit::Status check(const Config& config);

}  // namespace db_backup
