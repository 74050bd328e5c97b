// Unit tests for envkit/timefmt.hpp: RFC 3339 round trips, offsets, bad input.
#include <envkit/timefmt.hpp>

#include <gtest/gtest.h>

namespace envkit {
namespace {

using namespace std::chrono;

TEST(TimeFormat, FormatsUtcWithAndWithoutMillis) {
  SysMillis t = sys_days{2026y / November / 22} + 16h + 45min;
  EXPECT_EQ(format_utc(t), "2026-11-22T16:45:00Z");
  EXPECT_EQ(format_utc(t, true), "2026-11-22T16:45:00.000Z");
  EXPECT_EQ(format_utc(t + 250ms), "2026-11-22T16:45:00.250Z");
  EXPECT_EQ(format_utc(SysMillis{} - 1ms), "1969-12-31T23:59:59.999Z");
}

TEST(TimeFormat, ParsesOffsetsToTheSameInstant) {
  auto utc = parse_time("2026-11-22T16:45:00Z");
  auto bogota = parse_time("2026-11-22T11:45:00-05:00");
  auto spaced = parse_time("2026-11-22 16:45:00.250+00:00");
  ASSERT_TRUE(utc.ok() && bogota.ok() && spaced.ok());
  EXPECT_EQ(*utc, *bogota);
  EXPECT_EQ(*spaced - *utc, 250ms);
  EXPECT_EQ(format_utc(*parse_time("2026-11-22T16:45:00.123456789Z")), "2026-11-22T16:45:00.123Z");
}

TEST(TimeFormat, LocalTimesNeedAnExplicitDefaultOffset) {
  EXPECT_FALSE(parse_time("2026-11-22T11:45").ok());
  auto t = parse_time("2026-11-22T11:45", -5 * 3600, false);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(format_utc(*t), "2026-11-22T16:45:00Z");
}

TEST(TimeFormat, RejectsMalformedTimes) {
  for (const char* bad : {"", "2026-11-22", "2026-13-01T00:00Z", "2026-02-30T00:00Z", "2026-11-22T24:00Z",
                          "2026-11-22T10:00+5", "2026-11-22T10:00Zjunk", "2026-11-22T10:00:00.Z",
                          "20261122T100000Z", "2026-11-22T10:00:00+05:00x"}) {
    auto t = parse_time(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.error().code, Exit::data);
  }
}

}  // namespace
}  // namespace envkit
