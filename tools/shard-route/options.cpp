// shard-route's options: one set for every subcommand, bound to Config, cross-checked in
// check_config() against the subcommand they belong to.
#include <algorithm>
#include <iostream>

#include "shard-route/config.hpp"

namespace shard_route {

using envkit::Error;
using envkit::Exit;
using envkit::po::bool_switch;
using envkit::po::value;

namespace {

const char* kUsage =
    "shard-route explain --map FILE [-n NAMESPACE] [-v] [KEY]...\n"
    "  or:  shard-route put --map FILE [-n NAMESPACE] [--key-field F] < DOCS.jsonl\n"
    "  or:  shard-route get --map FILE [-n NAMESPACE] KEY...\n"
    "  or:  shard-route del --map FILE [-n NAMESPACE] KEY...\n"
    "  or:  shard-route find --map FILE [-n NAMESPACE] [FILTER] [--limit N] [--sort F] [--partial]\n"
    "  or:  shard-route count --map FILE [-n NAMESPACE] [FILTER] [--partial]\n"
    "  or:  shard-route verify --map FILE [-n NAMESPACE] [--key-field F]\n"
    "  or:  shard-route plan OLD.yaml NEW.yaml [-n NAMESPACE] [--keys FILE|-]\n"
    "  or:  shard-route rebalance OLD.yaml NEW.yaml [-n NAMESPACE] [--state FILE] [--switch MAP]";

const char* kSummary =
    "Routes keys to shards by a shard map (a YAML file: shards with URLs, and per namespace a\n"
    "strategy: range, first-letter, hash, slots, jump, ketama or rendezvous), and reads and\n"
    "writes documents on the shards it names (MongoDB, MySQL/MariaDB, Redis). explain prints\n"
    "KEY<TAB>NAMESPACE<TAB>SHARD for each KEY (or each line of stdin), -v adds why. Keys are\n"
    "folded as shard-route(1) documents (NFC, case folding, first letters' table). verify\n"
    "scans every shard of the namespace and prints a JSON line for every document that is\n"
    "not where the map says (and whether its key is on two shards), the summary on stderr.\n"
    "plan counts the keys a new map moves (on a key file, or the old map's live data) and\n"
    "what hash, jump, ketama and rendezvous over the same shards would move, as JSON.\n"
    "rebalance moves the documents NEW places on another shard: copy, verify, switch (NEW\n"
    "replaces --switch MAP), delete; killed at any point and run again, it resumes from its\n"
    "state file and ends with every document once, where NEW says.";

const char* kAfter =
    "Examples:\n"
    "  shard-route explain --map shop.yaml -n products Ábaco Ñandú 42 'éclair' -v\n"
    "  cut -f1 names.tsv | shard-route explain --map shop.yaml -n products > placed.tsv\n"
    "  shard-route put --map shop.yaml -n products --key-field name < products.jsonl\n"
    "  shard-route find --map shop.yaml -n products '{\"price\": {\"$lt\": 5}}' --sort=-price --limit 10\n"
    "  shard-route verify --map shop.yaml -n products > misplaced.jsonl\n"
    "  cut -f1 names.tsv | shard-route plan shop.yaml shop-3.yaml -n products --keys -\n"
    "  shard-route rebalance shop.yaml shop-af.yaml -n products --switch /etc/shop/map.yaml\n"
    "  shard-route put --check-config --map shop.yaml -n products\n"
    "\n"
    "Exit status: 0 success; 1 some keys not found (get, del), some documents refused (put)\n"
    "or misplaced (verify), some documents left on their old shard (rebalance);\n"
    "64 usage; 65 bad input document; 66 map file unreadable; 69 a shard cannot be reached;\n"
    "75 a shard timed out, or another rebalance holds its state file; 78 bad map\n"
    "(FILE:LINE: reason), refused credentials, or a state file of other maps. See\n"
    "shard-route(1).";

constexpr const char* kCommands[] = {"explain", "put", "get", "del", "find", "count", "verify", "plan", "rebalance"};

envkit::Status check_config(Config& c, const envkit::OptionParser& parser) {
  auto usage = [](std::string m) { return Error{Exit::usage, std::move(m)}; };
  if (c.command == "plan" || c.command == "rebalance") {
    if (c.args.size() != 2) return usage(c.command + ": give the OLD and the NEW map");
    if (parser.given("map")) return usage(c.command + " takes its two maps as arguments, not --map");
  } else if (c.map_path.empty()) {
    return usage("no shard map: give --map FILE (or ENVKIT_MAP)");
  }
  struct Allowed {
    const char* command;
    std::vector<std::string> options;
  };
  const std::vector<Allowed> allowed = {
      {"explain", {}},
      {"put", {"key-field", "batch", "write-concern"}},
      {"get", {}},
      {"del", {"write-concern"}},
      {"find", {"limit", "sort", "partial"}},
      {"count", {"partial"}},
      {"verify", {"key-field"}},
      {"plan", {"key-field", "keys"}},
      {"rebalance", {"key-field", "batch", "write-concern", "state", "switch", "pause"}},
  };
  const std::vector<std::string> all = {"key-field", "batch", "write-concern", "limit", "sort", "partial", "keys",
                                        "state", "switch", "pause"};
  auto mine = std::find_if(allowed.begin(), allowed.end(), [&](const Allowed& a) { return c.command == a.command; });
  for (const auto& o : all) {
    if (parser.given(o) && std::find(mine->options.begin(), mine->options.end(), o) == mine->options.end()) {
      return usage("--" + o + " does not apply to " + c.command);
    }
  }
  if ((c.command == "get" || c.command == "del") && c.args.empty()) {
    return usage(c.command + ": give at least one KEY");
  }
  if ((c.command == "find" || c.command == "count") && c.args.size() > 1) {
    return usage(c.command + ": one FILTER at most (quote it)");
  }
  if (c.command == "put" && !c.args.empty()) return usage("put reads documents from stdin: no arguments");
  if (c.command == "verify" && !c.args.empty()) return usage("verify scans every shard: no arguments");
  if (c.batch < 1 || c.batch > 100000) return usage("--batch must be from 1 to 100000");
  if (c.limit < 0) return usage("--limit must be 0 (no limit) or more");
  if (c.write_concern != "majority" && c.write_concern.find_first_not_of("0123456789") != std::string::npos) {
    return usage("--write-concern must be majority or a number of members");
  }
  c.why = c.command == "explain" && parser.given("verbose");
  return {};
}

}  // namespace

envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv, Config& c,
                                                   std::ostream& out) {
  envkit::OptionParser parser({"shard-route", kUsage, kSummary, kAfter});
  parser.options().add_options()
      ("map", value(&c.map_path)->value_name("FILE"), "the shard map (YAML; see shard-route(1))")
      ("namespace,n", value(&c.ns)->value_name("NAME"),
       "the namespace (collection, table, key prefix); default: the map's only one")
      ("key-field", value(&c.key_field)->value_name("FIELD"),
       "put, verify, plan, rebalance: the document field holding the key (default: the namespace's key:)")
      ("keys", value(&c.keys_file)->value_name("FILE"),
       "plan: count on these keys, one a line (- for stdin), not on the old map's live data")
      ("batch", value(&c.batch)->value_name("N"), "put, rebalance: documents per shard write (default 1000)")
      ("state", value(&c.state_path)->value_name("FILE"),
       "rebalance: the state file that makes it resumable (default: NEW.yaml.rebalance)")
      ("switch", value(&c.switch_path)->value_name("MAP"),
       "rebalance: the map file applications route with; replaced by NEW, atomically, once every copy is verified")
      ("pause", value(&c.pause)->value_name("DUR"),
       "rebalance: wait this long after each batch written or deleted, to spare the shards' other clients (default 0)")
      ("write-concern", value(&c.write_concern)->value_name("W"),
       "put, del, rebalance on MongoDB: majority (default) or a number of members")
      ("limit", value(&c.limit)->value_name("N"), "find: at most N documents (default: all)")
      ("sort", value(&c.sort)->value_name("FIELD|-FIELD"), "find: merge the shards' documents in this order")
      ("partial", bool_switch(&c.partial),
       "find, count: when a shard is down, warn on stderr and give the other shards' results (exit 0)");
  parser.hidden_options().add_options()
      ("args", value(&c.args)->value_name("ARG"), "keys or a filter");
  parser.positional("args", -1);
  parser.add_connection_options(c.connection, c.password_file);

  auto outcome = parser.parse_subcommand(argc, argv, {std::begin(kCommands), std::end(kCommands)}, c.command, out);
  if (!outcome || *outcome == envkit::ParseOutcome::exit_now) return outcome;
  if (auto st = check_config(c, parser); !st) return st.error();
  return outcome;
}

}  // namespace shard_route
