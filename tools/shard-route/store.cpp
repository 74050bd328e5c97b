// The three shard stores (MongoDB, MySQL/MariaDB, Redis) and the CRUD subcommands over them.
#include "shard-route/store.hpp"

#include <algorithm>
#include <cstdio>
#include <future>
#include <iostream>
#include <map>
#include <string>
#include <utility>

#include <envkit/exit_status.hpp>
#include <envkit/log.hpp>
#include <envkit/mongo.hpp>
#include <envkit/mysql.hpp>
#include <envkit/redis.hpp>

namespace shard_route {

using envkit::Error;
using envkit::Failure;
using envkit::fail;
using envkit::JsonValue;
using envkit::JsonWriter;
using envkit::Result;
using envkit::Status;

// --- documents and filters -------------------------------------------------------------

Result<std::map<std::string, std::string>> ShardStore::get_many(const std::vector<std::string>& keys) {
  std::map<std::string, std::string> found;
  for (const auto& key : keys) {
    auto doc = get(key);
    if (!doc) return doc.error();
    if (*doc) found.emplace(key, std::move(**doc));
  }
  return found;
}

Result<uint64_t> ShardStore::del_many(const std::vector<std::string>& keys) {
  uint64_t n = 0;
  for (const auto& key : keys) {
    auto gone = del(key);
    if (!gone) return gone.error();
    n += *gone ? 1 : 0;
  }
  return n;
}

Result<std::string> key_of(const JsonValue& doc, const std::string& field) {
  const JsonValue* v = value_at(doc, field);
  if (!v) return fail(Failure::bad_data, "no key field '" + field + "'");
  if (v->IsString()) return std::string(v->GetString(), v->GetStringLength());
  if (v->IsInt64()) return std::to_string(v->GetInt64());
  if (v->IsUint64()) return std::to_string(v->GetUint64());
  return fail(Failure::bad_data, "key field '" + field + "' is neither a string nor an integer");
}

const JsonValue* value_at(const JsonValue& doc, std::string_view path) {
  const JsonValue* v = &doc;
  while (v) {
    auto dot = path.find('.');
    v = envkit::find_member(*v, path.substr(0, dot));
    if (dot == std::string_view::npos) return v;
    path = path.substr(dot + 1);
  }
  return nullptr;
}

int compare_values(const JsonValue* a, const JsonValue* b) {
  auto rank = [](const JsonValue* v) {
    if (!v || v->IsNull()) return 0;
    if (v->IsNumber()) return 1;
    if (v->IsString()) return 2;
    return 3;
  };
  int ra = rank(a), rb = rank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  if (ra == 0) return 0;
  if (ra == 1) {
    double x = a->GetDouble(), y = b->GetDouble();
    if (a->IsInt64() && b->IsInt64()) {
      return a->GetInt64() < b->GetInt64() ? -1 : a->GetInt64() > b->GetInt64();
    }
    return x < y ? -1 : x > y;
  }
  if (ra == 2) {
    std::string_view x(a->GetString(), a->GetStringLength()), y(b->GetString(), b->GetStringLength());
    return x.compare(y) < 0 ? -1 : x.compare(y) > 0;
  }
  std::string x = envkit::to_json(*a), y = envkit::to_json(*b);
  return x.compare(y) < 0 ? -1 : x.compare(y) > 0;
}

Result<bool> matches(const JsonValue& doc, const JsonValue& filter) {
  if (!filter.IsObject()) return Error{envkit::Exit::usage, "a filter is a JSON object"};
  for (auto it = filter.MemberBegin(); it != filter.MemberEnd(); ++it) {
    std::string_view field(it->name.GetString(), it->name.GetStringLength());
    if (!field.empty() && field[0] == '$') {
      return Error{envkit::Exit::usage, "filter operator " + std::string(field) +
                                            " is understood by MongoDB shards only"};
    }
    const JsonValue* v = value_at(doc, field);
    const JsonValue& cond = it->value;
    bool is_ops = cond.IsObject() && cond.MemberCount() > 0 && cond.MemberBegin()->name.GetString()[0] == '$';
    if (!is_ops) {
      if (!v || compare_values(v, &cond) != 0 || (v->IsNumber() != cond.IsNumber())) return false;
      continue;
    }
    for (auto op = cond.MemberBegin(); op != cond.MemberEnd(); ++op) {
      std::string_view name(op->name.GetString(), op->name.GetStringLength());
      const JsonValue& arg = op->value;
      // Comparisons hold between values of one kind only, as in MongoDB.
      bool same_kind = v && ((v->IsNumber() && arg.IsNumber()) || (v->IsString() && arg.IsString()));
      int c = v ? compare_values(v, &arg) : -2;
      bool ok;
      if (name == "$eq") ok = v && c == 0 && same_kind;
      else if (name == "$ne") ok = !(v && c == 0 && same_kind);
      else if (name == "$gt") ok = same_kind && c > 0;
      else if (name == "$gte") ok = same_kind && c >= 0;
      else if (name == "$lt") ok = same_kind && c < 0;
      else if (name == "$lte") ok = same_kind && c <= 0;
      else if (name == "$in") {
        if (!arg.IsArray()) return Error{envkit::Exit::usage, "$in takes an array"};
        ok = false;
        for (const auto& x : arg.GetArray()) {
          if (v && compare_values(v, &x) == 0 && v->IsNumber() == x.IsNumber()) ok = true;
        }
      } else {
        return Error{envkit::Exit::usage, "filter operator " + std::string(name) +
                                              " is understood by MongoDB shards only"};
      }
      if (!ok) return false;
    }
  }
  return true;
}

namespace {

// "-price" -> ("price", descending)
std::pair<std::string, bool> sort_spec(const std::string& sort) {
  if (!sort.empty() && sort[0] == '-') return {sort.substr(1), true};
  if (!sort.empty() && sort[0] == '+') return {sort.substr(1), false};
  return {sort, false};
}

// Stores that keep JSON text and filter on the client: scan_all() hands out every document.
class ClientFilteredStore : public ShardStore {
 public:
  Status scan(std::string_view filter, const std::string& sort, int64_t limit,
              const std::function<Status(std::string_view)>& visit) override {
    envkit::JsonDocument f;
    if (!filter.empty()) {
      auto parsed = envkit::parse_json(filter);
      if (!parsed) return Error{envkit::Exit::usage, "filter: " + parsed.error().message};
      f = std::move(*parsed);
    } else {
      f.SetObject();
    }
    std::vector<std::pair<envkit::JsonDocument, std::string>> kept;  // only when sorting
    int64_t n = 0;
    bool done = false;
    auto st = scan_all([&](std::string_view json) -> Status {
      if (done) return {};
      auto doc = envkit::parse_json(json);
      if (!doc) return {};  // not a document of ours
      auto m = matches(*doc, f);
      if (!m) return m.error();
      if (!*m) return {};
      if (!sort.empty()) {
        kept.emplace_back(std::move(*doc), std::string(json));
        return {};
      }
      if (auto s = visit(json); !s) return s;
      if (limit > 0 && ++n >= limit) done = true;
      return {};
    });
    if (!st) return st;
    if (!sort.empty()) {
      auto [field, desc] = sort_spec(sort);
      std::stable_sort(kept.begin(), kept.end(), [&, &field = field, desc = desc](const auto& a, const auto& b) {
        int c = compare_values(value_at(a.first, field), value_at(b.first, field));
        return desc ? c > 0 : c < 0;
      });
      for (const auto& [doc, json] : kept) {
        if (limit > 0 && n >= limit) break;
        if (auto s = visit(json); !s) return s;
        ++n;
      }
    }
    return {};
  }

  Result<int64_t> count(std::string_view filter) override {
    int64_t n = 0;
    auto st = scan(filter, "", 0, [&](std::string_view) -> Status {
      ++n;
      return {};
    });
    if (!st) return st.error();
    return n;
  }

 protected:
  virtual Status scan_all(const std::function<Status(std::string_view)>& visit) = 0;
};

// --- MySQL / MariaDB ------------------------------------------------------------------

class MysqlStore : public ClientFilteredStore {
 public:
  MysqlStore(envkit::MysqlConnection conn, std::string table, std::string shard)
      : conn_(std::move(conn)), table_(std::move(table)), shard_(std::move(shard)) {}

  Status ensure_table() {
    return conn_.execute("CREATE TABLE IF NOT EXISTS " + envkit::quote_identifier(table_) +
                         " (`k` VARCHAR(512) NOT NULL PRIMARY KEY, `doc` LONGTEXT NOT NULL)"
                         " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
  }

  Status put(const std::vector<KeyedDocument>& docs) override {
    envkit::InsertBuilder insert(table_, {"k", "doc"}, " ON DUPLICATE KEY UPDATE `doc` = VALUES(`doc`)");
    for (const auto& d : docs) {
      insert.next_row() += "(" + conn_.quote_string(d.key) + ", " + conn_.quote_string(d.json) + ")";
      if (insert.full()) {
        if (auto st = conn_.execute(insert.take()); !st) return st;
      }
    }
    if (!insert.empty()) return conn_.execute(insert.take());
    return {};
  }

  Result<std::optional<std::string>> get(std::string_view key) override {
    auto r = conn_.query("SELECT `doc` FROM " + envkit::quote_identifier(table_) + " WHERE `k` = " +
                         conn_.quote_string(key));
    if (!r) return r.error();
    auto more = r->next_row();
    if (!more) return more.error();
    if (!*more) return std::optional<std::string>{};
    return std::optional<std::string>{std::string(*r->value(0))};
  }

  Result<bool> del(std::string_view key) override {
    auto n = conn_.execute_affected("DELETE FROM " + envkit::quote_identifier(table_) + " WHERE `k` = " +
                                    conn_.quote_string(key));
    if (!n) return n.error();
    return *n > 0;
  }

  Result<int64_t> count(std::string_view filter) override {
    if (!filter.empty() && filter.find_first_not_of(" {}\t\n") != std::string_view::npos) {
      return ClientFilteredStore::count(filter);
    }
    auto r = conn_.query("SELECT COUNT(*) FROM " + envkit::quote_identifier(table_));
    if (!r) return r.error();
    auto more = r->next_row();
    if (!more) return more.error();
    return static_cast<int64_t>(std::stoll(std::string(*r->value(0))));
  }

 protected:
  Status scan_all(const std::function<Status(std::string_view)>& visit) override {
    auto r = conn_.query("SELECT `doc` FROM " + envkit::quote_identifier(table_) + " ORDER BY `k`",
                         envkit::Fetch::streamed);
    if (!r) return r.error();
    for (;;) {
      auto more = r->next_row();
      if (!more) return more.error();
      if (!*more) return {};
      if (auto st = visit(*r->value(0)); !st) return st;
    }
  }

 private:
  envkit::MysqlConnection conn_;
  std::string table_;
  std::string shard_;
};

// --- Redis --------------------------------------------------------------------------------

std::string glob_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

class RedisStore : public ClientFilteredStore {
 public:
  RedisStore(envkit::RedisConnection conn, std::string prefix)
      : conn_(std::move(conn)), prefix_(std::move(prefix)) {}

  Status put(const std::vector<KeyedDocument>& docs) override {
    std::vector<std::vector<std::string>> cmds;
    cmds.reserve(docs.size());
    for (const auto& d : docs) cmds.push_back({"SET", prefix_ + d.key, d.json});
    auto replies = conn_.pipeline(cmds);
    if (!replies) return replies.error();
    for (const auto& r : *replies) {
      if (r.is_error()) return fail(Failure::bad_data, conn_.endpoint() + ": SET: " + r.str);
    }
    return {};
  }

  Result<std::optional<std::string>> get(std::string_view key) override {
    auto r = conn_.command({"GET", prefix_ + std::string(key)});
    if (!r) return r.error();
    if (r->is_error()) return fail(Failure::bad_data, conn_.endpoint() + ": GET: " + r->str);
    if (r->is_nil()) return std::optional<std::string>{};
    return std::optional<std::string>{r->str};
  }

  Result<bool> del(std::string_view key) override {
    auto r = conn_.command({"DEL", prefix_ + std::string(key)});
    if (!r) return r.error();
    if (r->is_error()) return fail(Failure::bad_data, conn_.endpoint() + ": DEL: " + r->str);
    return r->integer > 0;
  }

 protected:
  Status scan_all(const std::function<Status(std::string_view)>& visit) override {
    std::string cursor = "0";
    const std::string pattern = glob_escape(prefix_) + "*";
    do {
      auto r = conn_.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
      if (!r) return r.error();
      if (r->is_error() || r->elements.size() != 2) {
        return fail(Failure::wrong_protocol, conn_.endpoint() + ": SCAN: unexpected reply");
      }
      cursor = r->elements[0].str;
      const auto& keys = r->elements[1].elements;
      if (keys.empty()) continue;
      std::vector<std::string> mget{"MGET"};
      for (const auto& k : keys) mget.push_back(k.str);
      auto values = conn_.command(mget);
      if (!values) return values.error();
      for (const auto& v : values->elements) {
        if (v.type == envkit::RedisReply::Type::string) {
          if (auto st = visit(v.str); !st) return st;
        }
      }
    } while (cursor != "0");
    return {};
  }

 private:
  envkit::RedisConnection conn_;
  std::string prefix_;
};

// --- MongoDB ------------------------------------------------------------------------------

struct BulkDestroyer {
  void operator()(mongoc_bulk_operation_t* b) const { mongoc_bulk_operation_destroy(b); }
};
struct WriteConcernDestroyer {
  void operator()(mongoc_write_concern_t* w) const { mongoc_write_concern_destroy(w); }
};

std::string relaxed_json(const bson_t& doc) {
  size_t len = 0;
  char* text = bson_as_relaxed_extended_json(&doc, &len);
  std::string out = text ? std::string(text, len) : std::string("{}");
  bson_free(text);
  return out;
}

class MongoStore : public ShardStore {
 public:
  MongoStore(envkit::MongoClient client, std::string db, std::string coll, std::string key_field,
             WriteOptions write)
      : client_(std::move(client)), db_(std::move(db)), coll_(std::move(coll)),
        key_field_(std::move(key_field)), write_(std::move(write)) {}

  // Upserts by key through the driver's bulk API, which retries a write that met a primary
  // stepping down (retryWrites, on by default), and waits for the write concern.
  Status put(const std::vector<KeyedDocument>& docs) override {
    std::unique_ptr<mongoc_collection_t, envkit::detail::MongoCollectionDestroyer> coll(
        mongoc_client_get_collection(client_.handle(), db_.c_str(), coll_.c_str()));
    auto opts = write_opts();
    bson_t bulk_opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&bulk_opts, "ordered", false);
    mongoc_write_concern_append(opts.get(), &bulk_opts);
    std::unique_ptr<mongoc_bulk_operation_t, BulkDestroyer> bulk(
        mongoc_collection_create_bulk_operation_with_opts(coll.get(), &bulk_opts));
    bson_destroy(&bulk_opts);
    bson_t upsert = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&upsert, "upsert", true);
    for (const auto& d : docs) {
      auto doc = envkit::bson_from_json(d.json);
      if (!doc) {
        bson_destroy(&upsert);
        return doc.error();
      }
      auto selector = selector_for(d.key, **doc);
      bson_error_t error;
      if (!mongoc_bulk_operation_replace_one_with_opts(bulk.get(), selector.get(), doc->get(), &upsert, &error)) {
        bson_destroy(&upsert);
        return fail(Failure::bad_data, client_.endpoint() + ": " + error.message);
      }
    }
    bson_destroy(&upsert);
    bson_t reply;
    bson_error_t error;
    uint32_t ok = mongoc_bulk_operation_execute(bulk.get(), &reply, &error);
    std::string reply_json = envkit::bson_to_canonical_json(reply);
    bson_destroy(&reply);
    if (!ok) {
      return fail(envkit::mongo_failure(error), client_.endpoint() + ": writing " + db_ + "." + coll_ +
                                                    ": " + error.message);
    }
    return {};
  }

  Result<std::optional<std::string>> get(std::string_view key) override {
    envkit::FindOptions o;
    o.limit = 1;
    auto cursor = client_.find(db_, coll_, key_filter(key), o);
    if (!cursor) return cursor.error();
    auto more = cursor->next();
    if (!more) return more.error();
    if (!*more) return std::optional<std::string>{};
    return std::optional<std::string>{relaxed_json(*cursor->bson())};
  }

  Result<bool> del(std::string_view key) override {
    auto n = delete_matching(key_filter(key), false);
    if (!n) return n.error();
    return *n > 0;
  }

  // One find with $in: the test server and mongod alike answer a batch in one scan.
  Result<std::map<std::string, std::string>> get_many(const std::vector<std::string>& keys) override {
    std::map<std::string, std::string> found;
    auto cursor = client_.find(db_, coll_, keys_filter(keys), {});
    if (!cursor) return cursor.error();
    for (;;) {
      auto more = cursor->next();
      if (!more) return more.error();
      if (!*more) return found;
      std::string json = relaxed_json(*cursor->bson());
      auto doc = envkit::parse_json(json);
      if (!doc) return doc.error();
      auto key = key_of(*doc, key_field_);
      if (!key) return key.error();
      found.emplace(std::move(*key), std::move(json));
    }
  }

  Result<uint64_t> del_many(const std::vector<std::string>& keys) override {
    auto n = delete_matching(keys_filter(keys), true);
    if (!n) return n.error();
    return static_cast<uint64_t>(*n);
  }

  Status scan(std::string_view filter, const std::string& sort, int64_t limit,
              const std::function<Status(std::string_view)>& visit) override {
    envkit::FindOptions o;
    o.limit = limit;
    if (!sort.empty()) {
      auto [field, desc] = sort_spec(sort);
      envkit::JsonWriter w;
      w.begin_object().key(field).number(desc ? -1 : 1).end_object();
      o.sort = w.take();
    }
    auto cursor = client_.find(db_, coll_, filter, o);
    if (!cursor) return cursor.error();
    for (;;) {
      auto more = cursor->next();
      if (!more) return more.error();
      if (!*more) return {};
      if (auto st = visit(relaxed_json(*cursor->bson())); !st) return st;
    }
  }

  Result<int64_t> count(std::string_view filter) override { return client_.count(db_, coll_, filter); }

 private:
  Result<int64_t> delete_matching(const std::string& filter, bool many) {
    std::unique_ptr<mongoc_collection_t, envkit::detail::MongoCollectionDestroyer> coll(
        mongoc_client_get_collection(client_.handle(), db_.c_str(), coll_.c_str()));
    auto selector = envkit::bson_from_json(filter);
    if (!selector) return selector.error();
    auto wc = write_opts();
    bson_t opts = BSON_INITIALIZER;
    mongoc_write_concern_append(wc.get(), &opts);
    bson_t reply;
    bson_error_t error;
    bool ok = many ? mongoc_collection_delete_many(coll.get(), selector->get(), &opts, &reply, &error)
                   : mongoc_collection_delete_one(coll.get(), selector->get(), &opts, &reply, &error);
    bson_destroy(&opts);
    int64_t deleted = 0;
    bson_iter_t it;
    if (ok && bson_iter_init_find(&it, &reply, "deletedCount")) deleted = bson_iter_as_int64(&it);
    bson_destroy(&reply);
    if (!ok) return fail(envkit::mongo_failure(error), client_.endpoint() + ": delete: " + error.message);
    return deleted;
  }

  std::string keys_filter(const std::vector<std::string>& keys) const {
    envkit::JsonWriter w;
    w.begin_object().key(key_field_).begin_object().key("$in").begin_array();
    for (const auto& k : keys) w.string(k);
    w.end_array().end_object().end_object();
    return w.take();
  }

  std::unique_ptr<mongoc_write_concern_t, WriteConcernDestroyer> write_opts() const {
    std::unique_ptr<mongoc_write_concern_t, WriteConcernDestroyer> wc(mongoc_write_concern_new());
    if (write_.write_concern == "majority") {
      mongoc_write_concern_set_w(wc.get(), MONGOC_WRITE_CONCERN_W_MAJORITY);
    } else {
      mongoc_write_concern_set_w(wc.get(), std::stoi(write_.write_concern));
    }
    return wc;
  }

  std::string key_filter(std::string_view key) const {
    envkit::JsonWriter w;
    w.begin_object().key(key_field_).string(key).end_object();
    return w.take();
  }

  // The selector carries the key as the document holds it (a string or an integer).
  envkit::BsonPtr selector_for(const std::string& key, const bson_t& doc) const {
    envkit::BsonPtr sel(bson_new());
    bson_iter_t it;
    if (bson_iter_init(&it, &doc) && bson_iter_find_descendant(&it, key_field_.c_str(), &it)) {
      bson_append_value(sel.get(), key_field_.c_str(), -1, bson_iter_value(&it));
    } else {
      BSON_APPEND_UTF8(sel.get(), key_field_.c_str(), key.c_str());
    }
    return sel;
  }

  envkit::MongoClient client_;
  std::string db_, coll_, key_field_;
  WriteOptions write_;
};

}  // namespace

Result<std::unique_ptr<ShardStore>> open_store(const Shard& shard, const std::string& ns_name,
                                               const std::string& key_field,
                                               const envkit::ConnectionOptions& connection,
                                               const std::optional<std::string>& password_file,
                                               const WriteOptions& write) {
  envkit::Url url = shard.url;
  if (auto st = envkit::resolve_password(url, {password_file, false}); !st) return st.error();
  auto context = [&](const Error& e) { return e.context("shard " + shard.name); };
  if (url.scheme == "mongodb") {
    auto client = envkit::MongoClient::connect(url, connection);
    if (!client) return context(client.error());
    return std::unique_ptr<ShardStore>(
        new MongoStore(std::move(*client), url.path, ns_name, key_field, write));
  }
  if (url.scheme == "mysql") {
    auto conn = envkit::MysqlConnection::connect(url, connection);
    if (!conn) return context(conn.error());
    auto store = std::make_unique<MysqlStore>(std::move(*conn), ns_name, shard.name);
    if (auto st = store->ensure_table(); !st) return context(st.error());
    return std::unique_ptr<ShardStore>(std::move(store));
  }
  auto conn = envkit::RedisConnection::connect(url, connection);
  if (!conn) return context(conn.error());
  return std::unique_ptr<ShardStore>(new RedisStore(std::move(*conn), ns_name + ":"));
}

Result<std::string> document_key(std::string_view json, const std::string& field) {
  auto doc = envkit::parse_json(json);
  if (!doc) return doc.error();
  if (!doc->IsObject()) return fail(Failure::bad_data, "not a JSON object");
  return key_of(*doc, field);
}

Result<Session> Session::start(const Config& config, const ShardMap& map, const Namespace* ns,
                               const std::string& ns_name) {
  if (ns_name.empty()) return Error{envkit::Exit::usage, "give the namespace: -n NAME"};
  std::string key_field = !config.key_field.empty() ? config.key_field : ns ? ns->key_field : "_id";
  return Session{config, map, ns, ns_name, std::move(key_field), {}};
}

Result<ShardStore*> Session::store(int shard) {
  if (stores.empty()) stores.resize(map.shards().size());
  auto& s = stores[static_cast<size_t>(shard)];
  if (!s) {
    auto opened = open_store(map.shards()[static_cast<size_t>(shard)], ns_name, key_field,
                             config.connection, config.password_file, {config.write_concern});
    if (!opened) return opened.error();
    s = std::move(*opened);
  }
  return s.get();
}

// --- the subcommands ----------------------------------------------------------------------

namespace {

// Each shard's full batch is written on a thread of its own while the next documents are
// read and routed, so the shards' servers work at once and alongside the parsing. At most
// one batch per shard is in flight: a shard's writes keep the input's order, and a key (one
// shard) its last value. The first failure ends the put once the writes in flight are done.
Result<envkit::Exit> put(Session& s) {
  const size_t shards = s.map.shards().size();
  std::vector<std::vector<KeyedDocument>> pending(shards);
  std::vector<std::future<Status>> in_flight(shards);
  std::vector<uint64_t> in_flight_docs(shards), written(shards);
  uint64_t line_no = 0, refused = 0;
  // Waits for shard i's batch in flight; counts it written when it was.
  auto settle = [&](size_t i) -> Status {
    if (!in_flight[i].valid()) return {};
    if (auto st = in_flight[i].get(); !st) return st;
    written[i] += std::exchange(in_flight_docs[i], 0);
    return {};
  };
  auto flush = [&](int shard) -> Status {
    const auto i = static_cast<size_t>(shard);
    if (auto st = settle(i); !st) return st;
    if (pending[i].empty()) return {};
    auto store = s.store(shard);  // connected here, on this thread
    if (!store) return store.error();
    in_flight_docs[i] = pending[i].size();
    in_flight[i] = std::async(std::launch::async, [store = *store, batch = std::move(pending[i]),
                                                   name = s.shard_name(shard)]() -> Status {
      if (auto st = store->put(batch); !st) return st.error().context("shard " + name);
      return {};
    });
    pending[i] = {};
    return {};
  };
  auto log_written = [&] {
    for (size_t i = 0; i < shards; ++i) {
      if (written[i]) envkit::log_info("put " + std::to_string(written[i]) + " documents on " + s.map.shards()[i].name);
    }
  };
  // The first failure, after every batch in flight is done (and counted if it was written).
  auto fail_after_writes = [&](Status failed) -> Result<envkit::Exit> {
    for (size_t i = 0; i < shards; ++i) (void)settle(i);
    log_written();
    return failed.error();
  };
  std::string line;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (line.empty()) continue;
    Result<std::string> key = document_key(line, s.key_field);
    if (!key) {
      envkit::log_error("stdin:" + std::to_string(line_no) + ": " + key.error().message);
      ++refused;
      continue;
    }
    int shard = s.route(*key);
    if (shard < 0) return fail_after_writes(fail(Failure::config, "no shard for key '" + *key + "'"));
    pending[static_cast<size_t>(shard)].push_back({std::move(*key), std::move(line)});
    if (pending[static_cast<size_t>(shard)].size() >= s.config.batch) {
      if (auto st = flush(shard); !st) return fail_after_writes(st);
    }
    line.clear();
  }
  if (std::cin.bad()) return fail_after_writes(fail(Failure::local_io, "reading documents from stdin"));
  for (size_t i = 0; i < shards; ++i) {
    if (auto st = flush(static_cast<int>(i)); !st) return fail_after_writes(st);
  }
  for (size_t i = 0; i < shards; ++i) {
    if (auto st = settle(i); !st) return fail_after_writes(st);
  }
  log_written();
  return refused ? envkit::Exit::failure : envkit::Exit::ok;
}

Result<envkit::Exit> get_or_del(Session& s, bool del) {
  bool missing = false;
  for (const auto& key : s.config.args) {
    int shard = s.route(key);
    if (shard < 0) return fail(Failure::config, "no shard for key '" + key + "'");
    auto store = s.store(shard);
    if (!store) return store.error();
    if (del) {
      auto gone = (*store)->del(key);
      if (!gone) return gone.error();
      if (!*gone) {
        envkit::log_warning("no document with key '" + key + "' on " + s.map.shards()[static_cast<size_t>(shard)].name);
        missing = true;
      }
      continue;
    }
    auto doc = (*store)->get(key);
    if (!doc) return doc.error();
    if (!*doc) {
      envkit::log_warning("no document with key '" + key + "' on " + s.map.shards()[static_cast<size_t>(shard)].name);
      missing = true;
      continue;
    }
    std::cout << **doc << '\n';
  }
  std::cout.flush();
  return missing ? envkit::Exit::failure : envkit::Exit::ok;
}

// The shards a filter can touch: one when it fixes the key field to a string.
std::vector<int> shards_for_filter(const Session& s, const std::string& filter) {
  if (!filter.empty()) {
    if (auto f = envkit::parse_json(filter); f && f->IsObject()) {
      const JsonValue* v = envkit::find_member(*f, s.key_field);
      if (v && v->IsString()) return {s.route(std::string_view(v->GetString(), v->GetStringLength()))};
    }
  }
  return s.all_shards();
}

Result<envkit::Exit> find_or_count(Session& s, bool count) {
  const std::string filter = s.config.args.empty() ? "" : s.config.args.front();
  if (!filter.empty()) {
    auto f = envkit::parse_json(filter);
    if (!f || !f->IsObject()) return Error{envkit::Exit::usage, "FILTER must be a JSON object"};
  }
  // Connect to every shard first: without --partial nothing is printed unless all answer.
  std::vector<std::pair<int, ShardStore*>> up;
  std::vector<std::string> down;
  for (int shard : shards_for_filter(s, filter)) {
    auto store = s.store(shard);
    if (!store) {
      if (!s.config.partial) return store.error();
      envkit::log_warning("partial result: " + store.error().message);
      down.push_back(s.map.shards()[static_cast<size_t>(shard)].name);
      continue;
    }
    up.emplace_back(shard, *store);
  }
  if (count) {
    int64_t total = 0;
    for (auto [shard, store] : up) {
      auto n = store->count(filter);
      if (!n) return n.error().context("shard " + s.map.shards()[static_cast<size_t>(shard)].name);
      total += *n;
    }
    std::cout << total << '\n';
    std::cout.flush();
    return envkit::Exit::ok;
  }
  const std::string& sort = s.config.sort;
  const int64_t limit = s.config.limit;
  if (sort.empty()) {
    int64_t n = 0;
    for (auto [shard, store] : up) {
      if (limit > 0 && n >= limit) break;
      auto st = store->scan(filter, "", limit > 0 ? limit - n : 0, [&](std::string_view json) -> Status {
        std::cout << json << '\n';
        ++n;
        return {};
      });
      if (!st) return st.error().context("shard " + s.map.shards()[static_cast<size_t>(shard)].name);
    }
  } else {
    // Each shard sorts and limits its own part; the merge keeps at most shards x limit.
    auto [field, desc] = sort_spec(sort);
    std::vector<std::pair<envkit::JsonDocument, std::string>> all;
    for (auto [shard, store] : up) {
      auto st = store->scan(filter, sort, limit, [&](std::string_view json) -> Status {
        auto doc = envkit::parse_json(json);
        if (doc) all.emplace_back(std::move(*doc), std::string(json));
        return {};
      });
      if (!st) return st.error().context("shard " + s.map.shards()[static_cast<size_t>(shard)].name);
    }
    std::stable_sort(all.begin(), all.end(), [&, &field = field, desc = desc](const auto& a, const auto& b) {
      int c = compare_values(value_at(a.first, field), value_at(b.first, field));
      return desc ? c > 0 : c < 0;
    });
    int64_t n = 0;
    for (const auto& [doc, json] : all) {
      if (limit > 0 && n++ >= limit) break;
      std::cout << json << '\n';
    }
  }
  std::cout.flush();
  return envkit::Exit::ok;
}

// verify: every document on the namespace's shards, streamed, routed again. Only the
// misplaced ones are remembered (with the shards they were found on), so memory grows with
// the faults, not the data; each is then looked up on the shard the map names, so a key on
// two shards is found whichever two they are. One JSON line per misplaced copy on stdout,
// the summary on stderr; exit 1 when anything is out of place.
Result<envkit::Exit> verify(Session& s) {
  const auto& shards = s.map.shards();
  std::map<std::string, std::vector<int>> misplaced;  // key -> the wrong shards holding it
  uint64_t documents = 0, placed = 0, unkeyed = 0, scanned = 0;
  auto name = [&](int shard) { return shards[static_cast<size_t>(shard)].name; };
  for (int shard : s.all_shards()) {
    auto store = s.store(shard);
    if (!store) return store.error();
    ++scanned;
    auto st = (*store)->scan("", "", 0, [&](std::string_view json) -> Status {
      ++documents;
      Result<std::string> key = document_key(json, s.key_field);
      if (!key) {
        ++unkeyed;
        JsonWriter w;
        w.begin_object().key("problem").string("no key").key("on").string(name(shard));
        w.key("reason").string(key.error().message).key("document").string(json.substr(0, 200)).end_object();
        std::cout << w.take() << '\n';
        return {};
      }
      if (s.route(*key) == shard) {
        ++placed;
      } else {
        misplaced[*key].push_back(shard);
      }
      return {};
    });
    if (!st) return st.error().context("shard " + name(shard));
  }
  uint64_t copies = 0, duplicated = 0;
  for (const auto& [key, wrong] : misplaced) {
    int right = s.route(key);
    bool on_right = false;
    if (right >= 0) {
      auto store = s.store(right);
      if (!store) return store.error();
      auto doc = (*store)->get(key);
      if (!doc) return doc.error().context("shard " + name(right));
      on_right = doc->has_value();
    }
    bool twice = on_right || wrong.size() > 1;
    if (twice) ++duplicated;
    for (int shard : wrong) {
      ++copies;
      JsonWriter w;
      w.begin_object().key("problem").string("misplaced").key("key").string(key);
      w.key("on").string(name(shard)).key("belongs").string(right >= 0 ? name(right) : "");
      w.key("on_right_shard_too").boolean(on_right).key("copies").number(static_cast<uint64_t>(wrong.size() + (on_right ? 1 : 0)));
      w.end_object();
      std::cout << w.take() << '\n';
    }
  }
  std::cout.flush();
  if (!std::cout) return fail(Failure::local_io, "writing the report to stdout");
  // Silent when all is well (the summary with -v), a warning when something is out of place.
  const bool faults = copies || unkeyed;
  envkit::log(faults ? envkit::LogLevel::warning : envkit::LogLevel::info,
              "verify " + s.ns_name + ": " + std::to_string(documents) + " documents on " + std::to_string(scanned) +
                  " shards: " + std::to_string(placed) + " where the map says, " + std::to_string(copies) +
                  " misplaced (" + std::to_string(duplicated) + " keys on two shards or more), " +
                  std::to_string(unkeyed) + " without a key");
  return faults ? envkit::Exit::failure : envkit::Exit::ok;
}

}  // namespace

Status scan_keys(const Config& config, const ShardMap& map, const Namespace* ns,
                 const std::function<Status(std::string_view key)>& visit) {
  auto session = Session::start(config, map, ns, ns ? ns->name : config.ns);
  if (!session) return session.error();
  Session& s = *session;
  for (int shard : s.all_shards()) {
    auto store = s.store(shard);
    if (!store) return store.error();
    auto st = (*store)->scan("", "", 0, [&](std::string_view json) -> Status {
      auto key = document_key(json, s.key_field);
      if (!key) {
        envkit::log_warning("shard " + map.shards()[static_cast<size_t>(shard)].name + ": skipped: " + key.error().message);
        return {};
      }
      return visit(*key);
    });
    if (!st) return st.error().context("shard " + map.shards()[static_cast<size_t>(shard)].name);
  }
  return {};
}

Result<envkit::Exit> run_store_command(const Config& config, const ShardMap& map, const Namespace* ns) {
  auto session = Session::start(config, map, ns, ns ? ns->name : config.ns);
  if (!session) return session.error();
  Session& s = *session;
  if (map.route(ns, "") < 0 && !ns) return fail(Failure::config, "the map has no default route");
  if (config.command == "put") return put(s);
  if (config.command == "get") return get_or_del(s, false);
  if (config.command == "del") return get_or_del(s, true);
  if (config.command == "find") return find_or_count(s, false);
  if (config.command == "count") return find_or_count(s, true);
  if (config.command == "verify") return verify(s);
  return Error{envkit::Exit::usage, "unknown subcommand '" + config.command + "'"};
}

}  // namespace shard_route
