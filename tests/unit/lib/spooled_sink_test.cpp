// Unit tests for envkit/spooled_sink.hpp against a scripted fake sink: replay order, retry
// and rejection, no spool, and several workers sharing one spool.
#include <envkit/spooled_sink.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace envkit {
namespace {

// A sink whose behaviour the test scripts: down (Error), or per-record verdicts by id.
class FakeSink : public Sink {
 public:
  struct Log {
    std::mutex mutex;
    std::vector<std::string> durable;  // ids in the order they were taken
  };
  explicit FakeSink(std::shared_ptr<Log> log) : log_(std::move(log)) {}

  std::atomic<bool> down{false};
  bool misconfigured = false;  // answers as refused credentials would
  std::set<std::string> reject, retry_once;

  std::string name() const override { return "fake://sink"; }
  Result<std::vector<Delivery>> write(std::span<const Record> batch) override {
    if (misconfigured) return Error{Exit::config, "access denied"};
    if (down) return Error{Exit::unavailable, "fake sink is down"};
    std::vector<Delivery> out;
    std::lock_guard lock(log_->mutex);
    for (const auto& r : batch) {
      if (reject.count(r.id)) {
        out.push_back({Outcome::rejected, "bad record"});
      } else if (retry_once.erase(r.id)) {
        out.push_back({Outcome::failed, "busy"});
      } else {
        out.push_back({Outcome::durable, {}});
        log_->durable.push_back(r.id);
      }
    }
    return out;
  }

 private:
  std::shared_ptr<Log> log_;
};

std::vector<Record> records(int from, int to) {
  std::vector<Record> out;
  for (int i = from; i < to; ++i) out.push_back({"r" + std::to_string(i), "{\"i\":" + std::to_string(i) + "}"});
  return out;
}

std::shared_ptr<SharedSpool> open_spool(const std::string& name) {
  auto dir = std::filesystem::path(::testing::TempDir()) / ("spooled_sink_" + name);
  std::filesystem::remove_all(dir);
  auto spool = Spool::open(dir.string());
  EXPECT_TRUE(spool.ok()) << spool.error().message;
  return std::make_shared<SharedSpool>(std::move(*spool));
}

TEST(SpooledSink, DownThenBackReplaysInOrderBeforeNewRecords) {
  auto log = std::make_shared<FakeSink::Log>();
  auto fake = std::make_unique<FakeSink>(log);
  FakeSink* sink = fake.get();
  SpooledSink s(std::move(fake), open_spool("order"), 4);
  ASSERT_TRUE(s.deliver(records(0, 5)).ok());
  sink->down = true;
  ASSERT_TRUE(s.deliver(records(5, 10)).ok());
  ASSERT_TRUE(s.deliver(records(10, 12)).ok());  // backing off: straight to the spool
  EXPECT_EQ(s.spool_pending(), 7u);
  EXPECT_EQ(s.counters().spooled, 7u);
  sink->down = false;
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // past the first back-off
  ASSERT_TRUE(s.deliver(records(12, 14)).ok());
  EXPECT_EQ(s.spool_pending(), 0u);
  std::vector<std::string> expected;
  for (int i = 0; i < 14; ++i) expected.push_back("r" + std::to_string(i));
  EXPECT_EQ(log->durable, expected);
  EXPECT_EQ(s.counters().delivered, 14u);
  EXPECT_EQ(s.counters().replayed, 7u);
  EXPECT_EQ(s.counters().lost, 0u);
}

TEST(SpooledSink, RetriedRecordsAreSpooledAndRejectedOnesCounted) {
  auto log = std::make_shared<FakeSink::Log>();
  auto fake = std::make_unique<FakeSink>(log);
  fake->reject = {"r2"};
  fake->retry_once = {"r4"};
  SpooledSink s(std::move(fake), open_spool("retry"), 10);
  ASSERT_TRUE(s.deliver(records(0, 6)).ok());
  EXPECT_EQ(s.counters().rejected, 1u);
  EXPECT_EQ(s.counters().spooled, 1u);  // r4
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  ASSERT_TRUE(s.drain().ok());
  EXPECT_EQ(s.spool_pending(), 0u);
  EXPECT_EQ(log->durable, (std::vector<std::string>{"r0", "r1", "r3", "r5", "r4"}));
}

// A sink that needs an operator stops the run, but first the records are kept: both the
// batch that met the error and a later batch whose replay met it.
TEST(SpooledSink, AMisconfiguredSinkStopsTheRunButKeepsEveryRecord) {
  auto log = std::make_shared<FakeSink::Log>();
  auto fake = std::make_unique<FakeSink>(log);
  FakeSink* sink = fake.get();
  sink->misconfigured = true;
  SpooledSink s(std::move(fake), open_spool("operator"), 10);
  auto first = s.deliver(records(0, 5));
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code, Exit::config);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // past the back-off: replay is tried
  auto second = s.deliver(records(5, 8));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(s.spool_pending(), 8u);
  EXPECT_EQ(s.counters().lost, 0u);
  sink->misconfigured = false;
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ASSERT_TRUE(s.drain().ok());
  EXPECT_EQ(log->durable.size(), 8u);
}

TEST(SpooledSink, WithoutASpoolFailuresAreCountedLost) {
  auto log = std::make_shared<FakeSink::Log>();
  auto fake = std::make_unique<FakeSink>(log);
  fake->down = true;
  SpooledSink s(std::move(fake), nullptr, 10);
  ASSERT_TRUE(s.deliver(records(0, 3)).ok());
  ASSERT_TRUE(s.deliver(records(3, 5)).ok());  // no back-off without a spool: tried again
  EXPECT_EQ(s.counters().lost, 5u);
  EXPECT_EQ(s.counters().delivered, 0u);
}

// Two workers sharing a spool replay it at the same moment. The fake sink holds the first
// write until a second write arrives (or 300 ms pass), so if both workers could peek the
// same oldest batch, both would write it and both consume it: the second consume would drop
// ten records never delivered. With one drainer at a time, nothing is lost.
TEST(SpooledSink, TwoWorkersReplayingOneSpoolLoseNothing) {
  auto log = std::make_shared<FakeSink::Log>();
  auto spool = open_spool("workers");
  {
    auto down = std::make_unique<FakeSink>(log);
    down->down = true;
    SpooledSink filler(std::move(down), spool, 10);
    ASSERT_TRUE(filler.deliver(records(0, 100)).ok());
    ASSERT_EQ(filler.spool_pending(), 100u);
  }
  std::atomic<int> writers{0};
  std::atomic<bool> first_write{true};
  class Rendezvous : public FakeSink {
   public:
    Rendezvous(std::shared_ptr<Log> l, std::atomic<int>& w, std::atomic<bool>& f)
        : FakeSink(std::move(l)), writers_(w), first_(f) {}
    Result<std::vector<Delivery>> write(std::span<const Record> batch) override {
      ++writers_;
      if (first_.exchange(false)) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
        while (writers_ < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
      }
      auto r = FakeSink::write(batch);
      --writers_;
      return r;
    }
   private:
    std::atomic<int>& writers_;
    std::atomic<bool>& first_;
  };
  SpooledSink a(std::make_unique<Rendezvous>(log, writers, first_write), spool, 10);
  SpooledSink b(std::make_unique<Rendezvous>(log, writers, first_write), spool, 10);
  std::thread ta([&] { ASSERT_TRUE(a.drain().ok()); });
  std::thread tb([&] { ASSERT_TRUE(b.drain().ok()); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a.drain().ok());
  EXPECT_EQ(a.spool_pending(), 0u);
  std::set<std::string> got(log->durable.begin(), log->durable.end());
  EXPECT_EQ(got.size(), 100u) << "records lost between two drainers";
}

}  // namespace
}  // namespace envkit
