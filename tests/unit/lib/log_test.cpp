// Unit tests for envkit/log.hpp: levels, text and JSON lines on stderr, usage hint.
#include <envkit/log.hpp>

#include <gtest/gtest.h>

#include <envkit/json.hpp>

namespace envkit {
namespace {

class Log : public ::testing::Test {
 protected:
  void TearDown() override { configure_logging(LogSettings{}); }
};

TEST_F(Log, TextLinesCarryToolAndLevel) {
  configure_logging({"sensor-push", LogLevel::info, LogFormat::text});
  ::testing::internal::CaptureStderr();
  log_info("pushed 3 readings");
  log_debug("hidden");
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "sensor-push: info: pushed 3 readings\n");
}

TEST_F(Log, QuietKeepsOnlyErrors) {
  configure_logging({"db-backup", LogLevel::error, LogFormat::text});
  ::testing::internal::CaptureStderr();
  log_warning("not shown");
  log_error("disk full");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "db-backup: error: disk full\n");
}

TEST_F(Log, JsonLinesAreValidJsonWithEscaping) {
  configure_logging({"proxy-check", LogLevel::warning, LogFormat::json});
  ::testing::internal::CaptureStderr();
  log_warning("quote \" and newline \n in message");
  std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(err.empty());
  EXPECT_EQ(err.back(), '\n');
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1);
  auto doc = parse_json(err);
  ASSERT_TRUE(doc.ok()) << err;
  EXPECT_STREQ((*doc)["tool"].GetString(), "proxy-check");
  EXPECT_STREQ((*doc)["level"].GetString(), "warning");
  EXPECT_STREQ((*doc)["message"].GetString(), "quote \" and newline \n in message");
  EXPECT_EQ(std::string((*doc)["time"].GetString()).size(), 24u);  // 2026-11-22T11:44:11.123Z
}

TEST_F(Log, ReportReturnsTheStatusAndHintsAtHelpForUsageErrors) {
  configure_logging({"race-probe", LogLevel::warning, LogFormat::text});
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(report(Error{Exit::usage, "unrecognised option '--x'"}), 64);
  EXPECT_EQ(report(Error{Exit::unavailable, "mysql://h: connect: refused"}), 69);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "race-probe: error: unrecognised option '--x'\n"
            "Try 'race-probe --help' for more information.\n"
            "race-probe: error: mysql://h: connect: refused\n");
}

TEST(ResultTest, ValueErrorAndContext) {
  Result<int> ok = 3;
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  Result<int> bad = Error{Exit::io, "disk full"};
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().context("writing backups/x").message, "writing backups/x: disk full");
  EXPECT_EQ(bad.error().context("w").code, Exit::io);
  Status st;
  EXPECT_TRUE(st.ok());
  Status failed = Error{Exit::data, "x"};
  EXPECT_FALSE(failed.ok());
}

}  // namespace
}  // namespace envkit
