// The shard map: named shards (URLs) and, per namespace, the strategy that routes a key to
// one of them; loaded from YAML and refused, with file:line and the reason, when it is not
// a function from every key to exactly one shard.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
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
  /// first-letter: the shard of a key by its first character, for characters of the Basic
  /// Multilingual Plane (one to three UTF-8 bytes: Latin, Greek, Cyrillic, Hebrew, Arabic,
  /// CJK...) followed by nothing, an ASCII byte or a character of U+4000-U+9FFF (lead byte
  /// E4-E9: CJK ideographs), indexed by code point. An entry is -2 until a key starting
  /// with that character is first routed, then route_in() on the character alone
  /// (first_char_fill()): threads routing at once may both fill one entry, with the same
  /// value. What follows is then no combining mark and never the second of a canonical
  /// composition (ASCII and those ideographs have combining class 0 and compose with
  /// nothing before them), so the first character is its own NFC and folds alone: the table
  /// is exact.
  std::shared_ptr<std::atomic<int16_t>[]> first_char_shard;
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

/// Fills first_char_shard[cp] (a BMP code point, not a surrogate) and returns it.
int first_char_fill(const Namespace& ns, unsigned cp);

/// First-letter namespaces: the shard of `key` by first_char_shard, or -2 when the table
/// cannot answer (a first character past U+FFFF or not valid UTF-8, or one followed by
/// another that may combine with it). Inline, for explain's loop; route()
/// asks it first.
inline int first_char_route(const Namespace& ns, std::string_view key) {
  if (key.empty() || !ns.first_char_shard) return -2;
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  unsigned cp;
  size_t n;
  if (k[0] < 0x80) {
    cp = k[0];
    n = 1;
  } else if (k[0] >= 0xC2 && k[0] <= 0xDF && key.size() >= 2 && (k[1] & 0xC0) == 0x80) {
    cp = ((k[0] & 0x1Fu) << 6) | (k[1] & 0x3Fu);
    n = 2;
  } else if ((k[0] & 0xF0) == 0xE0 && key.size() >= 3 && (k[1] & 0xC0) == 0x80 && (k[2] & 0xC0) == 0x80) {
    cp = ((k[0] & 0x0Fu) << 12) | ((k[1] & 0x3Fu) << 6) | (k[2] & 0x3Fu);
    if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return -2;  // overlong, surrogate: not UTF-8
    n = 3;
  } else {
    return -2;
  }
  if (key.size() > n && k[n] >= 0x80 && (k[n] < 0xE4 || k[n] > 0xE9)) return -2;
  int s = ns.first_char_shard[cp].load(std::memory_order_relaxed);
  return s != -2 ? s : first_char_fill(ns, cp);
}

/// The shard of `key` under `ns` alone (shard indexes are the map's); `why` filled if given.
int route_in(const Namespace& ns, std::string_view key, std::string* why);

}  // namespace shard_route
