// Unit tests for envkit/json.hpp: parsing errors, escaping, number round trips.
#include <envkit/json.hpp>

#include <gtest/gtest.h>

#include <limits>

namespace envkit {
namespace {

TEST(Json, ParsesObjectAndFindsMembers) {
  auto doc = parse_json(R"({"city":"Bogotá","t":13.5,"n":null})");
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  const JsonValue* city = find_member(*doc, "city");
  ASSERT_NE(city, nullptr);
  EXPECT_STREQ(city->GetString(), "Bogotá");
  EXPECT_DOUBLE_EQ(find_member(*doc, "t")->GetDouble(), 13.5);
  EXPECT_TRUE(find_member(*doc, "n")->IsNull());
  EXPECT_EQ(find_member(*doc, "missing"), nullptr);
}

TEST(Json, RejectsTrailingGarbageButAllowsTrailingSpace) {
  EXPECT_TRUE(parse_json("{\"a\":1}  \n").ok());
  auto bad = parse_json("{\"a\":1} x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Exit::data);
  EXPECT_NE(bad.error().message.find("byte"), std::string::npos);
}

TEST(Json, ReportsOffsetOfError) {
  auto bad = parse_json("{\"a\":tru}");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("invalid JSON at byte"), std::string::npos);
}

TEST(Json, WriterEscapesAndKeepsUtf8) {
  JsonWriter w;
  w.begin_object().key("s").string("a\"b\\c\nd\x01 ñ 🌧").end_object();
  EXPECT_EQ(w.take(), "{\"s\":\"a\\\"b\\\\c\\nd\\u0001 ñ 🌧\"}");
}

TEST(Json, WriterHandlesEmbeddedNulAndNonFinite) {
  JsonWriter w;
  std::string with_nul("a\0b", 3);
  w.begin_array().string(with_nul).number(std::numeric_limits<double>::infinity());
  w.number(std::numeric_limits<double>::quiet_NaN()).end_array();
  EXPECT_EQ(w.take(), "[\"a\\u0000b\",null,null]");
}

TEST(Json, NumbersRoundTrip) {
  JsonWriter w;
  w.begin_array().number(int64_t{-9223372036854775807 - 1}).number(uint64_t{18446744073709551615u});
  w.number(0.1).number(1e300).end_array();
  std::string text = w.take();
  auto doc = parse_json(text);
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ((*doc)[0].GetInt64(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ((*doc)[1].GetUint64(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ((*doc)[2].GetDouble(), 0.1);
  EXPECT_EQ((*doc)[3].GetDouble(), 1e300);
  EXPECT_EQ(to_json(*doc), text);
}

TEST(Json, TakeResetsWriter) {
  JsonWriter w;
  w.number(1);
  EXPECT_TRUE(w.complete());
  EXPECT_EQ(w.take(), "1");
  w.boolean(false);
  EXPECT_EQ(w.take(), "false");
}

}  // namespace
}  // namespace envkit
