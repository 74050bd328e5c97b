// CRUD on the routed store: put, get, del, find and count over the shards a map names.
#pragma once

#include <envkit/result.hpp>

#include "shard-route/config.hpp"
#include "shard-route/shard_map.hpp"

namespace shard_route {

/// put, get, del, find, count as configured; the exit status.
envkit::Result<envkit::Exit> run_store_command(const Config& config, const ShardMap& map,
                                               const Namespace* ns);

}  // namespace shard_route
