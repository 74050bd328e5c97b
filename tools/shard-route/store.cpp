#include "shard-route/store.hpp"
namespace shard_route {
envkit::Result<envkit::Exit> run_store_command(const Config& config, const ShardMap&, const Namespace*) {
  return envkit::Error{envkit::Exit::software, config.command + ": not implemented yet"};
}
}  // namespace shard_route
