// db-backup's Redis backend: SCAN-based dump of one database, pipelined restore, live compare.
//
// Dump: SCAN walks the keyspace; for each batch of keys one pipeline reads TIME, TYPE and PTTL,
// a second the sizes, a third the whole values of small keys; a big key (over 1000 elements or
// 1 MiB) is read in ranges (HSCAN/SSCAN/ZRANGE/LRANGE/XRANGE/GETRANGE) and written as several
// records, so memory stays bounded by one range. This is not a point-in-time snapshot: keys
// written during the dump may or may not be in it (the manifest says so). A key that changed
// type between reads is read again (up to 3 times); one that vanished is counted, not written.
#include <algorithm>
#include <charconv>
#include <map>
#include <thread>
#include <unordered_map>

#include "db-backup/backend.hpp"
#include <envkit/log.hpp>
#include <envkit/redis.hpp>
#include <envkit/signals.hpp>
#include "db-backup/redis_records.hpp"

namespace db_backup {
namespace {

using envkit::RedisConnection;
using envkit::RedisReply;
using redis_records::KeyType;
using redis_records::Record;

using Command = std::vector<std::string>;

constexpr size_t kScanCount = 1000;        // keys asked per SCAN
constexpr size_t kRangeElements = 1000;    // elements per record of a big key
constexpr size_t kStringRange = 1 << 20;   // bytes per record of a big string
constexpr size_t kRestoreBatchBytes = 4 << 20;  // restore pipelines flush at this size
constexpr int kTypeRetries = 3;            // re-reads of a key that changed type
constexpr uint64_t kMaxScanRounds = 1ull << 40;  // SCAN always ends; this only bounds the loop

// What a dump or a live read saw, for the manifest and the log.
struct DumpCounts {
  uint64_t keys = 0;
  uint64_t records = 0;
  uint64_t vanished = 0;      // gone (deleted or expired) between SCAN and the value read
  uint64_t type_changed = 0;  // still changing type after kTypeRetries reads
  uint64_t big_keys = 0;
};

Error protocol_error(std::string_view what) {
  return Error{Exit::unavailable, "unexpected reply from Redis: " + std::string(what)};
}

bool is_wrongtype(const RedisReply& r) { return r.is_error() && r.str.rfind("WRONGTYPE", 0) == 0; }

std::optional<int64_t> to_int(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// Server time in Unix ms from a TIME reply.
Result<int64_t> time_ms(const RedisReply& r) {
  if (r.type != RedisReply::Type::array || r.elements.size() != 2) return protocol_error("TIME");
  auto s = to_int(r.elements[0].str);
  auto us = to_int(r.elements[1].str);
  if (!s || !us) return protocol_error("TIME");
  return *s * 1000 + *us / 1000;
}

// A stream id "ms-seq" as a comparable pair.
std::pair<uint64_t, uint64_t> stream_id(std::string_view id) {
  size_t dash = id.find('-');
  uint64_t ms = 0, seq = 0;
  std::from_chars(id.data(), id.data() + (dash == std::string_view::npos ? id.size() : dash), ms);
  if (dash != std::string_view::npos) std::from_chars(id.data() + dash + 1, id.data() + id.size(), seq);
  return {ms, seq};
}

// Value of `name` in a flat [name, value, name, value...] reply (XINFO in RESP2).
const RedisReply* field(const RedisReply& flat, std::string_view name) {
  for (size_t i = 0; i + 1 < flat.elements.size(); i += 2) {
    if (flat.elements[i].str == name) return &flat.elements[i + 1];
  }
  return nullptr;
}

Status check_array(const RedisReply& r, std::string_view what) {
  if (r.is_error()) return Error{Exit::unavailable, std::string(what) + ": " + r.str};
  if (r.type != RedisReply::Type::array) return protocol_error(what);
  return {};
}

void add_stream_entries(const RedisReply& r, Record& rec) {
  for (const RedisReply& e : r.elements) {
    if (e.elements.size() != 2) continue;
    redis_records::StreamEntry entry;
    entry.id = e.elements[0].str;
    for (const RedisReply& f : e.elements[1].elements) entry.fields.push_back(f.str);
    rec.entries.push_back(std::move(entry));
  }
}

redis_records::StreamMeta stream_meta(const RedisReply& info, const RedisReply& groups) {
  redis_records::StreamMeta m;
  if (const RedisReply* v = field(info, "last-generated-id")) m.last_id = v->str;
  if (const RedisReply* v = field(info, "entries-added"); v && v->type == RedisReply::Type::integer)
    m.entries_added = v->integer;
  if (const RedisReply* v = field(info, "max-deleted-entry-id")) m.max_deleted_id = v->str;
  for (const RedisReply& g : groups.elements) {
    redis_records::StreamGroup group;
    if (const RedisReply* v = field(g, "name")) group.name = v->str;
    if (const RedisReply* v = field(g, "last-delivered-id")) group.last_delivered_id = v->str;
    if (const RedisReply* v = field(g, "entries-read"); v && v->type == RedisReply::Type::integer)
      group.entries_read = v->integer;
    m.groups.push_back(std::move(group));
  }
  return m;
}

// Reads keys and hands their records to `emit` in key order (parts of one key contiguous).
class KeyReader {
 public:
  using Emit = std::function<Status(const Record&)>;
  KeyReader(RedisConnection& conn, DumpCounts& counts, Emit emit)
      : conn_(conn), counts_(counts), emit_(std::move(emit)) {}

  // Walks the database with SCAN (only keys matching `match`, a glob, when not empty).
  // `stopping` is polled between batches.
  Status scan_all(const std::function<bool()>& stopping, std::chrono::milliseconds delay,
                  const std::string& match = "") {
    std::string cursor = "0";
    for (uint64_t round = 0; round < kMaxScanRounds; ++round) {
      if (stopping()) return Error{Exit::temp_fail, "stopped by a signal"};
      Command scan{"SCAN", cursor, "COUNT", std::to_string(kScanCount)};
      if (!match.empty()) scan.insert(scan.end(), {"MATCH", match});
      auto reply = conn_.command(scan);
      if (!reply) return reply.error();
      if (auto s = check_array(*reply, "SCAN"); !s) return s;
      if (reply->elements.size() != 2) return protocol_error("SCAN");
      cursor = reply->elements[0].str;
      std::vector<std::string> keys;
      keys.reserve(reply->elements[1].elements.size());
      for (RedisReply& k : reply->elements[1].elements) keys.push_back(std::move(k.str));
      if (auto s = read_keys(keys, 0); !s) return s;
      if (delay.count() > 0) std::this_thread::sleep_for(delay);
      if (cursor == "0") return {};
    }
    return Error{Exit::software, "SCAN did not finish"};
  }

  // Reads these keys (type, TTL, value) and emits their records.
  Status read_keys(const std::vector<std::string>& keys, int attempt) {
    if (keys.empty()) return {};
    struct Key {
      const std::string* name;
      KeyType type;
      std::optional<int64_t> at;
      long long size = 0;
    };
    // Round 1: type and absolute expiry of each key (PEXPIRETIME, Redis 7; else TIME + PTTL).
    if (!pexpiretime_known_) {
      auto probe = conn_.command({"PEXPIRETIME", "envkit:db-backup:probe"});
      if (!probe) return probe.error();
      has_pexpiretime_ = !probe->is_error();
      pexpiretime_known_ = true;
    }
    std::vector<Command> cmds{{"TIME"}};
    for (const std::string& k : keys) {
      cmds.push_back({"TYPE", k});
      cmds.push_back({has_pexpiretime_ ? "PEXPIRETIME" : "PTTL", k});
    }
    auto r1 = conn_.pipeline(cmds);
    if (!r1) return r1.error();
    auto now = time_ms((*r1)[0]);
    if (!now) return now.error();
    std::vector<Key> live;
    for (size_t i = 0; i < keys.size(); ++i) {
      const RedisReply& t = (*r1)[1 + 2 * i];
      const RedisReply& p = (*r1)[2 + 2 * i];
      if (t.is_error()) return Error{Exit::unavailable, "TYPE: " + t.str};
      auto type = redis_records::parse_type(t.str);
      if (!type) {
        if (t.str == "none") {
          ++counts_.vanished;
          continue;
        }
        return Error{Exit::data, "key of unsupported type \"" + t.str + "\" (module type?)"};
      }
      Key k{&keys[i], *type, {}};
      if (p.type == RedisReply::Type::integer && p.integer >= 0) {
        k.at = has_pexpiretime_ ? p.integer : *now + p.integer;
      }
      live.push_back(k);
    }
    // Round 2: sizes, to tell small keys (read whole) from big ones (read in ranges).
    cmds.clear();
    for (const Key& k : live) {
      static constexpr const char* kSize[] = {"STRLEN", "HLEN", "LLEN", "SCARD", "ZCARD", "XLEN"};
      cmds.push_back({kSize[static_cast<size_t>(k.type)], *k.name});
    }
    auto r2 = conn_.pipeline(cmds);
    if (!r2) return r2.error();
    std::vector<std::string> retry;
    std::vector<Key> small, big;
    for (size_t i = 0; i < live.size(); ++i) {
      const RedisReply& s = (*r2)[i];
      if (is_wrongtype(s)) {
        retry.push_back(*live[i].name);
        continue;
      }
      if (s.type != RedisReply::Type::integer) return protocol_error("size of a key: " + s.str);
      live[i].size = s.integer;
      size_t limit = live[i].type == KeyType::string ? kStringRange : kRangeElements;
      (static_cast<size_t>(s.integer) > limit ? big : small).push_back(live[i]);
    }
    // Round 3: whole values of the small keys, in SCAN order.
    cmds.clear();
    for (const Key& k : small) {
      const std::string& n = *k.name;
      switch (k.type) {
        case KeyType::string: cmds.push_back({"GET", n}); break;
        case KeyType::hash: cmds.push_back({"HGETALL", n}); break;
        case KeyType::list: cmds.push_back({"LRANGE", n, "0", "-1"}); break;
        case KeyType::set: cmds.push_back({"SMEMBERS", n}); break;
        case KeyType::zset: cmds.push_back({"ZRANGE", n, "0", "-1", "WITHSCORES"}); break;
        case KeyType::stream:
          cmds.push_back({"XRANGE", n, "-", "+"});
          cmds.push_back({"XINFO", "STREAM", n});
          cmds.push_back({"XINFO", "GROUPS", n});
          break;
      }
    }
    auto r3 = conn_.pipeline(cmds);
    if (!r3) return r3.error();
    size_t at = 0;
    for (const Key& k : small) {
      Record rec;
      rec.key = *k.name;
      rec.type = k.type;
      rec.expire_at_ms = k.at;
      const RedisReply& v = (*r3)[at++];
      if (is_wrongtype(v) || (k.type == KeyType::stream && is_wrongtype((*r3)[at]))) {
        if (k.type == KeyType::stream) at += 2;
        retry.push_back(*k.name);
        continue;
      }
      if (v.is_error()) return Error{Exit::unavailable, "reading a value: " + v.str};
      bool gone = false;
      switch (k.type) {
        case KeyType::string:
          gone = v.is_nil();
          rec.bytes = v.str;
          break;
        case KeyType::hash:
        case KeyType::zset:
          gone = v.elements.empty();
          for (size_t j = 0; j + 1 < v.elements.size(); j += 2)
            rec.pairs.emplace_back(v.elements[j].str, v.elements[j + 1].str);
          break;
        case KeyType::list:
        case KeyType::set:
          gone = v.elements.empty();
          for (const RedisReply& e : v.elements) rec.items.push_back(e.str);
          break;
        case KeyType::stream: {
          const RedisReply& info = (*r3)[at++];
          const RedisReply& groups = (*r3)[at++];
          gone = info.is_error();  // "ERR no such key": an empty stream still answers XINFO
          add_stream_entries(v, rec);
          if (!gone) rec.stream = stream_meta(info, groups);
          break;
        }
      }
      if (gone) {
        ++counts_.vanished;
        continue;
      }
      ++counts_.keys;
      if (auto s = emit(rec); !s) return s;
    }
    for (const Key& k : big) {
      if (auto s = read_big(*k.name, k.type, k.at, retry); !s) return s;
    }
    if (!retry.empty()) {
      if (attempt + 1 < kTypeRetries) return read_keys(retry, attempt + 1);
      counts_.type_changed += retry.size();
      envkit::log_warning("" + std::to_string(retry.size()) +
                          " Redis key(s) kept changing type during the dump and were skipped");
    }
    return {};
  }

 private:
  Status emit(const Record& r) {
    ++counts_.records;
    return emit_(r);
  }

  // Reads one big key range by range, one record per range. A key that changes type part-way
  // is re-read from the start when nothing was written yet, else kept as far as it was read.
  Status read_big(const std::string& key, KeyType type, std::optional<int64_t> at,
                  std::vector<std::string>& retry) {
    ++counts_.big_keys;
    Record rec;
    rec.key = key;
    rec.type = type;
    rec.expire_at_ms = at;
    uint32_t part = 0;
    std::string cursor = "0";   // HSCAN/SSCAN
    int64_t index = 0;          // LRANGE/ZRANGE/GETRANGE position
    std::string last_id = "-";  // XRANGE
    if (type == KeyType::stream) {
      auto meta = conn_.pipeline({{"XINFO", "STREAM", key}, {"XINFO", "GROUPS", key}});
      if (!meta) return meta.error();
      if (is_wrongtype((*meta)[0])) {
        retry.push_back(key);
        return {};
      }
      if ((*meta)[0].is_error()) {
        ++counts_.vanished;
        return {};
      }
      rec.stream = stream_meta((*meta)[0], (*meta)[1]);
    }
    // Each range either advances or ends the loop; the bound only guards against a key that
    // grows faster than it is read.
    for (uint64_t round = 0; round < (1ull << 32); ++round) {
      Command cmd;
      std::string end = std::to_string(index + static_cast<int64_t>(kRangeElements) - 1);
      switch (type) {
        case KeyType::string:
          cmd = {"GETRANGE", key, std::to_string(index),
                 std::to_string(index + static_cast<int64_t>(kStringRange) - 1)};
          break;
        case KeyType::hash: cmd = {"HSCAN", key, cursor, "COUNT", std::to_string(kRangeElements)}; break;
        case KeyType::set: cmd = {"SSCAN", key, cursor, "COUNT", std::to_string(kRangeElements)}; break;
        case KeyType::list: cmd = {"LRANGE", key, std::to_string(index), end}; break;
        case KeyType::zset: cmd = {"ZRANGE", key, std::to_string(index), end, "WITHSCORES"}; break;
        case KeyType::stream:
          cmd = {"XRANGE", key, last_id == "-" ? "-" : "(" + last_id, "+", "COUNT",
                 std::to_string(kRangeElements)};
          break;
      }
      auto reply = conn_.command(cmd);
      if (!reply) return reply.error();
      if (is_wrongtype(*reply)) {
        if (part == 0) {
          retry.push_back(key);
        } else {
          ++counts_.type_changed;
          envkit::log_warning("a Redis key changed type while it was read in ranges; "
                              "kept what was read before the change");
        }
        return {};
      }
      if (reply->is_error()) return Error{Exit::unavailable, cmd[0] + ": " + reply->str};
      bool done = false;
      rec.bytes.clear();
      rec.items.clear();
      rec.pairs.clear();
      rec.entries.clear();
      switch (type) {
        case KeyType::string:
          rec.bytes = std::move(reply->str);
          index += static_cast<int64_t>(rec.bytes.size());
          done = rec.bytes.size() < kStringRange;
          if (rec.bytes.empty() && part > 0) goto finished;
          break;
        case KeyType::hash:
        case KeyType::set: {
          if (reply->elements.size() != 2) return protocol_error(cmd[0]);
          cursor = reply->elements[0].str;
          auto& els = reply->elements[1].elements;
          if (type == KeyType::hash) {
            for (size_t j = 0; j + 1 < els.size(); j += 2) rec.pairs.emplace_back(els[j].str, els[j + 1].str);
          } else {
            for (auto& e : els) rec.items.push_back(std::move(e.str));
          }
          done = cursor == "0";
          // HSCAN may return an empty page with more to come: write nothing for it.
          if (rec.size() == 0 && !done) continue;
          break;
        }
        case KeyType::list:
          for (auto& e : reply->elements) rec.items.push_back(std::move(e.str));
          index += static_cast<int64_t>(rec.items.size());
          done = rec.items.size() < kRangeElements;
          break;
        case KeyType::zset:
          for (size_t j = 0; j + 1 < reply->elements.size(); j += 2)
            rec.pairs.emplace_back(reply->elements[j].str, reply->elements[j + 1].str);
          index += static_cast<int64_t>(rec.pairs.size());
          done = rec.pairs.size() < kRangeElements;
          break;
        case KeyType::stream:
          add_stream_entries(*reply, rec);
          if (!rec.entries.empty()) last_id = rec.entries.back().id;
          done = rec.entries.size() < kRangeElements;
          break;
      }
      if (rec.size() == 0 && type != KeyType::string && type != KeyType::stream) {
        if (part == 0) ++counts_.vanished;  // deleted between the size read and the first range
        goto finished;
      }
      if (rec.size() == 0 && type == KeyType::stream && part > 0) goto finished;
      rec.part = part++;
      if (part == 1) ++counts_.keys;
      if (auto s = emit(rec); !s) return s;
      rec.stream.reset();
      if (done) goto finished;
    }
  finished:
    return {};
  }

  RedisConnection& conn_;
  DumpCounts& counts_;
  Emit emit_;
  bool pexpiretime_known_ = false;
  bool has_pexpiretime_ = false;
};

// Writes one object's records into chunk files of about chunk_rows records, starting a new
// file only at a key boundary so that every file restores on its own.
class ChunkedOutput {
 public:
  ChunkedOutput(BackupWriter& out, std::string object) : out_(out), object_(std::move(object)) {}

  Status write(const Record& r) {
    if (!file_ || (r.part == 0 && file_->rows() >= out_.options().chunk_rows)) {
      if (auto s = close(); !s) return s;
      auto f = out_.open_chunk(object_, chunks_);
      if (!f) return f.error();
      file_.emplace(std::move(*f));
    }
    std::string line = redis_records::encode(r);
    if (auto s = file_->write_record(line); !s) return s;
    ++rows_;
    out_.progress().advance(object_, 1, line.size() + 1);
    return {};
  }

  // Finishes the last file; an empty keyspace still gets one (empty) file.
  Status finish() {
    if (!file_) {
      auto f = out_.open_chunk(object_, 0);
      if (!f) return f.error();
      file_.emplace(std::move(*f));
    }
    return close();
  }
  uint64_t rows() const { return rows_; }

 private:
  // A full chunk joins the object through add_chunk(): made durable off this thread.
  Status close() {
    if (!file_) return {};
    DataFileWriter done = std::move(*file_);
    file_.reset();
    return out_.add_chunk(object_, chunks_++, std::move(done));
  }

  BackupWriter& out_;
  std::string object_;
  std::optional<DataFileWriter> file_;
  size_t chunks_ = 0;
  uint64_t rows_ = 0;
};

// A key's content folded into a fixed-size digest, so verify --against compares any key in
// bounded memory: sets and hashes fold order-free (sum), lists and streams by position.
struct KeyDigest {
  KeyType type = KeyType::string;
  uint64_t sum = 0;
  uint64_t elements = 0;
  bool has_ttl = false;
  std::string shown_key;  // the key as the record shows it ({"key":...})
};

uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb3fe1a85ec53ULL;
  return h ^ (h >> 33);
}

uint64_t hash_bytes(uint64_t seed, std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL ^ mix(seed + s.size());
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return mix(h);
}

void fold(KeyDigest& d, const Record& r) {
  d.type = r.type;
  d.has_ttl = r.expire_at_ms.has_value();
  switch (r.type) {
    case KeyType::string:
      // Ranges are cut at the same sizes on both sides; position keeps them ordered.
      d.sum += hash_bytes(d.elements++, r.bytes);
      break;
    case KeyType::hash:
    case KeyType::zset:
      for (const auto& [a, b] : r.pairs) d.sum += hash_bytes(hash_bytes(0, a), b), ++d.elements;
      break;
    case KeyType::set:
      for (const auto& m : r.items) d.sum += hash_bytes(0, m), ++d.elements;
      break;
    case KeyType::list:
      for (const auto& e : r.items) d.sum += hash_bytes(d.elements++, e);
      break;
    case KeyType::stream:
      for (const auto& e : r.entries) {
        uint64_t h = hash_bytes(d.elements++, e.id);
        for (const auto& f : e.fields) h = hash_bytes(h, f);
        d.sum += h;
      }
      if (r.stream) d.sum += hash_bytes(7, r.stream->last_id);
      break;
  }
}

std::string key_json(const std::string& key) {
  envkit::JsonWriter w;
  w.begin_object().key("key");
  redis_records::write_bytes(w, key);
  w.end_object();
  return w.take();
}

std::string digest_json(const KeyDigest& d) {
  envkit::JsonWriter w;
  w.begin_object().key("type").string(redis_records::type_name(d.type));
  w.key("elements").number(d.elements).key("ttl").boolean(d.has_ttl);
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(d.sum));
  w.key("digest").string(hex).end_object();
  return w.take();
}

class RedisBackend final : public Backend {
 public:
  RedisBackend(envkit::Url url, BackendOptions options)
      : url_(std::move(url)), options_(std::move(options)) {}

  Status dump(BackupWriter& out) override {
    auto conn = RedisConnection::connect(url_, options_.connection);
    if (!conn) return conn.error();
    std::string object = "db" + db_number();
    auto info = conn->command({"INFO", "server"});
    if (info && info->type == RedisReply::Type::string) {
      size_t p = info->str.find("redis_version:");
      if (p != std::string::npos) {
        size_t e = info->str.find_first_of("\r\n", p);
        out.set_server_version(info->str.substr(p + 14, e - p - 14));
      }
    }
    out.set_database(db_number());
    if (!selected(out.options(), object)) {
      return Error{Exit::usage, "no such object: Redis dumps one keyspace, \"" + object + "\""};
    }
    auto size = conn->command({"DBSIZE"});
    if (!size) return size.error();
    auto started = conn->command({"TIME"});
    if (!started) return started.error();
    auto started_ms = time_ms(*started);
    if (!started_ms) return started_ms.error();

    out.set_snapshot(false, R"({"method":"scan","point_in_time":false})");
    out.warn("Redis SCAN dump is not point-in-time: keys written during the dump may or may not "
             "be in it");
    out.progress().begin_object(object, static_cast<uint64_t>(size->integer));

    ChunkedOutput files(out, object);
    DumpCounts counts;
    KeyReader reader(*conn, counts, [&](const Record& r) { return files.write(r); });
    const DumpOptions& opts = out.options();
    // --where is a SCAN MATCH glob for Redis ("user:*"): a partial keyspace, said in metadata.
    if (auto s = reader.scan_all([&] { return out.stopping(); }, opts.row_delay, opts.where); !s) return s;
    if (auto s = files.finish(); !s) return s;
    out.progress().end_object(object);

    ObjectEntry entry;
    entry.name = object;
    entry.kind = "keyspace";
    entry.key = {"key", "part"};
    envkit::JsonWriter meta;
    meta.begin_object();
    meta.key("mode").string("scan").key("point_in_time").boolean(false);
    meta.key("started_at_ms").number(*started_ms);
    meta.key("match");
    if (opts.where.empty()) meta.null(); else meta.string(opts.where);
    meta.key("keys").number(counts.keys).key("big_keys").number(counts.big_keys);
    meta.key("vanished_during_dump").number(counts.vanished);
    meta.key("type_changed_during_dump").number(counts.type_changed);
    meta.key("record_format").string("redis-records/1");
    meta.end_object();
    entry.metadata = meta.take();
    out.add_object(std::move(entry));
    envkit::log_info("" + object + ": " + std::to_string(counts.keys) + " keys in " +
                     std::to_string(files.rows()) + " records (" + std::to_string(counts.vanished) +
                     " vanished during the dump)");
    if (counts.type_changed > 0) {
      out.warn(std::to_string(counts.type_changed) + " key(s) changed type during the dump and are "
               "missing or partial");
    }
    return {};
  }

  Status restore(const BackupReader& in, const RestoreOptions& opts) override {
    auto conn = RedisConnection::connect(url_, options_.connection);
    if (!conn) return conn.error();
    std::vector<const ObjectEntry*> objects;
    for (const ObjectEntry& o : in.manifest().objects) {
      if (opts.include.empty() ||
          std::find(opts.include.begin(), opts.include.end(), o.name) != opts.include.end())
        objects.push_back(&o);
    }
    if (objects.size() > 1) {
      return Error{Exit::usage, "the backup holds several Redis keyspaces; choose one to restore "
                                "into db " + db_number()};
    }
    auto size = conn->command({"DBSIZE"});
    if (!size) return size.error();
    if (size->integer > 0 && !opts.replace) {
      return Error{Exit::data, "Redis db " + db_number() + " at " + conn->endpoint() + " holds " +
                                   std::to_string(size->integer) +
                                   " keys: restore into an empty db, or give --replace"};
    }
    auto now = conn->command({"TIME"});
    if (!now) return now.error();
    auto now_ms = time_ms(*now);
    if (!now_ms) return now_ms.error();

    Restorer r(*conn, std::max<size_t>(opts.batch_rows, 1), *now_ms);
    for (const ObjectEntry* o : objects) {
      if (in.progress) in.progress->begin_object(o->name, o->rows);
      auto read = in.for_each_record(*o, [&](std::string_view text, const FileEntry& f, uint64_t line) -> Status {
        if (envkit::stop_requested()) return Error{Exit::temp_fail, "stopped by a signal"};
        auto rec = redis_records::decode(text);
        if (!rec) return rec.error().context(f.name + ":" + std::to_string(line));
        if (auto s = r.add(*rec); !s) return s;
        if (in.progress) in.progress->advance(o->name, 1, text.size() + 1);
        return {};
      });
      if (!read) return read;
      if (in.progress) in.progress->end_object(o->name);
    }
    if (auto s = r.finish(); !s) return s;
    envkit::log_info("restored " + std::to_string(r.keys()) + " Redis keys into db " +
                     db_number() + "; skipped " + std::to_string(r.expired()) +
                     " already expired");
    if (r.failed() > 0) {
      return Error{Exit::failure, std::to_string(r.failed()) + " Redis command(s) failed during "
                                  "the restore; first: " + r.first_failure()};
    }
    return {};
  }

  Status compare(const BackupReader& in, const ObjectEntry& object,
                 const std::function<void(const Difference&)>& report) override {
    auto conn = RedisConnection::connect(url_, options_.connection);
    if (!conn) return conn.error();
    std::unordered_map<std::string, KeyDigest> backup;
    auto read = in.for_each_record(object, [&](std::string_view text, const FileEntry& f, uint64_t line) -> Status {
      auto rec = redis_records::decode(text);
      if (!rec) return rec.error().context(f.name + ":" + std::to_string(line));
      KeyDigest& d = backup[rec->key];
      if (rec->part == 0) d = KeyDigest{};  // a key SCAN returned twice: the later read wins
      fold(d, *rec);
      return {};
    });
    if (!read) return read;
    // Read the live keyspace the same way as a dump, folding each key as it comes.
    DumpCounts counts;
    std::string current;
    KeyDigest live;
    bool have = false;
    auto settle = [&]() {
      if (!have) return;
      have = false;
      auto it = backup.find(current);
      if (it == backup.end()) {
        report(Difference{object.name, "added", key_json(current), "", digest_json(live)});
        return;
      }
      const KeyDigest& b = it->second;
      if (b.type != live.type || b.sum != live.sum || b.elements != live.elements ||
          b.has_ttl != live.has_ttl) {
        report(Difference{object.name, "changed", key_json(current), digest_json(b), digest_json(live)});
      }
      backup.erase(it);
    };
    KeyReader reader(*conn, counts, [&](const Record& rec) -> Status {
      if (!have || rec.part == 0 || rec.key != current) {
        settle();
        current = rec.key;
        live = KeyDigest{};
        have = true;
      }
      fold(live, rec);
      return {};
    });
    // A backup of part of the keyspace (--where GLOB) is compared with that part only.
    std::string match;
    if (auto meta = envkit::parse_json(object.metadata); meta) {
      const envkit::JsonValue* m = envkit::find_member(*meta, "match");
      if (m && m->IsString()) match = m->GetString();
    }
    if (auto s = reader.scan_all([] { return envkit::stop_requested(); }, std::chrono::milliseconds(0), match); !s)
      return s;
    settle();
    // What is left was in the backup and is not live. Sorted, so the output is stable.
    std::map<std::string, const KeyDigest*> removed;
    for (const auto& [k, d] : backup) removed.emplace(k, &d);
    for (const auto& [k, d] : removed) {
      report(Difference{object.name, "removed", key_json(k), digest_json(*d), ""});
    }
    return {};
  }

 private:
  // Replays records as pipelined writes; a key's parts are contiguous, so it is finished
  // (stream id and groups, expiry) when the next key starts.
  class Restorer {
   public:
    Restorer(RedisConnection& conn, size_t batch, int64_t now_ms)
        : conn_(conn), batch_(batch), now_ms_(now_ms) {}

    Status add(const Record& rec) {
      bool same_key = open_ && rec.part > 0 && rec.key == key_;
      if (!same_key) {
        if (auto s = finish_key(); !s) return s;
        key_ = rec.key;
        open_ = true;
        skip_ = rec.expire_at_ms && *rec.expire_at_ms <= now_ms_;
        expire_at_ = rec.expire_at_ms;
        meta_ = rec.stream;
        max_id_.clear();
        if (skip_) {
          ++expired_;
          return {};
        }
        ++keys_;
        // The db was empty (or --replace): DEL only clears an earlier copy of the same key
        // (SCAN may return a key twice) or the key being replaced.
        push({"DEL", rec.key});
        if (rec.type == KeyType::stream) {
          // A stream can exist with no entries: create it empty, then add entries.
          push({"XGROUP", "CREATE", rec.key, "envkit-restore", "$", "MKSTREAM"});
          push({"XGROUP", "DESTROY", rec.key, "envkit-restore"});
        }
      }
      if (skip_) return {};
      const std::string& k = rec.key;
      switch (rec.type) {
        case KeyType::string:
          push({rec.part == 0 ? "SET" : "APPEND", k, rec.bytes});
          break;
        case KeyType::hash:
        case KeyType::zset: {
          bool z = rec.type == KeyType::zset;
          for (size_t i = 0; i < rec.pairs.size(); i += kRangeElements) {
            Command c{z ? "ZADD" : "HSET", k};
            for (size_t j = i; j < std::min(rec.pairs.size(), i + kRangeElements); ++j) {
              c.push_back(z ? rec.pairs[j].second : rec.pairs[j].first);
              c.push_back(z ? rec.pairs[j].first : rec.pairs[j].second);
            }
            push(std::move(c));
          }
          break;
        }
        case KeyType::list:
        case KeyType::set:
          for (size_t i = 0; i < rec.items.size(); i += kRangeElements) {
            Command c{rec.type == KeyType::list ? "RPUSH" : "SADD", k};
            c.insert(c.end(), rec.items.begin() + static_cast<ptrdiff_t>(i),
                     rec.items.begin() + static_cast<ptrdiff_t>(std::min(rec.items.size(), i + kRangeElements)));
            push(std::move(c));
          }
          break;
        case KeyType::stream:
          for (const auto& e : rec.entries) {
            Command c{"XADD", k, e.id};
            c.insert(c.end(), e.fields.begin(), e.fields.end());
            push(std::move(c));
            if (max_id_.empty() || stream_id(e.id) > stream_id(max_id_)) max_id_ = e.id;
          }
          break;
      }
      // Bounded by commands (--batch-rows) and by bytes, so big values do not pile up.
      return pending_.size() >= batch_ || pending_bytes_ >= kRestoreBatchBytes ? flush() : Status{};
    }

    Status finish() {
      if (auto s = finish_key(); !s) return s;
      return flush();
    }
    uint64_t keys() const { return keys_; }
    uint64_t expired() const { return expired_; }
    uint64_t failed() const { return failed_; }
    const std::string& first_failure() const { return first_failure_; }

   private:
    void push(Command c) {
      for (const std::string& a : c) pending_bytes_ += a.size() + 16;
      pending_.push_back(std::move(c));
    }

    Status finish_key() {
      if (!open_ || skip_) {
        open_ = false;
        return {};
      }
      open_ = false;
      if (meta_) {
        // Entries added while a big stream was read can be newer than the id read first.
        std::string last = meta_->last_id;
        if (!max_id_.empty() && stream_id(max_id_) > stream_id(last)) last = max_id_;
        Command c{"XSETID", key_, last};
        if (meta_->entries_added && !meta_->max_deleted_id.empty() && last == meta_->last_id) {
          c.insert(c.end(), {"ENTRIESADDED", std::to_string(*meta_->entries_added), "MAXDELETEDID",
                             meta_->max_deleted_id});
        }
        push(std::move(c));
        for (const auto& g : meta_->groups) {
          Command gc{"XGROUP", "CREATE", key_, g.name, g.last_delivered_id};
          if (g.entries_read) gc.insert(gc.end(), {"ENTRIESREAD", std::to_string(*g.entries_read)});
          push(std::move(gc));
        }
      }
      if (expire_at_) push({"PEXPIREAT", key_, std::to_string(*expire_at_)});
      return {};
    }

    Status flush() {
      if (pending_.empty()) return {};
      auto replies = conn_.pipeline(pending_);
      if (!replies) return replies.error();
      for (size_t i = 0; i < replies->size(); ++i) {
        if ((*replies)[i].is_error()) {
          if (failed_++ == 0) first_failure_ = pending_[i][0] + ": " + (*replies)[i].str;
        }
      }
      pending_.clear();
      pending_bytes_ = 0;
      return {};
    }

    RedisConnection& conn_;
    size_t batch_;
    int64_t now_ms_;
    std::vector<Command> pending_;
    size_t pending_bytes_ = 0;
    bool open_ = false;
    bool skip_ = false;
    std::string key_;
    std::optional<int64_t> expire_at_;
    std::optional<redis_records::StreamMeta> meta_;
    std::string max_id_;
    uint64_t keys_ = 0, expired_ = 0, failed_ = 0;
    std::string first_failure_;
  };

  std::string db_number() const {
    std::string p = url_.path;
    while (!p.empty() && p.front() == '/') p.erase(0, 1);
    return p.empty() ? "0" : p;
  }

  static bool selected(const DumpOptions& o, const std::string& object) {
    auto has = [&](const std::vector<std::string>& v) {
      return std::find(v.begin(), v.end(), object) != v.end();
    };
    return (o.include.empty() || has(o.include)) && !has(o.exclude);
  }

  envkit::Url url_;
  BackendOptions options_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_redis_backend(const envkit::Url& url, const BackendOptions& options) {
  return std::unique_ptr<Backend>(std::make_unique<RedisBackend>(url, options));
}

}  // namespace db_backup
