// db-backup's Redis record format: encode and decode, pure (no server), see redis_records.hpp.
#include "db-backup/redis_records.hpp"

#include "db-backup/backend.hpp"

#include <array>
#include <cmath>
#include <cstdlib>

namespace db_backup::redis_records {

using envkit::Error;
using envkit::Exit;
using envkit::JsonValue;
using envkit::JsonWriter;
using envkit::Result;

namespace {

constexpr std::array<std::string_view, 6> kTypeNames = {"string", "hash", "list",
                                                         "set",    "zset", "stream"};

Error bad(std::string_view what) { return Error{Exit::data, "bad Redis record: " + std::string(what)}; }

Result<std::optional<int64_t>> optional_int(const JsonValue& obj, std::string_view name) {
  const JsonValue* v = envkit::find_member(obj, name);
  if (!v || v->IsNull()) return std::optional<int64_t>{};
  if (!v->IsInt64()) return bad(std::string(name) + " is not an integer");
  return std::optional<int64_t>{v->GetInt64()};
}

Result<std::string> plain_string(const JsonValue& obj, std::string_view name) {
  const JsonValue* v = envkit::find_member(obj, name);
  if (!v || !v->IsString()) return bad(std::string(name) + " is missing or not a string");
  return std::string(v->GetString(), v->GetStringLength());
}

void write_stream_value(JsonWriter& w, const Record& r) {
  w.begin_object().key("entries").begin_array();
  for (const StreamEntry& e : r.entries) {
    w.begin_array().string(e.id).begin_array();
    for (const std::string& f : e.fields) write_bytes(w, f);
    w.end_array().end_array();
  }
  w.end_array();
  if (r.stream) {
    const StreamMeta& m = *r.stream;
    w.key("last_id").string(m.last_id);
    w.key("entries_added");
    if (m.entries_added) w.number(*m.entries_added); else w.null();
    w.key("max_deleted_id");
    if (m.max_deleted_id.empty()) w.null(); else w.string(m.max_deleted_id);
    w.key("groups").begin_array();
    for (const StreamGroup& g : m.groups) {
      w.begin_object();
      w.key("name");
      write_bytes(w, g.name);
      w.key("last_delivered_id").string(g.last_delivered_id);
      w.key("entries_read");
      if (g.entries_read) w.number(*g.entries_read); else w.null();
      w.end_object();
    }
    w.end_array();
  }
  w.end_object();
}

Result<bool> read_stream_value(const JsonValue& v, Record& r) {
  if (!v.IsObject()) return bad("stream value is not an object");
  const JsonValue* entries = envkit::find_member(v, "entries");
  if (!entries || !entries->IsArray()) return bad("stream value has no entries array");
  for (const JsonValue& e : entries->GetArray()) {
    if (!e.IsArray() || e.Size() != 2 || !e[0].IsString() || !e[1].IsArray() || e[1].Size() % 2)
      return bad("stream entry is not [id, [field, value, ...]]");
    StreamEntry entry;
    entry.id.assign(e[0].GetString(), e[0].GetStringLength());
    for (const JsonValue& f : e[1].GetArray()) {
      auto bytes = read_bytes(f, "stream field");
      if (!bytes) return bytes.error();
      entry.fields.push_back(std::move(*bytes));
    }
    r.entries.push_back(std::move(entry));
  }
  if (envkit::find_member(v, "last_id")) {
    StreamMeta m;
    auto last = plain_string(v, "last_id");
    if (!last) return last.error();
    m.last_id = std::move(*last);
    auto added = optional_int(v, "entries_added");
    if (!added) return added.error();
    m.entries_added = *added;
    const JsonValue* maxdel = envkit::find_member(v, "max_deleted_id");
    if (maxdel && maxdel->IsString()) m.max_deleted_id = maxdel->GetString();
    const JsonValue* groups = envkit::find_member(v, "groups");
    if (groups && !groups->IsArray()) return bad("stream groups is not an array");
    if (groups) {
      for (const JsonValue& g : groups->GetArray()) {
        StreamGroup group;
        const JsonValue* name = envkit::find_member(g, "name");
        if (!name) return bad("stream group without a name");
        auto n = read_bytes(*name, "group name");
        if (!n) return n.error();
        group.name = std::move(*n);
        auto id = plain_string(g, "last_delivered_id");
        if (!id) return id.error();
        group.last_delivered_id = std::move(*id);
        auto read = optional_int(g, "entries_read");
        if (!read) return read.error();
        group.entries_read = *read;
        m.groups.push_back(std::move(group));
      }
    }
    r.stream = std::move(m);
  }
  return true;
}

}  // namespace

std::string_view type_name(KeyType t) { return kTypeNames[static_cast<size_t>(t)]; }

std::optional<KeyType> parse_type(std::string_view name) {
  for (size_t i = 0; i < kTypeNames.size(); ++i) {
    if (kTypeNames[i] == name) return static_cast<KeyType>(i);
  }
  return std::nullopt;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t j = 1; j < len; ++j) {
      auto cc = static_cast<uint8_t>(s[i + j]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

void write_bytes(JsonWriter& w, std::string_view bytes) {
  if (is_valid_utf8(bytes)) {
    w.string(bytes);
  } else {
    w.begin_object().key("base64").string(db_backup::base64_encode(bytes)).end_object();
  }
}

Result<std::string> read_bytes(const JsonValue& v, std::string_view what) {
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsObject() && v.MemberCount() == 1) {
    const JsonValue* b = envkit::find_member(v, "base64");
    if (b && b->IsString()) {
      auto decoded = db_backup::base64_decode({b->GetString(), b->GetStringLength()});
      if (decoded) return std::move(*decoded);
      return bad(std::string(what) + ": invalid base64");
    }
  }
  return bad(std::string(what) + " is neither a string nor {\"base64\":...}");
}

size_t Record::size() const {
  switch (type) {
    case KeyType::string: return 1;
    case KeyType::hash:
    case KeyType::zset: return pairs.size();
    case KeyType::list:
    case KeyType::set: return items.size();
    case KeyType::stream: return entries.size();
  }
  return 0;
}

std::string encode(const Record& r) {
  JsonWriter w;
  w.begin_object();
  w.key("key");
  write_bytes(w, r.key);
  w.key("type").string(type_name(r.type));
  if (r.part > 0) w.key("part").number(static_cast<int64_t>(r.part));
  w.key("expire_at_ms");
  if (r.expire_at_ms) w.number(*r.expire_at_ms); else w.null();
  w.key("value");
  switch (r.type) {
    case KeyType::string:
      write_bytes(w, r.bytes);
      break;
    case KeyType::hash:
    case KeyType::zset:
      w.begin_array();
      for (const auto& [a, b] : r.pairs) {
        w.begin_array();
        write_bytes(w, a);
        // A score is Redis's own text: always ASCII.
        if (r.type == KeyType::zset) w.string(b); else write_bytes(w, b);
        w.end_array();
      }
      w.end_array();
      break;
    case KeyType::list:
    case KeyType::set:
      w.begin_array();
      for (const std::string& item : r.items) write_bytes(w, item);
      w.end_array();
      break;
    case KeyType::stream:
      write_stream_value(w, r);
      break;
  }
  w.end_object();
  return w.take();
}

Result<Record> decode(std::string_view json) {
  auto doc = envkit::parse_json(json);
  if (!doc) return doc.error();
  return decode(*doc);
}

Result<Record> decode(const JsonValue& v) {
  if (!v.IsObject()) return bad("not an object");
  Record r;
  const JsonValue* key = envkit::find_member(v, "key");
  if (!key) return bad("no key");
  auto k = read_bytes(*key, "key");
  if (!k) return k.error();
  r.key = std::move(*k);
  auto type_text = plain_string(v, "type");
  if (!type_text) return type_text.error();
  auto type = parse_type(*type_text);
  if (!type) return bad("unknown type \"" + *type_text + "\"");
  r.type = *type;
  auto part = optional_int(v, "part");
  if (!part) return part.error();
  if (*part && (**part < 0 || **part > UINT32_MAX)) return bad("part out of range");
  r.part = part->value_or(0) > 0 ? static_cast<uint32_t>(**part) : 0;
  auto at = optional_int(v, "expire_at_ms");
  if (!at) return at.error();
  r.expire_at_ms = *at;
  if (r.expire_at_ms && *r.expire_at_ms < 0) return bad("expire_at_ms is negative");
  const JsonValue* value = envkit::find_member(v, "value");
  if (!value) return bad("no value");
  switch (r.type) {
    case KeyType::string: {
      auto b = read_bytes(*value, "string value");
      if (!b) return b.error();
      r.bytes = std::move(*b);
      break;
    }
    case KeyType::hash:
    case KeyType::zset: {
      if (!value->IsArray()) return bad(std::string(type_name(r.type)) + " value is not an array");
      for (const JsonValue& p : value->GetArray()) {
        if (!p.IsArray() || p.Size() != 2) return bad("hash/zset element is not a pair");
        auto a = read_bytes(p[0], r.type == KeyType::hash ? "hash field" : "zset member");
        if (!a) return a.error();
        std::string b;
        if (r.type == KeyType::zset) {
          if (!p[1].IsString()) return bad("zset score is not a string");
          b.assign(p[1].GetString(), p[1].GetStringLength());
          if (!is_valid_score(b)) return bad("zset score \"" + b + "\" is not a number");
        } else {
          auto hv = read_bytes(p[1], "hash value");
          if (!hv) return hv.error();
          b = std::move(*hv);
        }
        r.pairs.emplace_back(std::move(*a), std::move(b));
      }
      break;
    }
    case KeyType::list:
    case KeyType::set: {
      if (!value->IsArray()) return bad(std::string(type_name(r.type)) + " value is not an array");
      for (const JsonValue& item : value->GetArray()) {
        auto b = read_bytes(item, "element");
        if (!b) return b.error();
        r.items.push_back(std::move(*b));
      }
      break;
    }
    case KeyType::stream: {
      auto ok = read_stream_value(*value, r);
      if (!ok) return ok.error();
      break;
    }
  }
  return r;
}

bool is_valid_score(std::string_view score) {
  if (score == "inf" || score == "+inf" || score == "-inf") return true;
  if (score.empty() || score.size() > 64) return false;
  std::string text(score);
  char* end = nullptr;
  double d = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && !std::isnan(d);
}

}  // namespace db_backup::redis_records
