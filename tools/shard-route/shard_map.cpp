// Loading, checking and applying the shard map (see shard_map.hpp and shard-route(1), "MAP").
#include "shard-route/shard_map.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <envkit/exit_status.hpp>

namespace shard_route {

using envkit::Error;
using envkit::Failure;
using envkit::fail;
using envkit::Result;

std::string_view strategy_name(Strategy s) {
  switch (s) {
    case Strategy::range: return "range";
    case Strategy::first_letter: return "first-letter";
    case Strategy::hash: return "hash";
    case Strategy::slots: return "slots";
    case Strategy::jump: return "jump";
    case Strategy::ketama: return "ketama";
    case Strategy::rendezvous: return "rendezvous";
  }
  return "?";
}

std::optional<Strategy> strategy_named(std::string_view name) {
  for (auto s : {Strategy::range, Strategy::first_letter, Strategy::hash, Strategy::slots,
                 Strategy::jump, Strategy::ketama, Strategy::rendezvous}) {
    if (strategy_name(s) == name) return s;
  }
  return std::nullopt;
}

namespace {

// Reads one map file; every error names the file and line of the node at fault.
class Loader {
 public:
  explicit Loader(std::string path) : path_(std::move(path)) {}

  Error error(const YAML::Node& node, const std::string& why) const {
    return fail(Failure::config, where(node) + ": " + why);
  }
  std::string where(const YAML::Node& node) const {
    return path_ + ":" + std::to_string(node.Mark().line + 1);
  }
  int line(const YAML::Node& node) const { return node.Mark().line + 1; }

  Result<std::string> scalar(const YAML::Node& node, const std::string& what) const {
    if (!node.IsScalar()) return error(node, what + " must be a single value");
    return node.Scalar();
  }

  envkit::Status only_keys(const YAML::Node& map, std::initializer_list<std::string_view> keys,
                           const std::string& what) const {
    for (const auto& kv : map) {
      const std::string& k = kv.first.Scalar();
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) {
        std::string list;
        for (auto key : keys) list += (list.empty() ? "" : ", ") + std::string(key);
        return error(kv.first, "unknown key '" + k + "' in " + what + " (known: " + list + ")");
      }
    }
    return {};
  }

  Result<int> shard_ref(const ShardMap& map, const std::vector<Shard>& shards,
                        const YAML::Node& node) const {
    (void)map;
    auto name = scalar(node, "a shard");
    if (!name) return name.error();
    for (size_t i = 0; i < shards.size(); ++i) {
      if (shards[i].name == *name) return static_cast<int>(i);
    }
    return error(node, "unknown shard '" + *name + "' (the map's shards: " + shard_list(shards) + ")");
  }

  static std::string shard_list(const std::vector<Shard>& shards) {
    std::string out;
    for (const auto& s : shards) out += (out.empty() ? "" : ", ") + s.name;
    return out;
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Result<char> letter_of(const Loader& l, const YAML::Node& node) {
  auto text = l.scalar(node, "a letter");
  if (!text) return text.error();
  if (text->size() == 1 && std::isalpha(static_cast<unsigned char>((*text)[0]))) {
    return static_cast<char>(std::toupper(static_cast<unsigned char>((*text)[0])));
  }
  return l.error(node, "'" + *text + "' is not a letter A-Z");
}

Result<bool> boolean_of(const Loader& l, const YAML::Node& node, const std::string& what) {
  auto text = l.scalar(node, what);
  if (!text) return text.error();
  if (*text == "true") return true;
  if (*text == "false") return false;
  return l.error(node, what + " must be true or false, not '" + *text + "'");
}

// "8192-16383" or "42": an inclusive slot range.
Result<std::pair<int, int>> slot_range(const Loader& l, const YAML::Node& node) {
  auto text = l.scalar(node, "a slot range");
  if (!text) return text.error();
  int a = -1, b = -1;
  char tail = 0;
  if (std::sscanf(text->c_str(), "%d-%d%c", &a, &b, &tail) == 2) {
  } else if (std::sscanf(text->c_str(), "%d%c", &a, &tail) == 1) {
    b = a;
  } else {
    return l.error(node, "'" + *text + "' is not a slot or FIRST-LAST slot range");
  }
  if (a < 0 || b > 16383 || a > b) {
    return l.error(node, "slot range '" + *text + "' is not within 0-16383, first <= last");
  }
  return std::pair{a, b};
}

std::string quoted(const std::optional<std::string>& s, const char* unbounded) {
  return s ? "\"" + *s + "\"" : unbounded;
}

std::string range_text(const KeyRange& r) {
  return std::string(r.min_inclusive && r.min ? "[" : "(") + quoted(r.min, "-inf") + ", " +
         quoted(r.max, "+inf") + (r.max_inclusive && r.max ? "]" : ")");
}

// Keys sort by their folded bytes; the empty string is the least key, so an inclusive min
// of "" is the same as no min.
bool lower_admits(const KeyRange& r, std::string_view k) {
  if (!r.min || (r.min->empty() && r.min_inclusive)) return true;
  return k > *r.min || (k == *r.min && r.min_inclusive);
}

envkit::Status check_key_ranges(const Loader& l, Namespace& ns, const YAML::Node& node) {
  auto key_of_min = [](const KeyRange& r) {
    return (!r.min || (r.min->empty() && r.min_inclusive)) ? std::optional<std::string>{} : r.min;
  };
  std::stable_sort(ns.ranges.begin(), ns.ranges.end(), [&](const KeyRange& a, const KeyRange& b) {
    auto ka = key_of_min(a), kb = key_of_min(b);
    if (!ka || !kb) return !ka && kb;
    if (*ka != *kb) return *ka < *kb;
    return a.min_inclusive && !b.min_inclusive;
  });
  auto at = [&](const KeyRange& r) { return l.path() + ":" + std::to_string(r.line); };
  const auto& first = ns.ranges.front();
  if (key_of_min(first)) {
    return fail(Failure::config, at(first) + ": keys below " + quoted(first.min, "") +
                                     " are in no range of namespace '" + ns.name +
                                     "' (give the lowest range no min)");
  }
  for (const auto& r : ns.ranges) {
    if (r.min && r.max && (*r.max < *r.min || (*r.max == *r.min && !(r.min_inclusive && r.max_inclusive)))) {
      return fail(Failure::config, at(r) + ": range " + range_text(r) + " is empty");
    }
  }
  for (size_t i = 0; i + 1 < ns.ranges.size(); ++i) {
    const auto& a = ns.ranges[i];
    const auto& b = ns.ranges[i + 1];
    if (!a.max) {
      return fail(Failure::config, at(b) + ": range " + range_text(b) + " overlaps " +
                                       range_text(a) + " at line " + std::to_string(a.line));
    }
    if (!b.min || (b.min->empty() && b.min_inclusive)) {
      return fail(Failure::config, at(b) + ": range " + range_text(b) + " overlaps " +
                                       range_text(a) + " at line " + std::to_string(a.line));
    }
    if (*a.max < *b.min || (*a.max == *b.min && !a.max_inclusive && !b.min_inclusive)) {
      return fail(Failure::config, at(b) + ": keys between " + range_text(a) + " (line " +
                                       std::to_string(a.line) + ") and " + range_text(b) +
                                       " are in no range");
    }
    if (*a.max > *b.min || (a.max_inclusive && b.min_inclusive)) {
      return fail(Failure::config, at(b) + ": range " + range_text(b) + " overlaps " +
                                       range_text(a) + " at line " + std::to_string(a.line));
    }
  }
  if (ns.ranges.back().max) {
    const auto& last = ns.ranges.back();
    return fail(Failure::config, at(last) + ": keys above " + quoted(last.max, "") +
                                     " are in no range of namespace '" + ns.name +
                                     "' (give the highest range no max)");
  }
  (void)node;
  return {};
}

envkit::Status load_namespace(const Loader& l, const ShardMap& map,
                              const std::vector<Shard>& shards, const YAML::Node& name_node,
                              const YAML::Node& node, Namespace& ns) {
  ns.name = name_node.Scalar();
  ns.line = l.line(name_node);
  if (!node.IsMap()) return l.error(node, "namespace '" + ns.name + "' must be a mapping");
  if (auto st = l.only_keys(node, {"key", "strategy", "shards", "function", "ranges", "letters",
                                   "digits", "empty", "other", "slots", "points", "normalize",
                                   "case"},
                            "namespace '" + ns.name + "'");
      !st) {
    return st;
  }
  if (!node["strategy"]) return l.error(name_node, "namespace '" + ns.name + "' has no strategy");
  auto strategy_text = l.scalar(node["strategy"], "strategy");
  if (!strategy_text) return strategy_text.error();
  auto strategy = strategy_named(*strategy_text);
  if (!strategy) {
    return l.error(node["strategy"], "unknown strategy '" + *strategy_text +
                                         "' (range, first-letter, hash, slots, jump, ketama, rendezvous)");
  }
  ns.strategy = *strategy;
  // Defaults: ranges compare what a person reads (NFC, case-folded); hashes keep case;
  // slots hash the exact bytes, as Redis Cluster does.
  ns.nfc = ns.strategy != Strategy::slots;
  ns.fold_case = ns.strategy == Strategy::range || ns.strategy == Strategy::first_letter;
  if (node["key"]) {
    auto k = l.scalar(node["key"], "key");
    if (!k) return k.error();
    if (k->empty()) return l.error(node["key"], "key: an empty field name");
    ns.key_field = *k;
  }
  if (node["normalize"]) {
    auto v = l.scalar(node["normalize"], "normalize");
    if (!v) return v.error();
    if (*v != "nfc" && *v != "none") return l.error(node["normalize"], "normalize must be nfc or none");
    ns.nfc = *v == "nfc";
  }
  if (node["case"]) {
    auto v = l.scalar(node["case"], "case");
    if (!v) return v.error();
    if (*v != "fold" && *v != "keep") return l.error(node["case"], "case must be fold or keep");
    ns.fold_case = *v == "fold";
  }
  if (node["function"]) {
    auto v = l.scalar(node["function"], "function");
    if (!v) return v.error();
    auto f = hash_function_named(*v);
    if (!f) {
      return l.error(node["function"], "unknown hash function '" + *v +
                                           "' (fnv1a_64, fnv1a_32, crc32, murmur3, crc16)");
    }
    ns.function = *f;
  }
  auto needs = [&](const char* key) -> envkit::Status {
    if (!node[key]) {
      return l.error(name_node, "namespace '" + ns.name + "' (" + std::string(strategy_name(ns.strategy)) +
                                    ") needs '" + key + "'");
    }
    return {};
  };
  auto refuses = [&](std::initializer_list<const char*> keys) -> envkit::Status {
    for (const char* key : keys) {
      if (node[key]) {
        return l.error(node[key], "'" + std::string(key) + "' does not apply to strategy " +
                                      std::string(strategy_name(ns.strategy)));
      }
    }
    return {};
  };

  switch (ns.strategy) {
    case Strategy::hash:
    case Strategy::jump:
    case Strategy::ketama:
    case Strategy::rendezvous: {
      if (auto st = needs("shards"); !st) return st;
      if (auto st = refuses({"ranges", "letters", "digits", "empty", "other", "slots"}); !st) return st;
      const auto& list = node["shards"];
      if (!list.IsSequence() || list.size() == 0) {
        return l.error(list, "shards must be a non-empty list of shard names");
      }
      std::set<int> seen;
      for (const auto& item : list) {
        auto s = l.shard_ref(map, shards, item);
        if (!s) return s.error();
        if (!seen.insert(*s).second) return l.error(item, "shard '" + item.Scalar() + "' is listed twice");
        ns.shards.push_back(*s);
      }
      if (node["points"]) {
        if (ns.strategy != Strategy::ketama) return l.error(node["points"], "'points' applies to ketama only");
        auto v = l.scalar(node["points"], "points");
        if (!v) return v.error();
        char* end = nullptr;
        long p = std::strtol(v->c_str(), &end, 10);
        if (*end != '\0' || p < 1 || p > 10000) return l.error(node["points"], "points must be from 1 to 10000");
        ns.points = static_cast<uint32_t>(p);
      }
      if (ns.strategy == Strategy::ketama) {
        // twemproxy's ring: MD5 of "name-i" gives four 32-bit points per digest.
        for (int s : ns.shards) {
          for (uint32_t i = 0; i < (ns.points + 3) / 4; ++i) {
            unsigned char d[16];
            md5_digest(shards[static_cast<size_t>(s)].name + "-" + std::to_string(i), d);
            for (int k = 0; k < 4 && i * 4 + static_cast<uint32_t>(k) < ns.points; ++k) {
              uint32_t point = (static_cast<uint32_t>(d[3 + k * 4]) << 24) |
                               (static_cast<uint32_t>(d[2 + k * 4]) << 16) |
                               (static_cast<uint32_t>(d[1 + k * 4]) << 8) | d[k * 4];
              ns.ring.emplace_back(point, s);
            }
          }
        }
        std::sort(ns.ring.begin(), ns.ring.end());
      }
      if (ns.strategy == Strategy::rendezvous) {
        for (int s : ns.shards) ns.shard_seeds.push_back(fnv1a_64(shards[static_cast<size_t>(s)].name));
      }
      return {};
    }
    case Strategy::slots: {
      if (auto st = needs("slots"); !st) return st;
      if (auto st = refuses({"ranges", "letters", "digits", "empty", "other", "shards", "points", "function"}); !st) return st;
      const auto& slots = node["slots"];
      if (!slots.IsMap()) return l.error(slots, "slots must map each shard to its slot ranges");
      ns.slot_shard.assign(16384, UINT16_MAX);
      std::vector<int> slot_line(16384, 0);
      for (const auto& kv : slots) {
        auto s = l.shard_ref(map, shards, kv.first);
        if (!s) return s.error();
        ns.shards.push_back(*s);
        std::vector<YAML::Node> items;
        if (kv.second.IsSequence()) {
          for (const auto& item : kv.second) items.push_back(item);
        } else {
          items.push_back(kv.second);
        }
        for (const auto& item : items) {
          auto r = slot_range(l, item);
          if (!r) return r.error();
          for (int slot = r->first; slot <= r->second; ++slot) {
            if (ns.slot_shard[static_cast<size_t>(slot)] != UINT16_MAX) {
              return l.error(item, "slot " + std::to_string(slot) + " is also given at line " +
                                       std::to_string(slot_line[static_cast<size_t>(slot)]));
            }
            ns.slot_shard[static_cast<size_t>(slot)] = static_cast<uint16_t>(*s);
            slot_line[static_cast<size_t>(slot)] = l.line(item);
          }
        }
      }
      for (int slot = 0; slot < 16384; ++slot) {
        if (ns.slot_shard[static_cast<size_t>(slot)] == UINT16_MAX) {
          int last = slot;
          while (last + 1 < 16384 && ns.slot_shard[static_cast<size_t>(last + 1)] == UINT16_MAX) ++last;
          return l.error(slots, "slots " + std::to_string(slot) + "-" + std::to_string(last) +
                                    " belong to no shard of namespace '" + ns.name + "'");
        }
      }
      return {};
    }
    case Strategy::range: {
      if (auto st = needs("ranges"); !st) return st;
      if (auto st = refuses({"shards", "letters", "digits", "empty", "other", "slots", "points", "function"}); !st) return st;
      const auto& list = node["ranges"];
      if (!list.IsSequence() || list.size() == 0) return l.error(list, "ranges must be a non-empty list");
      for (const auto& item : list) {
        if (!item.IsMap()) return l.error(item, "a range is {min: .., max: .., shard: ..}");
        if (auto st = l.only_keys(item, {"min", "max", "min_inclusive", "max_inclusive", "shard"}, "a range"); !st) return st;
        KeyRange r;
        r.line = l.line(item);
        if (!item["shard"]) return l.error(item, "a range without a shard");
        auto s = l.shard_ref(map, shards, item["shard"]);
        if (!s) return s.error();
        r.shard = *s;
        for (auto [key, bound] : {std::pair{"min", &r.min}, std::pair{"max", &r.max}}) {
          if (item[key]) {
            auto v = l.scalar(item[key], key);
            if (!v) return v.error();
            *bound = fold_key(*v, ns.nfc, ns.fold_case);
          }
        }
        for (auto [key, flag] : {std::pair{"min_inclusive", &r.min_inclusive}, std::pair{"max_inclusive", &r.max_inclusive}}) {
          if (item[key]) {
            auto v = boolean_of(l, item[key], key);
            if (!v) return v.error();
            *flag = *v;
          }
        }
        ns.ranges.push_back(std::move(r));
      }
      return check_key_ranges(l, ns, list);
    }
    case Strategy::first_letter: {
      if (auto st = needs("ranges"); !st) return st;
      if (auto st = refuses({"shards", "slots", "points", "function"}); !st) return st;
      const auto& list = node["ranges"];
      if (!list.IsSequence() || list.size() == 0) return l.error(list, "ranges must be a non-empty list");
      int letter_line[26] = {};
      for (auto& s : ns.letter_shard) s = -1;
      for (const auto& item : list) {
        if (!item.IsMap()) return l.error(item, "a letter range is {from: A, to: M, shard: ..}");
        if (auto st = l.only_keys(item, {"from", "to", "shard"}, "a letter range"); !st) return st;
        if (!item["from"] || !item["to"] || !item["shard"]) {
          return l.error(item, "a letter range needs from, to (both inclusive) and shard");
        }
        LetterRange r;
        r.line = l.line(item);
        auto from = letter_of(l, item["from"]);
        if (!from) return from.error();
        auto to = letter_of(l, item["to"]);
        if (!to) return to.error();
        if (*to < *from) return l.error(item, std::string("letter range ") + *from + "-" + *to + " is backwards");
        auto s = l.shard_ref(map, shards, item["shard"]);
        if (!s) return s.error();
        r.from = *from;
        r.to = *to;
        r.shard = *s;
        for (char c = r.from; c <= r.to; ++c) {
          if (ns.letter_shard[c - 'A'] >= 0) {
            return l.error(item, std::string("letter ") + c + " is also in the range at line " +
                                     std::to_string(letter_line[c - 'A']));
          }
          ns.letter_shard[c - 'A'] = r.shard;
          letter_line[c - 'A'] = r.line;
        }
        ns.letter_ranges.push_back(r);
      }
      for (char c = 'A'; c <= 'Z'; ++c) {
        if (ns.letter_shard[c - 'A'] < 0) {
          return l.error(list, std::string("letter ") + c + " is in no range of namespace '" + ns.name + "'");
        }
      }
      // Digits, empty keys and every other script must each be routed on purpose.
      for (auto [key, field] : {std::pair{"digits", &ns.digits_shard}, std::pair{"empty", &ns.empty_shard},
                                std::pair{"other", &ns.other_shard}}) {
        if (!node[key]) {
          return l.error(name_node, "namespace '" + ns.name + "' does not say where keys go that " +
                                        (std::string(key) == "digits" ? "start with a digit (digits: SHARD)"
                                         : std::string(key) == "empty" ? "are empty (empty: SHARD)"
                                                                       : "start with no Latin letter or digit (other: SHARD)"));
        }
        auto s = l.shard_ref(map, shards, node[key]);
        if (!s) return s.error();
        *field = *s;
      }
      if (node["letters"]) {
        const auto& letters = node["letters"];
        if (!letters.IsMap()) return l.error(letters, "letters must map a character to a letter or a shard");
        for (const auto& kv : letters) {
          const std::string& ch = kv.first.Scalar();
          auto folded = fold_first_letter(ch);
          if (folded.kind == FirstLetter::Kind::empty || fold_key(ch, true, true) != folded.folded) {
            return l.error(kv.first, "'" + ch + "' is not one character");
          }
          LetterOverride o;
          o.line = l.line(kv.first);
          auto target = l.scalar(kv.second, "a letter or shard");
          if (!target) return target.error();
          if (target->size() == 1 && std::isalpha(static_cast<unsigned char>((*target)[0])) &&
              map.shard_index(*target) < 0) {
            o.letter = static_cast<char>(std::toupper(static_cast<unsigned char>((*target)[0])));
          } else {
            auto s = l.shard_ref(map, shards, kv.second);
            if (!s) return l.error(kv.second, "'" + *target + "' is neither a letter A-Z nor a shard (" +
                                                  Loader::shard_list(shards) + ")");
            o.shard = *s;
          }
          if (!ns.letters.emplace(folded.folded, o).second) {
            return l.error(kv.first, "'" + ch + "' folds to the same character as another entry");
          }
        }
      }
      return {};
    }
  }
  return {};
}

}  // namespace

Result<ShardMap> ShardMap::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Failure::no_input, "cannot read shard map " + path);
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail(Failure::no_input, "cannot read shard map " + path);
  return parse(text.str(), path);
}

Result<ShardMap> ShardMap::parse(std::string_view text, const std::string& path) {
  Loader l(path);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    return fail(Failure::config, path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  ShardMap map;
  map.path_ = path;
  try {
    if (!root.IsMap()) return fail(Failure::config, path + ":1: a shard map is a mapping with shards: and namespaces:");
    if (auto st = l.only_keys(root, {"shards", "namespaces", "default"}, "the map"); !st) return st.error();
    const auto& shards = root["shards"];
    if (!shards || !shards.IsMap() || shards.size() == 0) {
      return l.error(shards ? shards : root, "the map needs shards: NAME: URL, at least one");
    }
    for (const auto& kv : shards) {
      Shard s;
      s.name = kv.first.Scalar();
      s.line = l.line(kv.first);
      if (s.name.empty()) return l.error(kv.first, "a shard with an empty name");
      if (map.shard_index(s.name) >= 0) return l.error(kv.first, "shard '" + s.name + "' is defined twice");
      auto url_text = l.scalar(kv.second, "a shard's URL");
      if (!url_text) return url_text.error();
      s.url_text = *url_text;
      auto url = envkit::parse_url(s.url_text);
      if (!url) return l.error(kv.second, "shard '" + s.name + "': " + url.error().message);
      if (url->scheme != "mongodb" && url->scheme != "mysql" && url->scheme != "redis") {
        return l.error(kv.second, "shard '" + s.name + "': scheme '" + url->scheme +
                                      "' is not one shard-route stores to (mongodb, mysql, redis)");
      }
      if (url->scheme != "redis" && url->path.empty()) {
        return l.error(kv.second, "shard '" + s.name + "': the URL names no database (" +
                                      url->scheme + "://HOST/DATABASE)");
      }
      s.url = std::move(*url);
      map.shards_.push_back(std::move(s));
      if (map.shards_.size() > 65000) return l.error(kv.first, "too many shards");
    }
    if (root["default"]) {
      auto s = l.shard_ref(map, map.shards_, root["default"]);
      if (!s) return s.error();
      map.default_shard_ = *s;
    }
    if (root["namespaces"]) {
      const auto& nss = root["namespaces"];
      if (!nss.IsMap()) return l.error(nss, "namespaces must map each name to its strategy");
      for (const auto& kv : nss) {
        Namespace ns;
        if (auto st = load_namespace(l, map, map.shards_, kv.first, kv.second, ns); !st) return st.error();
        if (ns.strategy == Strategy::first_letter) {
          ns.first_char_shard.reset(new std::atomic<int16_t>[0x10000]);
          for (unsigned cp = 0; cp < 0x10000; ++cp) ns.first_char_shard[cp].store(-2, std::memory_order_relaxed);
        }
        map.namespaces_.push_back(std::move(ns));
      }
    }
    if (map.namespaces_.empty() && map.default_shard_ < 0) {
      return l.error(root, "the map routes nothing: give namespaces: or default:");
    }
  } catch (const YAML::Exception& e) {
    return fail(Failure::config, path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  map.text_ = std::string(text);
  return map;
}

const Namespace* ShardMap::find(std::string_view name) const {
  for (const auto& ns : namespaces_) {
    if (ns.name == name) return &ns;
  }
  return nullptr;
}

int ShardMap::shard_index(std::string_view name) const {
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (shards_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

namespace {

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

int route_folded(const Namespace& ns, std::string_view k, std::string* why) {
  switch (ns.strategy) {
    case Strategy::range: {
      // The last range whose lower bound admits k: the ranges are sorted and contiguous.
      size_t lo = 0, hi = ns.ranges.size();
      while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (lower_admits(ns.ranges[mid], k)) lo = mid; else hi = mid;
      }
      const auto& r = ns.ranges[lo];
      if (why) *why = "folded key \"" + std::string(k) + "\" in " + range_text(r) + " (line " + std::to_string(r.line) + ")";
      return r.shard;
    }
    case Strategy::hash: {
      uint64_t h = hash_with(ns.function, k);
      size_t i = h % ns.shards.size();
      if (why) *why = std::string(hash_function_name(ns.function)) + " " + hex(h) + " mod " +
                      std::to_string(ns.shards.size()) + " = " + std::to_string(i);
      return ns.shards[i];
    }
    case Strategy::slots: {
      uint16_t slot = redis_slot(k);
      if (why) *why = "slot " + std::to_string(slot) + " (CRC16 of \"" +
                      std::string(k) + "\"'s hash tag or whole key, mod 16384)";
      return ns.slot_shard[slot];
    }
    case Strategy::jump: {
      uint64_t h = hash_with(ns.function, k);
      int32_t b = jump_hash(h, static_cast<int32_t>(ns.shards.size()));
      if (why) *why = "jump(" + std::string(hash_function_name(ns.function)) + " " + hex(h) + ", " +
                      std::to_string(ns.shards.size()) + ") = " + std::to_string(b);
      return ns.shards[static_cast<size_t>(b)];
    }
    case Strategy::ketama: {
      auto h = static_cast<uint32_t>(hash_with(ns.function, k));
      auto it = std::lower_bound(ns.ring.begin(), ns.ring.end(), std::pair<uint32_t, int>{h, -1});
      bool wrapped = it == ns.ring.end();
      if (wrapped) it = ns.ring.begin();
      if (why) *why = std::string(hash_function_name(ns.function)) + " low 32 bits " + hex(h) +
                      ", next ring point " + hex(it->first) + (wrapped ? " (wrapped)" : "") + " of " +
                      std::to_string(ns.ring.size());
      return it->second;
    }
    case Strategy::rendezvous: {
      uint64_t h = hash_with(ns.function, k);
      uint64_t best = 0;
      size_t best_i = 0;
      for (size_t i = 0; i < ns.shards.size(); ++i) {
        uint64_t score = mix64(h ^ ns.shard_seeds[i]);
        if (i == 0 || score > best) {
          best = score;
          best_i = i;
        }
      }
      if (why) *why = "highest score " + hex(best) + " of " + std::to_string(ns.shards.size()) + " shards";
      return ns.shards[best_i];
    }
    case Strategy::first_letter:
      break;
  }
  return -1;
}

}  // namespace

int first_char_fill(const Namespace& ns, unsigned cp) {
  char utf8[3];
  size_t n = 0;
  if (cp < 0x80) {
    utf8[n++] = static_cast<char>(cp);
  } else if (cp < 0x800) {
    utf8[n++] = static_cast<char>(0xC0 | (cp >> 6));
    utf8[n++] = static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    utf8[n++] = static_cast<char>(0xE0 | (cp >> 12));
    utf8[n++] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    utf8[n++] = static_cast<char>(0x80 | (cp & 0x3F));
  }
  std::string why;  // asks route_in() for the folding path, not the table
  int s = route_in(ns, std::string_view(utf8, n), &why);
  ns.first_char_shard[cp].store(static_cast<int16_t>(s), std::memory_order_relaxed);
  return s;
}

int route_in(const Namespace& ns, std::string_view key, std::string* why) {
  if (ns.strategy == Strategy::first_letter) {
    if (!why) {
      if (int s = first_char_route(ns, key); s != -2) return s;
    }
    FirstLetter f = fold_first_letter(key);
    if (!ns.letters.empty() && f.kind != FirstLetter::Kind::empty) {
      if (auto it = ns.letters.find(f.folded); it != ns.letters.end()) {
        const auto& o = it->second;
        if (o.shard >= 0) {
          if (why) *why = "first character '" + f.folded + "': letters: entry at line " + std::to_string(o.line);
          return o.shard;
        }
        f.kind = FirstLetter::Kind::letter;
        f.letter = o.letter;
        f.rule = "letters: entry";
      }
    }
    switch (f.kind) {
      case FirstLetter::Kind::letter:
        if (why) {
          for (const auto& r : ns.letter_ranges) {
            if (f.letter >= r.from && f.letter <= r.to) {
              *why = "first character '" + f.folded + "' -> " + f.letter + " (" + std::string(f.rule) +
                     "), in " + r.from + "-" + r.to + " (line " + std::to_string(r.line) + ")";
            }
          }
        }
        return ns.letter_shard[f.letter - 'A'];
      case FirstLetter::Kind::digit:
        if (why) *why = "first character '" + f.folded + "' is a digit (digits:)";
        return ns.digits_shard;
      case FirstLetter::Kind::empty:
        if (why) *why = "empty key (empty:)";
        return ns.empty_shard;
      case FirstLetter::Kind::other:
        if (why) *why = "first character '" + f.folded + "': " + std::string(f.rule) + " (other:)";
        return ns.other_shard;
    }
    return -1;
  }
  if (!ns.nfc && !ns.fold_case) return route_folded(ns, key, why);
  if (is_ascii(key)) {
    if (!ns.fold_case) return route_folded(ns, key, why);
    // Lower-case into a stack buffer: the fast path allocates nothing.
    char buf[256];
    if (key.size() <= sizeof buf) {
      for (size_t i = 0; i < key.size(); ++i) {
        char c = key[i];
        buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
      }
      return route_folded(ns, std::string_view(buf, key.size()), why);
    }
  }
  return route_folded(ns, fold_key(key, ns.nfc, ns.fold_case), why);
}

int ShardMap::route(const Namespace* ns, std::string_view key) const {
  if (!ns) return default_shard_;
  return route_in(*ns, key, nullptr);
}

Placement ShardMap::explain(const Namespace* ns, std::string_view key) const {
  Placement p;
  if (!ns) {
    p.shard = default_shard_;
    p.why = default_shard_ >= 0 ? "namespace not in the map: default route" : "namespace not in the map, and the map has no default";
    return p;
  }
  p.shard = route_in(*ns, key, &p.why);
  p.why = std::string(strategy_name(ns->strategy)) + ": " + p.why;
  return p;
}

std::vector<int> ShardMap::shards_of(const Namespace* ns) const {
  std::vector<int> out;
  if (!ns) {
    if (default_shard_ >= 0) out.push_back(default_shard_);
    return out;
  }
  std::vector<bool> seen(shards_.size());
  auto add = [&](int s) {
    if (s >= 0 && static_cast<size_t>(s) < seen.size() && !seen[static_cast<size_t>(s)]) {
      seen[static_cast<size_t>(s)] = true;
      out.push_back(s);
    }
  };
  for (int s : ns->shards) add(s);
  for (const auto& r : ns->ranges) add(r.shard);
  for (const auto& r : ns->letter_ranges) add(r.shard);
  for (const auto& [c, o] : ns->letters) add(o.shard);
  for (uint16_t s : ns->slot_shard) add(s);
  add(ns->digits_shard);
  add(ns->empty_shard);
  add(ns->other_shard);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace shard_route
