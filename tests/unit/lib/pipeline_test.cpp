// Unit tests for envkit/pipeline.hpp with fault-injecting sources and sinks: every record is
// acked exactly when every sink holds it, dead-lettered when rejected, never acked otherwise.
#include <envkit/pipeline.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <envkit/signals.hpp>

namespace envkit {
namespace {

using namespace std::chrono_literals;

// What every fake sink holds, by sink name: the truth the source checks each ack against.
struct World {
  std::mutex mutex;
  std::map<std::string, std::multiset<std::string>> held;
  bool holds(const std::string& sink, const std::string& id) {
    std::lock_guard lock(mutex);
    return held[sink].count(id) > 0;
  }
};

// A sink that misbehaves on cue.
struct FaultPlan {
  std::set<std::string> reject;        // these ids are refused for good
  std::set<std::string> always_fail;   // these ids are never taken (failed)
  int fail_every = 0;                  // every Nth write fails as a whole (0: never)
  int down_writes = 0;                 // the first N writes fail as a whole
  std::chrono::milliseconds slow{0};   // each write takes this long
};

class FaultSink : public Sink {
 public:
  FaultSink(std::string name, FaultPlan plan, std::shared_ptr<World> world)
      : name_(std::move(name)), plan_(std::move(plan)), world_(std::move(world)) {}
  std::string name() const override { return name_; }
  Result<std::vector<Delivery>> write(std::span<const Record> batch) override {
    ++writes_;
    if (plan_.slow.count() > 0) std::this_thread::sleep_for(plan_.slow);
    if (writes_ <= plan_.down_writes) return Error{Exit::unavailable, "down"};
    if (plan_.fail_every > 0 && writes_ % plan_.fail_every == 0) return Error{Exit::unavailable, "hiccup"};
    std::vector<Delivery> out;
    std::lock_guard lock(world_->mutex);
    for (const auto& r : batch) {
      if (plan_.reject.count(r.id)) {
        out.push_back({Outcome::rejected, "bad record " + r.id});
      } else if (plan_.always_fail.count(r.id)) {
        out.push_back({Outcome::failed, "cannot take " + r.id});
      } else {
        world_->held[name_].insert(r.id);
        out.push_back({Outcome::durable, {}});
      }
    }
    return out;
  }

 private:
  std::string name_;
  FaultPlan plan_;
  std::shared_ptr<World> world_;
  int writes_ = 0;
};

// A source of `n` records that redelivers what it is told to retry, and checks, at every
// settlement, the ledger's promise against what the sinks really hold.
class CheckingSource : public Source {
 public:
  CheckingSource(int n, std::shared_ptr<World> world, std::vector<std::string> sinks, std::string spool_dir = {})
      : world_(std::move(world)), sinks_(std::move(sinks)), spool_dir_(std::move(spool_dir)) {
    for (int i = 0; i < n; ++i) queue_.push_back({"r" + std::to_string(i), 1});
  }

  Result<SourceBatch> next(size_t max, std::chrono::milliseconds) override {
    SourceBatch b;
    while (b.records.size() < max && !queue_.empty()) {
      auto [id, count] = queue_.front();
      queue_.pop_front();
      uint64_t h = next_handle_++;
      out_[h] = {id, count};
      b.records.push_back({{id, "{\"id\":\"" + id + "\"}"}, h, count});
    }
    max_outstanding = std::max(max_outstanding, out_.size());
    b.end = queue_.empty() && out_.empty();
    return b;
  }

  Status settle(std::span<const Settlement> settled) override {
    for (const auto& s : settled) {
      auto it = out_.find(s.handle);
      EXPECT_NE(it, out_.end()) << "settled twice or never handed out: " << s.handle;
      if (it == out_.end()) continue;
      auto [id, count] = it->second;
      out_.erase(it);
      if (s.verdict == Verdict::ack) {
        for (const auto& sink : sinks_) {
          if (!world_->holds(sink, id) && !spool_dir_.empty()) continue;  // spooled: checked at the end
          EXPECT_TRUE(world_->holds(sink, id)) << id << " acked but " << sink << " does not hold it";
        }
        acked.insert(id);
      } else if (s.verdict == Verdict::dead) {
        dead[id] = s.reason;
      } else {
        ++retries;
        queue_.push_back({id, count + 1});
      }
    }
    return {};
  }

  std::string name() const override { return "checking"; }

  std::set<std::string> acked;
  std::map<std::string, std::string> dead;
  size_t retries = 0;
  size_t max_outstanding = 0;
  bool done() const { return queue_.empty() && out_.empty(); }

 private:
  std::shared_ptr<World> world_;
  std::vector<std::string> sinks_;
  std::string spool_dir_;
  std::deque<std::pair<std::string, uint32_t>> queue_;
  std::map<uint64_t, std::pair<std::string, uint32_t>> out_;
  uint64_t next_handle_ = 1;
};

SinkSpec fault_sink(const std::string& name, FaultPlan plan, std::shared_ptr<World> world) {
  return {"http://127.0.0.1/" + name, [=]() -> Result<std::unique_ptr<Sink>> {
            return std::unique_ptr<Sink>(new FaultSink(name, plan, world));
          }};
}

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::path(::testing::TempDir()) / ("pipeline_" + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

TEST(Ledger, AcksOnlyWhenEverySinkHoldsTheRecord) {
  Delivery durable{Outcome::durable, {}}, spooled{Outcome::spooled, {}}, failed{Outcome::failed, "down"},
      rejected{Outcome::rejected, "bad"};
  auto verdict = [](std::vector<const Delivery*> ds) { return settle_record(7, ds).verdict; };
  EXPECT_EQ(verdict({&durable, &durable}), Verdict::ack);
  EXPECT_EQ(verdict({&durable, &spooled}), Verdict::ack);
  EXPECT_EQ(verdict({&durable, &failed}), Verdict::retry);
  EXPECT_EQ(verdict({&failed, &spooled}), Verdict::retry);
  EXPECT_EQ(verdict({&durable, &rejected}), Verdict::dead);
  EXPECT_EQ(verdict({&failed, &rejected}), Verdict::dead);
  EXPECT_EQ(settle_record(7, std::vector<const Delivery*>{&durable, &failed}).reason, "down");
}

// Two sinks: one fails every third write as a whole, the other rejects one record. Every
// other record ends acked, with both sinks holding it at the moment of the ack; the bad one
// ends in the dead letters with its reason, and is never acked.
TEST(Pipeline, AcksExactlyWhenAllSinksHoldARecordAndDeadLettersTheRejected) {
  auto world = std::make_shared<World>();
  FaultPlan flaky;
  flaky.fail_every = 3;
  FaultPlan picky;
  picky.reject = {"r17"};
  PipelineOptions o;
  o.batch = 10;
  o.workers = 2;
  o.dead_letter = [world]() -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(new FaultSink("dead", {}, world));
  };
  auto p = Pipeline::open({fault_sink("flaky", flaky, world), fault_sink("picky", picky, world)}, o);
  ASSERT_TRUE(p.ok()) << p.error().message;
  CheckingSource source(300, world, {"flaky", "picky"});
  ASSERT_TRUE((*p)->run(source).ok());
  EXPECT_TRUE(source.done());
  EXPECT_EQ(source.acked.size(), 299u);
  EXPECT_EQ(source.acked.count("r17"), 0u);
  ASSERT_EQ(source.dead.count("r17"), 1u);
  EXPECT_EQ(source.dead["r17"], "bad record r17");
  EXPECT_GT(source.retries, 0u) << "the flaky sink never failed: the test proves nothing";
  EXPECT_TRUE(world->holds("dead", "r17"));
  EXPECT_EQ((*p)->counters().dead_lettered, 1u);
  EXPECT_EQ((*p)->counters().acked, 299u);
}

// A sink down for a while, with a spool: records are acked as spooled (the disk has them)
// and every one reaches the sink by the end of the run.
TEST(Pipeline, ASinkDownForAWhileIsSpooledAndReplayed) {
  auto world = std::make_shared<World>();
  FaultPlan down;
  down.down_writes = 4;
  PipelineOptions o;
  o.batch = 25;
  o.spool_dir = temp_dir("down");
  auto p = Pipeline::open({fault_sink("down", down, world), fault_sink("ok", {}, world)}, o);
  ASSERT_TRUE(p.ok()) << p.error().message;
  CheckingSource source(200, world, {"down", "ok"}, o.spool_dir);
  // The back-off keeps the sink alone for 0.5 s after a failure: give it a few batches' time.
  ASSERT_TRUE((*p)->run(source).ok());
  EXPECT_EQ(source.acked.size(), 200u);
  EXPECT_GT((*p)->counters().spooled, 0u);
  auto totals = (*p)->sink_totals();
  // Whatever is still spooled is on disk for the next run; the rest is in the sink.
  std::lock_guard lock(world->mutex);
  std::set<std::string> in_sink(world->held["down"].begin(), world->held["down"].end());
  EXPECT_EQ(in_sink.size() + totals[0].spool_pending, 200u);
  EXPECT_EQ(world->held["ok"].size(), 200u);
}

// Without a spool, a record a sink cannot take is retried at the source, and after
// max_deliveries it goes to the dead letters instead of looping for ever.
TEST(Pipeline, ARecordNoSinkTakesEndsDeadAfterMaxDeliveries) {
  auto world = std::make_shared<World>();
  FaultPlan stubborn;
  stubborn.always_fail = {"r3"};
  PipelineOptions o;
  o.batch = 5;
  o.max_deliveries = 4;
  auto p = Pipeline::open({fault_sink("stubborn", stubborn, world)}, o);
  ASSERT_TRUE(p.ok());
  CheckingSource source(20, world, {"stubborn"});
  ASSERT_TRUE((*p)->run(source).ok());
  EXPECT_EQ(source.acked.size(), 19u);
  ASSERT_EQ(source.dead.count("r3"), 1u);
  EXPECT_NE(source.dead["r3"].find("after 4 deliveries"), std::string::npos) << source.dead["r3"];
  EXPECT_EQ(source.retries, 3u);
}

// A transform that refuses a record makes it dead with the transform's reason; the others
// reach the sink transformed.
TEST(Pipeline, ATransformErrorMakesTheRecordDead) {
  auto world = std::make_shared<World>();
  PipelineOptions o;
  o.transform = [](Record& r) -> Status {
    if (r.id == "r2") return Error{Exit::data, "missing field municipality"};
    r.id += "-t";
    return {};
  };
  auto p = Pipeline::open({fault_sink("s", {}, world)}, o);
  ASSERT_TRUE(p.ok());
  CheckingSource source(5, world, {});
  ASSERT_TRUE((*p)->run(source).ok());
  EXPECT_EQ(source.dead["r2"], "missing field municipality");
  EXPECT_EQ(source.acked.size(), 4u);
  EXPECT_TRUE(world->holds("s", "r0-t"));
  EXPECT_FALSE(world->holds("s", "r2-t"));
}

// End to end: from each acked record's own time to every sink's answer, by the wall clock;
// records without one, and records not acked, are not timed.
TEST(Pipeline, EndToEndRunsFromEachAckedRecordsOriginToEverySinksAnswer) {
  auto world = std::make_shared<World>();
  PipelineOptions o;
  o.batch = 2;
  const auto made = std::chrono::system_clock::now() - 2s;
  o.origin = [made](const Record& r) -> std::optional<std::chrono::system_clock::time_point> {
    if (r.id == "r4") return std::nullopt;
    if (r.id == "r5") return std::chrono::system_clock::now() + 1h;  // a clock ahead of ours
    return made;
  };
  FaultPlan slow;
  slow.slow = 20ms;
  slow.reject = {"r3"};
  auto p = Pipeline::open({fault_sink("slow", slow, world)}, o);
  ASSERT_TRUE(p.ok());
  CheckingSource source(6, world, {"slow"});
  ASSERT_TRUE((*p)->run(source).ok());
  const auto& e2e = (*p)->end_to_end();
  EXPECT_EQ(e2e.count(), 4u);  // r0 r1 r2 r5; r3 dead, r4 untimed
  EXPECT_EQ((*p)->untimed(), 1u);
  EXPECT_EQ(e2e.min(), 0us);  // r5
  EXPECT_GE(e2e.percentile(50), 2020ms);  // 2 s old plus the sink's 20 ms
  EXPECT_LE(e2e.percentile(50), e2e.percentile(99));
  EXPECT_LE(e2e.percentile(99), e2e.max());
  JsonWriter w;
  w.begin_object();
  (*p)->stats_json(w);
  w.end_object();
  std::string stats = w.take();
  EXPECT_NE(stats.find("\"end_to_end_ms\":{\"timed\":4,\"untimed\":1,"), std::string::npos) << stats;
}

// A slow sink holds the source back: records handed out and not settled stay within the
// in-flight bound (plus the batch being filled), however many the source has.
TEST(Pipeline, ASlowSinkBoundsWhatIsInFlight) {
  auto world = std::make_shared<World>();
  FaultPlan slow;
  slow.slow = 5ms;
  PipelineOptions o;
  o.batch = 10;
  o.workers = 2;
  o.max_in_flight = 3;
  auto p = Pipeline::open({fault_sink("slow", slow, world)}, o);
  ASSERT_TRUE(p.ok());
  CheckingSource source(400, world, {"slow"});
  ASSERT_TRUE((*p)->run(source).ok());
  EXPECT_EQ(source.acked.size(), 400u);
  EXPECT_LE(source.max_outstanding, (o.max_in_flight + 1) * o.batch);
}

// A sink that needs an operator stops the run with its error; what was handed out is
// settled first (nothing left dangling at the source).
TEST(Pipeline, AMisconfiguredSinkStopsTheRunAfterSettlingWhatIsInFlight) {
  class Refusing : public Sink {
   public:
    std::string name() const override { return "refusing"; }
    Result<std::vector<Delivery>> write(std::span<const Record>) override {
      return Error{Exit::config, "access denied"};
    }
  };
  PipelineOptions o;
  o.batch = 10;
  auto p = Pipeline::open({{"http://127.0.0.1/refusing", []() -> Result<std::unique_ptr<Sink>> {
                              return std::unique_ptr<Sink>(new Refusing);
                            }}},
                          o);
  ASSERT_TRUE(p.ok());
  auto world = std::make_shared<World>();
  CheckingSource source(1000, world, {});
  auto st = (*p)->run(source);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::config);
  EXPECT_EQ(source.acked.size(), 0u);
  EXPECT_EQ((*p)->counters().received, (*p)->counters().retried) << "every record handed out is settled";
}

// A source whose next() waits all of its `wait` unless woken, as HTTP ingest does while its
// clients wait for their answers (no new records come until the old ones are settled): a
// batch done wakes it, so the batch is settled at once rather than after the linger.
TEST(Pipeline, ABatchDoneWakesASourceWaitingInNext) {
  class WaitingSource : public Source {
   public:
    Result<SourceBatch> next(size_t, std::chrono::milliseconds wait) override {
      SourceBatch b;
      std::unique_lock lock(mutex_);
      if (!handed_out_) {
        // A moment, as a client's request would take: the workers are waiting by then.
        cv_.wait_for(lock, std::min<std::chrono::milliseconds>(wait, 50ms), [] { return false; });
        handed_out_ = true;
        b.records.push_back({{"r1", "{\"id\":\"r1\"}"}, 1, 1, {}});
        return b;
      }
      cv_.wait_for(lock, wait, [&] { return woken_ || settled_; });
      woken_ = false;
      b.end = settled_;
      return b;
    }
    void wake() override {
      {
        std::lock_guard lock(mutex_);
        woken_ = true;
      }
      cv_.notify_one();
    }
    Status settle(std::span<const Settlement> settled) override {
      std::lock_guard lock(mutex_);
      EXPECT_EQ(settled.size(), 1u);
      settled_ = true;
      settled_at = std::chrono::steady_clock::now();
      return {};
    }
    std::string name() const override { return "waiting"; }
    std::chrono::steady_clock::time_point settled_at{};

   private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool handed_out_ = false, woken_ = false, settled_ = false;
  };
  auto world = std::make_shared<World>();
  PipelineOptions o;
  o.linger = 5s;
  auto p = Pipeline::open({fault_sink("quick", {}, world)}, o);
  ASSERT_TRUE(p.ok());
  WaitingSource source;
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE((*p)->run(source).ok());
  ASSERT_NE(source.settled_at, std::chrono::steady_clock::time_point{});
  EXPECT_LT(source.settled_at - start, 2s) << "the batch done waited for the source's next() to time out";
  EXPECT_TRUE(world->holds("quick", "r1"));
}

}  // namespace
}  // namespace envkit
