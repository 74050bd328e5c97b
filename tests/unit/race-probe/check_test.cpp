// race-probe's checkers on hand-made histories with known answers, the history format, the
// read-back parser and the reference service's routes.
#include <gtest/gtest.h>

#include <filesystem>

#include <envkit/durable_file.hpp>

#include "race-probe/check.hpp"
#include "race-probe/history.hpp"
#include "race-probe/probe.hpp"
#include "race-probe/serve.hpp"

namespace race_probe {
namespace {

Operation add(const std::string& id, Outcome outcome, int64_t invoke = 10, int64_t complete = 20) {
  Operation op;
  op.client = "a";
  op.f = "add";
  op.id = id;
  op.checksum = payload_checksum("p" + id);
  op.invoke = op.intended = invoke;
  op.complete = complete;
  op.outcome = outcome;
  return op;
}

StoredRecord stored(const std::string& id, std::string client = "a") {
  return {id, std::move(client), false, payload_checksum("p" + id)};
}

Snapshot snapshot_of(std::vector<StoredRecord> records, int64_t invoke = 100) {
  Snapshot s;
  s.invoke = invoke;
  s.records = std::move(records);
  return s;
}

TEST(RaceProbeTasks, EveryAcknowledgedRecordStoredOnceIsValid) {
  std::vector<Operation> ops{add("a-0", Outcome::ok), add("a-1", Outcome::ok), add("a-2", Outcome::fail)};
  auto v = check_tasks(ops, snapshot_of({stored("a-0"), stored("a-1"), stored("b-7", "b")}));
  EXPECT_TRUE(v.valid());
  EXPECT_EQ(v.stored, 2u);
  EXPECT_EQ(v.foreign, 1u);  // another client's record is not judged
  EXPECT_EQ(v.operations.ok, 2u);
  EXPECT_EQ(v.operations.fail, 1u);
}

TEST(RaceProbeTasks, EachAnomalyIsCountedAndNamed) {
  std::vector<Operation> ops{add("a-0", Outcome::ok),      add("a-1", Outcome::ok),
                             add("a-2", Outcome::ok),      add("a-3", Outcome::fail),
                             add("a-4", Outcome::unknown), add("a-5", Outcome::unknown),
                             add("a-6", Outcome::ok, 90, 150)};
  auto corrupt = stored("a-2");
  corrupt.checksum = "0000000000000000";
  auto v = check_tasks(ops, snapshot_of({stored("a-1"), stored("a-1"), corrupt, stored("a-3"),
                                         stored("a-4"), stored("a-99")}));
  EXPECT_FALSE(v.valid());
  EXPECT_EQ(v.lost, 1u);
  EXPECT_EQ(v.examples["lost"], std::vector<std::string>{"a-0"});
  EXPECT_EQ(v.duplicated, 1u);
  EXPECT_EQ(v.examples["duplicated"], std::vector<std::string>{"a-1"});
  EXPECT_EQ(v.corrupted, 1u);
  EXPECT_EQ(v.unexpected, 2u);  // a-3 failed yet is there; a-99 was never sent
  EXPECT_EQ(v.recovered, 1u);
  EXPECT_EQ(v.unknown_absent, 1u);  // a-5: may never have happened, so not lost
  EXPECT_EQ(v.unchecked, 1u);       // a-6 was acknowledged after the read began
}

TEST(RaceProbeTasks, UnknownOutcomesAreNeverLost) {
  std::vector<Operation> ops{add("a-0", Outcome::unknown), add("a-1", Outcome::unknown)};
  auto v = check_tasks(ops, snapshot_of({stored("a-1")}));
  EXPECT_TRUE(v.valid());
  EXPECT_EQ(v.lost, 0u);
  EXPECT_EQ(v.recovered, 1u);
}

Operation buy(const std::string& item, Outcome outcome, uint64_t seq, int64_t invoke, int64_t complete) {
  Operation op;
  op.client = "a";
  op.seq = seq;
  op.f = "buy";
  op.id = item;
  op.invoke = op.intended = invoke;
  op.complete = complete;
  op.outcome = outcome;
  return op;
}

TEST(RaceProbeStock, SoldPlusRemainingIsInitial) {
  std::vector<Operation> ops{buy("i", Outcome::ok, 0, 1, 2), buy("i", Outcome::ok, 1, 3, 4),
                             buy("i", Outcome::fail, 2, 5, 6)};
  Snapshot s;
  s.initial["i"] = 2;
  s.stock["i"] = 0;
  EXPECT_TRUE(check_stock(ops, s).valid());
  // An unknown purchase may have taken stock or not: both readings are valid.
  ops[1].outcome = Outcome::unknown;
  EXPECT_TRUE(check_stock(ops, s).valid());
  s.stock["i"] = 1;
  EXPECT_TRUE(check_stock(ops, s).valid());
}

TEST(RaceProbeStock, OversoldAndPhantomPurchasesBlameOverlappingRequests) {
  // Three acknowledged purchases of 2 items in stock, two of them at once; one decrement lost.
  std::vector<Operation> ops{buy("i", Outcome::ok, 0, 1, 10), buy("i", Outcome::ok, 1, 2, 11),
                             buy("i", Outcome::ok, 2, 20, 21)};
  Snapshot s;
  s.initial["i"] = 2;
  s.stock["i"] = 0;
  auto v = check_stock(ops, s);
  EXPECT_FALSE(v.valid());
  const auto& item = v.items.at("i");
  EXPECT_EQ(item.oversold, 1);
  EXPECT_EQ(item.phantom, 1);
  EXPECT_EQ(item.suspects, (std::vector<std::string>{"a#0", "a#1", "a#2"}));
  s.stock["i"] = -1;
  EXPECT_FALSE(check_stock({}, s).valid());  // negative stock alone is a violation
}

TEST(RaceProbeHistory, LinesRoundTrip) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "race-probe-history";
  std::filesystem::create_directories(dir);
  auto op = add("a-0", Outcome::unknown);
  op.status = 504;
  op.error = "timed out";
  op.intended = 5;
  Snapshot s = snapshot_of({stored("a-0")});
  s.records[0].corrupt = true;
  std::string text = operation_line(op) + "\n" + snapshot_line(s) + "\n";
  auto path = (dir / "h.jsonl").string();
  ASSERT_TRUE(envkit::write_file_atomically(path, text));
  History h;
  ASSERT_TRUE(read_history(path, h));
  ASSERT_EQ(h.operations.size(), 1u);
  EXPECT_EQ(h.operations[0].outcome, Outcome::unknown);
  EXPECT_EQ(h.operations[0].intended, 5);
  EXPECT_EQ(h.operations[0].checksum, op.checksum);
  EXPECT_EQ(h.operations[0].status, 504);
  ASSERT_EQ(h.snapshots.size(), 1u);
  EXPECT_TRUE(h.snapshots[0].records[0].corrupt);
  ASSERT_TRUE(envkit::write_file_atomically(path, "{\"type\":\"op\",\"f\":\"add\",\"id\":\"x\",\"outcome\":\"maybe\"}\n"));
  auto bad = read_history(path, h);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("h.jsonl:1:"), std::string::npos);
}

TEST(RaceProbeReadBack, ArraysWrappedArraysAndJsonLines) {
  std::string sum = payload_checksum("x");
  auto a = parse_tasks_snapshot(R"([{"id":"a-1","client":"a","payload":"x","checksum":")" + sum + R"("},{"id":7}])", "id");
  ASSERT_TRUE(a);
  ASSERT_EQ(a->records.size(), 2u);
  EXPECT_FALSE(a->records[0].corrupt);
  EXPECT_EQ(a->records[1].id, "7");
  auto tampered = parse_tasks_snapshot(R"([{"id":"a-1","payload":"y","checksum":")" + sum + R"("}])", "id");
  ASSERT_TRUE(tampered);
  EXPECT_TRUE(tampered->records[0].corrupt);
  auto wrapped = parse_tasks_snapshot(R"({"count":2,"tasks":[{"task_id":"t1"},{"task_id":"t2"}]})", "task_id");
  ASSERT_TRUE(wrapped);
  EXPECT_EQ(wrapped->records.size(), 2u);
  auto lines = parse_tasks_snapshot("{\"id\":\"1\"}\n\n{\"id\":\"2\"}\n", "id");
  ASSERT_TRUE(lines);
  EXPECT_EQ(lines->records.size(), 2u);
  EXPECT_FALSE(parse_tasks_snapshot("[{\"id\":", "id"));
}

envkit::HttpServerRequest request(std::string method, std::string path, std::string body = "") {
  envkit::HttpServerRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.body = std::move(body);
  return r;
}

TEST(RaceProbeServe, TasksPersistToTheFileAsAJsonArray) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "race-probe-serve";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ServeConfig config;
  config.data = (dir / "tasks.json").string();
  ReferenceService service(config);
  EXPECT_EQ(service.handle(request("GET", "/tasks")).body, "[\n]\n");
  EXPECT_EQ(service.handle(request("POST", "/tasks", R"({"id":"t1"})")).status, 201);
  EXPECT_EQ(service.handle(request("POST", "/tasks", R"({"id":"t2"})")).status, 201);
  EXPECT_EQ(service.handle(request("POST", "/tasks", "not json")).status, 400);
  auto text = envkit::read_file(config.data, 1 << 20);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "[\n{\"id\":\"t1\"},\n{\"id\":\"t2\"}\n]\n");
  auto snap = parse_tasks_snapshot(*text, "id");
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->records.size(), 2u);
}

TEST(RaceProbeServe, StockIsNeverSoldBelowZero) {
  ReferenceService service(ServeConfig{});
  EXPECT_EQ(service.handle(request("PUT", "/stock/book", R"({"stock":1})")).status, 200);
  EXPECT_EQ(service.handle(request("POST", "/stock/book/buy")).status, 200);
  EXPECT_EQ(service.handle(request("POST", "/stock/book/buy")).status, 409);
  EXPECT_EQ(service.handle(request("GET", "/stock")).body, "{\"book\":0}\n");
  EXPECT_EQ(service.handle(request("POST", "/stock/none/buy")).status, 404);
}

TEST(RaceProbeServe, KeyValueReadWriteCompareAndSet) {
  ReferenceService service(ServeConfig{});
  EXPECT_EQ(service.handle(request("GET", "/kv/x")).status, 404);
  EXPECT_EQ(service.handle(request("PUT", "/kv/x", R"({"value":1})")).status, 200);
  EXPECT_EQ(service.handle(request("GET", "/kv/x")).body, "{\"value\":1}\n");
  EXPECT_EQ(service.handle(request("POST", "/kv/x/cas", R"({"from":2,"to":3})")).status, 409);
  EXPECT_EQ(service.handle(request("POST", "/kv/x/cas", R"({"from":1,"to":3})")).status, 200);
  EXPECT_EQ(service.handle(request("GET", "/kv/x")).body, "{\"value\":3}\n");
}

TEST(RaceProbeServe, FailAfterCommitStoresThenAnswers504) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "race-probe-fail";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ServeConfig config;
  config.data = (dir / "tasks.json").string();
  config.fail_after_commit = 1;
  ReferenceService service(config);
  EXPECT_EQ(service.handle(request("POST", "/tasks", R"({"id":"t1"})")).status, 504);
  auto snap = parse_tasks_snapshot(service.handle(request("GET", "/tasks")).body, "id");
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->records.size(), 1u);
}

}  // namespace
}  // namespace race_probe
