// race-probe's options for each mode: declared once, bound to Config, cross-checked here.
#include <cstring>
#include <iostream>
#include <sstream>

#include "race-probe/config.hpp"

namespace race_probe {

using envkit::Error;
using envkit::Exit;
using envkit::po::bool_switch;
using envkit::po::value;

namespace {

const char* kExitStatus =
    "Exit status: 0 every invariant holds; 1 a violation was found (lost, duplicated,\n"
    "corrupted or unexpected records, oversold or phantom stock, a non-linearizable key);\n"
    "64 usage; 69 the target cannot be reached; 75 stopped by a signal, or the\n"
    "linearizability check ran out of time (unknown); other statuses as in race-probe(1).";

envkit::Result<Workload> workload_of(const std::string& name) {
  if (name == "tasks") return Workload::tasks;
  if (name == "stock") return Workload::stock;
  if (name == "register") return Workload::register_;
  return Error{Exit::usage, "--workload: '" + name + "' is not tasks, stock or register"};
}

envkit::Result<Format> format_of(const std::string& name) {
  if (name == "human") return Format::human;
  if (name == "json") return Format::json;
  if (name == "auto") return Format::automatic;
  return Error{Exit::usage, "--format: '" + name + "' is not human, json or auto"};
}

void add_output_options(envkit::OptionParser& parser, std::string& format) {
  parser.options().add_options()
      ("format", value(&format)->value_name("FORMAT"),
       "human (the default on a terminal) or json (otherwise)");
}

// serve's own options, also listed under the probe's --help so completion offers them.
void add_serve_options(envkit::po::options_description& options, ServeConfig& s) {
  options.add_options()
      ("listen", value(&s.listen)->value_name("URL"), "http://HOST:PORT to serve on (default http://127.0.0.1:8080)")
      ("data", value(&s.data)->value_name("FILE"), "the tasks file, a JSON array (default tasks.json)")
      ("unsafe", bool_switch(&s.unsafe), "read-modify-write without a lock; stale key-value reads")
      ("race-window", value(&s.race_window)->value_name("DUR"),
       "with --unsafe, wait DUR between each read and its write (and keep cached reads that long)")
      ("fail-after-commit", value(&s.fail_after_commit)->value_name("P"),
       "answer a fraction P (0..1) of writes 504 after they committed: outcome unknown to the client")
      ("fail-stall", value(&s.fail_stall)->value_name("DUR"),
       "hold those replies DUR first, so that a client's timeout fires (default 0)")
      ("workers", value(&s.workers)->value_name("N"), "requests handled at once (default 64)");
}

envkit::Result<envkit::ParseOutcome> parse_serve(int argc, const char* const* argv, Config& c,
                                                 std::ostream& out) {
  envkit::OptionParser parser(
      {"race-probe", "race-probe serve [--listen URL] [--data FILE] [--unsafe [--race-window DUR]] [OPTION]...",
       "Serves the reference target: POST/GET /tasks persisted to a JSON file (safe: a lock,\n"
       "fsync and an atomic rename per write), /stock/ITEM (set, buy, read) and /kv/KEY\n"
       "(read, write, compare-and-set). --unsafe makes every write a read-modify-write without\n"
       "a lock and the key-value reads come from a stale cache, so that races really happen.",
       "Example:\n  race-probe serve --listen http://127.0.0.1:8080 --data /var/lib/tasks/tasks.json\n\n"
       "Exit status: 0 stopped by SIGINT/SIGTERM; 64 usage; 66 the data directory is missing;\n"
       "69 the address is in use. See race-probe(1)."});
  add_serve_options(parser.options(), c.serve);
  auto& s = c.serve;
  auto outcome = parser.parse(argc, argv, out);
  if (!outcome || *outcome == envkit::ParseOutcome::exit_now) return outcome;
  if (s.fail_after_commit < 0 || s.fail_after_commit > 1) {
    return Error{Exit::usage, "--fail-after-commit must be from 0 to 1"};
  }
  if (parser.given("race-window") && !s.unsafe) {
    return Error{Exit::usage, "--race-window widens --unsafe's race: give --unsafe too"};
  }
  if (s.workers < 1 || s.workers > 1024) return Error{Exit::usage, "--workers must be from 1 to 1024"};
  if (s.data.empty()) return Error{Exit::usage, "--data: an empty file name"};
  return outcome;
}

std::string serve_options_text() {
  ServeConfig unused;
  envkit::po::options_description options("Options of race-probe serve (see race-probe serve --help)");
  add_serve_options(options, unused);
  std::ostringstream text;
  text << options;
  return text.str();
}

envkit::Result<envkit::ParseOutcome> parse_reconcile(int argc, const char* const* argv, Config& c,
                                                     std::ostream& out) {
  envkit::OptionParser parser(
      {"race-probe", "race-probe reconcile [--read-back URL] [OPTION]... HISTORY...",
       "Merges the histories of several race-probe clients (--history) and checks their union\n"
       "against one read-back: the latest the histories hold, or a fresh one from --read-back.\n"
       "--export jepsen prints the merged history in Jepsen's EDN form instead, for Knossos or\n"
       "Elle to re-check.",
       "Examples:\n  race-probe reconcile --read-back http://tasks:8080/tasks a.jsonl b.jsonl\n"
       "  race-probe reconcile --export jepsen a.jsonl b.jsonl > history.edn\n\n" +
           std::string(kExitStatus)});
  std::string format = "auto", export_format;
  parser.options().add_options()
      ("read-back", value(&c.probe.read_back)->value_name("URL"),
       "read the target back now (http(s):// list endpoint, or file:PATH)")
      ("export", value(&export_format)->value_name("FORMAT"),
       "print the merged history as FORMAT (jepsen: EDN) and check nothing")
      ("id-field", value(&c.probe.id_field)->value_name("NAME"), "the records' id field (default id)")
      ("request-timeout", value(&c.probe.request_timeout)->value_name("DUR"), "bound on the read-back (default 5s)")
      ("check-budget", value(&c.probe.check_budget)->value_name("DUR"),
       "register: time for the linearizability check, then the verdict is unknown (default 10s)");
  add_output_options(parser, format);
  parser.hidden_options().add_options()("history-file", value(&c.histories));
  parser.positional("history-file", -1);
  parser.add_connection_options(c.connection, c.password_file);
  auto outcome = parser.parse(argc, argv, out);
  if (!outcome || *outcome == envkit::ParseOutcome::exit_now) return outcome;
  auto f = format_of(format);
  if (!f) return f.error();
  c.format = *f;
  if (c.histories.empty()) return Error{Exit::usage, "reconcile: give at least one HISTORY file"};
  if (parser.given("export")) {
    if (export_format != "jepsen") return Error{Exit::usage, "--export: '" + export_format + "' is not jepsen"};
    if (!c.probe.read_back.empty()) return Error{Exit::usage, "--export checks nothing: leave out --read-back"};
    c.export_jepsen = true;
  }
  return outcome;
}

envkit::Result<envkit::ParseOutcome> parse_probe(int argc, const char* const* argv, Config& c,
                                                 std::ostream& out) {
  envkit::OptionParser parser(
      {"race-probe",
       "race-probe --target URL [--workload tasks|stock|register] [--workers C] [--requests N] [OPTION]...\n"
       "  or:  race-probe serve [OPTION]...\n"
       "  or:  race-probe reconcile [OPTION]... HISTORY...",
       "Fires C workers x N operations at a service, reads back what it holds and reconciles:\n"
       "tasks (each request adds a unique record: lost, duplicated, corrupted, unexpected,\n"
       "recovered), stock (concurrent purchases: no negative stock, none oversold, sold +\n"
       "remaining = initial) or register (reads, writes and compare-and-set on K keys, over\n"
       "HTTP /kv/KEY or in Redis, checked for linearizability key by key). Each operation is\n"
       "ok, fail or unknown (timed out or dropped after sending: never counted as lost).\n"
       "--rate makes the load open-loop, with latency from each request's intended send time.\n"
       "`race-probe serve --help` and `race-probe reconcile --help` describe the other modes.",
       "Examples:\n"
       "  race-probe --target http://127.0.0.1:8080/tasks --workers 2 --requests 100\n"
       "  race-probe --target http://127.0.0.1:8080/stock --workload stock --stock 50 --workers 8 --requests 20\n"
       "  race-probe --target http://tasks:8080/tasks --client-id a --history a.jsonl\n"
       "  race-probe --target redis://127.0.0.1:6379/0 --workload register --keys 3 --workers 4\n\n" +
           serve_options_text() + "\n" + std::string(kExitStatus)});
  auto& p = c.probe;
  std::string workload = "tasks", format = "auto";
  parser.options().add_options()
      ("target", value(&p.target)->value_name("URL"),
       "tasks: the collection to POST to; stock: the stock endpoint (ITEM/buy below it),\n"
       "or mysql://USER@HOST/DB?table=T&buy=atomic|racy; register: the key-value endpoint\n"
       "(KEY below it), or redis://HOST[:PORT][/DB]?prefix=P&reset=true|false")
      ("workload", value(&workload)->value_name("NAME"), "tasks (default), stock or register")
      ("workers", value(&p.workers)->value_name("C"), "concurrent workers, one connection each (default 2)")
      ("requests", value(&p.requests)->value_name("N"), "operations per worker (default 100)")
      ("rate", value(&p.rate)->value_name("R"), "open loop: R operations/s over all workers (default: closed load)")
      ("client-id", value(&p.client_id)->value_name("ID"), "this client's name in ids and histories (default HOST-PID)")
      ("history", value(&c.history)->value_name("FILE"), "write the history (JSON Lines) to FILE")
      ("read-back", value(&p.read_back)->value_name("URL"),
       "tasks: where to read the records back (default: GET --target; file:PATH reads a JSON file)")
      ("method", value(&p.method)->value_name("METHOD"), "tasks: the write's HTTP method (default POST)")
      ("body", value(&p.body)->value_name("TEMPLATE"),
       "the write's body; {id} {client} {seq} {payload} {checksum} are filled in (tasks)")
      ("id-field", value(&p.id_field)->value_name("NAME"), "tasks: the records' id field (default id)")
      ("items", value(&p.items)->value_name("K"), "stock: how many items (default 1)")
      ("stock", value(&p.stock)->value_name("N"), "stock: each item's initial stock (default 100)")
      ("keys", value(&p.keys)->value_name("K"), "register: how many keys (default 5)")
      ("check-budget", value(&p.check_budget)->value_name("DUR"),
       "register: time for the linearizability check, then the verdict is unknown (default 10s)")
      ("request-timeout", value(&p.request_timeout)->value_name("DUR"),
       "bound on each request; past it the outcome is unknown (default 5s)");
  add_output_options(parser, format);
  parser.add_connection_options(c.connection, c.password_file);
  auto outcome = parser.parse(argc, argv, out);
  if (!outcome || *outcome == envkit::ParseOutcome::exit_now) return outcome;
  auto w = workload_of(workload);
  if (!w) return w.error();
  p.workload = *w;
  auto f = format_of(format);
  if (!f) return f.error();
  c.format = *f;
  auto usage = [](std::string m) { return Error{Exit::usage, std::move(m)}; };
  if (p.target.empty()) return usage("no target: give --target URL");
  if (p.workers < 1 || p.workers > 4096) return usage("--workers must be from 1 to 4096");
  if (p.requests < 1) return usage("--requests must be at least 1");
  if (p.rate < 0) return usage("--rate must not be negative");
  if (p.items < 1) return usage("--items must be at least 1");
  if (p.keys < 1) return usage("--keys must be at least 1");
  while (!p.target.empty() && p.target.back() == '/') p.target.pop_back();
  if (p.client_id.find_first_of(" \"\\/{}") != std::string::npos) {
    return usage("--client-id: no spaces, quotes, slashes or braces");
  }
  return outcome;
}

}  // namespace

envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv, Config& c,
                                                   std::ostream& out) {
  // The mode is the first argument; the rest parse as that mode's options, with argv[0]
  // kept so that messages still name the command.
  if (argc > 1 && std::strcmp(argv[1], "serve") == 0) {
    c.mode = Mode::serve;
    std::vector<const char*> rest{argv[0]};
    rest.insert(rest.end(), argv + 2, argv + argc);
    return parse_serve(static_cast<int>(rest.size()), rest.data(), c, out);
  }
  if (argc > 1 && std::strcmp(argv[1], "reconcile") == 0) {
    c.mode = Mode::reconcile;
    std::vector<const char*> rest{argv[0]};
    rest.insert(rest.end(), argv + 2, argv + argc);
    return parse_reconcile(static_cast<int>(rest.size()), rest.data(), c, out);
  }
  c.mode = Mode::probe;
  return parse_probe(argc, argv, c, out);
}

}  // namespace race_probe
