// queue-relay: queues, streams and files to stores and services, at least once.
#include <iostream>
#include <string_view>

#include <envkit/log.hpp>
#include <envkit/signals.hpp>

#include "queue-relay/config.hpp"
#include "queue-relay/relay.hpp"
#include "queue-relay/spool_check.hpp"

int main(int argc, char** argv) {
  envkit::install_stop_handlers();
  try {
    if (argc >= 2 && std::string_view(argv[1]) == "spool") return queue_relay::spool_main(argc - 1, argv + 1, std::cout);
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
