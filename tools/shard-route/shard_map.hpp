// The shard map: named shards (URLs) and, per namespace, the strategy that routes a key to
// one of them; loaded from YAML and refused, with file:line and the reason, when it is not
// a function from every key to exactly one shard.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/result.hpp>
#include <envkit/url.hpp>

#include "shard-route/fold.hpp"
#include "shard-route/hashes.hpp"

namespace shard_route {

/// One store a namespace's keys live in.
struct Shard {
  std::string name;
  std::string url_text;  ///< as written in the map (may carry a password: never print it)
  envkit::Url url;
  int line = 0;
};

enum class Strategy { range, first_letter, hash, slots, jump, ketama, rendezvous };

/// "range", "first-letter", "hash", "slots", "jump", "ketama", "rendezvous".
std::string_view strategy_name(Strategy s);
std::optional<Strategy> strategy_named(std::string_view name);

/// One range of a `range` namespace, over folded keys compared as UTF-8 bytes (code point
/// order). A missing bound is unbounded.
struct KeyRange {
  std::optional<std::string> min, max;
  bool min_inclusive = true;   ///< mongos zones: min inclusive...
  bool max_inclusive = false;  ///< ...max exclusive, unless the map says otherwise
  int shard = 0;
  int line = 0;
};

/// One range of a `first-letter` namespace: letters from..to, both inclusive.
struct LetterRange {
  char from = 'A', to = 'Z';
  int shard = 0;
  int line = 0;
};

/// Where a first character the map names itself goes: a letter's range or a shard.
struct LetterOverride {
  char letter = 0;   ///< routed as this letter, or
  int shard = -1;    ///< straight to this shard
  int line = 0;
};

/// A namespace (collection, table, key prefix) and how its keys are routed.
struct Namespace {
  std::string name;
  std::string key_field = "_id";  ///< the document field holding the key (put, verify)
  Strategy strategy = Strategy::hash;
  bool nfc = true;         ///< put keys in NFC before routing
  bool fold_case = false;  ///< case-fold keys before routing
  int line = 0;

  std::vector<int> shards;  ///< hash, jump, ketama, rendezvous: the shards in order
  HashFunction function = HashFunction::fnv1a_64;

  std::vector<KeyRange> ranges;  ///< range: sorted by min
  std::vector<LetterRange> letter_ranges;
  int letter_shard[26] = {};  ///< first-letter: A..Z, derived from letter_ranges
  std::map<std::string, LetterOverride> letters;  ///< by folded first character
  /// first-letter: the shard of a key whose first character is below U+0800 (one or two
  /// UTF-8 bytes: ASCII, Latin, Greek, Cyrillic, Hebrew, Arabic...) and is followed by an
  /// ASCII byte or nothing, by that code point; filled once the namespace is checked (-2:
  /// not yet). No combining mark follows such a character, so it is its own NFC and folds
  /// alone: the table is exact.
  int16_t first_char_shard[0x800];
  int digits_shard = -1, empty_shard = -1, other_shard = -1;

  std::vector<uint16_t> slot_shard;  ///< slots: 16384 entries

  uint32_t points = 160;  ///< ketama: points per shard
  std::vector<std::pair<uint32_t, int>> ring;  ///< ketama: sorted (point, shard)
  std::vector<uint64_t> shard_seeds;           ///< rendezvous: hash of each shard's name
};

/// Where a key goes, and with `why` the reason (the range, slot, hash, folding).
struct Placement {
  int shard = -1;
  std::string why;
};

/// The map file as loaded.
class ShardMap {
 public:
  /// Reads and checks `path`. Errors: Exit::no_input when unreadable, Exit::config (with
  /// "path:line: reason") when malformed.
  static envkit::Result<ShardMap> load(const std::string& path);
  /// Parses and checks map text; `path` names it in messages.
  static envkit::Result<ShardMap> parse(std::string_view text, const std::string& path);

  const std::vector<Shard>& shards() const { return shards_; }
  const std::vector<Namespace>& namespaces() const { return namespaces_; }
  /// The shard of namespaces the map does not list; -1 when it has no default.
  int default_shard() const { return default_shard_; }
  const std::string& path() const { return path_; }
  /// The map's text as read (rebalance records its digest and installs it at the switch).
  const std::string& text() const { return text_; }

  /// The namespace called `name`, or nullptr (then the default route applies).
  const Namespace* find(std::string_view name) const;
  /// The index of the shard called `name`, or -1.
  int shard_index(std::string_view name) const;

  /// The shard of `key` in `ns` (nullptr: the default route; -1 when there is none). Fast:
  /// no allocation for ASCII keys.
  int route(const Namespace* ns, std::string_view key) const;
  /// As route(), with the reason spelled out.
  Placement explain(const Namespace* ns, std::string_view key) const;
  /// The shards `ns` can route a key to (nullptr: the default shard), by index, ascending.
  std::vector<int> shards_of(const Namespace* ns) const;

 private:
  std::vector<Shard> shards_;
  std::vector<Namespace> namespaces_;
  int default_shard_ = -1;
  std::string path_;
  std::string text_;
};

/// The shard of `key` under `ns` alone (shard indexes are the map's); `why` filled if given.
int route_in(const Namespace& ns, std::string_view key, std::string* why);

}  // namespace shard_route
