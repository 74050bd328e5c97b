// Unit tests for envkit/mongo.hpp (URI and option mapping, Extended JSON, loopback timeouts),
// and LiveMongo tests against a server (tests/bats/mongo.bats runs them on the test server).
#include <envkit/mongo.hpp>

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "loopback.hpp"

namespace envkit {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using test::LoopbackSocket;
using test::url_of;

// The MongoDB tests allow 800 ms to connect and 1.5 s of I/O.
ConnectionOptions mongo_timeouts() { return test::short_timeouts(milliseconds(800), milliseconds(1500)); }

// ---- URI and options -------------------------------------------------------------------

TEST(MongoUri, TimeoutsBecomeDriverOptionsAndOverrideTheUrl) {
  ConnectionOptions o;
  o.connect_timeout = milliseconds(1234);
  o.io_timeout = milliseconds(5678);
  auto uri = make_mongo_uri(url_of("mongodb://h1:27018,h2/shop?replicaSet=rsA&connectTimeoutMS=99999"
                                   "&socketTimeoutMS=0&table=ignored&tls-ca-x=y"),
                            o);
  ASSERT_TRUE(uri.ok()) << uri.error().message;
  const mongoc_uri_t* u = uri->get();
  EXPECT_EQ(mongoc_uri_get_option_as_int32(u, MONGOC_URI_CONNECTTIMEOUTMS, 0), 1234);
  EXPECT_EQ(mongoc_uri_get_option_as_int32(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0), 1234);
  EXPECT_EQ(mongoc_uri_get_option_as_int32(u, MONGOC_URI_SOCKETTIMEOUTMS, 0), 5678);
  EXPECT_TRUE(mongoc_uri_get_option_as_bool(u, MONGOC_URI_SERVERSELECTIONTRYONCE, false));
  EXPECT_STREQ(mongoc_uri_get_replica_set(u), "rsA");
  EXPECT_STREQ(mongoc_uri_get_database(u), "shop");
  const mongoc_host_list_t* hosts = mongoc_uri_get_hosts(u);
  ASSERT_NE(hosts, nullptr);
  EXPECT_STREQ(hosts->host, "h1");
  EXPECT_EQ(hosts->port, 27018);
  ASSERT_NE(hosts->next, nullptr);
  EXPECT_STREQ(hosts->next->host, "h2");
  EXPECT_EQ(hosts->next->port, 27017);
  // envkit's own parameters never reach the driver.
  const bson_t* opts = mongoc_uri_get_options(u);
  bson_iter_t it;
  EXPECT_FALSE(bson_iter_init_find_case(&it, opts, "table"));
}

TEST(MongoUri, CredentialsAreSetOutsideTheUriText) {
  Url url = url_of("mongodb://app@h1/admin");
  url.password = "p@ss:w/rd%";
  auto uri = make_mongo_uri(url, ConnectionOptions{});
  ASSERT_TRUE(uri.ok()) << uri.error().message;
  EXPECT_STREQ(mongoc_uri_get_username(uri->get()), "app");
  EXPECT_STREQ(mongoc_uri_get_password(uri->get()), "p@ss:w/rd%");
}

TEST(MongoUri, TlsParametersMapToTheDriver) {
  auto uri = make_mongo_uri(url_of("mongodb://h1/?tls-ca=/etc/ca.pem&tls-cert=/etc/me.pem&tls-key=/etc/me.pem&tls-insecure=true"),
                            ConnectionOptions{});
  ASSERT_TRUE(uri.ok()) << uri.error().message;
  const mongoc_uri_t* u = uri->get();
  EXPECT_TRUE(mongoc_uri_get_tls(u));
  EXPECT_STREQ(mongoc_uri_get_option_as_utf8(u, MONGOC_URI_TLSCAFILE, ""), "/etc/ca.pem");
  EXPECT_STREQ(mongoc_uri_get_option_as_utf8(u, MONGOC_URI_TLSCERTIFICATEKEYFILE, ""), "/etc/me.pem");
  EXPECT_TRUE(mongoc_uri_get_option_as_bool(u, MONGOC_URI_TLSINSECURE, false));

  auto plain = make_mongo_uri(url_of("mongodb://h1/"), ConnectionOptions{});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(mongoc_uri_get_tls(plain->get()));
}

TEST(MongoUri, UnsupportedTlsSettingsAndBadUrlsAreErrors) {
  auto name = make_mongo_uri(url_of("mongodb://h1/?tls=true&tls-server-name=other"), ConnectionOptions{});
  ASSERT_FALSE(name.ok());
  EXPECT_EQ(name.error().code, Exit::config);
  auto key = make_mongo_uri(url_of("mongodb://h1/?tls-cert=/a.pem&tls-key=/b.pem"), ConnectionOptions{});
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.error().code, Exit::config);
  auto scheme = make_mongo_uri(url_of("redis://h1/0"), ConnectionOptions{});
  ASSERT_FALSE(scheme.ok());
  EXPECT_EQ(scheme.error().code, Exit::usage);
  auto bad = make_mongo_uri(url_of("mongodb://h1/?replicaSet="), ConnectionOptions{});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Exit::config);
}

TEST(MongoUri, PasswordNeverInErrors) {
  Url url = url_of("mongodb://app@127.0.0.1:1/admin");
  url.password = "s3cret-pw";
  auto c = MongoClient::connect(url, mongo_timeouts());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message.find("s3cret-pw"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("***"), std::string::npos) << c.error().message;
}

TEST(MongoErrors, DriverErrorsAreClassifiedByTheFailureTable) {
  auto make = [](uint32_t domain, uint32_t code) {
    bson_error_t e{};
    e.domain = domain;
    e.code = code;
    return mongo_failure(e);
  };
  EXPECT_EQ(make(MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE), Failure::unreachable);
  EXPECT_EQ(make(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET), Failure::connection_lost);
  EXPECT_EQ(make(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_NAME_RESOLUTION), Failure::name_not_found);
  EXPECT_EQ(make(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_CONNECT), Failure::connection_refused);
  EXPECT_EQ(make(MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_AUTHENTICATE), Failure::auth_refused);
  EXPECT_EQ(make(MONGOC_ERROR_SERVER, 11000), Failure::bad_data);
  EXPECT_EQ(make(MONGOC_ERROR_SERVER, 59), Failure::bad_data);
  EXPECT_EQ(make(MONGOC_ERROR_SERVER, 10107), Failure::connection_lost);
  EXPECT_EQ(make(MONGOC_ERROR_SERVER, 18), Failure::auth_refused);
  EXPECT_EQ(make(MONGOC_ERROR_SERVER, 13), Failure::permission_denied);
  EXPECT_EQ(make(MONGOC_ERROR_SERVER, 26), Failure::not_found);
  EXPECT_EQ(make(MONGOC_ERROR_SERVER, 50), Failure::io_timeout);
  EXPECT_EQ(make(MONGOC_ERROR_SERVER, 239), Failure::server_busy);
  EXPECT_EQ(exit_for(make(MONGOC_ERROR_SERVER_SELECTION, 0)), Exit::unavailable);
}

// ---- Extended JSON ---------------------------------------------------------------------

// One document holding every BSON type, in canonical Extended JSON as libbson writes it.
const char* const kEveryType =
    R"({ "_id" : { "$oid" : "5f0000000000000000000001" }, )"
    R"("int32" : { "$numberInt" : "-2147483648" }, "int64" : { "$numberLong" : "9007199254740993" }, )"
    R"("int64small" : { "$numberLong" : "1" }, "double" : { "$numberDouble" : "1.0" }, )"
    R"("negzero" : { "$numberDouble" : "-0.0" }, "nan" : { "$numberDouble" : "NaN" }, )"
    R"("inf" : { "$numberDouble" : "-Infinity" }, "pi" : { "$numberDouble" : "3.141592653589793116" }, )"
    R"("dec" : { "$numberDecimal" : "1234567890.123456789012345678901234" }, )"
    R"("decnan" : { "$numberDecimal" : "NaN" }, )"
    R"("date" : { "$date" : { "$numberLong" : "1700000000123" } }, )"
    R"("predate" : { "$date" : { "$numberLong" : "-62135596800001" } }, )"
    R"("farfuture" : { "$date" : { "$numberLong" : "253402300800000" } }, )"
    R"("bin" : { "$binary" : { "base64" : "AAECA/8=", "subType" : "00" } }, )"
    R"("uuid" : { "$binary" : { "base64" : "c//SZESzTGmQ6OfR38A11A==", "subType" : "04" } }, )"
    R"("user" : { "$binary" : { "base64" : "", "subType" : "80" } }, )"
    R"("str" : "tab\t quote\" nul-free é 😀", "empty" : "", "t" : true, "f" : false, "null" : null, )"
    R"("nested" : [ [ { "$numberInt" : "1" }, [  ] ], { "a" : [ { "b" : { "$numberLong" : "2" } } ] }, [  ] ], )"
    R"("doc" : { "x" : { "y" : {  } } }, )"
    R"("re" : { "$regularExpression" : { "pattern" : "^a.*b$", "options" : "im" } }, )"
    R"("ts" : { "$timestamp" : { "t" : 1700000000, "i" : 7 } }, )"
    R"("min" : { "$minKey" : 1 }, "max" : { "$maxKey" : 1 }, )"
    R"("code" : { "$code" : "function() { return 1; }" }, )"
    R"("codews" : { "$code" : "x", "$scope" : { "x" : { "$numberInt" : "1" } } }, )"
    R"("sym" : { "$symbol" : "s" }, "undef" : { "$undefined" : true }, )"
    R"("dbp" : { "$dbPointer" : { "$ref" : "c", "$id" : { "$oid" : "5f0000000000000000000002" } } } })";

TEST(MongoJson, EveryTypeRoundTripsThroughCanonicalExtendedJson) {
  auto doc = bson_from_json(kEveryType);
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  std::string out = bson_to_canonical_json(**doc);
  EXPECT_EQ(out, kEveryType);
  auto again = bson_from_json(out);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_TRUE(bson_equal(doc->get(), again->get()));
  // The numeric types stay apart: the whole point of canonical mode.
  bson_iter_t it;
  ASSERT_TRUE(bson_iter_init_find(&it, doc->get(), "int64small"));
  EXPECT_EQ(bson_iter_type(&it), BSON_TYPE_INT64);
  ASSERT_TRUE(bson_iter_init_find(&it, doc->get(), "double"));
  EXPECT_EQ(bson_iter_type(&it), BSON_TYPE_DOUBLE);
  ASSERT_TRUE(bson_iter_init_find(&it, doc->get(), "dec"));
  EXPECT_EQ(bson_iter_type(&it), BSON_TYPE_DECIMAL128);
  ASSERT_TRUE(bson_iter_init_find(&it, doc->get(), "farfuture"));
  EXPECT_EQ(bson_iter_type(&it), BSON_TYPE_DATE_TIME);
  EXPECT_EQ(bson_iter_date_time(&it), 253402300800000);
}

TEST(MongoJson, EscapedUnicodeIsReadAsUtf8) {
  auto doc = bson_from_json(R"({"s": "\u00e9 \ud83d\ude00"})");
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  EXPECT_EQ(bson_to_canonical_json(**doc), "{ \"s\" : \"\xC3\xA9 \xF0\x9F\x98\x80\" }");
}

TEST(MongoJson, RelaxedInputBecomesCanonical) {
  auto doc = bson_from_json(R"({"a": 1, "b": 2.5, "c": 3000000000, "d": {"$date": "2023-11-14T22:13:20Z"}})");
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  EXPECT_EQ(bson_to_canonical_json(**doc),
            R"({ "a" : { "$numberInt" : "1" }, "b" : { "$numberDouble" : "2.5" }, )"
            R"("c" : { "$numberLong" : "3000000000" }, "d" : { "$date" : { "$numberLong" : "1700000000000" } } })");
}

TEST(MongoJson, InvalidJsonIsADataError) {
  for (const char* bad : {"{", "[1, 2]", R"({"a": {"$numberInt": "x"}})", ""}) {
    auto doc = bson_from_json(bad);
    ASSERT_FALSE(doc.ok()) << bad;
    EXPECT_EQ(doc.error().code, Exit::data) << bad;
  }
}

// ---- loopback: nothing there, or a server that never answers ----------------------------

TEST(MongoClient, RefusedPortIsUnavailable) {
  LoopbackSocket closed(false);
  auto start = Clock::now();
  auto c = MongoClient::connect(url_of("mongodb://127.0.0.1:" + std::to_string(closed.port())),
                                mongo_timeouts());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Exit::unavailable) << c.error().message;
  EXPECT_LT(Clock::now() - start, milliseconds(3000));
}

TEST(MongoClient, ServerThatNeverAnswersTimesOutWithinTheConnectTimeout) {
  LoopbackSocket silent(true);
  auto start = Clock::now();
  auto c = MongoClient::connect(url_of("mongodb://127.0.0.1:" + std::to_string(silent.port())),
                                mongo_timeouts());
  auto took = Clock::now() - start;
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Exit::unavailable) << c.error().message;
  EXPECT_NE(c.error().message.find("timeout"), std::string::npos) << c.error().message;
  EXPECT_LT(took, milliseconds(3000));
}

// ---- Live tests: against the server in ENVKIT_TEST_MONGO_URL ------------------------------
// ENVKIT_TEST_MONGO_RS_URL: a replica-set member (primary) with ENVKIT_TEST_MONGO_RS_NAME;
// ENVKIT_TEST_MONGO_NOSNAP_URL: a server without snapshot reads; ENVKIT_TEST_MONGO_SLEEP=1:
// the server has envkit's test-only envkitSleep command (tests/lib/mongo_server.py).

std::optional<Url> live_url(const char* var) {
  const char* text = std::getenv(var);
  if (!text || !*text) return std::nullopt;
  auto url = parse_url(text);
  if (!url) {
    ADD_FAILURE() << url.error().message;
    return std::nullopt;
  }
  return *url;
}

#define REQUIRE_LIVE_MONGO(var, url)                                  \
  auto url##_opt = live_url(var);                                     \
  if (!url##_opt) GTEST_SKIP() << "set " << (var) << " to run";       \
  Url url = *url##_opt

// A database name no other run uses at the same time.
std::string test_db(std::string_view what) {
  return "envkit_test_" + std::string(what) + "_" + std::to_string(::getpid());
}

// Connects or fails the test (never the whole run: the other tests must report too).
#define CONNECT_OR_FAIL(var, url, options)                                    \
  auto var##_r = MongoClient::connect(url, options);                          \
  ASSERT_TRUE(var##_r.ok()) << var##_r.error().message;                      \
  MongoClient& var = *var##_r

std::vector<std::string> read_all(MongoCursor& cursor) {
  std::vector<std::string> out;
  while (true) {
    auto r = cursor.next();
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    if (!r.ok() || !*r) break;
    out.push_back(cursor.json());
  }
  return out;
}

TEST(LiveMongo, ConnectsAndReportsHello) {
  REQUIRE_LIVE_MONGO("ENVKIT_TEST_MONGO_URL", url);
  auto c = MongoClient::connect(url, ConnectionOptions{});
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto h = c->hello();
  ASSERT_TRUE(h.ok()) << h.error().message;
  EXPECT_TRUE(h->set_name.empty());
  EXPECT_TRUE(h->writable_primary);
  EXPECT_FALSE(h->secondary);
  EXPECT_GE(h->max_wire_version, 13);
  EXPECT_FALSE(h->server_version.empty());
  EXPECT_NE(h->reply_json.find("maxWireVersion"), std::string::npos);
  auto v = c->server_version();
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, h->server_version);
}

TEST(LiveMongo, ReplicaSetHelloNamesThePrimary) {
  REQUIRE_LIVE_MONGO("ENVKIT_TEST_MONGO_RS_URL", url);
  const char* name = std::getenv("ENVKIT_TEST_MONGO_RS_NAME");
  ASSERT_NE(name, nullptr) << "set ENVKIT_TEST_MONGO_RS_NAME too";
  CONNECT_OR_FAIL(c, url, ConnectionOptions{});
  auto h = c.hello();
  ASSERT_TRUE(h.ok()) << h.error().message;
  EXPECT_EQ(h->set_name, name);
  EXPECT_TRUE(h->writable_primary);
  EXPECT_FALSE(h->me.empty());
  EXPECT_EQ(h->primary, h->me);
  EXPECT_NE(std::find(h->hosts.begin(), h->hosts.end(), h->me), h->hosts.end());
}

TEST(LiveMongo, InsertManyThenFindStreams25000Documents) {
  REQUIRE_LIVE_MONGO("ENVKIT_TEST_MONGO_URL", url);
  CONNECT_OR_FAIL(c, url, ConnectionOptions{});
  std::string db = test_db("stream");
  ASSERT_TRUE(c.drop_collection(db, "big").ok());
  const int n = 25000;
  std::vector<std::string> docs;
  docs.reserve(n);
  for (int i = 0; i < n; ++i) {
    docs.push_back(R"({"i": {"$numberInt": ")" + std::to_string(i) + R"("}, "pad": "0123456789abcdef"})");
  }
  auto inserted = c.insert_many(db, "big", docs);
  ASSERT_TRUE(inserted.ok()) << inserted.error().message;
  EXPECT_EQ(*inserted, n);
  FindOptions o;
  o.batch_size = 1000;
  o.sort = R"({"i": 1})";
  o.projection = R"({"_id": 0})";
  auto cursor = c.find(db, "big", "", o);
  ASSERT_TRUE(cursor.ok()) << cursor.error().message;
  int expected = 0;
  while (true) {
    auto r = cursor->next();
    ASSERT_TRUE(r.ok()) << r.error().message;
    if (!*r) break;
    ASSERT_EQ(cursor->json(), R"({ "i" : { "$numberInt" : ")" + std::to_string(expected) +
                                  R"(" }, "pad" : "0123456789abcdef" })");
    ++expected;
  }
  EXPECT_EQ(expected, n);
  EXPECT_EQ(cursor->documents_read(), static_cast<uint64_t>(n));
  auto count = c.count(db, "big", R"({"i": {"$gte": 24000}})");
  ASSERT_TRUE(count.ok()) << count.error().message;
  EXPECT_EQ(*count, 1000);
  ASSERT_TRUE(c.drop_collection(db, "big").ok());
}

TEST(LiveMongo, SnapshotFindDoesNotSeeLaterWrites) {
  REQUIRE_LIVE_MONGO("ENVKIT_TEST_MONGO_RS_URL", url);
  CONNECT_OR_FAIL(c, url, ConnectionOptions{});
  std::string db = test_db("snap");
  ASSERT_TRUE(c.drop_collection(db, "a").ok());
  ASSERT_TRUE(c.drop_collection(db, "b").ok());
  std::vector<std::string> ten, five;
  for (int i = 0; i < 10; ++i) ten.push_back(R"({"i": )" + std::to_string(i) + "}");
  for (int i = 0; i < 5; ++i) five.push_back(R"({"j": )" + std::to_string(i) + "}");
  ASSERT_TRUE(c.insert_many(db, "a", ten).ok());
  ASSERT_TRUE(c.insert_many(db, "b", five).ok());

  auto snap = c.begin_snapshot(db);
  ASSERT_TRUE(snap.ok()) << snap.error().message;
  ASSERT_TRUE(snap->point_in_time()) << snap->fallback_reason();
  EXPECT_NE(snap->cluster_time_json().find("$timestamp"), std::string::npos);
  FindOptions o;
  o.batch_size = 3;
  o.snapshot = &*snap;
  auto a = c.find(db, "a", "", o);
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto first = a->next();
  ASSERT_TRUE(first.ok() && *first);
  // Written after the snapshot began, to both collections: neither read may see them.
  ASSERT_TRUE(c.insert_many(db, "a", five).ok());
  ASSERT_TRUE(c.insert_many(db, "b", ten).ok());
  EXPECT_EQ(read_all(*a).size() + 1, 10u);
  auto b = c.find(db, "b", "", o);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(read_all(*b).size(), 5u);
  auto now = c.count(db, "b");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(*now, 15);
  ASSERT_TRUE(c.drop_collection(db, "a").ok());
  ASSERT_TRUE(c.drop_collection(db, "b").ok());
}

TEST(LiveMongo, SnapshotFallsBackWhereTheServerCannot) {
  REQUIRE_LIVE_MONGO("ENVKIT_TEST_MONGO_NOSNAP_URL", url);
  CONNECT_OR_FAIL(c, url, ConnectionOptions{});
  std::string db = test_db("nosnap");
  ASSERT_TRUE(c.insert_many(db, "a", {R"({"x": 1})"}).ok());
  auto snap = c.begin_snapshot(db);
  ASSERT_TRUE(snap.ok()) << snap.error().message;
  EXPECT_FALSE(snap->point_in_time());
  EXPECT_FALSE(snap->fallback_reason().empty());
  EXPECT_TRUE(snap->cluster_time_json().empty());
  FindOptions o;
  o.snapshot = &*snap;
  auto a = c.find(db, "a", "", o);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(read_all(*a).size(), 1u);
  ASSERT_TRUE(c.drop_collection(db, "a").ok());
}

TEST(LiveMongo, EveryBsonTypeSurvivesInsertAndFind) {
  REQUIRE_LIVE_MONGO("ENVKIT_TEST_MONGO_URL", url);
  CONNECT_OR_FAIL(c, url, ConnectionOptions{});
  std::string db = test_db("types");
  ASSERT_TRUE(c.drop_collection(db, "t").ok());
  auto n = c.insert_many(db, "t", {kEveryType});
  ASSERT_TRUE(n.ok()) << n.error().message;
  auto cursor = c.find(db, "t", R"({"_id": {"$oid": "5f0000000000000000000001"}})");
  ASSERT_TRUE(cursor.ok()) << cursor.error().message;
  auto docs = read_all(*cursor);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0], kEveryType);
  ASSERT_TRUE(c.drop_collection(db, "t").ok());
}

TEST(LiveMongo, IndexesRoundTripAndUniqueIsEnforced) {
  REQUIRE_LIVE_MONGO("ENVKIT_TEST_MONGO_URL", url);
  CONNECT_OR_FAIL(c, url, ConnectionOptions{});
  std::string db = test_db("idx");
  ASSERT_TRUE(c.drop_collection(db, "src").ok());
  ASSERT_TRUE(c.drop_collection(db, "dst").ok());
  auto st = c.create_indexes(db, "src",
                             {R"({"key": {"email": 1}, "name": "email_u", "unique": true})",
                              R"({"key": {"b": -1, "c": 1}, "name": "b_c"})"});
  ASSERT_TRUE(st.ok()) << st.error().message;
  auto listed = c.list_indexes(db, "src");
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_NE((*listed)[1].find(R"("name" : "email_u")"), std::string::npos) << (*listed)[1];
  EXPECT_NE((*listed)[1].find(R"("unique" : true)"), std::string::npos) << (*listed)[1];

  ASSERT_TRUE(c.insert_many(db, "src", {R"({"email": "a@x"})"}).ok());
  auto dup = c.insert_many(db, "src", {R"({"email": "b@x"})", R"({"email": "a@x"})"});
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, Exit::data) << dup.error().message;
  EXPECT_NE(dup.error().message.find("E11000"), std::string::npos) << dup.error().message;
  EXPECT_NE(dup.error().message.find("1 of 2 documents inserted"), std::string::npos) << dup.error().message;

  // What list_indexes gives, create_indexes takes: a restore copies them.
  ASSERT_TRUE(c.create_indexes(db, "dst", *listed).ok());
  auto copied = c.list_indexes(db, "dst");
  ASSERT_TRUE(copied.ok());
  EXPECT_EQ(*copied, *listed);

  auto missing = c.list_indexes(db, "nope");
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_TRUE(missing->empty());
  ASSERT_TRUE(c.drop_collection(db, "src").ok());
  ASSERT_TRUE(c.drop_collection(db, "dst").ok());
  EXPECT_TRUE(c.drop_collection(db, "dst").ok());  // already gone: still fine
}

TEST(LiveMongo, ListCollectionsRunCommandAndServerErrors) {
  REQUIRE_LIVE_MONGO("ENVKIT_TEST_MONGO_URL", url);
  CONNECT_OR_FAIL(c, url, ConnectionOptions{});
  std::string db = test_db("cmd");
  auto created = c.run_command(db, R"({"create": "capped", "capped": true, "size": 4096})");
  ASSERT_TRUE(created.ok()) << created.error().message;
  ASSERT_TRUE(c.insert_many(db, "plain", {R"({"k": 1, "v": "a"})", R"({"k": 2, "v": "b"})"}).ok());
  auto list = c.list_collections(db);
  ASSERT_TRUE(list.ok()) << list.error().message;
  std::vector<std::string> names;
  for (const auto& info : *list) {
    names.push_back(info.name);
    EXPECT_EQ(info.type, "collection");
    if (info.name == "capped") {
      EXPECT_NE(info.options_json.find(R"("capped" : true)"), std::string::npos) << info.options_json;
    }
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"capped", "plain"}));

  auto upd = c.run_command(db, R"({"update": "plain", "updates": [{"q": {"k": 2}, "u": {"$set": {"v": "B"}}}]})");
  ASSERT_TRUE(upd.ok()) << upd.error().message;
  EXPECT_NE(upd->find(R"("nModified" : { "$numberInt" : "1" })"), std::string::npos) << *upd;
  auto del = c.run_command(db, R"({"delete": "plain", "deletes": [{"q": {"k": 1}, "limit": 1}]})");
  ASSERT_TRUE(del.ok()) << del.error().message;
  auto left = c.find(db, "plain", R"({"v": "B"})");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(read_all(*left).size(), 1u);

  auto unknown = c.run_command(db, R"({"envkitNoSuchCommand": 1})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Exit::data) << unknown.error().message;
  auto bad_filter = c.find(db, "plain", R"({"v": {"$frobnicate": 1}})");
  ASSERT_TRUE(bad_filter.ok());
  auto r = bad_filter->next();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::data) << r.error().message;
  auto again = bad_filter->next();  // still the error, never a quiet end
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, r.error().message);
  auto bad_json = c.find(db, "plain", "{not json");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_EQ(bad_json.error().code, Exit::data);
  ASSERT_TRUE(c.run_command(db, R"({"dropDatabase": 1})").ok());
}

TEST(LiveMongo, SlowServerHitsTheIoTimeoutAsTemporaryFailure) {
  REQUIRE_LIVE_MONGO("ENVKIT_TEST_MONGO_URL", url);
  const char* sleep_cmd = std::getenv("ENVKIT_TEST_MONGO_SLEEP");
  if (!sleep_cmd || std::string(sleep_cmd) != "1") {
    GTEST_SKIP() << "needs the test server's envkitSleep (ENVKIT_TEST_MONGO_SLEEP=1)";
  }
  ConnectionOptions o;
  o.io_timeout = milliseconds(700);
  CONNECT_OR_FAIL(c, url, o);
  auto start = Clock::now();
  auto r = c.run_command("admin", R"({"envkitSleep": 5000})");
  auto took = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::temp_fail) << r.error().message;
  EXPECT_LT(took, milliseconds(3000));
  // The client is usable again afterwards.
  auto v = c.server_version();
  EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.error().message);
}

// ENVKIT_TEST_MONGO_FAILOVER_URL names a two-member set of test servers (the first member
// primary), ENVKIT_TEST_MONGO_FAILOVER_A/_B each member directly: the members trade roles
// with envkitSetState, as a failover would, and the set's client must follow.
TEST(LiveMongo, ReplicaSetClientFollowsANewPrimary) {
  REQUIRE_LIVE_MONGO("ENVKIT_TEST_MONGO_FAILOVER_URL", url);
  auto a_url = live_url("ENVKIT_TEST_MONGO_FAILOVER_A");
  auto b_url = live_url("ENVKIT_TEST_MONGO_FAILOVER_B");
  ASSERT_TRUE(a_url && b_url) << "set ENVKIT_TEST_MONGO_FAILOVER_A and _B too";
  CONNECT_OR_FAIL(c, url, mongo_timeouts());
  CONNECT_OR_FAIL(a, *a_url, mongo_timeouts());
  CONNECT_OR_FAIL(b, *b_url, mongo_timeouts());
  std::string db = test_db("failover");
  auto before = c.hello();
  ASSERT_TRUE(before.ok()) << before.error().message;
  auto a_hello = a.hello();
  ASSERT_TRUE(a_hello.ok());
  EXPECT_EQ(before->primary, a_hello->me);
  ASSERT_TRUE(c.insert_many(db, "k", {R"({"n": 1})"}).ok());

  ASSERT_TRUE(a.run_command("admin", R"({"envkitSetState": "secondary"})").ok());
  ASSERT_TRUE(b.run_command("admin", R"({"envkitSetState": "primary"})").ok());
  // The set's client learns of the switch from its next server check; a write that meets
  // the old primary fails as unavailable (retryable), never as bad data.
  bool written = false;
  for (int attempt = 0; attempt < 5 && !written; ++attempt) {
    auto r = c.insert_many(db, "k", {R"({"n": 2})"});
    if (r.ok()) {
      written = true;
    } else {
      EXPECT_EQ(r.error().code, Exit::unavailable) << r.error().message;
      ::usleep(200 * 1000);
    }
  }
  ASSERT_TRUE(written);
  auto after = c.hello();
  ASSERT_TRUE(after.ok()) << after.error().message;
  auto b_hello = b.hello();
  ASSERT_TRUE(b_hello.ok());
  EXPECT_EQ(after->primary, b_hello->me);
  // The members do not replicate: the second write is on the new primary only.
  auto on_b = b.count(db, "k", R"({"n": 2})");
  ASSERT_TRUE(on_b.ok()) << on_b.error().message;
  EXPECT_EQ(*on_b, 1);
  // Back as they were, for whoever runs next.
  ASSERT_TRUE(b.run_command("admin", R"({"envkitSetState": "secondary"})").ok());
  ASSERT_TRUE(a.run_command("admin", R"({"envkitSetState": "primary"})").ok());
}

// ---- LiveMongoRs: a replicating replica set (tests/bats/mongo-rs.bats) ---------------------
// ENVKIT_TEST_MONGO_RS_SET_URL: the set's URI (mongodb://h1,h2,h3/?replicaSet=NAME), the
// test server's `start_mongo_rs` or a real set. The stream and check tests share a database
// (ENVKIT_TEST_MONGO_RS_DB) and a file of acknowledged sequence numbers
// (ENVKIT_TEST_MONGO_RS_ACKED): Bats stops the primary between or during them.

// The URL text of VAR with more driver options, or nullopt (the test skips) when unset.
std::optional<Url> live_url_with(const char* var, const std::string& options) {
  const char* text = std::getenv(var);
  if (!text || !*text) return std::nullopt;
  std::string t = text;
  t += (t.find('?') == std::string::npos ? "/?" : "&") + options;
  auto url = parse_url(t);
  if (!url) {
    ADD_FAILURE() << url.error().message;
    return std::nullopt;
  }
  return *url;
}

std::string required_env(const char* var) {
  const char* v = std::getenv(var);
  return v ? v : "";
}

// The documents of db.coll whose field `seq` is an int32, counted by value.
Result<std::map<int32_t, int>> count_seqs(MongoClient& c, const std::string& db, const std::string& coll) {
  FindOptions o;
  o.projection = R"({"seq": 1, "_id": 0})";
  o.batch_size = 5000;
  auto cursor = c.find(db, coll, "", o);
  if (!cursor) return cursor.error();
  std::map<int32_t, int> seen;
  while (true) {
    auto more = cursor->next();
    if (!more) return more.error();
    if (!*more) break;
    bson_iter_t it;
    if (bson_iter_init_find(&it, cursor->bson(), "seq") && BSON_ITER_HOLDS_INT32(&it)) {
      ++seen[bson_iter_int32(&it)];
    }
  }
  return seen;
}

TEST(LiveMongoRs, MajorityWriteIsOnAMajorityWhenAcknowledgedAndOnEveryMemberSoon) {
  auto set_url = live_url_with("ENVKIT_TEST_MONGO_RS_SET_URL", "w=majority");
  if (!set_url) GTEST_SKIP() << "set ENVKIT_TEST_MONGO_RS_SET_URL to run";
  CONNECT_OR_FAIL(c, *set_url, ConnectionOptions{});
  auto hello = c.hello();
  ASSERT_TRUE(hello.ok()) << hello.error().message;
  ASSERT_GE(hello->hosts.size(), 1u);
  const size_t majority = hello->hosts.size() / 2 + 1;
  std::vector<MongoClient> members;
  for (const auto& host : hello->hosts) {
    CONNECT_OR_FAIL(m, url_of("mongodb://" + host + "/?directConnection=true"), ConnectionOptions{});
    members.push_back(std::move(m));
  }
  std::string db = test_db("rs_majority");
  ASSERT_TRUE(c.drop_collection(db, "m").ok());
  // Ten rounds: each write acknowledged w: majority must already be on a majority, counted
  // member by member right after the acknowledgement.
  for (int round = 1; round <= 10; ++round) {
    auto inserted = c.insert_many(db, "m", {R"({"round": )" + std::to_string(round) + "}"});
    ASSERT_TRUE(inserted.ok()) << inserted.error().message;
    size_t holding = 0;
    std::string counts;
    for (auto& m : members) {
      auto n = m.count(db, "m", R"({"round": )" + std::to_string(round) + "}");
      ASSERT_TRUE(n.ok()) << n.error().message;
      holding += *n == 1;
      counts += " " + m.endpoint() + "=" + std::to_string(*n);
    }
    EXPECT_GE(holding, majority) << "round " << round << ": a write acknowledged w: majority was on "
                                 << holding << " of " << members.size() << " members:" << counts;
  }
  // And on every member once replication catches up (bounded wait).
  auto deadline = Clock::now() + std::chrono::seconds(30);
  for (auto& m : members) {
    int64_t n = -1;
    while (Clock::now() < deadline) {
      auto r = m.count(db, "m");
      ASSERT_TRUE(r.ok()) << r.error().message;
      n = *r;
      if (n == 10) break;
      ::usleep(50 * 1000);
    }
    EXPECT_EQ(n, 10) << m.endpoint() << " never caught up";
  }
}

// Inserts ENVKIT_TEST_MONGO_RS_STREAM_N documents {seq: i} one by one through mongo-c-driver
// (w: majority, retryable writes, server selection that waits out an election) and appends
// each acknowledged seq to ENVKIT_TEST_MONGO_RS_ACKED as it is acknowledged. With
// ENVKIT_TEST_MONGO_RS_PAUSE_AT=K and _PAUSE_UNTIL=FILE it waits, after K acknowledged
// inserts, until FILE exists (at most 60 s), so that what the test does meanwhile (a
// step-down) happens with the stream still to go on, however fast or busy the machine.
TEST(LiveMongoRs, StreamOfAcknowledgedInserts) {
  auto set_url = live_url("ENVKIT_TEST_MONGO_RS_SET_URL");
  if (!set_url) GTEST_SKIP() << "set ENVKIT_TEST_MONGO_RS_SET_URL to run";
  std::string db = required_env("ENVKIT_TEST_MONGO_RS_DB");
  std::string acked_path = required_env("ENVKIT_TEST_MONGO_RS_ACKED");
  int n = std::atoi(required_env("ENVKIT_TEST_MONGO_RS_STREAM_N").c_str());
  ASSERT_TRUE(!db.empty() && !acked_path.empty() && n > 0)
      << "set ENVKIT_TEST_MONGO_RS_DB, _ACKED and _STREAM_N too";
  CONNECT_OR_FAIL(c, *set_url, ConnectionOptions{});  // also mongoc_init()
  ASSERT_TRUE(c.drop_collection(db, "stream").ok());

  std::string text = required_env("ENVKIT_TEST_MONGO_RS_SET_URL");
  text += (text.find('?') == std::string::npos ? "/?" : "&");
  text += "w=majority&retryWrites=true&serverSelectionTryOnce=false&serverSelectionTimeoutMS=60000"
          "&socketTimeoutMS=60000&connectTimeoutMS=5000";
  bson_error_t err;
  std::unique_ptr<mongoc_uri_t, detail::MongoUriDestroyer> uri(mongoc_uri_new_with_error(text.c_str(), &err));
  ASSERT_TRUE(uri) << err.message;
  std::unique_ptr<mongoc_client_t, detail::MongoClientDestroyer> client(mongoc_client_new_from_uri(uri.get()));
  ASSERT_TRUE(client);
  std::unique_ptr<mongoc_collection_t, detail::MongoCollectionDestroyer> coll(
      mongoc_client_get_collection(client.get(), db.c_str(), "stream"));
  std::ofstream acked(acked_path, std::ios::trunc);
  ASSERT_TRUE(acked) << acked_path;
  int ok = 0;
  std::vector<std::string> failures;
  const char* pause_at = std::getenv("ENVKIT_TEST_MONGO_RS_PAUSE_AT");
  const char* pause_until = std::getenv("ENVKIT_TEST_MONGO_RS_PAUSE_UNTIL");
  for (int i = 0; i < n; ++i) {
    if (pause_at && pause_until && i == std::atoi(pause_at)) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (::access(pause_until, F_OK) != 0) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << pause_until << " never appeared";
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    BsonPtr doc(bson_new());
    BSON_APPEND_INT32(doc.get(), "seq", i);
    bson_t reply;
    bool done = mongoc_collection_insert_one(coll.get(), doc.get(), nullptr, &reply, &err);
    bson_destroy(&reply);
    if (done) {
      acked << i << '\n' << std::flush;
      ++ok;
    } else {
      failures.push_back("seq " + std::to_string(i) + ": " + err.message);
      if (failures.size() == 3) break;  // no primary for minutes: stop, do not hang
    }
  }
  std::cout << "stream: " << ok << " of " << n << " inserts acknowledged\n";
  EXPECT_EQ(ok, n) << "first failures:\n" << [&] {
    std::string all;
    for (const auto& f : failures) all += f + "\n";
    return all;
  }();
}

// Every seq in ENVKIT_TEST_MONGO_RS_ACKED is in db.stream exactly once, and no seq is there
// twice, read from ENVKIT_TEST_MONGO_RS_CHECK_URL (the set, or one member directly).
TEST(LiveMongoRs, EveryAcknowledgedInsertIsPresentOnce) {
  auto check_url = live_url("ENVKIT_TEST_MONGO_RS_CHECK_URL");
  if (!check_url) GTEST_SKIP() << "set ENVKIT_TEST_MONGO_RS_CHECK_URL to run";
  std::string db = required_env("ENVKIT_TEST_MONGO_RS_DB");
  std::ifstream acked(required_env("ENVKIT_TEST_MONGO_RS_ACKED"));
  ASSERT_TRUE(!db.empty() && acked) << "set ENVKIT_TEST_MONGO_RS_DB and _ACKED (an existing file) too";
  CONNECT_OR_FAIL(c, *check_url, ConnectionOptions{});
  auto seen = count_seqs(c, db, "stream");
  ASSERT_TRUE(seen.ok()) << seen.error().message;
  int64_t acknowledged = 0, missing = 0, duplicated = 0, present = 0;
  std::string first_missing;
  for (int32_t seq; acked >> seq;) {
    ++acknowledged;
    auto it = seen->find(seq);
    if (it == seen->end()) {
      if (++missing <= 10) first_missing += " " + std::to_string(seq);
    }
  }
  for (const auto& [seq, times] : *seen) {
    present += times;
    duplicated += times > 1;
  }
  std::cout << "check " << c.endpoint() << ": acknowledged " << acknowledged << " present " << present
            << " missing " << missing << " duplicated " << duplicated << "\n";
  EXPECT_GT(acknowledged, 0);
  EXPECT_EQ(missing, 0) << "acknowledged but not there:" << first_missing;
  EXPECT_EQ(duplicated, 0);
}

}  // namespace
}  // namespace envkit
