// for_each_parallel (envkit/worker_pool.hpp): every item once, per-worker state, the first
// error stops new items, exceptions become internal errors. run_concurrently: all at once.
#include <envkit/worker_pool.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <envkit/exit_status.hpp>

namespace envkit {
namespace {

TEST(WorkerPool, EveryItemRunsOnceAndWorkersAreNumberedBelowTheirCount) {
  std::vector<std::atomic<int>> seen(1000);
  std::mutex mu;
  std::set<size_t> workers;
  auto st = for_each_parallel(seen.size(), 4, [&](size_t w, size_t i) {
    ++seen[i];
    std::lock_guard lock(mu);
    workers.insert(w);
    return Status{};
  });
  EXPECT_TRUE(st.ok());
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << i;
  for (size_t w : workers) EXPECT_LT(w, 4u);
}

TEST(WorkerPool, OneWorkerRunsInOrderOnTheCallingThread) {
  std::vector<size_t> order;
  auto st = for_each_parallel(5, 1, [&](size_t w, size_t i) {
    EXPECT_EQ(w, 0u);
    order.push_back(i);
    return Status{};
  });
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(for_each_parallel(0, 8, [](size_t, size_t) { return Status{}; }).ok());
}

TEST(WorkerPool, TheFirstErrorStopsNewItemsAndIsReturned) {
  std::atomic<size_t> started{0};
  auto st = for_each_parallel(10000, 1, [&](size_t, size_t i) -> Status {
    ++started;
    if (i == 3) return fail(Failure::connection_lost, "item 3 failed");
    return {};
  });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "item 3 failed");
  EXPECT_EQ(st.error().code, Exit::unavailable);
  EXPECT_EQ(started, 4u);
}

TEST(WorkerPool, AnExceptionIsAnInternalError) {
  auto st = for_each_parallel(3, 2, [](size_t, size_t i) -> Status {
    if (i == 1) throw std::runtime_error("boom");
    return {};
  });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::software);
  EXPECT_NE(st.error().message.find("boom"), std::string::npos);
}

// Each call waits (up to 5 s) until all have started: only calls that overlap get past it.
TEST(RunConcurrently, EveryCallRunsAtOnceOnItsOwnThread) {
  std::atomic<size_t> arrived{0};
  std::vector<int> ran(16, 0);
  auto st = run_concurrently(16, [&](size_t i) -> Status {
    ++arrived;
    for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5); arrived < 16;) {
      if (std::chrono::steady_clock::now() > end) return Error{Exit::temp_fail, "not all at once"};
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ran[i] = 1;
    return {};
  });
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(std::count(ran.begin(), ran.end(), 1), 16);
}

TEST(RunConcurrently, EveryCallFinishesAndTheFirstErrorIsReturned) {
  std::atomic<int> finished{0};
  auto st = run_concurrently(4, [&](size_t i) -> Status {
    ++finished;
    if (i == 3) throw std::runtime_error("boom");
    if (i >= 1) return Error{Exit::unavailable, "call " + std::to_string(i) + " failed"};
    return {};
  });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "call 1 failed");
  EXPECT_EQ(finished, 4);
  EXPECT_TRUE(run_concurrently(0, [](size_t) -> Status { return Error{Exit::software, "never"}; }).ok());
}

}  // namespace
}  // namespace envkit
