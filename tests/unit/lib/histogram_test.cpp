// Unit tests for envkit/histogram.hpp and envkit/metrics.hpp.
#include <envkit/histogram.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sys/stat.h>

#include <envkit/metrics.hpp>

namespace envkit {
namespace {

using std::chrono::microseconds;

TEST(LatencyHistogram, ExactBelow64MicrosecondsAndBoundedErrorAbove) {
  LatencyHistogram h;
  for (int i = 1; i <= 50; ++i) h.record(microseconds(i));
  EXPECT_EQ(h.percentile(50).count(), 25);
  EXPECT_EQ(h.percentile(100).count(), 50);
  EXPECT_EQ(h.min().count(), 1);

  std::mt19937_64 rng(7);
  std::vector<int64_t> values;
  LatencyHistogram big;
  for (int i = 0; i < 100000; ++i) {
    auto v = static_cast<int64_t>(std::exp(std::uniform_real_distribution<double>(0, 20)(rng)));
    values.push_back(v);
    big.record(microseconds(v));
  }
  std::sort(values.begin(), values.end());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    int64_t exact = values[static_cast<size_t>(std::ceil(p / 100 * values.size())) - 1];
    int64_t got = big.percentile(p).count();
    EXPECT_GE(got, exact) << p;                    // never optimistic
    EXPECT_LE(got, exact + exact / 64 + 1) << p;  // within one sub-bucket
  }
  EXPECT_EQ(big.percentile(100).count(), values.back());
}

TEST(LatencyHistogram, MergeAddsCounts) {
  LatencyHistogram a, b;
  a.record(microseconds(10));
  b.record(microseconds(1000000));
  a.merge(b);
  EXPECT_EQ(a.count(), 2u);
  EXPECT_EQ(a.max().count(), 1000000);
  EXPECT_EQ(a.percentile(50).count(), 10);
  EXPECT_EQ(LatencyHistogram().percentile(99).count(), 0);
}

TEST(MetricsFile, RendersPrometheusTextAndWritesAtomically) {
  MetricsFile m;
  m.add("sensor_push_records_total", "counter", "Records pushed.", 42, {{"sink", "mysql://h/db"}});
  m.add("sensor_push_records_total", "counter", "Records pushed.", 1, {{"sink", "a\"b\\c"}});
  m.add("sensor_push_last_success_timestamp_seconds", "gauge", "Last success.", 1.7e9);
  std::string text = m.render();
  EXPECT_EQ(text,
            "# HELP envkit_sensor_push_records_total Records pushed.\n"
            "# TYPE envkit_sensor_push_records_total counter\n"
            "envkit_sensor_push_records_total{sink=\"mysql://h/db\"} 42\n"
            "envkit_sensor_push_records_total{sink=\"a\\\"b\\\\c\"} 1\n"
            "# HELP envkit_sensor_push_last_success_timestamp_seconds Last success.\n"
            "# TYPE envkit_sensor_push_last_success_timestamp_seconds gauge\n"
            "envkit_sensor_push_last_success_timestamp_seconds 1700000000\n");
  auto dir = std::filesystem::path(::testing::TempDir()) / "metrics_test";
  std::filesystem::create_directories(dir);
  auto path = (dir / "sensor-push.prom").string();
  ASSERT_TRUE(m.write(path).ok());
  std::ifstream in(path);
  std::string back((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(back, text);
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

}  // namespace
}  // namespace envkit
