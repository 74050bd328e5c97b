// race-probe's HTTP driver against a scripted server: every operation sent once and recorded
// once, whatever the connections do, due times kept, failures classified.
#include "race-probe/http_driver.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include <envkit/exit_status.hpp>

#include "http_script.hpp"
#include "loopback.hpp"

namespace race_probe {
namespace {

// Sends `count` POSTs to `url`, due `delay_us` apart from `first_due` when that is set.
class CountingWorker : public HttpWorker {
 public:
  CountingWorker(std::string url, uint64_t count, int64_t first_due = 0, int64_t delay_us = 0)
      : url_(std::move(url)), count_(count), first_due_(first_due), delay_us_(delay_us) {}

  bool next(Operation& op, envkit::HttpRequest& request) override {
    if (sent_ == count_) return false;
    op.seq = sent_;
    op.f = "add";
    if (first_due_) op.intended = first_due_ + static_cast<int64_t>(sent_) * delay_us_;
    request.method = "POST";
    request.url = url_;
    request.body = "{\"seq\":" + std::to_string(sent_) + "}";
    ++sent_;
    return true;
  }

  void finish(Operation& op, const envkit::Result<envkit::HttpResponse>& response) override {
    if (!response) {
      classify_transport_failure(response.error(), op);
      return;
    }
    op.status = static_cast<int>(response->status);
    op.outcome = op.status / 100 == 2 ? Outcome::ok : Outcome::unknown;
  }

 private:
  std::string url_;
  uint64_t count_, sent_ = 0;
  int64_t first_due_, delay_us_;
};

std::vector<HttpWorker*> pointers(std::vector<CountingWorker>& workers) {
  std::vector<HttpWorker*> out;
  for (auto& w : workers) out.push_back(&w);
  return out;
}

// Connections closed by Connection: close and dropped unanswered all along: each operation
// is sent exactly once (the server counts them), recorded once, and a dropped one is
// unknown, never retried.
TEST(HttpDriver, EveryOperationOnceThroughClosesAndDrops) {
  envkit::test::ScriptedHttpServer server;
  std::vector<CountingWorker> workers;
  for (int w = 0; w < 6; ++w) workers.emplace_back(server.url("/flaky"), 50);
  std::vector<std::vector<Operation>> done;
  auto st = drive_http(pointers(workers), envkit::test::short_timeouts(std::chrono::milliseconds(1000),
                                                                       std::chrono::milliseconds(1000)),
                       std::chrono::milliseconds(2000), done);
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_EQ(done.size(), 6u);
  int ok = 0, unknown = 0;
  for (size_t w = 0; w < done.size(); ++w) {
    ASSERT_EQ(done[w].size(), 50u) << "worker " << w;
    for (size_t i = 0; i < done[w].size(); ++i) {
      const auto& op = done[w][i];
      EXPECT_EQ(op.seq, i) << "worker " << w << ": in order, each once";
      EXPECT_GE(op.complete, op.invoke);
      EXPECT_EQ(op.intended, op.invoke) << "closed load: intended is the send time";
      (op.outcome == Outcome::ok ? ok : unknown) += 1;
    }
  }
  EXPECT_EQ(server.requests, 300) << "a request was sent twice, or not at all";
  EXPECT_EQ(unknown, server.dropped.load());
  EXPECT_EQ(ok, 300 - server.dropped.load());
  EXPECT_GT(server.dropped, 30);
  EXPECT_GT(server.connections, 100);  // every 3rd and 7th request ended its connection
}

TEST(HttpDriver, KeepsOneConnectionPerWorkerWhenTheServerDoes) {
  envkit::test::ScriptedHttpServer server;
  std::vector<CountingWorker> workers;
  for (int w = 0; w < 8; ++w) workers.emplace_back(server.url("/len"), 100);
  std::vector<std::vector<Operation>> done;
  ASSERT_TRUE(drive_http(pointers(workers), envkit::test::short_timeouts(), std::chrono::milliseconds(2000), done).ok());
  size_t total = 0;
  for (const auto& ops : done) total += ops.size();
  EXPECT_EQ(total, 800u);
  EXPECT_EQ(server.requests, 800);
  EXPECT_EQ(server.connections, 8);
}

// Open loop: nothing is sent before it is due, and an idle connection the server closes
// between due times is replaced without losing or doubling a request.
TEST(HttpDriver, DueTimesAreKeptAndIdleClosesSurvived) {
  envkit::test::ScriptedHttpServer server;
  std::vector<CountingWorker> workers;
  int64_t first = now_us() + 20000;
  workers.emplace_back(server.url("/idle"), 5, first, 100000);  // the server closes 50 ms after each
  workers.emplace_back(server.url("/len"), 5, first, 30000);
  std::vector<std::vector<Operation>> done;
  ASSERT_TRUE(drive_http(pointers(workers), envkit::test::short_timeouts(), std::chrono::milliseconds(2000), done).ok());
  for (const auto& ops : done) {
    ASSERT_EQ(ops.size(), 5u);
    for (const auto& op : ops) {
      EXPECT_GE(op.invoke, op.intended) << "sent before it was due";
      EXPECT_LT(op.invoke - op.intended, 50000) << "sent 50 ms late on an idle machine";
      EXPECT_EQ(op.outcome, Outcome::ok) << op.error;
    }
  }
  EXPECT_EQ(server.requests, 10);
  EXPECT_EQ(server.connections, 6);  // /idle: one a request; /len: one
}

TEST(HttpDriver, RefusedAndSilentTargetsAreClassifiedWithinTheirBounds) {
  envkit::test::ScriptedHttpServer server;
  std::vector<CountingWorker> workers;
  workers.emplace_back("http://127.0.0.1:" + std::to_string(envkit::test::closed_port()) + "/", 3);
  workers.emplace_back(server.url("/silent"), 2);
  std::vector<std::vector<Operation>> done;
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(drive_http(pointers(workers), envkit::test::short_timeouts(std::chrono::milliseconds(300),
                                                                         std::chrono::milliseconds(5000)),
                         std::chrono::milliseconds(200), done).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(3000));
  ASSERT_EQ(done[0].size(), 3u);
  for (const auto& op : done[0]) EXPECT_EQ(op.outcome, Outcome::fail) << op.error;  // never sent
  ASSERT_EQ(done[1].size(), 2u);
  for (const auto& op : done[1]) {
    EXPECT_EQ(op.outcome, Outcome::unknown) << op.error;  // sent: it may have happened
    EXPECT_NE(op.error.find("took longer than its timeout"), std::string::npos) << op.error;
  }
}

}  // namespace
}  // namespace race_probe
