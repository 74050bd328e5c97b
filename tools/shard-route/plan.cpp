// plan: how many keys a new map moves and which way, counted on a key file or on the live
// data (the old map's shards), beside the same figure for hash, jump, ketama and rendezvous
// over the two maps' shard lists, so that the choice of a strategy is informed.
#include <fstream>
#include <iostream>
#include <map>

#include <envkit/exit_status.hpp>
#include <envkit/json.hpp>

#include "shard-route/run.hpp"
#include "shard-route/store.hpp"

namespace shard_route {

using envkit::Failure;
using envkit::fail;

namespace {

std::string yaml_quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::vector<std::string> names_of(const ShardMap& map, const Namespace* ns) {
  std::vector<std::string> names;
  for (int i : map.shards_of(ns)) names.push_back(map.shards()[static_cast<size_t>(i)].name);
  return names;
}

// A one-namespace map routing over `names` (URLs from `from`) with `strategy`.
envkit::Result<ShardMap> alternative(const ShardMap& old_map, const ShardMap& new_map,
                                     const std::vector<std::string>& names, std::string_view strategy) {
  std::string text = "shards:\n";
  for (const auto& n : names) {
    int i = new_map.shard_index(n);
    const Shard& shard = i >= 0 ? new_map.shards()[static_cast<size_t>(i)]
                                : old_map.shards()[static_cast<size_t>(old_map.shard_index(n))];
    text += "  " + yaml_quoted(n) + ": " + yaml_quoted(shard.url_text) + "\n";
  }
  text += "namespaces:\n  plan:\n    strategy: " + std::string(strategy) + "\n    shards: [";
  for (size_t i = 0; i < names.size(); ++i) text += (i ? ", " : "") + yaml_quoted(names[i]);
  text += "]\n";
  return ShardMap::parse(text, std::string(strategy) + " over the maps' shards");
}

struct Count {
  std::string strategy;
  const ShardMap* old_map = nullptr;
  const ShardMap* new_map = nullptr;
  const Namespace* old_ns = nullptr;
  const Namespace* new_ns = nullptr;
  uint64_t moved = 0;
  std::map<std::pair<std::string, std::string>, uint64_t> moves;
};

void count_key(Count& c, std::string_view key) {
  int from = c.old_map->route(c.old_ns, key);
  int to = c.new_map->route(c.new_ns, key);
  const std::string& a = from >= 0 ? c.old_map->shards()[static_cast<size_t>(from)].name : "";
  const std::string& b = to >= 0 ? c.new_map->shards()[static_cast<size_t>(to)].name : "";
  if (a == b) return;
  ++c.moved;
  ++c.moves[{a, b}];
}

}  // namespace

envkit::Result<envkit::Exit> run_plan(const Config& config) {
  auto maps = load_map_pair(config);
  if (!maps) return maps.error();
  const ShardMap& old_map = maps->old_map;
  const ShardMap& new_map = maps->new_map;
  const Namespace* old_ns = maps->old_ns;
  const Namespace* new_ns = maps->new_ns;
  const std::string& ns_name = maps->ns_name;

  std::vector<Count> counts(1);
  counts[0] = {"map", &old_map, &new_map, old_ns, new_ns, 0, {}};
  // The alternatives, over the same shard lists (as named in each map).
  const auto old_names = names_of(old_map, old_ns), new_names = names_of(new_map, new_ns);
  std::vector<ShardMap> alternatives;
  alternatives.reserve(8);
  for (std::string_view s : {"hash", "jump", "ketama", "rendezvous"}) {
    auto a = alternative(old_map, new_map, old_names, s);
    if (!a) return a.error();
    auto b = alternative(old_map, new_map, new_names, s);
    if (!b) return b.error();
    alternatives.push_back(std::move(*a));
    alternatives.push_back(std::move(*b));
  }
  for (size_t i = 0; i < alternatives.size(); i += 2) {
    const auto& a = alternatives[i];
    const auto& b = alternatives[i + 1];
    counts.push_back({std::string(strategy_name(a.namespaces().front().strategy)), &a, &b,
                      &a.namespaces().front(), &b.namespaces().front(), 0, {}});
  }

  uint64_t keys = 0;
  auto visit = [&](std::string_view key) -> envkit::Status {
    ++keys;
    for (auto& c : counts) count_key(c, key);
    return {};
  };
  std::string source;
  if (!config.keys_file.empty()) {
    source = config.keys_file == "-" ? "stdin" : "file:" + config.keys_file;
    std::ifstream file;
    if (config.keys_file != "-") {
      file.open(config.keys_file);
      if (!file) return fail(Failure::no_input, config.keys_file + ": cannot read the key file");
    }
    std::istream& in = config.keys_file == "-" ? std::cin : file;
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (auto st = visit(line); !st) return st.error();
    }
    if (in.bad()) return fail(Failure::local_io, source + ": reading the keys");
  } else {
    source = "live";
    if (auto st = scan_keys(config, old_map, old_ns, visit); !st) return st.error();
  }

  envkit::JsonWriter w;
  auto fraction = [&](uint64_t n) { return keys ? static_cast<double>(n) / static_cast<double>(keys) : 0.0; };
  w.begin_object().key("namespace").string(ns_name).key("keys").number(keys).key("source").string(source);
  w.key("moved").number(counts[0].moved).key("fraction").number(fraction(counts[0].moved));
  w.key("moves").begin_array();
  for (const auto& [pair, n] : counts[0].moves) {
    w.begin_object().key("from").string(pair.first).key("to").string(pair.second).key("keys").number(n).end_object();
  }
  w.end_array();
  w.key("strategies").begin_array();
  for (size_t i = 1; i < counts.size(); ++i) {
    w.begin_object().key("strategy").string(counts[i].strategy);
    w.key("moved").number(counts[i].moved).key("fraction").number(fraction(counts[i].moved)).end_object();
  }
  w.end_array();
  w.key("shards").begin_object().key("old").begin_array();
  for (const auto& n : old_names) w.string(n);
  w.end_array().key("new").begin_array();
  for (const auto& n : new_names) w.string(n);
  w.end_array().end_object().end_object();
  std::cout << w.take() << '\n' << std::flush;
  if (!std::cout) return fail(Failure::local_io, "writing the plan to stdout");
  return envkit::Exit::ok;
}

}  // namespace shard_route
