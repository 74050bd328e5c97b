// MongoDB connector on mongo-c-driver 1.23: one RAII client per thread, bounded by timeouts,
// documents in and out as canonical Extended JSON, streamed cursors and snapshot reads.
#pragma once

#include <bson/bson.h>
#include <mongoc/mongoc.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/exit_status.hpp>
#include <envkit/result.hpp>
#include <envkit/url.hpp>

namespace envkit {

namespace detail {
struct BsonDestroyer {
  void operator()(bson_t* b) const;
};
struct MongoClientDestroyer {
  void operator()(mongoc_client_t* c) const;
};
struct MongoCollectionDestroyer {
  void operator()(mongoc_collection_t* c) const;
};
struct MongoCursorDestroyer {
  void operator()(mongoc_cursor_t* c) const;
};
struct MongoSessionDestroyer {
  void operator()(mongoc_client_session_t* s) const;
};
struct MongoUriDestroyer {
  void operator()(mongoc_uri_t* u) const;
};
}  // namespace detail

/// A BSON document on the heap, owned. (Not a std::unique_ptr: bson_t carries an alignment
/// attribute that template arguments drop, which GCC warns about.)
class BsonPtr {
 public:
  BsonPtr() = default;
  explicit BsonPtr(bson_t* doc) : doc_(doc) {}
  BsonPtr(BsonPtr&& other) noexcept : doc_(other.doc_) { other.doc_ = nullptr; }
  BsonPtr& operator=(BsonPtr&& other) noexcept {
    if (this != &other) {
      reset(other.doc_);
      other.doc_ = nullptr;
    }
    return *this;
  }
  BsonPtr(const BsonPtr&) = delete;
  BsonPtr& operator=(const BsonPtr&) = delete;
  ~BsonPtr() { reset(); }

  bson_t* get() const { return doc_; }
  bson_t& operator*() const { return *doc_; }
  bson_t* operator->() const { return doc_; }
  explicit operator bool() const { return doc_ != nullptr; }
  void reset(bson_t* doc = nullptr) {
    if (doc_) detail::BsonDestroyer{}(doc_);
    doc_ = doc;
  }

 private:
  bson_t* doc_ = nullptr;
};

/// Parses Extended JSON (canonical or relaxed) into BSON. Error Exit::data with libbson's
/// reason (which names the offending position).
Result<BsonPtr> bson_from_json(std::string_view json);
/// The document as canonical Extended JSON: every BSON type survives the round trip through
/// bson_from_json (Int32/Int64/Double/Decimal128 stay distinct, dates keep milliseconds).
std::string bson_to_canonical_json(const bson_t& doc);

/// What the server says about itself and its replica set (the `hello` command).
struct MongoHello {
  std::string set_name;            ///< empty: not a replica-set member
  std::string primary;             ///< HOST:PORT of the primary as the member sees it; may be empty
  std::string me;                  ///< HOST:PORT the member calls itself
  std::vector<std::string> hosts;  ///< the set's data-bearing members
  bool writable_primary = false;
  bool secondary = false;
  int32_t max_wire_version = 0;
  std::string server_version;  ///< from buildInfo; empty when the server would not say
  std::string reply_json;      ///< the whole hello reply, canonical Extended JSON
};

/// A collection as listCollections reports it.
struct MongoCollectionInfo {
  std::string name;
  std::string type;          ///< "collection", "view", "timeseries"
  std::string options_json;  ///< canonical Extended JSON of its creation options ({} if none)
};

class MongoSnapshot;

/// Options of find(). JSON fields are Extended JSON documents; empty means none.
struct FindOptions {
  std::string sort;        ///< {"a": 1}
  std::string projection;  ///< {"a": 1, "_id": 0}
  int32_t batch_size = 0;  ///< documents per round trip; 0: the server's default
  int64_t limit = 0;       ///< 0: no limit
  /// Read inside this snapshot (at its point in time), when it has one; see MongoSnapshot.
  const MongoSnapshot* snapshot = nullptr;
};

/// The documents of one find(), fetched batch by batch (getMore) as next() walks them. Must
/// not outlive the client (or snapshot) it came from.
class MongoCursor {
 public:
  MongoCursor(MongoCursor&&) noexcept = default;
  MongoCursor& operator=(MongoCursor&&) noexcept = default;

  /// Moves to the next document: true when one is ready, false after the last. A lost
  /// server or a cursor killed part-way is an Error (and stays one on later calls), never a
  /// silently short result.
  Result<bool> next();
  /// The current document as canonical Extended JSON (valid until the next call to next()).
  const std::string& json() const;
  /// The current document as BSON (owned by the cursor, valid until the next call to next()).
  const bson_t* bson() const { return current_; }
  /// Documents handed out so far.
  uint64_t documents_read() const { return read_; }

 private:
  friend class MongoClient;
  MongoCursor(std::unique_ptr<mongoc_collection_t, detail::MongoCollectionDestroyer> coll,
              std::unique_ptr<mongoc_cursor_t, detail::MongoCursorDestroyer> cursor,
              std::string what, std::chrono::milliseconds io_timeout);

  std::unique_ptr<mongoc_collection_t, detail::MongoCollectionDestroyer> coll_;
  std::unique_ptr<mongoc_cursor_t, detail::MongoCursorDestroyer> cursor_;
  std::string what_;  // "find on db.coll at mongodb://...", for messages
  std::chrono::milliseconds io_timeout_{0};
  const bson_t* current_ = nullptr;
  mutable std::string json_;  // made on the first json() call for the current document
  mutable bool json_ready_ = false;
  uint64_t read_ = 0;
  std::optional<Error> failed_;  // a failed cursor keeps failing: never mistaken for the end
};

/// One point in time several finds read at (a snapshot session, MongoDB 5.0+ replica sets
/// and sharded clusters). Where the server cannot do it (a standalone mongod, an older
/// server), begin_snapshot() still succeeds, point_in_time() is false, fallback_reason()
/// says why, and finds given this snapshot read the current data each: callers record that.
/// Must not outlive the client that made it, nor be used by two threads at once.
class MongoSnapshot {
 public:
  MongoSnapshot(MongoSnapshot&&) noexcept = default;
  MongoSnapshot& operator=(MongoSnapshot&&) noexcept = default;

  bool point_in_time() const { return session_ != nullptr; }
  const std::string& fallback_reason() const { return fallback_reason_; }
  /// The snapshot's cluster time as {"$timestamp":{"t":..,"i":..}}; empty without one.
  const std::string& cluster_time_json() const { return cluster_time_json_; }
  mongoc_client_session_t* session() const { return session_.get(); }

 private:
  friend class MongoClient;
  MongoSnapshot() = default;
  std::unique_ptr<mongoc_client_session_t, detail::MongoSessionDestroyer> session_;
  std::string fallback_reason_;
  std::string cluster_time_json_;
};

/// A client of one MongoDB deployment (standalone, replica set, mongos). Not thread-safe:
/// give each thread its own.
///
/// URL: mongodb://[user[:password]@]host[:port][,host[:port]...][/authdb][?options] with the
/// driver's options (replicaSet, authSource, directConnection, readPreference, ...) passed
/// through, and envkit's tls=, tls-ca=, tls-cert= with tls-key= (the driver wants one PEM file
/// holding both: name the same file twice), tls-insecure= mapped to the driver's. Timeouts: connect_timeout becomes connectTimeoutMS
/// and serverSelectionTimeoutMS (one try), io_timeout socketTimeoutMS: no call waits longer.
/// A URL with serverSelectionTryOnce=false waits out an election instead: server selection
/// keeps trying up to io_timeout.
class MongoClient {
 public:
  /// Creates the client and checks the deployment answers a ping. Errors: Exit::config for a
  /// bad URL, refused credentials or a TLS setup the driver rejects; Exit::unavailable when
  /// no suitable server answers within the connect timeout.
  static Result<MongoClient> connect(const Url& url, const ConnectionOptions& options);

  MongoClient(MongoClient&&) noexcept = default;
  MongoClient& operator=(MongoClient&&) noexcept = default;

  /// `hello` (isMaster on servers that lack it), sent to the primary when there is one, else
  /// to any member; plus the server version.
  Result<MongoHello> hello();
  /// "6.0.5", from buildInfo.
  Result<std::string> server_version();

  /// The collections of `db`, views included, in the server's order.
  Result<std::vector<MongoCollectionInfo>> list_collections(std::string_view db);
  /// Reads db.coll: `filter` is an Extended JSON document ("" or "{}": everything).
  Result<MongoCursor> find(std::string_view db, std::string_view coll, std::string_view filter,
                           const FindOptions& options = {});
  /// Starts a snapshot: a first read on `db` pins the time every find given it reads at.
  Result<MongoSnapshot> begin_snapshot(std::string_view db);
  /// Inserts Extended JSON documents (the driver splits them into batches). Returns how many
  /// were inserted; an unparsable document is Exit::data before anything is sent, a
  /// duplicate key or other write error Exit::data naming the first failing document.
  Result<int64_t> insert_many(std::string_view db, std::string_view coll,
                              const std::vector<std::string>& documents, bool ordered = true);
  /// The collection's index specifications ({"v":2,"key":{...},"name":...}) as canonical
  /// Extended JSON; an empty list when the collection does not exist.
  Result<std::vector<std::string>> list_indexes(std::string_view db, std::string_view coll);
  /// Creates indexes from specifications as list_indexes() returns them (the _id index and
  /// the "v"/"ns" fields are skipped). Creates the collection when missing.
  Status create_indexes(std::string_view db, std::string_view coll,
                        const std::vector<std::string>& specs);
  /// Drops db.coll; a collection that does not exist is not an error.
  Status drop_collection(std::string_view db, std::string_view coll);
  /// Documents of db.coll matching `filter` (Extended JSON; "" for all).
  Result<int64_t> count(std::string_view db, std::string_view coll, std::string_view filter = "");
  /// Any other command ({"update": ..., "updates": [...]}, {"delete": ...}, ...), run on the
  /// primary; the reply as canonical Extended JSON. A reply with ok: 0 is an Error; write
  /// errors inside an ok: 1 reply are the caller's to read.
  Result<std::string> run_command(std::string_view db, std::string_view command_json);

  /// The URL with its password replaced by "***", for messages.
  const std::string& endpoint() const { return endpoint_; }
  /// The C handle, for calls this class does not wrap. Owned by the client.
  mongoc_client_t* handle() const { return client_.get(); }

 private:
  MongoClient(std::unique_ptr<mongoc_client_t, detail::MongoClientDestroyer> client,
              std::string endpoint, ConnectionOptions options);
  Result<BsonPtr> command(std::string_view db, const bson_t& cmd, std::string_view what,
                          bool any_member);
  std::unique_ptr<mongoc_collection_t, detail::MongoCollectionDestroyer> collection(
      std::string_view db, std::string_view coll) const;

  std::unique_ptr<mongoc_client_t, detail::MongoClientDestroyer> client_;
  std::string endpoint_;
  ConnectionOptions options_;
};

/// The driver URI MongoClient::connect() uses for `url` and `options`: hosts, credentials,
/// the driver options kept from the URL, TLS and the timeouts. Errors as connect() reports
/// them (Exit::config for what the driver rejects, Exit::usage for bad tls parameters).
Result<std::unique_ptr<mongoc_uri_t, detail::MongoUriDestroyer>> make_mongo_uri(
    const Url& url, const ConnectionOptions& options);

/// The failure kind (envkit/exit_status.hpp) of a driver error: name resolution, refused,
/// server selection (unreachable), lost, authentication, permission, unknown namespace,
/// timeouts and write conflicts; other server command errors are bad_data.
Failure mongo_failure(const bson_error_t& error);

}  // namespace envkit
