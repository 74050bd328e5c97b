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

// The outcomes of a deliver(), as text: "dsrf" for durable, spooled, rejected, failed.
std::string outcomes(const std::vector<Delivery>& ds) {
  std::string out;
  for (const auto& d : ds) out += outcome_name(d.outcome)[0];
  return out;
}

std::shared_ptr<SharedSpool> open_spool(const std::string& name, SpoolOptions options = {}) {
  auto dir = std::filesystem::path(::testing::TempDir()) / ("spooled_sink_" + name);
  std::filesystem::remove_all(dir);
  auto spool = Spool::open(dir.string(), options);
  EXPECT_TRUE(spool.ok()) << spool.error().message;
  return std::make_shared<SharedSpool>(std::move(*spool));
}

TEST(SpooledSink, DownThenBackReplaysInOrderBeforeNewRecords) {
  auto log = std::make_shared<FakeSink::Log>();
  auto fake = std::make_unique<FakeSink>(log);
  FakeSink* sink = fake.get();
  SpooledSink s(std::move(fake), open_spool("order"), 4);
  EXPECT_EQ(outcomes(s.deliver(records(0, 5))), "ddddd");
  sink->down = true;
  EXPECT_EQ(outcomes(s.deliver(records(5, 10))), "sssss");
  EXPECT_EQ(outcomes(s.deliver(records(10, 12))), "ss");  // backing off: straight to the spool
  EXPECT_EQ(s.spool_pending(), 7u);
  EXPECT_EQ(s.counters().spooled, 7u);
  sink->down = false;
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // past the first back-off
  EXPECT_EQ(outcomes(s.deliver(records(12, 14))), "dd");
  EXPECT_EQ(s.spool_pending(), 0u);
  std::vector<std::string> expected;
  for (int i = 0; i < 14; ++i) expected.push_back("r" + std::to_string(i));
  EXPECT_EQ(log->durable, expected);
  EXPECT_EQ(s.counters().delivered, 14u);
  EXPECT_EQ(s.counters().replayed, 7u);
  EXPECT_EQ(s.counters().failed, 0u);
}

TEST(SpooledSink, RetriedRecordsAreSpooledAndRejectedOnesCounted) {
  auto log = std::make_shared<FakeSink::Log>();
  auto fake = std::make_unique<FakeSink>(log);
  fake->reject = {"r2"};
  fake->retry_once = {"r4"};
  SpooledSink s(std::move(fake), open_spool("retry"), 10);
  // r4 failed for a passing reason: spooled; the others of its batch were answered for.
  EXPECT_EQ(outcomes(s.deliver(records(0, 6))), "ddrdsd");
  EXPECT_EQ(s.counters().rejected, 1u);
  EXPECT_EQ(s.counters().spooled, 1u);  // r4
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  s.drain();
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
  auto s_spool = open_spool("operator");
  SpooledSink s(std::move(fake), s_spool, 10);
  EXPECT_EQ(outcomes(s.deliver(records(0, 5))), "sssss");
  ASSERT_TRUE(s.fatal().has_value());
  EXPECT_EQ(s.fatal()->code, Exit::config);
  EXPECT_EQ(outcomes(s.deliver(records(5, 8))), "sss");  // the run is stopping: kept all the same
  EXPECT_EQ(s.spool_pending(), 8u);
  EXPECT_EQ(s.counters().failed, 0u);
  // Fixed, a new run (a new SpooledSink on the same spool) delivers all eight.
  auto fixed = std::make_unique<FakeSink>(log);
  SpooledSink again(std::move(fixed), s_spool, 10);
  again.drain();
  EXPECT_FALSE(again.fatal().has_value());
  EXPECT_EQ(log->durable.size(), 8u);
}

TEST(SpooledSink, WithoutASpoolFailuresAreAnsweredFailed) {
  auto log = std::make_shared<FakeSink::Log>();
  auto fake = std::make_unique<FakeSink>(log);
  fake->down = true;
  SpooledSink s(std::move(fake), nullptr, 10);
  EXPECT_EQ(outcomes(s.deliver(records(0, 3))), "fff");
  EXPECT_EQ(outcomes(s.deliver(records(3, 5))), "ff");  // no back-off without a spool: tried again
  EXPECT_EQ(s.counters().failed, 5u);
  EXPECT_EQ(s.counters().delivered, 0u);
  EXPECT_FALSE(s.fatal().has_value());
}

// The defect this shape fixes: a full spool used to count records lost while the call
// succeeded. Now each record not on disk is answered failed, and the run is told to stop.
TEST(SpooledSink, AFullSpoolNeverAnswersSpooledForRecordsNotOnDisk) {
  auto log = std::make_shared<FakeSink::Log>();
  auto fake = std::make_unique<FakeSink>(log);
  fake->down = true;
  SpoolOptions small;
  small.max_bytes = 4096;
  auto spool = open_spool("full", small);
  SpooledSink s(std::move(fake), spool, 10);
  size_t spooled = 0, failed = 0;
  for (int round = 0; round < 20 && !s.fatal(); ++round) {
    for (const auto& d : s.deliver(records(round * 10, round * 10 + 10))) {
      spooled += d.outcome == Outcome::spooled;
      failed += d.outcome == Outcome::failed;
      EXPECT_NE(d.outcome, Outcome::durable);
    }
  }
  ASSERT_TRUE(s.fatal().has_value()) << "4 KiB never filled";
  EXPECT_EQ(s.fatal()->code, Exit::io);
  EXPECT_GT(failed, 0u);
  EXPECT_EQ(s.spool_pending(), spooled) << "answered spooled must equal what is on disk";
  EXPECT_EQ(s.counters().failed, failed);
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
    EXPECT_EQ(outcomes(filler.deliver(records(0, 100))), std::string(100, 's'));
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
  std::thread ta([&] { a.drain(); });
  std::thread tb([&] { b.drain(); });
  ta.join();
  tb.join();
  a.drain();
  EXPECT_FALSE(a.fatal() || b.fatal());
  EXPECT_EQ(a.spool_pending(), 0u);
  std::set<std::string> got(log->durable.begin(), log->durable.end());
  EXPECT_EQ(got.size(), 100u) << "records lost between two drainers";
}

}  // namespace
}  // namespace envkit
