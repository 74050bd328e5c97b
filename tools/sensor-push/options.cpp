// sensor-push's options: declared once, bound to Config, cross-checked in check_config().
#include <iostream>

#include "sensor-push/config.hpp"

namespace sensor_push {

using envkit::Error;
using envkit::Exit;
using envkit::po::bool_switch;
using envkit::po::value;

namespace {

const char* kUsage =
    "sensor-push [OPTION]... --to URL...\n"
    "  or:  sensor-push --source sim --count N --to -";

const char* kSummary =
    "Reads the current weather for a list of cities from the Open-Meteo API, or simulates it,\n"
    "and pushes one JSON record per city and time to every --to sink: MySQL, Redis, HTTP,\n"
    "RabbitMQ (amqp://), Kafka or stdout (-). Runs once (cron), every interval (daemon), or at\n"
    "a fixed rate (load generator). Records that a sink cannot take yet go to the --spool\n"
    "directory and are replayed, in order, when it is back.";

const char* kAfter =
    "Examples:\n"
    "  sensor-push --once --to 'mysql://weather@db:33060/iot?table=readings&create=true'\n"
    "  sensor-push --every 15s --spool /var/spool/sensor-push --to mysql://... \n"
    "  sensor-push --source sim --count 1000 --to - | queue-relay --from - --to redis://...\n"
    "  sensor-push --source sim --rate 20000 --duration 30s --to 'http://127.0.0.1:8080/ingest?batch=100' --stats\n"
    "\n"
    "Exit status: 0 every reading reached every sink; 1 some readings failed (bad city, sink\n"
    "refused a record); 64 usage; 65 bad cities file or API data; 66 missing file; 69 a sink\n"
    "is unreachable and there is no spool; 74 spool or output I/O error, spool full;\n"
    "75 readings left in the spool for the next run; 78 a sink refused the configuration\n"
    "(credentials, missing table or topic), its readings kept in the spool. See sensor-push(1).";

envkit::Status check_config(Config& c, const envkit::OptionParser& parser) {
  auto usage = [](std::string m) { return Error{Exit::usage, std::move(m)}; };
  if (c.source != "open-meteo" && c.source != "sim") {
    return usage("--source must be open-meteo or sim, not '" + c.source + "'");
  }
  if (c.sinks.empty()) return usage("no sink: give at least one --to URL (- for stdout)");
  int modes = (c.once ? 1 : 0) + (c.every.value.count() > 0 ? 1 : 0) + (c.rate > 0 ? 1 : 0);
  if (modes > 1) return usage("--once, --every and --rate are different modes: choose one");
  if (parser.given("every") && c.every.value.count() <= 0) return usage("--every must be longer than 0");
  if (parser.given("rate") && !(c.rate > 0)) return usage("--rate must be greater than 0");
  if (c.rate > 0 && c.source != "sim") {
    return usage("--rate needs --source sim (the Open-Meteo API is not a load generator's source)");
  }
  if (parser.given("duration") && c.rate <= 0 && c.every.value.count() <= 0) {
    return usage("--duration goes with --rate or --every");
  }
  if (c.rate > 0 && c.count == 0 && c.duration.value.count() <= 0 && !parser.given("duration")) {
    // An unbounded load generator is allowed, but only when asked for by name.
    return usage("--rate needs --count or --duration (or --duration 0 to run until stopped)");
  }
  if (c.concurrency < 1 || c.concurrency > 256) return usage("--concurrency must be from 1 to 256");
  if (c.concurrency > 1 && c.rate <= 0 && !(c.source == "sim" && c.count > 0 && !c.once && c.every.value.count() == 0)) {
    return usage("--concurrency goes with --rate, or with --source sim --count");
  }
  if (c.batch < 1 || c.batch > 100000) return usage("--batch must be from 1 to 100000");
  if (c.api_batch < 1 || c.api_batch > 1000) return usage("--api-batch must be from 1 to 1000");
  if (!(c.api_calls_per_minute > 0) || c.api_calls_per_minute > 100000) {
    return usage("--api-rate must be from 1 to 100000 calls a minute");
  }
  if (c.api_retries < 0 || c.api_retries > 20) return usage("--api-retries must be from 0 to 20");
  if (!c.fields.empty() && !c.template_name.empty()) return usage("--field and --template exclude each other");
  if (!c.cities_file.empty() && parser.given("cities")) {
    return usage("--cities and --cities-file exclude each other");
  }
  if (c.spool_max.bytes < 4096) return usage("--spool-max must be at least 4K");
  return {};
}

}  // namespace

envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv, Config& c,
                                                   std::ostream& out) {
  envkit::OptionParser parser({"sensor-push", kUsage, kSummary, kAfter});
  parser.options().add_options()
      ("to", value(&c.sinks)->value_name("URL"), "push to this sink (repeatable); - is stdout")
      ("source", value(&c.source)->value_name("NAME"), "open-meteo (default) or sim")
      ("cities", value(&c.city_list)->value_name("LIST"), "built-in city list: colombia (default) or guatemala")
      ("cities-file", value(&c.cities_file)->value_name("FILE"),
       "cities from a YAML or CSV file (name, latitude, longitude[, elevation])")
      ("city", value(&c.city_specs)->value_name("NAME[:LAT:LON]"),
       "a city (repeatable; a bare name from the built-in lists); replaces the list")
      ("once", bool_switch(&c.once), "one reading per city, then exit (for cron; the default)")
      ("every", value(&c.every)->value_name("DUR"), "run as a daemon: a round every DUR, on the clock")
      ("count", value(&c.count)->value_name("N"), "stop after N readings")
      ("rate", value(&c.rate)->value_name("R"), "load generator: R readings a second, open loop")
      ("duration", value(&c.duration)->value_name("DUR"), "stop after DUR (with --rate or --every)")
      ("concurrency", value(&c.concurrency)->value_name("N"),
       "sink workers with --rate or a sim --count (default 1)")
      ("batch", value(&c.batch)->value_name("N"), "records per sink write (default 500)")
      ("spool", value(&c.spool_dir)->value_name("DIR"),
       "keep readings a sink cannot take in DIR and replay them later")
      ("spool-max", value(&c.spool_max)->value_name("SIZE"), "cap on the spool's size (default 1G)")
      ("create-table", bool_switch(&c.create_table),
       "create the MySQL table if missing (same as create=true in the URL)")
      ("field", value(&c.fields)->value_name("OUT=IN"), "shape records: output field OUT from reading field IN")
      ("template", value(&c.template_name)->value_name("NAME"), "a record shape by name: weather-tweets")
      ("seed", value(&c.seed)->value_name("N"), "simulator seed (default 1): same seed, same readings")
      ("api-url", value(&c.api_url)->value_name("URL"), "Open-Meteo forecast endpoint")
      ("api-batch", value(&c.api_batch)->value_name("N"), "cities per API call (default 50)")
      ("api-rate", value(&c.api_calls_per_minute)->value_name("N"), "API calls a minute at most (default 500)")
      ("api-retries", value(&c.api_retries)->value_name("N"), "retries of a call on 429, 5xx, timeouts (default 4)")
      ("api-timeout", value(&c.api_timeout)->value_name("DUR"), "bound on one API call (default 15s)")
      ("stats", bool_switch(&c.stats), "print a JSON summary of the run to stderr at the end")
      ("metrics-file", value(&c.metrics_file)->value_name("FILE"),
       "write Prometheus text-file metrics to FILE at the end of every round");
  parser.add_connection_options(c.connection, c.password_file);
  auto outcome = parser.parse(argc, argv, out);
  if (!outcome || *outcome == envkit::ParseOutcome::exit_now) return outcome;
  if (auto st = check_config(c, parser); !st) return st.error();
  return outcome;
}

}  // namespace sensor_push
