// shard-route: shard maps as files; route, read and write, verify, plan and rebalance with them.
#include <iostream>

#include <envkit/log.hpp>
#include <envkit/signals.hpp>

#include "shard-route/config.hpp"
#include "shard-route/run.hpp"

int main(int argc, char** argv) {
  envkit::install_stop_handlers();
  try {
    shard_route::Config config;
    auto parsed = shard_route::parse_options(argc, argv, config, std::cout);
    if (!parsed) return envkit::report(parsed.error());
    if (*parsed == envkit::ParseOutcome::exit_now) return 0;
    if (*parsed == envkit::ParseOutcome::check_only) {
      auto checked = shard_route::check(config);
      return checked ? 0 : envkit::report(checked.error());
    }
    auto status = shard_route::run(config);
    if (!status) return envkit::report(status.error());
    return envkit::to_int(*status);
  } catch (const std::exception& e) {
    return envkit::report({envkit::Exit::software, std::string("internal error: ") + e.what()});
  }
}
