// db-backup: consistent, streaming, verified database backups to JSON Lines; restore, verify,
// diff, list, prune.
#include <iostream>

#include "db-backup/config.hpp"
#include "db-backup/run.hpp"
#include <envkit/log.hpp>
#include <envkit/signals.hpp>

int main(int argc, char** argv) {
  envkit::install_stop_handlers();
  try {
    db_backup::Config config;
    auto parsed = db_backup::parse_options(argc, argv, config, std::cout);
    if (!parsed) return envkit::report(parsed.error());
    if (*parsed == envkit::ParseOutcome::exit_now) return 0;
    if (*parsed == envkit::ParseOutcome::check_only) {
      auto checked = db_backup::check(config);
      return checked ? 0 : envkit::report(checked.error());
    }
    auto status = db_backup::run(config);
    if (!status) return envkit::report(status.error());
    return envkit::to_int(*status);
  } catch (const std::exception& e) {
    return envkit::report({envkit::Exit::software, std::string("internal error: ") + e.what()});
  }
}
