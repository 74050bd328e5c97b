// proxy-check: protocol-speaking health checks of proxies, tunnels and load-balanced targets.
#include <iostream>

#include "proxy-check/config.hpp"
#include <envkit/log.hpp>
#include <envkit/signals.hpp>
#include "proxy-check/runner.hpp"

namespace {

/// Nagios plugins report trouble of their own (bad options, config, state file) as UNKNOWN,
/// with a status line on stdout for the monitoring system and the error on stderr.
int unknown(const envkit::Error& error) {
  std::cout << "PROXY-CHECK UNKNOWN - " << error.message << '\n' << std::flush;
  envkit::report(error);
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  envkit::install_stop_handlers();
  try {
    proxy_check::Config config;
    auto parsed = proxy_check::parse_options(argc, argv, config, std::cout);
    if (!parsed) return unknown(parsed.error());
    if (*parsed == envkit::ParseOutcome::exit_now) return 0;
    if (*parsed == envkit::ParseOutcome::check_only) {
      auto checked = proxy_check::check(config);
      return checked ? 0 : unknown(checked.error());
    }
    auto status = proxy_check::run(config, std::cout);
    if (!status) return unknown(status.error());
    return *status;
  } catch (const std::exception& e) {
    return unknown({envkit::Exit::software, std::string("internal error: ") + e.what()});
  }
}
