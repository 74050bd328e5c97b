// Unit tests for envkit/redis.hpp (loopback only), and Live* tests against a real server.
#include <envkit/redis.hpp>
#include "live.hpp"
#include "loopback.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

namespace envkit {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

using test::closed_port;
using test::LoopbackSocket;
using test::short_timeouts;

Url redis_url(uint16_t port) {
  Url u;
  u.scheme = "redis";
  u.password = "hunter2";
  u.hosts.push_back(HostPort{"127.0.0.1", port, false});
  u.path = "0";
  return u;
}

// Parses RESP bytes with hiredis's own reader, as the connection would.
RedisReply parse_resp(std::string_view bytes) {
  redisReader* reader = redisReaderCreate();
  redisReaderFeed(reader, bytes.data(), bytes.size());
  void* raw = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader, &raw), REDIS_OK);
  redisReaderFree(reader);
  EXPECT_NE(raw, nullptr);
  if (!raw) return {};
  RedisReply out = RedisReply::from(*static_cast<redisReply*>(raw));
  freeReplyObject(raw);
  return out;
}

TEST(Redis, ReplyConversionCoversEveryType) {
  using T = RedisReply::Type;
  EXPECT_EQ(parse_resp("+OK\r\n").type, T::status);
  EXPECT_EQ(parse_resp("+OK\r\n").str, "OK");
  RedisReply err = parse_resp("-WRONGTYPE Operation against a key\r\n");
  EXPECT_TRUE(err.is_error());
  EXPECT_EQ(err.str, "WRONGTYPE Operation against a key");
  RedisReply n = parse_resp(":-42\r\n");
  EXPECT_EQ(n.type, T::integer);
  EXPECT_EQ(n.integer, -42);
  EXPECT_TRUE(parse_resp("$-1\r\n").is_nil());
  RedisReply empty = parse_resp("$0\r\n\r\n");
  EXPECT_EQ(empty.type, T::string);
  EXPECT_EQ(empty.str, "");
}

TEST(Redis, ReplyConversionIsBinarySafeAndNested) {
  using T = RedisReply::Type;
  const std::string binary("a\0b\r\n🌧", 10);
  RedisReply r = parse_resp("*3\r\n$10\r\n" + binary + "\r\n*2\r\n:1\r\n$-1\r\n*0\r\n");
  ASSERT_EQ(r.type, T::array);
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].str, binary);
  EXPECT_EQ(r.elements[0].str.size(), 10u);
  ASSERT_EQ(r.elements[1].type, T::array);
  ASSERT_EQ(r.elements[1].elements.size(), 2u);
  EXPECT_EQ(r.elements[1].elements[0].integer, 1);
  EXPECT_TRUE(r.elements[1].elements[1].is_nil());
  EXPECT_EQ(r.elements[2].type, T::array);
  EXPECT_TRUE(r.elements[2].elements.empty());
}

TEST(Redis, ClosedPortIsUnavailableFastAndNamesRedactedUrl) {
  Url url = redis_url(closed_port());
  auto start = Clock::now();
  auto conn = RedisConnection::connect(url, short_timeouts());
  auto took = Clock::now() - start;
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::unavailable);
  EXPECT_NE(conn.error().message.find(url.redacted()), std::string::npos) << conn.error().message;
  EXPECT_NE(conn.error().message.find("refused"), std::string::npos) << conn.error().message;
  EXPECT_EQ(conn.error().message.find("hunter2"), std::string::npos) << conn.error().message;
  EXPECT_LT(took, milliseconds(1000));
}

TEST(Redis, ServerThatNeverAnswersTimesOutWithinBound) {
  LoopbackSocket silent(true);
  auto start = Clock::now();
  auto conn = RedisConnection::connect(redis_url(silent.port()), short_timeouts());
  auto took = Clock::now() - start;
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::unavailable) << conn.error().message;
  EXPECT_NE(conn.error().message.find("no answer within 300 ms"), std::string::npos)
      << conn.error().message;
  EXPECT_EQ(conn.error().message.find("hunter2"), std::string::npos);
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(1500));
}

TEST(Redis, NeverAnsweringWithoutPasswordStillFailsAtConnect) {
  // No AUTH and no SELECT to send: connect must still make a round trip (PING).
  LoopbackSocket silent(true);
  Url url = redis_url(silent.port());
  url.password.reset();
  url.path.clear();
  auto conn = RedisConnection::connect(url, short_timeouts());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::unavailable) << conn.error().message;
}

TEST(Redis, TlsIsRefusedAsConfiguration) {
  Url url = redis_url(closed_port());
  url.scheme = "rediss";
  auto conn = RedisConnection::connect(url, short_timeouts());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::config);
  EXPECT_NE(conn.error().message.find("no TLS support"), std::string::npos);

  ConnectionOptions o = short_timeouts();
  o.tls.enabled = true;
  auto conn2 = RedisConnection::connect(redis_url(closed_port()), o);
  ASSERT_FALSE(conn2.ok());
  EXPECT_EQ(conn2.error().code, Exit::config);
}

TEST(Redis, BadDatabaseNumberIsUsageError) {
  Url url = redis_url(closed_port());
  url.path = "cache";
  auto conn = RedisConnection::connect(url, short_timeouts());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::usage);
  EXPECT_NE(conn.error().message.find("'cache'"), std::string::npos);
}

// ---- Live tests: against the server in ENVKIT_TEST_REDIS_URL. ----

std::string key(std::string_view name) { return test::redis_test_key(name); }

TEST(LiveRedis, CommandsAreBinarySafeAndErrorRepliesAreReplies) {
  REQUIRE_LIVE_REDIS(url);
  auto conn = RedisConnection::connect(url, {});
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  const std::string value("a\0b\r\nBogotá 🌧", 18);
  auto set = conn->command({"SET", key("bin"), value});
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_EQ(set->type, RedisReply::Type::status);
  EXPECT_EQ(set->str, "OK");
  auto get = conn->command({"GET", key("bin")});
  ASSERT_TRUE(get.ok()) << get.error().message;
  EXPECT_EQ(get->str, value);
  EXPECT_TRUE(conn->command({"GET", key("missing")})->is_nil());

  auto wrong = conn->command({"INCR", key("bin")});
  ASSERT_TRUE(wrong.ok()) << wrong.error().message;
  EXPECT_TRUE(wrong->is_error());
  EXPECT_NE(wrong->str.find("ERR"), std::string::npos) << wrong->str;
  // An error reply leaves the connection usable.
  auto del = conn->command({"DEL", key("bin")});
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->integer, 1);
}

TEST(LiveRedis, PipelineOfTenThousandCommands) {
  REQUIRE_LIVE_REDIS(url);
  auto conn = RedisConnection::connect(url, {});
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  constexpr int kCount = 10000;
  std::vector<std::vector<std::string>> sets, gets, dels;
  for (int i = 0; i < kCount; ++i) {
    std::string k = key("p" + std::to_string(i));
    sets.push_back(
        {"SET", k, std::string(100, static_cast<char>('a' + i % 26)) + std::to_string(i)});
    gets.push_back({"GET", k});
    dels.push_back({"DEL", k});
  }
  auto start = Clock::now();
  auto set_replies = conn->pipeline(sets);
  ASSERT_TRUE(set_replies.ok()) << set_replies.error().message;
  auto get_replies = conn->pipeline(gets);
  ASSERT_TRUE(get_replies.ok()) << get_replies.error().message;
  auto took = Clock::now() - start;
  ASSERT_EQ(set_replies->size(), size_t{kCount});
  ASSERT_EQ(get_replies->size(), size_t{kCount});
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ((*set_replies)[i].str, "OK") << i;
    ASSERT_EQ((*get_replies)[i].str, sets[i][2]) << i;  // in order, none lost
  }
  EXPECT_LT(took, std::chrono::seconds(5));
  auto del_replies = conn->pipeline(dels);
  ASSERT_TRUE(del_replies.ok()) << del_replies.error().message;
  long long deleted = 0;
  for (const auto& r : *del_replies) deleted += r.integer;
  EXPECT_EQ(deleted, kCount);
}

TEST(LiveRedis, PipelineKeepsErrorRepliesInPlace) {
  REQUIRE_LIVE_REDIS(url);
  auto conn = RedisConnection::connect(url, {});
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  auto replies = conn->pipeline(
      {{"SET", key("x"), "1"}, {"LPUSH", key("x"), "v"}, {"INCR", key("x")}, {"DEL", key("x")}});
  ASSERT_TRUE(replies.ok()) << replies.error().message;
  ASSERT_EQ(replies->size(), 4u);
  EXPECT_TRUE((*replies)[1].is_error());
  EXPECT_EQ((*replies)[2].integer, 2);
  EXPECT_EQ((*replies)[3].integer, 1);
}

TEST(LiveRedis, WrongPasswordIsConfigErrorWithoutThePassword) {
  REQUIRE_LIVE_REDIS(url);
  url.password = "envkit-wrong-password";
  auto conn = RedisConnection::connect(url, short_timeouts());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::config) << conn.error().message;
  EXPECT_NE(conn.error().message.find("authentication refused"), std::string::npos);
  EXPECT_EQ(conn.error().message.find("envkit-wrong-password"), std::string::npos);
}

TEST(LiveRedis, AclUserAuthenticatesWithUserAndPassword) {
  REQUIRE_LIVE_REDIS(url);
  auto admin = RedisConnection::connect(url, {});
  ASSERT_TRUE(admin.ok()) << admin.error().message;
  std::string user = "envkit-test-" + std::to_string(::getpid());
  auto made = admin->command({"ACL", "SETUSER", user, "reset", "on", ">right pw", "~*", "+@all"});
  ASSERT_TRUE(made.ok()) << made.error().message;
  ASSERT_FALSE(made->is_error()) << made->str;

  Url as_user = url;
  as_user.user = user;
  as_user.password = "right pw";
  auto good = RedisConnection::connect(as_user, short_timeouts());
  EXPECT_TRUE(good.ok()) << good.error().message;
  if (good.ok()) {
    auto who = good->command({"ACL", "WHOAMI"});
    ASSERT_TRUE(who.ok());
    EXPECT_EQ(who->str, user);
  }
  as_user.password = "wrong pw";
  auto bad = RedisConnection::connect(as_user, short_timeouts());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Exit::config) << bad.error().message;
  EXPECT_NE(bad.error().message.find(user + ":***@"), std::string::npos) << bad.error().message;
  ASSERT_TRUE(admin->command({"ACL", "DELUSER", user}).ok());
}

TEST(LiveRedis, SelectsTheDatabaseFromThePath) {
  REQUIRE_LIVE_REDIS(url);
  Url db0 = url, db1 = url;
  db0.path = "0";
  db1.path = "1";
  auto c0 = RedisConnection::connect(db0, {});
  auto c1 = RedisConnection::connect(db1, {});
  ASSERT_TRUE(c0.ok()) << c0.error().message;
  ASSERT_TRUE(c1.ok()) << c1.error().message;
  ASSERT_TRUE(c1->command({"SET", key("db"), "1"}).ok());
  EXPECT_EQ(c0->command({"EXISTS", key("db")})->integer, 0);
  EXPECT_EQ(c1->command({"EXISTS", key("db")})->integer, 1);
  ASSERT_TRUE(c1->command({"DEL", key("db")}).ok());

  Url far = url;
  far.path = "100000";
  auto bad = RedisConnection::connect(far, short_timeouts());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Exit::config) << bad.error().message;
}

TEST(LiveRedis, BlockedReadHitsIoTimeoutAsTemporaryFailure) {
  REQUIRE_LIVE_REDIS(url);
  auto conn = RedisConnection::connect(url, short_timeouts());
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  auto start = Clock::now();
  auto r = conn->command({"BLPOP", key("never-filled"), "5"});
  auto took = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::temp_fail) << r.error().message;
  EXPECT_LT(took, milliseconds(1500));
  // The connection is unusable afterwards, and says so instead of hanging.
  auto again = conn->command({"PING"});
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("unusable"), std::string::npos) << again.error().message;
}

}  // namespace
}  // namespace envkit
