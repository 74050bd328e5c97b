// race-probe: concurrent writers, read-back reconciliation, and the reference target.
#include <iostream>

#include <envkit/log.hpp>
#include <envkit/signals.hpp>

#include "race-probe/config.hpp"
#include "race-probe/probe.hpp"
#include "race-probe/serve.hpp"

int main(int argc, char** argv) {
  envkit::install_stop_handlers();
  try {
    race_probe::Config config;
    auto parsed = race_probe::parse_options(argc, argv, config, std::cout);
    if (!parsed) return envkit::report(parsed.error());
    if (*parsed == envkit::ParseOutcome::exit_now) return 0;
    if (*parsed == envkit::ParseOutcome::check_only) {
      auto checked = config.mode == race_probe::Mode::serve ? race_probe::check_serve(config.serve)
                                                            : race_probe::check(config, race_probe::CheckStage::config);
      return checked ? 0 : envkit::report(checked.error());
    }
    if (config.mode == race_probe::Mode::serve) {
      auto served = race_probe::serve(config.serve);
      return served ? 0 : envkit::report(served.error());
    }
    auto status = config.mode == race_probe::Mode::reconcile ? race_probe::run_reconcile(config)
                                                             : race_probe::run_probe(config);
    if (!status) return envkit::report(status.error());
    return envkit::to_int(*status);
  } catch (const std::exception& e) {
    return envkit::report({envkit::Exit::software, std::string("internal error: ") + e.what()});
  }
}
