// Unit tests for db-backup's Redis record format (redis_records.hpp) and the Mongo backend's
// pure helpers (mongo_backend.hpp): no server.
#include <gtest/gtest.h>

#include <string>

#include <envkit/json.hpp>
#include "db-backup/mongo_backend.hpp"
#include "db-backup/redis_records.hpp"

namespace db_backup::redis_records {
namespace {

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s += static_cast<char>(i);
  return s;
}

Record round_trip(const Record& r) {
  std::string line = encode(r);
  EXPECT_EQ(line.find('\n'), std::string::npos) << "a record must be one line";
  auto back = decode(line);
  EXPECT_TRUE(back.ok()) << (back.ok() ? "" : back.error().message) << "\n" << line;
  return back.ok() ? *back : Record{};
}

TEST(DbBackupRedisRecords, Utf8ValidationIsStrict) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("Bogotá 🌧"));
  EXPECT_TRUE(is_valid_utf8(std::string("nul\0inside", 10)));
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
}

TEST(DbBackupRedisRecords, TextStaysReadableBinaryBecomesBase64) {
  Record r;
  r.key = "user:1\nnewline";
  r.bytes = "hello";
  std::string line = encode(r);
  EXPECT_NE(line.find(R"("key":"user:1\nnewline")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("value":"hello")"), std::string::npos) << line;
  r.key = "\xff\xfe";
  line = encode(r);
  EXPECT_NE(line.find(R"("key":{"base64":"//4="})"), std::string::npos) << line;
}

TEST(DbBackupRedisRecords, StringsOfEveryByteRoundTrip) {
  Record r;
  r.key = all_bytes();
  r.bytes = all_bytes() + all_bytes();
  Record back = round_trip(r);
  EXPECT_EQ(back.key, r.key);
  EXPECT_EQ(back.bytes, r.bytes);
  EXPECT_EQ(back.type, KeyType::string);
  EXPECT_FALSE(back.expire_at_ms.has_value());

  Record empty;
  empty.key = std::string("\0", 1);
  Record e = round_trip(empty);
  EXPECT_EQ(e.key, std::string("\0", 1));
  EXPECT_EQ(e.bytes, "");
}

TEST(DbBackupRedisRecords, CollectionsRoundTripWithTtlAndPart) {
  Record h;
  h.key = "h";
  h.type = KeyType::hash;
  h.expire_at_ms = 1'800'000'000'000;
  h.part = 3;
  h.pairs = {{"f1", "v1"}, {"\x80", std::string("\0\x01", 2)}, {"", ""}};
  Record back = round_trip(h);
  EXPECT_EQ(back.type, KeyType::hash);
  EXPECT_EQ(back.part, 3u);
  EXPECT_EQ(back.expire_at_ms, 1'800'000'000'000);
  EXPECT_EQ(back.pairs, h.pairs);

  for (KeyType t : {KeyType::list, KeyType::set}) {
    Record l;
    l.key = "l";
    l.type = t;
    l.items = {"a", "", "\xc3\x28", "a"};
    Record lb = round_trip(l);
    EXPECT_EQ(lb.type, t);
    EXPECT_EQ(lb.items, l.items);
  }
}

TEST(DbBackupRedisRecords, ZsetScoresKeepRedisText) {
  Record z;
  z.key = "z";
  z.type = KeyType::zset;
  z.pairs = {{"a", "-inf"}, {"b", "0.10000000000000001"}, {"c", "1e+300"}, {"\xff", "inf"}};
  std::string line = encode(z);
  EXPECT_NE(line.find(R"(["a","-inf"])"), std::string::npos) << line;
  EXPECT_NE(line.find(R"(["b","0.10000000000000001"])"), std::string::npos) << line;
  EXPECT_EQ(round_trip(z).pairs, z.pairs);

  auto bad = decode(R"({"key":"z","type":"zset","expire_at_ms":null,"value":[["a","nan"]]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, envkit::Exit::data);
  EXPECT_TRUE(is_valid_score("+inf"));
  EXPECT_TRUE(is_valid_score("4.9406564584124654e-324"));
  EXPECT_FALSE(is_valid_score("1.5x"));
  EXPECT_FALSE(is_valid_score(""));
}

TEST(DbBackupRedisRecords, StreamsKeepIdsFieldsAndGroups) {
  Record s;
  s.key = "events";
  s.type = KeyType::stream;
  s.entries = {{"1-0", {"temp", "13.5", "bin", "\xfe"}}, {"1-1", {}}};
  StreamMeta m;
  m.last_id = "5-0";
  m.entries_added = 4;
  m.max_deleted_id = "3-0";
  m.groups = {{"workers", "1-0", 1}, {"idle", "0-0", std::nullopt}};
  s.stream = m;
  Record back = round_trip(s);
  ASSERT_EQ(back.entries.size(), 2u);
  EXPECT_EQ(back.entries[0].id, "1-0");
  EXPECT_EQ(back.entries[0].fields, s.entries[0].fields);
  EXPECT_TRUE(back.entries[1].fields.empty());
  ASSERT_TRUE(back.stream.has_value());
  EXPECT_EQ(back.stream->last_id, "5-0");
  EXPECT_EQ(back.stream->entries_added, 4);
  EXPECT_EQ(back.stream->max_deleted_id, "3-0");
  ASSERT_EQ(back.stream->groups.size(), 2u);
  EXPECT_EQ(back.stream->groups[0].name, "workers");
  EXPECT_EQ(back.stream->groups[0].entries_read, 1);
  EXPECT_FALSE(back.stream->groups[1].entries_read.has_value());

  // A later part carries entries only.
  s.stream.reset();
  s.part = 1;
  EXPECT_FALSE(round_trip(s).stream.has_value());
}

TEST(DbBackupRedisRecords, RejectsMalformedRecords) {
  const char* bad[] = {
      R"([1,2])",
      R"({"type":"string","expire_at_ms":null,"value":"x"})",
      R"({"key":"k","type":"blob","expire_at_ms":null,"value":"x"})",
      R"({"key":"k","type":"string","expire_at_ms":-5,"value":"x"})",
      R"({"key":"k","type":"string","expire_at_ms":null})",
      R"({"key":{"base64":"@@"},"type":"string","expire_at_ms":null,"value":"x"})",
      R"({"key":"k","type":"hash","expire_at_ms":null,"value":[["f"]]})",
      R"({"key":"k","type":"list","expire_at_ms":null,"value":"x"})",
      R"({"key":"k","type":"stream","expire_at_ms":null,"value":{"entries":[["1-0",["odd"]]]}})",
      R"({"key":"k","type":"string","part":-1,"expire_at_ms":null,"value":"x"})",
  };
  for (const char* text : bad) {
    auto r = decode(text);
    EXPECT_FALSE(r.ok()) << text;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, envkit::Exit::data) << text;
    }
  }
}

TEST(DbBackupRedisRecords, TypeNamesMatchRedis) {
  for (KeyType t : {KeyType::string, KeyType::hash, KeyType::list, KeyType::set, KeyType::zset,
                    KeyType::stream}) {
    EXPECT_EQ(parse_type(type_name(t)), t);
  }
  EXPECT_FALSE(parse_type("none").has_value());
  EXPECT_FALSE(parse_type("ReJSON-RL").has_value());
}

}  // namespace
}  // namespace db_backup::redis_records

namespace db_backup {
namespace {

TEST(DbBackupMongo, CreateCommandCarriesTheCollectionOptions) {
  auto plain = mongo_create_command("things", "{}");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, R"({"create":"things"})");
  auto none = mongo_create_command("things", "");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, R"({"create":"things"})");
  // "create" comes first (the command name); options keep their Extended JSON types.
  auto capped = mongo_create_command("log \"1\"", R"({ "capped" : true, "size" : { "$numberLong" : "4096" } })");
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(*capped, R"({"create":"log \"1\"","capped":true,"size":{"$numberLong":"4096"}})");
  auto bad = mongo_create_command("x", "[1]");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, envkit::Exit::data);
}

}  // namespace
}  // namespace db_backup
