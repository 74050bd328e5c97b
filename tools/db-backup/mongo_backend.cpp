// db-backup's MongoDB backend: collections as canonical Extended JSON, indexes and options kept.
//
// Dump: every collection of the URL's database (or --tables), read in _id order inside one
// snapshot session where the deployment has them (MongoDB 5.0+ replica sets and sharded
// clusters; recorded in the manifest either way), one document per record, in canonical
// Extended JSON so that ObjectId, dates, Decimal128, Int64, binary... survive. Each object's
// metadata keeps the collection's creation options and index specifications; restore creates
// the collection with those options, its indexes, then inserts in batches. Views are listed in
// the manifest's warnings and not dumped.
#include <algorithm>

#include "db-backup/mongo_backend.hpp"

#include "db-backup/backend.hpp"
#include <envkit/log.hpp>
#include <envkit/mongo.hpp>
#include <envkit/signals.hpp>
#include "db-backup/record_index.hpp"

namespace db_backup {
namespace {

using envkit::MongoClient;

constexpr int32_t kFindBatch = 1000;

std::string json_string(std::string_view s) {
  envkit::JsonWriter w;
  w.string(s);
  return w.take();
}

class MongoBackend final : public Backend {
 public:
  MongoBackend(envkit::Url url, BackendOptions options)
      : url_(std::move(url)), options_(std::move(options)) {
    db_ = url_.path;
    while (!db_.empty() && db_.front() == '/') db_.erase(0, 1);
  }

  Status dump(BackupWriter& out) override {
    if (db_.empty()) return Error{Exit::usage, "the MongoDB URL names no database (mongodb://host/DB)"};
    auto client = MongoClient::connect(url_, options_.connection);
    if (!client) return client.error();
    if (auto v = client->server_version(); v) out.set_server_version(*v);
    out.set_database(db_);
    const DumpOptions& opts = out.options();

    auto colls = client->list_collections(db_);
    if (!colls) return colls.error();
    std::vector<envkit::MongoCollectionInfo> selected;
    for (auto& c : *colls) {
      auto has = [&](const std::vector<std::string>& v) { return std::find(v.begin(), v.end(), c.name) != v.end(); };
      if ((!opts.include.empty() && !has(opts.include)) || has(opts.exclude)) continue;
      if (c.name.rfind("system.", 0) == 0) continue;
      if (c.type != "collection") {
        out.warn(c.type + " '" + c.name + "' is not dumped (only collections are)");
        continue;
      }
      selected.push_back(std::move(c));
    }
    for (const std::string& want : opts.include) {
      bool found = std::any_of(selected.begin(), selected.end(), [&](const auto& c) { return c.name == want; });
      if (!found) return Error{Exit::no_input, "no collection '" + want + "' in database " + db_};
    }
    std::sort(selected.begin(), selected.end(), [](const auto& a, const auto& b) { return a.name < b.name; });

    std::optional<envkit::MongoSnapshot> snapshot;
    if (opts.snapshot) {
      auto s = client->begin_snapshot(db_);
      if (!s) return s.error();
      snapshot.emplace(std::move(*s));
    }
    envkit::JsonWriter snap;
    snap.begin_object();
    if (snapshot && snapshot->point_in_time()) {
      snap.key("method").string("snapshot_session");
      snap.key("cluster_time").raw(snapshot->cluster_time_json().empty() ? "null" : snapshot->cluster_time_json());
      snap.end_object();
      out.set_snapshot(true, snap.take());
    } else {
      std::string why = snapshot ? snapshot->fallback_reason() : "snapshot turned off";
      snap.key("method").string("none").key("reason").string(why).end_object();
      out.set_snapshot(false, snap.take());
      out.warn("MongoDB dump is not point-in-time: " + why + "; each collection was read as it was when read");
    }

    for (const auto& c : selected) {
      if (out.stopping()) return Error{Exit::temp_fail, "stopped by a signal"};
      if (auto s = dump_collection(*client, out, c, snapshot ? &*snapshot : nullptr); !s) {
        return s.error().context("dumping " + db_ + "." + c.name);
      }
    }
    return {};
  }

  Status restore(const BackupReader& in, const RestoreOptions& opts) override {
    if (db_.empty()) return Error{Exit::usage, "the MongoDB URL names no database (mongodb://host/DB)"};
    auto client = MongoClient::connect(url_, options_.connection);
    if (!client) return client.error();
    std::vector<const ObjectEntry*> objects;
    for (const ObjectEntry& o : in.manifest().objects) {
      if (opts.include.empty() || std::find(opts.include.begin(), opts.include.end(), o.name) != opts.include.end())
        objects.push_back(&o);
    }
    // Every target checked before anything is written.
    if (!opts.replace) {
      for (const ObjectEntry* o : objects) {
        auto n = client->count(db_, o->name);
        if (!n) return n.error();
        if (*n > 0) {
          return Error{Exit::data, "collection " + db_ + "." + o->name + " holds " + std::to_string(*n) +
                                       " documents: restore into an empty database, or give --replace"};
        }
      }
    }
    for (const ObjectEntry* o : objects) {
      if (envkit::stop_requested()) return Error{Exit::temp_fail, "stopped by a signal"};
      if (auto s = restore_collection(*client, in, *o, opts); !s) {
        return s.error().context("restoring " + db_ + "." + o->name);
      }
    }
    return {};
  }

  Status compare(const BackupReader& in, const ObjectEntry& object,
                 const std::function<void(const Difference&)>& report) override {
    auto client = MongoClient::connect(url_, options_.connection);
    if (!client) return client.error();
    RecordIndex index(object.key.empty() ? std::vector<std::string>{"_id"} : object.key);
    auto indexed = in.for_each_record(object, [&](std::string_view text, const FileEntry& f, uint64_t) -> Status {
      if (auto s = index.add(text); !s) return s.error().context(f.name);
      return {};
    });
    if (!indexed) return indexed;
    std::string filter;
    if (auto meta = envkit::parse_json(object.metadata); meta) {
      const envkit::JsonValue* f = envkit::find_member(*meta, "filter");
      if (f && f->IsString()) filter = f->GetString();
    }
    envkit::FindOptions fo;
    fo.batch_size = kFindBatch;
    auto cursor = client->find(db_, object.name, filter, fo);
    if (!cursor) return cursor.error();
    for (;;) {
      auto more = cursor->next();
      if (!more) return more.error();
      if (!*more) break;
      if (auto s = index.match(cursor->json(), object.name, report); !s) return s;
    }
    index.report_unmatched(object.name, report);
    return {};
  }

 private:
  Status dump_collection(MongoClient& client, BackupWriter& out, const envkit::MongoCollectionInfo& c,
                         const envkit::MongoSnapshot* snapshot) {
    auto indexes = client.list_indexes(db_, c.name);
    if (!indexes) return indexes.error();
    auto expected = client.count(db_, c.name);
    out.progress().begin_object(c.name, expected ? static_cast<uint64_t>(*expected) : 0);

    envkit::FindOptions fo;
    fo.sort = R"({"_id":1})";  // a stable order: two dumps of the same data are the same bytes
    fo.batch_size = kFindBatch;
    fo.snapshot = snapshot;
    auto cursor = client.find(db_, c.name, out.options().where, fo);
    if (!cursor) return cursor.error();

    ObjectEntry entry;
    entry.name = c.name;
    entry.kind = "collection";
    entry.key = {"_id"};
    std::optional<DataFileWriter> file;
    size_t chunks = 0;
    uint64_t throttle = 0;
    // A full chunk joins the object through add_chunk(): made durable off this thread.
    auto close = [&]() -> Status {
      if (!file) return {};
      DataFileWriter done = std::move(*file);
      file.reset();
      return out.add_chunk(c.name, chunks++, std::move(done));
    };
    for (;;) {
      auto more = cursor->next();
      if (!more) return more.error();
      if (!*more) break;
      if (!file || file->rows() >= out.options().chunk_rows) {
        if (auto s = close(); !s) return s;
        auto f = out.open_chunk(c.name, chunks);
        if (!f) return f.error();
        file.emplace(std::move(*f));
      }
      // libbson pretty-prints ({ "a" : 1 }); records are compact, as every backend writes them.
      // Canonical Extended JSON keeps every number in a string, so re-serialising loses nothing.
      auto parsed = envkit::parse_json(cursor->json());
      if (!parsed) return parsed.error().context("a document from the server");
      std::string doc = envkit::to_json(*parsed);
      if (auto s = file->write_record(doc); !s) return s;
      out.progress().advance(c.name, 1, doc.size() + 1);
      if (out.options().row_delay.count() > 0 && ++throttle % 1000 == 0) {
        envkit::sleep_unless_stopped(out.options().row_delay);
      }
      if (out.stopping()) return Error{Exit::temp_fail, "stopped by a signal"};
    }
    if (!file) {  // an empty collection still has its (empty) file
      auto f = out.open_chunk(c.name, 0);
      if (!f) return f.error();
      file.emplace(std::move(*f));
    }
    if (auto s = close(); !s) return s;
    out.progress().end_object(c.name);

    envkit::JsonWriter meta;
    meta.begin_object();
    meta.key("options").raw(c.options_json.empty() ? "{}" : c.options_json);
    meta.key("indexes").begin_array();
    for (const std::string& spec : *indexes) meta.raw(spec);
    meta.end_array();
    meta.key("order").string("_id");
    // A dump of part of a collection (--where FILTER) is compared with that part only.
    meta.key("filter");
    if (out.options().where.empty()) meta.null(); else meta.string(out.options().where);
    meta.end_object();
    entry.metadata = meta.take();
    out.add_object(std::move(entry));
    return {};
  }

  Status restore_collection(MongoClient& client, const BackupReader& in, const ObjectEntry& o,
                            const RestoreOptions& opts) {
    auto meta = envkit::parse_json(o.metadata);
    if (!meta) return meta.error().context("manifest metadata");
    std::string options_json = "{}";
    std::vector<std::string> indexes;
    if (const auto* v = envkit::find_member(*meta, "options"); v && v->IsObject()) options_json = envkit::to_json(*v);
    if (const auto* v = envkit::find_member(*meta, "indexes"); v && v->IsArray()) {
      for (const auto& spec : v->GetArray()) indexes.push_back(envkit::to_json(spec));
    }
    if (opts.replace) {
      if (auto s = client.drop_collection(db_, o.name); !s) return s;
    }
    auto create = mongo_create_command(o.name, options_json);
    if (!create) return create.error();
    if (auto r = client.run_command(db_, *create); !r) return r.error().context("creating the collection");
    if (auto s = client.create_indexes(db_, o.name, indexes); !s) return s.error().context("creating indexes");

    if (in.progress) in.progress->begin_object(o.name, o.rows);
    std::vector<std::string> batch;
    uint64_t inserted = 0;
    auto flush = [&]() -> Status {
      if (batch.empty()) return {};
      auto n = client.insert_many(db_, o.name, batch);
      if (!n) return n.error();
      inserted += static_cast<uint64_t>(*n);
      batch.clear();
      return {};
    };
    auto read = in.for_each_record(o, [&](std::string_view text, const FileEntry&, uint64_t) -> Status {
      batch.emplace_back(text);
      if (in.progress) in.progress->advance(o.name, 1, text.size() + 1);
      return batch.size() >= opts.batch_rows ? flush() : Status{};
    });
    if (!read) return read;
    if (auto s = flush(); !s) return s;
    if (in.progress) in.progress->end_object(o.name);
    envkit::log_info("restored " + std::to_string(inserted) + " documents and " +
                     std::to_string(indexes.size()) + " index specifications into " + db_ + "." + o.name);
    return {};
  }

  envkit::Url url_;
  BackendOptions options_;
  std::string db_;
};

}  // namespace

Result<std::string> mongo_create_command(const std::string& name, const std::string& options_json) {
  std::string cmd = "{\"create\":" + json_string(name);
  if (!options_json.empty()) {
    auto doc = envkit::parse_json(options_json);
    if (!doc || !doc->IsObject()) return Error{Exit::data, "collection options of " + name + " are not an object"};
    for (auto it = doc->MemberBegin(); it != doc->MemberEnd(); ++it) {
      cmd += "," + json_string({it->name.GetString(), it->name.GetStringLength()}) + ":" +
             envkit::to_json(it->value);
    }
  }
  return cmd + "}";
}

Result<std::unique_ptr<Backend>> make_mongo_backend(const envkit::Url& url, const BackendOptions& options) {
  return std::unique_ptr<Backend>(std::make_unique<MongoBackend>(url, options));
}

}  // namespace db_backup
