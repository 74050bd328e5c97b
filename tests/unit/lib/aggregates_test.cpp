// Tests for envkit/aggregates.hpp (spec parsing, a record's inputs) and the Redis sink's
// aggregate script: offline checks, and Live* ones against ENVKIT_TEST_REDIS_URL, run by
// tests/bats/queue-relay-aggregates.bats.
#include <envkit/aggregates.hpp>
#include <envkit/redis.hpp>
#include <envkit/registry.hpp>
#include "live.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace envkit {
namespace {

using Kind = AggregateSpec::Kind;

TEST(AggregateSpecs, ParseEveryKindAndKeepTheirOrder) {
  auto specs = parse_aggregates("count:municipality,mean:temperature:municipality,sum:rain:city,min:t:c,max:t:c");
  ASSERT_TRUE(specs.ok()) << specs.error().message;
  ASSERT_EQ(specs->size(), 5u);
  EXPECT_EQ((*specs)[0].kind, Kind::count);
  EXPECT_EQ((*specs)[0].by, "municipality");
  EXPECT_EQ((*specs)[0].value, "");
  EXPECT_EQ((*specs)[1].kind, Kind::mean);
  EXPECT_EQ((*specs)[1].value, "temperature");
  EXPECT_EQ((*specs)[1].by, "municipality");
  EXPECT_EQ((*specs)[2].kind, Kind::sum);
  EXPECT_EQ((*specs)[3].kind, Kind::min);
  EXPECT_EQ((*specs)[4].kind, Kind::max);
  EXPECT_EQ((*specs)[1].text(), "mean:temperature:municipality");
  EXPECT_EQ((*specs)[0].key("agg:"), "agg:count:municipality");
}

TEST(AggregateSpecs, BadSpecsAreUsageErrorsThatNameThem) {
  for (const char* text : {"", "count", "count:", "count:a:b", "mean:t", "mean::m", "mean:t:", "avg:t:m",
                           "sum:t:m:x", "count:m,", "count:m,count:m"}) {
    auto specs = parse_aggregates(text);
    ASSERT_FALSE(specs.ok()) << "'" << text << "'";
    EXPECT_EQ(specs.error().code, Exit::usage) << text;
    EXPECT_NE(specs.error().message.find("aggregate '"), std::string::npos) << specs.error().message;
  }
  EXPECT_NE(parse_aggregates("count:m,count:m").error().message.find("given twice"), std::string::npos);
}

std::vector<AggregateInput> inputs(const char* specs, const char* json, std::string* error = nullptr) {
  auto s = parse_aggregates(specs);
  EXPECT_TRUE(s.ok());
  auto doc = parse_json(json);
  EXPECT_TRUE(doc.ok());
  auto in = aggregate_inputs(*s, *doc);
  if (!in) {
    if (error) *error = in.error().message;
    EXPECT_EQ(in.error().code, Exit::data);
    return {};
  }
  return *in;
}

TEST(AggregateInputs, GroupsAsTextAndNumbersThatReadBackTheSame) {
  auto in = inputs("count:m,mean:t:m,sum:t:n,max:t:b",
                   R"({"m":"Mixco","t":21.1,"n":7,"b":true})");
  ASSERT_EQ(in.size(), 4u);
  EXPECT_EQ(in[0].group, "Mixco");
  EXPECT_EQ(in[0].number, "");
  EXPECT_EQ(in[1].number, "21.1");  // the shortest text of the double, not 21.100000000000001
  EXPECT_EQ(in[2].group, "7");
  EXPECT_EQ(in[3].group, "true");
  // A stream entry carries its numbers as strings.
  in = inputs("mean:t:m", R"({"m":"x","t":"-3.25"})");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].number, "-3.25");
}

TEST(AggregateInputs, ABadOrMissingMemberIsADataErrorThatSaysWhich) {
  std::string why;
  for (const char* json : {R"({"t":1})", R"({"m":null,"t":1})", R"({"m":{},"t":1})", R"({"m":"x"})",
                           R"({"m":"x","t":"warm"})", R"({"m":"x","t":"1 "})", R"({"m":"x","t":" 1"})",
                           R"({"m":"x","t":""})", R"({"m":"x","t":"inf"})", R"({"m":"x","t":[1]})"}) {
    why.clear();
    EXPECT_TRUE(inputs("mean:t:m", json, &why).empty()) << json;
    EXPECT_NE(why.find("mean:t:m"), std::string::npos) << json << ": " << why;
  }
  inputs("mean:t:m", R"({"m":"x","t":"warm"})", &why);
  EXPECT_EQ(why, "member 't' is not a number, for aggregate mean:t:m");
}

TEST(AggregateSinkUrl, BadParametersAreUsageErrors) {
  SinkOptions so;
  so.url_from_argv = false;
  for (const char* url : {"redis://127.0.0.1:1/0?key=k:{id}&aggregate=avg:t:m",
                          "redis://127.0.0.1:1/0?key=k:{id}&aggregate=count:m&aggregate=count:m",
                          "redis://127.0.0.1:1/0?key=k:{id}&ttl=60&aggregate=count:m&dedupe-ttl=59",
                          "redis://127.0.0.1:1/0?key=k:{id}&aggregate=count:m&dedupe-ttl=60",
                          "redis://127.0.0.1:1/0?key=k:{id}&dedupe-ttl=60"}) {
    auto sink = open_sink(url, so);
    ASSERT_FALSE(sink.ok()) << url;
    EXPECT_EQ(sink.error().code, Exit::usage) << url << ": " << sink.error().message;
  }
  EXPECT_TRUE(open_sink("redis://127.0.0.1:1/0?key=k:{id}&ttl=60&aggregate=count:m&dedupe-ttl=60", so).ok());
  const Connector* c = find_connector("redis");
  ASSERT_NE(c, nullptr);
  EXPECT_NE(c->sink_parameters.find("aggregate=SPEC"), std::string_view::npos);
}

// ---- Live: against the server in ENVKIT_TEST_REDIS_URL. ----
class LiveRedisAggregates : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = test::live_redis_url();
    if (!url) GTEST_SKIP() << "set ENVKIT_TEST_REDIS_URL to run";
    url_ = *url;
    auto c = RedisConnection::connect(url_, {});
    ASSERT_TRUE(c.ok()) << c.error().message;
    conn_ = std::make_unique<RedisConnection>(std::move(*c));
    prefix_ = test::redis_test_key(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ":";
  }
  void TearDown() override { ::unsetenv("ENVKIT_TEST_REDIS_NO_DEDUPE"); }

  // A sink writing PREFIX r:{id} with these aggregates under PREFIX agg:.
  std::unique_ptr<Sink> sink(const std::string& aggregates, const std::string& ttl = "",
                             const std::string& type = "string") {
    Url u = url_;
    u.query.push_back({"type", type});
    u.query.push_back({"key", prefix_ + "r:{id}"});
    u.query.push_back({"aggregate", aggregates});
    u.query.push_back({"aggregate-prefix", prefix_ + "agg:"});
    if (!ttl.empty()) u.query.push_back({"ttl", ttl});
    SinkOptions so;
    so.url_from_argv = false;
    auto s = open_sink(u.text(), so);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s ? std::move(*s) : nullptr;
  }
  RedisReply cmd(const std::vector<std::string>& argv) {
    auto r = conn_->command(argv);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r ? *r : RedisReply{};
  }
  std::string hget(const std::string& spec, const std::string& group) {
    return cmd({"HGET", prefix_ + "agg:" + spec, group}).str;
  }
  static Record rec(const std::string& id, const std::string& town, double t) {
    return {id, R"({"id":")" + id + R"(","town":")" + town + R"(","t":)" + std::to_string(t) + "}"};
  }

  Url url_;
  std::unique_ptr<RedisConnection> conn_;
  std::string prefix_;
};

TEST_F(LiveRedisAggregates, EveryKindIsExactAndARedeliveryCountsOnce) {
  auto s = sink("count:town,sum:t:town,min:t:town,max:t:town,mean:t:town", "600");
  ASSERT_TRUE(s);
  // b twice in one batch, a again in the next: each counted once.
  std::vector<Record> first = {rec("a", "Mixco", 20.5), rec("b", "Mixco", 22), rec("b", "Mixco", 22),
                               rec("c", "Antigua", -1.25)};
  auto out = s->write(first);
  ASSERT_TRUE(out.ok()) << out.error().message;
  for (const auto& d : *out) EXPECT_EQ(d.outcome, Outcome::durable) << d.error;
  out = s->write(std::vector<Record>{rec("a", "Mixco", 20.5), rec("d", "Mixco", 30)});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ((*out)[0].outcome, Outcome::durable);  // already there: nothing to do, not an error
  EXPECT_EQ(hget("count:town", "Mixco"), "3");
  EXPECT_EQ(hget("count:town", "Antigua"), "1");
  EXPECT_EQ(std::stod(hget("sum:t:town", "Mixco")), 72.5);
  EXPECT_EQ(std::stod(hget("min:t:town", "Mixco")), 20.5);
  EXPECT_EQ(std::stod(hget("max:t:town", "Mixco")), 30);
  EXPECT_EQ(std::stod(hget("mean:t:town", "Mixco")), 72.5 / 3);
  EXPECT_EQ(std::stod(hget("mean:t:town", "Antigua")), -1.25);
  EXPECT_EQ(cmd({"HGETALL", prefix_ + "agg:count:town"}).elements.size(), 4u);  // a table for Grafana
  // The marker lives at least as long as the record.
  long long record_ttl = cmd({"TTL", prefix_ + "r:a"}).integer;
  long long marker_ttl = cmd({"TTL", prefix_ + "agg:seen:a"}).integer;
  EXPECT_GT(record_ttl, 0);
  EXPECT_GE(marker_ttl, record_ttl);
}

TEST_F(LiveRedisAggregates, WithoutTheMarkerARedeliveryCountsTwice) {
  // The test-only switch: proves the marker, not something else, keeps the counts exact.
  ::setenv("ENVKIT_TEST_REDIS_NO_DEDUPE", "1", 1);
  auto s = sink("count:town");
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->write(std::vector<Record>{rec("a", "Mixco", 1)}).ok());
  ASSERT_TRUE(s->write(std::vector<Record>{rec("a", "Mixco", 1)}).ok());
  EXPECT_EQ(hget("count:town", "Mixco"), "2");
  EXPECT_EQ(cmd({"EXISTS", prefix_ + "agg:seen:a"}).integer, 0);
}

TEST_F(LiveRedisAggregates, ABadRecordIsRejectedAloneAndCountsNowhere) {
  auto s = sink("count:town,mean:t:town", "", "hash");
  ASSERT_TRUE(s);
  // The record key of "wrong" holds a list: its HSET fails inside the script.
  cmd({"RPUSH", prefix_ + "r:wrong", "x"});
  std::vector<Record> batch = {rec("ok1", "Mixco", 10), {"warm", R"({"id":"warm","town":"Mixco","t":"warm"})"},
                               rec("wrong", "Mixco", 99), rec("ok2", "Mixco", 20)};
  auto out = s->write(batch);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ((*out)[0].outcome, Outcome::durable);
  EXPECT_EQ((*out)[1].outcome, Outcome::rejected);
  EXPECT_EQ((*out)[1].error, "member 't' is not a number, for aggregate mean:t:town");
  EXPECT_EQ((*out)[2].outcome, Outcome::rejected);
  EXPECT_NE((*out)[2].error.find("WRONGTYPE"), std::string::npos) << (*out)[2].error;
  EXPECT_EQ((*out)[3].outcome, Outcome::durable);
  EXPECT_EQ(hget("count:town", "Mixco"), "2");
  EXPECT_EQ(std::stod(hget("mean:t:town", "Mixco")), 15);
  EXPECT_EQ(cmd({"EXISTS", prefix_ + "agg:seen:wrong"}).integer, 0);  // a later fix can still count it
}

TEST_F(LiveRedisAggregates, AnAggregateKeyOfTheWrongTypeFailsTheBatchBeforeAnyWrite) {
  auto s = sink("count:town");
  ASSERT_TRUE(s);
  cmd({"SET", prefix_ + "agg:count:town", "not a hash"});
  auto out = s->write(std::vector<Record>{rec("a", "Mixco", 1)});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("holds a string, not a hash"), std::string::npos) << out.error().message;
  EXPECT_EQ(cmd({"EXISTS", prefix_ + "r:a"}).integer, 0);
  EXPECT_EQ(cmd({"EXISTS", prefix_ + "agg:seen:a"}).integer, 0);
}

TEST_F(LiveRedisAggregates, AFlushedScriptCacheIsLoadedAgain) {
  auto s = sink("count:town");
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->write(std::vector<Record>{rec("a", "Mixco", 1)}).ok());
  cmd({"SCRIPT", "FLUSH"});
  auto out = s->write(std::vector<Record>{rec("b", "Mixco", 1)});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ((*out)[0].outcome, Outcome::durable);
  EXPECT_EQ(hget("count:town", "Mixco"), "2");
}

}  // namespace
}  // namespace envkit
