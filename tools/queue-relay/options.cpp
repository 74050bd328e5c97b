// queue-relay's options: declared once, bound to Config, cross-checked in check_config().
#include <iostream>
#include <sstream>

#include <envkit/registry.hpp>

#include "queue-relay/config.hpp"

namespace queue_relay {

using envkit::Error;
using envkit::Exit;
using envkit::po::bool_switch;
using envkit::po::value;

namespace {

const char* kUsage =
    "queue-relay --from URL --to URL [--to URL]... [--dead-letter URL] [OPTION]...\n"
    "  or:  queue-relay spool check DIR";

const char* kSummary =
    "Moves records (JSON objects) from a queue, stream, file or stdin to every --to sink, at\n"
    "least once: a record is acknowledged to its source only when every sink holds it (or\n"
    "holds it in the --spool). A record no sink will take (not JSON, too large, missing a\n"
    "--require'd field, refused by a sink, or delivered --max-deliveries times) goes to the\n"
    "--dead-letter sink with its reason and its original bytes, and the rest flows on.";

// The URL forms come from the registry table, so --help and the code cannot disagree.
std::string after_options() {
  std::ostringstream out;
  out << "Sources (--from):\n";
  for (const auto& c : envkit::connectors()) {
    if (c.open_source) out << "  " << c.source_parameters << "\n";
  }
  out << "Sinks (--to, --dead-letter):\n";
  for (const auto& c : envkit::connectors()) {
    if (c.open_sink) out << "  " << c.sink_parameters << "\n";
  }
  out << "\nExamples:\n"
         "  sensor-push --source sim --count 1000 --to - | queue-relay --from - --to 'redis://127.0.0.1/0?key=r:{id}'\n"
         "  queue-relay --from 'amqp://relay@mq/%2f?queue=orders' --to 'mysql://relay@db/shop?table=orders' \\\n"
         "      --dead-letter file:/var/lib/queue-relay/dead.jsonl --max-deliveries 5\n"
         "\n"
         "Exit status: 0 every record reached every sink; 1 some records went to the dead\n"
         "letters; 64 usage; 65 a damaged spool segment was quarantined; 69 the source or a\n"
         "sink cannot be reached; 74 spool or file I/O error, spool full; 75 records left in\n"
         "the spool for the next run; 78 a source or sink refused the configuration\n"
         "(credentials, a missing queue, topic or table). See queue-relay(1); `queue-relay\n"
         "spool --help` for checking a spool.";
  return out.str();
}

envkit::Status check_config(Config& c, const envkit::OptionParser& parser) {
  auto usage = [](std::string m) { return Error{Exit::usage, std::move(m)}; };
  if (c.from.empty()) return usage("no source: give --from URL (- for stdin)");
  if (c.sinks.empty()) return usage("no sink: give at least one --to URL (- for stdout)");
  if (c.batch < 1 || c.batch > 100000) return usage("--batch must be from 1 to 100000");
  if (c.workers < 1 || c.workers > 256) return usage("--workers must be from 1 to 256");
  if (c.max_bytes.bytes < 16) return usage("--max-bytes must be at least 16");
  if (c.spool_max.bytes < 4096) return usage("--spool-max must be at least 4K");
  if (parser.given("exit-when-idle") && c.exit_when_idle.value.count() <= 0) {
    return usage("--exit-when-idle must be longer than 0");
  }
  for (const auto& f : c.require) {
    if (f.empty()) return usage("--require: an empty field name");
  }
  return {};
}

}  // namespace

envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv, Config& c,
                                                   std::ostream& out) {
  envkit::OptionParser parser({"queue-relay", kUsage, kSummary, after_options()});
  std::string require_list;
  parser.options().add_options()
      ("from", value(&c.from)->value_name("URL"), "read records from this source; - is stdin")
      ("to", value(&c.sinks)->value_name("URL"), "write every record to this sink (repeatable); - is stdout")
      ("dead-letter", value(&c.dead_letter)->value_name("URL"),
       "where records no sink will take go, with their reason (default: logged and counted)")
      ("require", value(&require_list)->value_name("F1,F2"), "fields every record must have, not null")
      ("max-bytes", value(&c.max_bytes)->value_name("SIZE"), "largest record accepted (default 1M)")
      ("max-deliveries", value(&c.max_deliveries)->value_name("N"),
       "a record handed out N times and still not taken goes to the dead letters (default: no limit)")
      ("batch", value(&c.batch)->value_name("N"), "records per batch and sink write (default 500)")
      ("linger", value(&c.linger)->value_name("DUR"), "longest a partial batch waits (default 50ms)")
      ("workers", value(&c.workers)->value_name("N"), "batches delivered at once (default 1)")
      ("spool", value(&c.spool_dir)->value_name("DIR"),
       "keep what a sink cannot take in DIR (one spool per sink) and replay it later")
      ("spool-max", value(&c.spool_max)->value_name("SIZE"), "cap on each spool's size (default 1G)")
      ("consumer", value(&c.consumer)->value_name("NAME"),
       "this process's name in a consumer group (default HOST-PID)")
      ("exit-when-idle", value(&c.exit_when_idle)->value_name("DUR"),
       "stop once no record has arrived for DUR (drain a queue from cron)")
      ("stats", bool_switch(&c.stats), "print a JSON summary of the run to stderr at the end")
      ("stats-file", value(&c.stats_file)->value_name("FILE"), "write the --stats line to FILE instead (implies --stats)")
      ("timestamp-field", value(&c.timestamp_field)->value_name("NAME"),
       "time each record from this member (RFC 3339, or epoch s or ms) to every sink's answer in --stats")
      ("metrics-file", value(&c.metrics_file)->value_name("FILE"),
       "write Prometheus text-file metrics to FILE every second and at the end");
  parser.add_connection_options(c.connection, c.password_file);
  auto outcome = parser.parse(argc, argv, out);
  if (!outcome || *outcome == envkit::ParseOutcome::exit_now) return outcome;
  std::stringstream fields(require_list);
  for (std::string f; std::getline(fields, f, ',');) c.require.push_back(f);
  if (!require_list.empty() && require_list.back() == ',') c.require.push_back("");
  if (!c.stats_file.empty()) c.stats = true;
  if (auto st = check_config(c, parser); !st) return st.error();
  return outcome;
}

}  // namespace queue_relay
