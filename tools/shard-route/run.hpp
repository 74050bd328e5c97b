// shard-route's subcommands, called by main() with the parsed configuration.
#pragma once

#include <cstdio>
#include <iosfwd>
#include <string>
#include <string_view>

#include <envkit/result.hpp>

#include "shard-route/config.hpp"
#include "shard-route/shard_map.hpp"

namespace shard_route {

/// plan OLD NEW: keys moved by the new map (and by each hash strategy over the same
/// shards), counted on --keys or on the old map's live data; one JSON object on stdout.
envkit::Result<envkit::Exit> run_plan(const Config& config);

/// plan's and rebalance's two maps (the subcommand's two arguments) and the namespace in
/// each: --namespace, or OLD's only one; the same name in NEW.
struct MapPair {
  ShardMap old_map, new_map;
  const Namespace* old_ns = nullptr;  ///< nullptr: the map's default route
  const Namespace* new_ns = nullptr;
  std::string ns_name;
};
envkit::Result<MapPair> load_map_pair(const Config& config);

/// rebalance OLD NEW: copy -> verify -> switch -> delete, resumable from its state file;
/// a JSON summary on stdout. Exit::failure when documents were left on their old shard.
envkit::Result<envkit::Exit> run_rebalance(const Config& config);

/// Runs the configured subcommand; the exit status (see --help and shard-route(1)).
envkit::Result<envkit::Exit> run(const Config& config);

/// --check-config: the map loads and checks, the namespace is known (or the map has a
/// default route), and the shard URLs' passwords resolve; nothing is connected to.
envkit::Status check(const Config& config);

/// The namespace the options name: --namespace, or the map's only one. nullptr means the
/// map's default route. Errors (usage) when the map has several and none was named, or
/// (config) when the name is unknown and the map has no default.
envkit::Result<const Namespace*> pick_namespace(const ShardMap& map, const std::string& name);

/// explain: routes every key of `keys` (or, when empty, each line of `in`) and writes
/// "KEY<TAB>NAMESPACE<TAB>SHARD[<TAB>WHY]" lines to `out`, buffered; `ns_name` is the
/// namespace as asked for (ns is nullptr for the default route). Returns keys written.
envkit::Result<uint64_t> explain_keys(const ShardMap& map, const Namespace* ns,
                                      const std::string& ns_name,
                                      const std::vector<std::string>& keys, int in_fd,
                                      std::FILE* out, bool why);

}  // namespace shard_route
