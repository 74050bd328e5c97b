// shard-route's subcommands: load the map, pick the namespace, and do the one thing asked.
#include "shard-route/run.hpp"

#include <unistd.h>

#include <optional>

#include <envkit/exit_status.hpp>
#include <envkit/posix.hpp>

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

envkit::Result<MapPair> load_map_pair(const Config& config) {
  auto old_map = ShardMap::load(config.args[0]);
  if (!old_map) return old_map.error();
  auto new_map = ShardMap::load(config.args[1]);
  if (!new_map) return new_map.error();
  MapPair pair{std::move(*old_map), std::move(*new_map), nullptr, nullptr, ""};
  auto old_ns = pick_namespace(pair.old_map, config.ns);
  if (!old_ns) return old_ns.error();
  pair.old_ns = *old_ns;
  pair.ns_name = *old_ns ? (*old_ns)->name : config.ns;
  auto new_ns = pick_namespace(pair.new_map, pair.ns_name);
  if (!new_ns) return new_ns.error();
  pair.new_ns = *new_ns;
  return pair;
}

envkit::Status check(const Config& config) {
  if (config.command == "plan" || config.command == "rebalance") {
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

namespace {

envkit::Result<envkit::Exit> run_with_map(const Config& config) {
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

}  // namespace

envkit::Result<envkit::Exit> run(const Config& config) {
  if (config.command == "plan") return run_plan(config);
  if (config.command == "rebalance") return run_rebalance(config);
  // A writer of a map that a rebalance may switch (it made MAP.lock) holds the lock shared,
  // so that the switch waits for it, and it reads the map only once it holds it.
  std::optional<envkit::FileLock> writing;
  const std::string lock_path = config.map_path + ".lock";
  if ((config.command == "put" || config.command == "del") && ::access(lock_path.c_str(), F_OK) == 0) {
    auto lock = envkit::FileLock::acquire(lock_path, config.connection.io_timeout, envkit::FileLock::Mode::shared);
    if (!lock) return lock.error().context("waiting for a rebalance's switch of " + config.map_path);
    writing = std::move(*lock);
  }
  return run_with_map(config);
}

}  // namespace shard_route
