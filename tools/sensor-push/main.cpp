// sensor-push: weather readings from Open-Meteo or a simulator, pushed to any sink.
#include <iostream>

#include "sensor-push/config.hpp"
#include <envkit/log.hpp>
#include <envkit/signals.hpp>
#include "sensor-push/push.hpp"

int main(int argc, char** argv) {
  envkit::install_stop_handlers();
  try {
    sensor_push::Config config;
    auto parsed = sensor_push::parse_options(argc, argv, config, std::cout);
    if (!parsed) return envkit::report(parsed.error());
    if (*parsed == envkit::ParseOutcome::exit_now) return 0;
    if (*parsed == envkit::ParseOutcome::check_only) {
      auto checked = sensor_push::check(config);
      return checked ? 0 : envkit::report(checked.error());
    }
    auto status = sensor_push::run(config);
    if (!status) return envkit::report(status.error());
    return envkit::to_int(*status);
  } catch (const std::exception& e) {
    return envkit::report({envkit::Exit::software, std::string("internal error: ") + e.what()});
  }
}
