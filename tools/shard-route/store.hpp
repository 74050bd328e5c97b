// The documents of one namespace on one shard, whatever the store: MongoDB (a collection of
// the URL's database), MySQL/MariaDB (a table `k` primary key, `doc` JSON text) or Redis
// (string keys "NAMESPACE:KEY" holding the JSON text). put, get, del, find and count run
// through it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/json.hpp>
#include <envkit/result.hpp>

#include "shard-route/config.hpp"
#include "shard-route/shard_map.hpp"

namespace shard_route {

/// One document to write: its key (the key field's text) and its JSON text.
struct KeyedDocument {
  std::string key;
  std::string json;
};

/// How to write: MongoDB's write concern ("majority" or a number of members).
struct WriteOptions {
  std::string write_concern = "majority";
};

/// A namespace's documents on one shard. Not thread-safe.
class ShardStore {
 public:
  virtual ~ShardStore() = default;
  /// Inserts or replaces each document by its key (so a repeated put is harmless).
  virtual envkit::Status put(const std::vector<KeyedDocument>& docs) = 0;
  /// The document with this key, or nullopt.
  virtual envkit::Result<std::optional<std::string>> get(std::string_view key) = 0;
  /// Deletes the document with this key; false when there was none.
  virtual envkit::Result<bool> del(std::string_view key) = 0;
  /// The documents with these keys that exist, by key (one query where the store has one;
  /// by default a get() each).
  virtual envkit::Result<std::map<std::string, std::string>> get_many(const std::vector<std::string>& keys);
  /// Deletes the documents with these keys; how many there were (by default a del() each).
  virtual envkit::Result<uint64_t> del_many(const std::vector<std::string>& keys);
  /// Calls `visit` with each document matching `filter` (JSON, "" for all) as JSON text, in
  /// `sort` order when given ("field" or "-field"), at most `limit` (0: all), streaming.
  virtual envkit::Status scan(std::string_view filter, const std::string& sort, int64_t limit,
                              const std::function<envkit::Status(std::string_view json)>& visit) = 0;
  /// Documents matching `filter`.
  virtual envkit::Result<int64_t> count(std::string_view filter) = 0;
};

/// Connects to `shard` for namespace `ns_name`, whose key field is `key_field`.
envkit::Result<std::unique_ptr<ShardStore>> open_store(const Shard& shard, const std::string& ns_name,
                                                       const std::string& key_field,
                                                       const envkit::ConnectionOptions& connection,
                                                       const std::optional<std::string>& password_file,
                                                       const WriteOptions& write);

/// The key of a parsed document: the string value of `field`, or an integer's decimal text.
/// Errors (bad_data) when the field is missing or of another type.
envkit::Result<std::string> key_of(const envkit::JsonValue& doc, const std::string& field);

/// True when `doc` matches `filter` as MongoDB would for the subset shard-route evaluates
/// itself (MySQL and Redis shards): equality and $eq $ne $gt $gte $lt $lte $in on fields
/// (dotted paths). Errors (usage) for anything else.
envkit::Result<bool> matches(const envkit::JsonValue& doc, const envkit::JsonValue& filter);

/// Orders two values of a sort field as MongoDB does for the common types: missing/null,
/// numbers, strings, then the rest by their JSON text. <0, 0, >0.
int compare_values(const envkit::JsonValue* a, const envkit::JsonValue* b);

/// The value at a dotted path, or nullptr.
const envkit::JsonValue* value_at(const envkit::JsonValue& doc, std::string_view path);

/// The key of a document given as JSON text: bad_data when it does not parse, is not an
/// object, or lacks the key field (put, verify, plan's live scan and rebalance read
/// documents alike).
envkit::Result<std::string> document_key(std::string_view json, const std::string& field);

/// A command's view of one map's namespace: routing, and the shards' stores opened on first
/// use (one connection each).
struct Session {
  const Config& config;
  const ShardMap& map;
  const Namespace* ns;      ///< nullptr: the map's default route
  std::string ns_name;      ///< the namespace as named (also for the default route)
  std::string key_field;    ///< --key-field, or the namespace's key:, or _id
  std::vector<std::unique_ptr<ShardStore>> stores;  // by shard index, opened on first use

  /// Errors (usage) when no namespace is named for the default route.
  static envkit::Result<Session> start(const Config& config, const ShardMap& map, const Namespace* ns,
                                       const std::string& ns_name);

  int route(std::string_view key) const { return map.route(ns, key); }
  /// The store of shard `shard` (an index into map.shards()), connected on first use.
  envkit::Result<ShardStore*> store(int shard);
  /// The shards a namespace's keys can be on.
  std::vector<int> all_shards() const { return map.shards_of(ns); }
  const std::string& shard_name(int shard) const { return map.shards()[static_cast<size_t>(shard)].name; }
};

/// Calls `visit` with the key of every document of the namespace on every shard it routes
/// to (streaming), for plan's count on the live data. A document without the key is skipped
/// with a warning.
envkit::Status scan_keys(const Config& config, const ShardMap& map, const Namespace* ns,
                         const std::function<envkit::Status(std::string_view key)>& visit);

/// put, get, del, find, count, verify as configured; the exit status.
envkit::Result<envkit::Exit> run_store_command(const Config& config, const ShardMap& map,
                                               const Namespace* ns);

}  // namespace shard_route
