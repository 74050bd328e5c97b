// queue-relay: queues, streams and files to stores and services, at least once.
#include <iostream>

#include <envkit/log.hpp>
#include <envkit/signals.hpp>

#include "queue-relay/config.hpp"
#include "queue-relay/relay.hpp"

int main(int argc, char** argv) {
  envkit::install_stop_handlers();
  try {
    queue_relay::Config config;
    auto parsed = queue_relay::parse_options(argc, argv, config, std::cout);
    if (!parsed) return envkit::report(parsed.error());
    if (*parsed == envkit::ParseOutcome::exit_now) return 0;
    if (*parsed == envkit::ParseOutcome::check_only) {
      auto checked = queue_relay::check(config);
      return checked ? 0 : envkit::report(checked.error());
    }
    auto status = queue_relay::run(config);
    if (!status) return envkit::report(status.error());
    return envkit::to_int(*status);
  } catch (const std::exception& e) {
    return envkit::report({envkit::Exit::software, std::string("internal error: ") + e.what()});
  }
}
