// shard-route's subcommands: load the map, pick the namespace, and do the one thing asked.
#include "shard-route/run.hpp"

#include <unistd.h>

#include <envkit/exit_status.hpp>

#include "shard-route/store.hpp"

namespace shard_route {

using envkit::Failure;
using envkit::fail;

envkit::Result<const Namespace*> pick_namespace(const ShardMap& map, const std::string& name) {
  if (name.empty()) {
    if (map.namespaces().size() == 1) return &map.namespaces().front();
    if (map.namespaces().empty()) return static_cast<const Namespace*>(nullptr);
    std::string list;
    for (const auto& ns : map.namespaces()) list += (list.empty() ? "" : ", ") + ns.name;
    return envkit::Error{envkit::Exit::usage, "the map has several namespaces: give -n NAME (" + list + ")"};
  }
  if (const Namespace* ns = map.find(name)) return ns;
  if (map.default_shard() < 0) {
    return fail(Failure::config, map.path() + ": namespace '" + name +
                                     "' is not in the map, and the map has no default: route");
  }
  return static_cast<const Namespace*>(nullptr);
}

envkit::Status check(const Config& config) {
  if (config.command == "plan") {
    for (const auto& path : config.args) {
      auto map = ShardMap::load(path);
      if (!map) return map.error();
      if (auto ns = pick_namespace(*map, config.ns); !ns) return ns.error();
    }
    return {};
  }
  auto map = ShardMap::load(config.map_path);
  if (!map) return map.error();
  auto ns = pick_namespace(*map, config.ns);
  if (!ns) return ns.error();
  if (config.command != "explain") {
    for (const auto& shard : map->shards()) {
      envkit::Url url = shard.url;
      if (auto st = envkit::resolve_password(url, {config.password_file, false}); !st) return st;
    }
  }
  return {};
}

envkit::Result<envkit::Exit> run(const Config& config) {
  if (config.command == "plan") return run_plan(config);
  auto map = ShardMap::load(config.map_path);
  if (!map) return map.error();
  auto ns = pick_namespace(*map, config.ns);
  if (!ns) return ns.error();
  if (config.command == "explain") {
    auto n = explain_keys(*map, *ns, *ns ? (*ns)->name : config.ns, config.args, STDIN_FILENO, stdout, config.why);
    if (!n) return n.error();
    return envkit::Exit::ok;
  }
  return run_store_command(config, *map, *ns);
}

}  // namespace shard_route
