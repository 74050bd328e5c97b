// Unit tests for queue_relay::record_time: the timestamp forms --timestamp-field reads.
#include <gtest/gtest.h>

#include "queue-relay/relay.hpp"

namespace queue_relay {
namespace {

using namespace std::chrono;

std::optional<int64_t> ms_of(const std::string& json, std::string_view field = "ts") {
  auto t = record_time({"x", json}, field);
  if (!t) return std::nullopt;
  return duration_cast<milliseconds>(t->time_since_epoch()).count();
}

TEST(RecordTime, ReadsRfc3339WithAnOffset) {
  EXPECT_EQ(ms_of(R"({"ts":"2026-11-22T16:45:00.250Z"})"), 1795365900250);
  EXPECT_EQ(ms_of(R"({"ts":"2026-11-22T11:45:00-05:00"})"), 1795365900000);
  EXPECT_EQ(ms_of(R"({"ts":"2026-11-22T16:45:00"})"), std::nullopt);  // whose local time?
  EXPECT_EQ(ms_of(R"({"ts":"yesterday"})"), std::nullopt);
}

TEST(RecordTime, TellsEpochSecondsFromMillisecondsBySize) {
  EXPECT_EQ(ms_of(R"({"ts":1795365900})"), 1795365900000);
  EXPECT_EQ(ms_of(R"({"ts":1795365900.25})"), 1795365900250);
  EXPECT_EQ(ms_of(R"({"ts":1795365900250})"), 1795365900250);
  EXPECT_EQ(ms_of(R"({"ts":1795365900250000})"), std::nullopt);  // microseconds: not guessed
  EXPECT_EQ(ms_of(R"({"ts":-5})"), std::nullopt);
}

TEST(RecordTime, ReachesIntoObjectsAndIsNulloptWhenAbsent) {
  EXPECT_EQ(ms_of(R"({"meta":{"sent":1795365900}})", "meta.sent"), 1795365900000);
  EXPECT_EQ(ms_of(R"({"meta":{"sent":1795365900}})", "meta.other"), std::nullopt);
  EXPECT_EQ(ms_of(R"({"ts":null})"), std::nullopt);
  EXPECT_EQ(ms_of(R"({"ts":true})"), std::nullopt);
  EXPECT_EQ(ms_of("not json"), std::nullopt);
  EXPECT_EQ(ms_of(R"({"id":1})"), std::nullopt);
}

}  // namespace
}  // namespace queue_relay
