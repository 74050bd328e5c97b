// db-backup's Redis record format: one JSON object per key (or per part of a big key), binary-safe.
//
// A record reads
//   {"key":K,"type":"string|hash|list|set|zset|stream","expire_at_ms":M|null,"value":V}
//                                                 (+ "part":P on the 2nd, 3rd... part of a key)
// Every byte string (key, value, field, member, stream field/value) is a JSON string when it is
// valid UTF-8, else {"base64":"..."}: text stays readable, anything else round-trips exactly.
// V by type:
//   string  bytes                            (a string over 1 MiB is split; later parts APPEND)
//   hash    [[field, value], ...]
//   list    [element, ...]                   (in list order)
//   set     [member, ...]
//   zset    [[member, "score"], ...]         (Redis's own score text: "inf", "-inf", "0.1")
//   stream  {"entries":[["1-0",[f,v,...]],...]} and on part 0 also "last_id", "entries_added",
//           "max_deleted_id" and "groups":[{"name":...,"last_delivered_id":...,
//           "entries_read":N|null}] (consumers and pending lists are not kept)
// expire_at_ms is the key's absolute expiry in Unix ms by the *server's* clock (PEXPIRETIME on
// Redis 7; TIME + PTTL read in one pipeline before that), null for a key without a TTL. Not a
// remaining "ttl_ms": that changes with every dump, so diff would call every volatile key
// changed; the absolute time does not. Restore sets PEXPIREAT expire_at_ms, so a key expires
// when it would have; a key whose expiry has already passed is skipped and counted.
// A big key is written as several records with the same key, contiguous in the file: part 0
// creates the key, later parts add to it, so neither dump nor restore holds a whole big key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <envkit/json.hpp>
#include <envkit/result.hpp>

namespace db_backup::redis_records {

enum class KeyType { string, hash, list, set, zset, stream };

/// "string", "hash", ...
std::string_view type_name(KeyType t);
/// Parses a type name as TYPE returns it; nullopt for "none" or anything unknown.
std::optional<KeyType> parse_type(std::string_view name);

/// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view bytes);

/// Writes bytes as a JSON string (valid UTF-8) or {"base64":"..."}.
void write_bytes(envkit::JsonWriter& w, std::string_view bytes);
/// Reads what write_bytes wrote; Exit::data naming `what` otherwise.
envkit::Result<std::string> read_bytes(const envkit::JsonValue& v, std::string_view what);

struct StreamEntry {
  std::string id;
  std::vector<std::string> fields;  ///< field, value, field, value...
};

struct StreamGroup {
  std::string name;
  std::string last_delivered_id;
  std::optional<int64_t> entries_read;
};

/// What a stream keeps besides its entries (part 0 only).
struct StreamMeta {
  std::string last_id;
  std::optional<int64_t> entries_added;
  std::string max_deleted_id;  ///< empty when unknown
  std::vector<StreamGroup> groups;
};

/// One record: one key, or one part of a big key.
struct Record {
  std::string key;
  KeyType type = KeyType::string;
  uint32_t part = 0;
  std::optional<int64_t> expire_at_ms;  ///< absolute expiry, Unix ms (server clock)
  std::string bytes;                                       ///< string
  std::vector<std::string> items;                          ///< list, set
  std::vector<std::pair<std::string, std::string>> pairs;  ///< hash (field, value), zset (member, score)
  std::vector<StreamEntry> entries;                        ///< stream
  std::optional<StreamMeta> stream;                        ///< stream, part 0

  /// Elements held (1 for a string part), for progress and chunking.
  size_t size() const;
};

/// Serialises a record as one JSON line (no newline).
std::string encode(const Record& r);
/// Parses a record; Exit::data with what is wrong.
envkit::Result<Record> decode(const envkit::JsonValue& v);
envkit::Result<Record> decode(std::string_view json);

/// True when `score` is a score text ZADD accepts ("inf", "-inf", "+inf", a finite double).
bool is_valid_score(std::string_view score);

}  // namespace db_backup::redis_records
