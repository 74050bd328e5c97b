// Tests for the Redis sources (stream consumer group, list as a reliable queue) and the Redis
// sink's key template: URL checks offline, the rest (Live*) against ENVKIT_TEST_REDIS_URL,
// run by tests/bats/sources-redis.bats.
#include <envkit/redis.hpp>
#include <envkit/registry.hpp>
#include "live.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <set>

namespace envkit {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using test::redis_test_key;

TEST(RedisSource, UrlMustNameAStreamWithAGroupOrAList) {
  for (const char* url : {"redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0?stream=s&list=l",
                          "redis://127.0.0.1:1/0?stream=s", "redis://127.0.0.1:1/0?stream=&group=g",
                          "redis://127.0.0.1:1/0?stream=s&group=g&claim-idle=0",
                          "redis://127.0.0.1:1/0?stream=s&group=g&create=yes",
                          "redis://127.0.0.1:1/0?list=l&processing=l"}) {
    auto s = open_source(url, {});
    ASSERT_FALSE(s.ok()) << url;
    EXPECT_EQ(s.error().code, Exit::usage) << url << ": " << s.error().message;
  }
  const Connector* c = find_connector("redis");
  ASSERT_NE(c, nullptr);
  EXPECT_NE(c->open_source, nullptr);
  EXPECT_NE(c->source_parameters.find("claim-idle"), std::string_view::npos);
  EXPECT_NE(c->sink_parameters.find("{id}"), std::string_view::npos);
}

TEST(RedisSource, AServerThatIsNotThereFailsTheOpenAsUnavailable) {
  for (const char* url : {"redis://127.0.0.1:1/0?stream=s&group=g", "redis://127.0.0.1:1/0?list=l"}) {
    auto s = open_source(url, {});
    ASSERT_FALSE(s.ok()) << url;
    EXPECT_EQ(s.error().code, Exit::unavailable) << s.error().message;
  }
}

// ---- Live: against the server in ENVKIT_TEST_REDIS_URL. ----

class LiveRedisSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = test::live_redis_url();
    if (!url) GTEST_SKIP() << "set ENVKIT_TEST_REDIS_URL to run";
    url_ = *url;
    auto c = RedisConnection::connect(url_, {});
    ASSERT_TRUE(c.ok()) << c.error().message;
    conn_ = std::make_unique<RedisConnection>(std::move(*c));
  }

  // The server's URL with these query parameters added, as text for open_source/open_sink.
  std::string with(std::vector<std::pair<std::string, std::string>> params) const {
    Url u = url_;
    u.query.insert(u.query.end(), params.begin(), params.end());
    return u.text();
  }

  std::unique_ptr<Source> source(std::vector<std::pair<std::string, std::string>> params) {
    SourceOptions o;
    o.url_from_argv = false;
    auto s = open_source(with(std::move(params)), o);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s ? std::move(*s) : nullptr;
  }

  RedisReply cmd(const std::vector<std::string>& argv) {
    auto r = conn_->command(argv);
    EXPECT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(r.ok() && r->is_error()) << r->str;
    return r ? *r : RedisReply{};
  }

  // The ids pending in the group, all consumers.
  std::set<std::string> pending(const std::string& stream, const std::string& group) {
    std::set<std::string> out;
    for (const auto& e : cmd({"XPENDING", stream, group, "-", "+", "1000"}).elements) out.insert(e.elements[0].str);
    return out;
  }

  // Calls next() until `n` records came or a deadline passed.
  std::vector<Received> take(Source& s, size_t n, milliseconds within = milliseconds(10000)) {
    std::vector<Received> got;
    auto deadline = Clock::now() + within;
    while (got.size() < n && Clock::now() < deadline) {
      auto b = s.next(n - got.size(), milliseconds(100));
      EXPECT_TRUE(b.ok()) << b.error().message;
      if (!b) break;
      got.insert(got.end(), b->records.begin(), b->records.end());
    }
    return got;
  }

  static std::vector<Settlement> verdicts(const std::vector<Received>& got, Verdict v) {
    std::vector<Settlement> out;
    for (const auto& r : got) out.push_back({r.handle, v, {}});
    return out;
  }

  Url url_;
  std::unique_ptr<RedisConnection> conn_;
};

using LiveRedisStreamSource = LiveRedisSourceTest;
using LiveRedisListSource = LiveRedisSourceTest;
using LiveRedisSink = LiveRedisSourceTest;

// XADDs `n` entries {"id":"<prefix><i>","n":i} and returns their entry ids.
std::vector<std::string> add_entries(RedisConnection& c, const std::string& stream, int n,
                                     const std::string& prefix = "r") {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    auto r = c.command({"XADD", stream, "*", "id", prefix + std::to_string(i), "n", std::to_string(i)});
    EXPECT_TRUE(r.ok() && !r->is_error());
    ids.push_back(r ? r->str : "");
  }
  return ids;
}

TEST_F(LiveRedisStreamSource, OutOfOrderAcksLeaveExactlyTheUnackedPending) {
  std::string stream = redis_test_key("acks");
  add_entries(*conn_, stream, 5);
  auto s = source({{"stream", stream}, {"group", "g"}, {"consumer", "c1"}, {"create", "true"}});
  ASSERT_TRUE(s);
  auto got = take(*s, 5);
  ASSERT_EQ(got.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i].record.id, "r" + std::to_string(i));
    EXPECT_EQ(got[i].record.json, "{\"id\":\"r" + std::to_string(i) + "\",\"n\":" + std::to_string(i) + "}");
    EXPECT_EQ(got[i].deliveries, 1u);
  }
  auto all = pending(stream, "g");
  ASSERT_EQ(all.size(), 5u);
  std::vector<std::string> entry_ids(all.begin(), all.end());  // ids sort in stream order here

  // Ack 3 and 1, dead 4, retry 0: only 0 and 2 remain pending.
  ASSERT_TRUE(s->settle(std::vector<Settlement>{{got[3].handle, Verdict::ack, {}},
                                                {got[1].handle, Verdict::ack, {}},
                                                {got[4].handle, Verdict::dead, "bad"},
                                                {got[0].handle, Verdict::retry, "later"}})
                  .ok());
  EXPECT_EQ(pending(stream, "g"), (std::set<std::string>{entry_ids[0], entry_ids[2]}));
  ASSERT_TRUE(s->settle(verdicts({got[2]}, Verdict::ack)).ok());
  EXPECT_EQ(pending(stream, "g"), (std::set<std::string>{entry_ids[0]}));
  // A handle settles once.
  auto twice = s->settle(verdicts({got[2]}, Verdict::ack));
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code, Exit::software);
}

TEST_F(LiveRedisStreamSource, ACrashBeforeAckHandsTheEntryOutAgainToTheSameConsumer) {
  std::string stream = redis_test_key("crash");
  add_entries(*conn_, stream, 2);
  std::vector<std::pair<std::string, std::string>> params{
      {"stream", stream}, {"group", "g"}, {"consumer", "worker-1"}, {"create", "true"}};
  {
    auto s = source(params);
    ASSERT_TRUE(s);
    auto got = take(*s, 2);
    ASSERT_EQ(got.size(), 2u);
    ASSERT_TRUE(s->settle(verdicts({got[1]}, Verdict::ack)).ok());
    // Destroyed holding r0, as a crash would leave it.
  }
  add_entries(*conn_, stream, 1, "new");
  auto s = source(params);
  ASSERT_TRUE(s);
  auto got = take(*s, 2);
  ASSERT_EQ(got.size(), 2u);
  // Its own pending entry first, delivered for the second time, then the new one.
  EXPECT_EQ(got[0].record.id, "r0");
  EXPECT_EQ(got[0].deliveries, 2u);
  EXPECT_EQ(got[1].record.id, "new0");
  EXPECT_EQ(got[1].deliveries, 1u);
  ASSERT_TRUE(s->settle(verdicts(got, Verdict::ack)).ok());
  EXPECT_TRUE(pending(stream, "g").empty());
}

TEST_F(LiveRedisStreamSource, AnotherConsumerClaimsADeadConsumersEntries) {
  std::string stream = redis_test_key("claim");
  add_entries(*conn_, stream, 3);
  {
    auto a = source({{"stream", stream}, {"group", "g"}, {"consumer", "a"}, {"create", "true"}});
    ASSERT_TRUE(a);
    ASSERT_EQ(take(*a, 3).size(), 3u);
    // a dies with all three.
  }
  auto b = source({{"stream", stream}, {"group", "g"}, {"consumer", "b"}, {"claim-idle", "50"}});
  ASSERT_TRUE(b);
  auto got = take(*b, 3);
  ASSERT_EQ(got.size(), 3u);
  std::set<std::string> ids;
  for (const auto& r : got) {
    ids.insert(r.record.id);
    EXPECT_EQ(r.deliveries, 2u) << r.record.id;
  }
  EXPECT_EQ(ids, (std::set<std::string>{"r0", "r1", "r2"}));
  for (const auto& e : cmd({"XPENDING", stream, "g", "-", "+", "10"}).elements) {
    EXPECT_EQ(e.elements[1].str, "b");
  }
  // Not handed out twice while b holds them, however long that takes: several claim passes
  // (every 25 ms at claim-idle 50) find them idle, and must skip them.
  for (auto until = Clock::now() + milliseconds(400); Clock::now() < until;) {
    auto b2 = b->next(10, milliseconds(30));
    ASSERT_TRUE(b2.ok());
    EXPECT_TRUE(b2->records.empty()) << b2->records[0].record.id << " handed out again while out";
  }
  ASSERT_TRUE(b->settle(verdicts(got, Verdict::ack)).ok());
  EXPECT_TRUE(pending(stream, "g").empty());
}

TEST_F(LiveRedisStreamSource, ARetryStaysPendingAndIsClaimedBackAfterClaimIdle) {
  std::string stream = redis_test_key("retry");
  add_entries(*conn_, stream, 1);
  auto s = source({{"stream", stream}, {"group", "g"}, {"consumer", "c"}, {"create", "true"}, {"claim-idle", "100"}});
  ASSERT_TRUE(s);
  auto got = take(*s, 1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(s->settle(verdicts(got, Verdict::retry)).ok());
  EXPECT_EQ(pending(stream, "g").size(), 1u);
  auto again = take(*s, 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].record.id, "r0");
  EXPECT_EQ(again[0].deliveries, 2u);
  ASSERT_TRUE(s->settle(verdicts(again, Verdict::ack)).ok());
  EXPECT_TRUE(pending(stream, "g").empty());
}

TEST_F(LiveRedisStreamSource, WithoutCreateAMissingGroupIsAConfigError) {
  std::string stream = redis_test_key("nogroup");
  SourceOptions o;
  o.url_from_argv = false;
  auto s = open_source(with({{"stream", stream}, {"group", "g"}}), o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Exit::config);
  EXPECT_NE(s.error().message.find("create=true"), std::string::npos) << s.error().message;
  add_entries(*conn_, stream, 1);
  s = open_source(with({{"stream", stream}, {"group", "g"}}), o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Exit::config);
  EXPECT_NE(s.error().message.find("no consumer group 'g'"), std::string::npos) << s.error().message;
}

TEST_F(LiveRedisStreamSource, AnEntryDeletedWhilePendingIsAcknowledgedAndSkipped) {
  std::string stream = redis_test_key("deleted");
  auto ids = add_entries(*conn_, stream, 2);
  std::vector<std::pair<std::string, std::string>> params{
      {"stream", stream}, {"group", "g"}, {"consumer", "c"}, {"create", "true"}};
  {
    auto s = source(params);
    ASSERT_EQ(take(*s, 2).size(), 2u);
  }
  cmd({"XDEL", stream, ids[0]});
  auto s = source(params);
  auto got = take(*s, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].record.id, "r1");
  EXPECT_EQ(pending(stream, "g"), (std::set<std::string>{ids[1]}));
}

TEST_F(LiveRedisStreamSource, ReadsBackWhatTheRedisSinkWrote) {
  std::string stream = redis_test_key("roundtrip");
  SinkOptions so;
  so.url_from_argv = false;
  auto sink = open_sink(with({{"key", stream}, {"type", "stream"}}), so);
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  std::vector<Record> records = {
      {"Bogotá@2024-01-01T00:00", R"({"id":"Bogotá@2024-01-01T00:00","city":"Bogotá","temp":14.25,"rain":false,"wind":null,"tags":["a","b"],"geo":{"lat":4.6}})"},
      {"no-id-member", R"({"city":"Cali","zip":"05001","note":"12 mm"})"},
  };
  auto out = (*sink)->write(records);
  ASSERT_TRUE(out.ok()) << out.error().message;
  for (const auto& d : *out) EXPECT_EQ(d.outcome, Outcome::durable) << d.error;

  auto s = source({{"stream", stream}, {"group", "g"}, {"create", "true"}});
  ASSERT_TRUE(s);
  auto got = take(*s, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].record.json, records[0].json);
  EXPECT_EQ(got[0].record.id, records[0].id);
  EXPECT_EQ(got[1].record.json, records[1].json);
  // No `id` member: the entry id, which is stable across redeliveries.
  EXPECT_EQ(got[1].record.id, *pending(stream, "g").rbegin());

  // With field=F the record is that field's text, exactly.
  cmd({"XADD", stream, "*", "json", R"({"id":"x1","n":"12"})", "other", "1"});
  auto f = source({{"stream", stream}, {"group", "f"}, {"create", "true"}, {"field", "json"}});
  ASSERT_TRUE(f);
  got = take(*f, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].record.json, R"({"id":"x1","n":"12"})");
  EXPECT_EQ(got[2].record.id, "x1");
}

TEST_F(LiveRedisStreamSource, ABlockingReadReturnsWithinItsWait) {
  std::string stream = redis_test_key("block");
  auto s = source({{"stream", stream}, {"group", "g"}, {"create", "true"}});
  ASSERT_TRUE(s);
  auto start = Clock::now();
  auto b = s->next(10, milliseconds(200));
  auto took = Clock::now() - start;
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_TRUE(b->records.empty());
  EXPECT_FALSE(b->end);
  EXPECT_GE(took, milliseconds(150));
  EXPECT_LT(took, milliseconds(3000));
}

// CLIENT KILL of every other client: the sources' connections break as if the network did.
// The commands ignore SIGPIPE (install_signal_handlers()); so does this, while a test runs,
// or the write to a killed Unix socket would end the test binary instead of failing a call.
class KilledConnections {
 public:
  explicit KilledConnections(RedisConnection& conn) : before_(std::signal(SIGPIPE, SIG_IGN)) {
    auto r = conn.command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
    EXPECT_TRUE(r.ok() && !r->is_error());
  }
  ~KilledConnections() { std::signal(SIGPIPE, before_); }
  KilledConnections(const KilledConnections&) = delete;
  KilledConnections& operator=(const KilledConnections&) = delete;

 private:
  void (*before_)(int);
};

TEST_F(LiveRedisStreamSource, AfterABrokenConnectionEntriesWhoseReplyWasLostComeBackAtOnce) {
  std::string stream = redis_test_key("lostreply");
  add_entries(*conn_, stream, 1);
  auto s = source({{"stream", stream}, {"group", "g"}, {"consumer", "c"}, {"create", "true"}});
  ASSERT_TRUE(s);
  auto held = take(*s, 1);
  ASSERT_EQ(held.size(), 1u);
  // The server gives c an entry whose reply never reaches it: the same read from here.
  add_entries(*conn_, stream, 1, "lost");
  cmd({"XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", stream, ">"});
  KilledConnections killed(*conn_);
  auto broken = s->next(10, milliseconds(100));
  ASSERT_FALSE(broken.ok());
  // Reconnected, it finds the lost entry in its own pending list without waiting for
  // claim-idle (30 s here), and does not hand out again the one it still holds.
  auto got = take(*s, 1, milliseconds(3000));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].record.id, "lost0");
  auto more = s->next(10, milliseconds(100));
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(more->records.empty());
  ASSERT_TRUE(s->settle(verdicts({held[0], got[0]}, Verdict::ack)).ok());
  EXPECT_TRUE(pending(stream, "g").empty());
}

// ---- list ----

TEST_F(LiveRedisListSource, ConsumesOldestFirstAndAcksEmptyTheProcessingList) {
  std::string list = redis_test_key("list");
  for (int i = 0; i < 5; ++i) cmd({"RPUSH", list, "{\"id\":\"l" + std::to_string(i) + "\"}"});
  cmd({"RPUSH", list, "plain text"});
  auto s = source({{"list", list}});
  ASSERT_TRUE(s);
  auto got = take(*s, 6);
  ASSERT_EQ(got.size(), 6u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i].record.id, "l" + std::to_string(i));
    EXPECT_EQ(got[i].deliveries, 1u);
  }
  EXPECT_EQ(got[5].record.json, "plain text");
  EXPECT_EQ(got[5].record.id.rfind("sha256:", 0), 0u);
  EXPECT_EQ(cmd({"LLEN", list}).integer, 0);
  EXPECT_EQ(cmd({"LLEN", list + ":processing"}).integer, 6);
  ASSERT_TRUE(s->settle(verdicts({got[4], got[0]}, Verdict::ack)).ok());
  ASSERT_TRUE(s->settle(verdicts({got[5]}, Verdict::dead)).ok());
  auto left = cmd({"LRANGE", list + ":processing", "0", "-1"});
  ASSERT_EQ(left.elements.size(), 3u);
  EXPECT_EQ(left.elements[0].str, got[1].record.json);
  EXPECT_EQ(left.elements[2].str, got[3].record.json);
  ASSERT_TRUE(s->settle(verdicts({got[1], got[2], got[3]}, Verdict::ack)).ok());
  EXPECT_EQ(cmd({"LLEN", list + ":processing"}).integer, 0);
  EXPECT_EQ(cmd({"EXISTS", list + ":processing"}).integer, 0);
}

TEST_F(LiveRedisListSource, ACrashedRunsRecordsAreHandedOutFirst) {
  std::string list = redis_test_key("recover");
  for (int i = 0; i < 4; ++i) cmd({"RPUSH", list, "{\"id\":\"l" + std::to_string(i) + "\"}"});
  {
    auto s = source({{"list", list}});
    ASSERT_TRUE(s);
    auto got = take(*s, 2);
    ASSERT_EQ(got.size(), 2u);
    ASSERT_TRUE(s->settle(verdicts({got[0]}, Verdict::ack)).ok());
    // Destroyed holding l1.
  }
  EXPECT_EQ(cmd({"LLEN", list + ":processing"}).integer, 1);
  auto s = source({{"list", list}});
  ASSERT_TRUE(s);
  auto got = take(*s, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].record.id, "l1");
  EXPECT_EQ(got[0].deliveries, 2u);
  EXPECT_EQ(got[1].record.id, "l2");
  EXPECT_EQ(got[1].deliveries, 1u);
  EXPECT_EQ(got[2].record.id, "l3");
  ASSERT_TRUE(s->settle(verdicts(got, Verdict::ack)).ok());
  EXPECT_EQ(cmd({"LLEN", list + ":processing"}).integer, 0);
  EXPECT_EQ(cmd({"LLEN", list}).integer, 0);
}

TEST_F(LiveRedisListSource, ARetryGoesBackToTheListAndComesAgain) {
  std::string list = redis_test_key("list-retry");
  cmd({"RPUSH", list, "{\"id\":\"a\"}", "{\"id\":\"b\"}"});
  auto s = source({{"list", list}});
  ASSERT_TRUE(s);
  auto got = take(*s, 1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(got[0].record.id, "a");
  ASSERT_TRUE(s->settle(verdicts(got, Verdict::retry)).ok());
  EXPECT_EQ(cmd({"LLEN", list + ":processing"}).integer, 0);
  auto rest = cmd({"LRANGE", list, "0", "-1"});
  ASSERT_EQ(rest.elements.size(), 2u);
  EXPECT_EQ(rest.elements[0].str, "{\"id\":\"b\"}");
  EXPECT_EQ(rest.elements[1].str, "{\"id\":\"a\"}");  // behind what was waiting
  got = take(*s, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].record.id, "b");
  EXPECT_EQ(got[1].record.id, "a");
  EXPECT_EQ(got[1].deliveries, 2u);
  ASSERT_TRUE(s->settle(verdicts(got, Verdict::ack)).ok());
  EXPECT_EQ(cmd({"LLEN", list + ":processing"}).integer, 0);
}

TEST_F(LiveRedisListSource, NamedConsumersKeepProcessingListsOfTheirOwn) {
  std::string list = redis_test_key("shared");
  cmd({"RPUSH", list, "{\"id\":\"a\"}", "{\"id\":\"b\"}"});
  auto one = source({{"list", list}, {"consumer", "one"}});
  ASSERT_TRUE(one);
  ASSERT_EQ(take(*one, 1).size(), 1u);
  // A second consumer starting now must not take over one's record.
  auto two = source({{"list", list}, {"consumer", "two"}});
  ASSERT_TRUE(two);
  auto got = take(*two, 2, milliseconds(500));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].record.id, "b");
  EXPECT_EQ(cmd({"LLEN", list + ":processing:one"}).integer, 1);
  EXPECT_EQ(cmd({"LLEN", list + ":processing:two"}).integer, 1);
}

TEST_F(LiveRedisListSource, ReadsBackWhatTheRedisSinkWrote) {
  std::string list = redis_test_key("sinklist");
  SinkOptions so;
  so.url_from_argv = false;
  auto sink = open_sink(with({{"key", list}, {"type", "list"}}), so);
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  std::vector<Record> records = {{"1", R"({"id":"1","v":"x"})"}, {"2", R"({"id":"2","v":2})"}};
  ASSERT_TRUE((*sink)->write(records).ok());
  auto s = source({{"list", list}});
  auto got = take(*s, 2);
  ASSERT_EQ(got.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(got[i].record.json, records[i].json);
    EXPECT_EQ(got[i].record.id, records[i].id);
  }
  ASSERT_TRUE(s->settle(verdicts(got, Verdict::ack)).ok());
  EXPECT_EQ(cmd({"EXISTS", list + ":processing"}).integer, 0);
}

TEST_F(LiveRedisListSource, AfterABrokenConnectionEntriesWhoseReplyWasLostComeBackAtOnce) {
  std::string list = redis_test_key("list-lost");
  cmd({"RPUSH", list, "{\"id\":\"same\"}", "{\"id\":\"same\"}", "{\"id\":\"other\"}"});
  auto s = source({{"list", list}});
  ASSERT_TRUE(s);
  auto held = take(*s, 1);
  ASSERT_EQ(held.size(), 1u);
  // An LMOVE the server ran but whose reply was lost: an equal record, moved from here.
  cmd({"LMOVE", list, list + ":processing", "LEFT", "RIGHT"});
  KilledConnections killed(*conn_);
  ASSERT_FALSE(s->next(10, milliseconds(100)).ok());
  auto got = take(*s, 2, milliseconds(3000));
  ASSERT_EQ(got.size(), 2u);
  // The lost one (equal to the one still out, but a second copy) first, then the rest.
  EXPECT_EQ(got[0].record.id, "same");
  EXPECT_EQ(got[1].record.id, "other");
  auto more = s->next(10, milliseconds(100));
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(more->records.empty());
  ASSERT_TRUE(s->settle(verdicts({held[0], got[0], got[1]}, Verdict::ack)).ok());
  EXPECT_EQ(cmd({"EXISTS", list + ":processing"}).integer, 0);
}

// ---- the sink's key template: {id} is Record::id, with or without parsing the record ----

TEST_F(LiveRedisSink, IdInTheKeyTemplateIsTheRecordIdNotTheMember) {
  std::string prefix = redis_test_key("tmpl");
  SinkOptions so;
  so.url_from_argv = false;
  // The JSON member `id` differs from Record::id on purpose.
  std::vector<Record> records = {{"rec-1", R"({"id":"member-1","city":"Pasto"})"}};
  // Only {id}: the record is not parsed. {city} too: it is. A hash: always parsed.
  for (const auto& [tmpl, type] : std::vector<std::pair<std::string, std::string>>{
           {prefix + ":fast:{id}", "string"}, {prefix + ":{city}:{id}", "string"}, {prefix + ":h:{id}", "hash"}}) {
    auto sink = open_sink(with({{"key", tmpl}, {"type", type}}), so);
    ASSERT_TRUE(sink.ok()) << sink.error().message;
    auto out = (*sink)->write(records);
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ((*out)[0].outcome, Outcome::durable) << tmpl << ": " << (*out)[0].error;
  }
  EXPECT_EQ(cmd({"GET", prefix + ":fast:rec-1"}).str, records[0].json);
  EXPECT_EQ(cmd({"GET", prefix + ":Pasto:rec-1"}).str, records[0].json);
  EXPECT_EQ(cmd({"HGET", prefix + ":h:rec-1", "id"}).str, "member-1");
  EXPECT_EQ(cmd({"EXISTS", prefix + ":fast:member-1"}).integer, 0);
  EXPECT_EQ(cmd({"EXISTS", prefix + ":Pasto:member-1"}).integer, 0);
  EXPECT_EQ(cmd({"EXISTS", prefix + ":h:member-1"}).integer, 0);

  // A record without an id cannot fill {id}: rejected, not stored under an empty id.
  auto sink = open_sink(with({{"key", prefix + ":{city}:{id}"}}), so);
  ASSERT_TRUE(sink.ok());
  auto out = (*sink)->write(std::vector<Record>{{"", R"({"id":"m","city":"Cali"})"}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].outcome, Outcome::rejected);
  EXPECT_EQ(cmd({"EXISTS", prefix + ":Cali:"}).integer, 0);
}

}  // namespace
}  // namespace envkit
