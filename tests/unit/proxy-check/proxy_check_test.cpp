// Unit tests for proxy-check's logic: health thresholds, the state file, group verdicts,
// output, targets and groups from config, and probes against scripted loopback peers.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "proxy-check/config.hpp"
#include "loopback.hpp"
#include "proxy-check/probes.hpp"
#include "proxy-check/runner.hpp"

namespace proxy_check {
namespace {

using std::chrono::milliseconds;
using envkit::test::closed_port;
using envkit::test::LoopbackSocket;

TEST(ProxyCheckHealth, HealthyAfterNSuccessesUnhealthyAfterMFailures) {
  Health h;
  EXPECT_FALSE(update_health(h, true, 3, 2, 100));
  EXPECT_FALSE(update_health(h, true, 3, 2, 101));
  EXPECT_EQ(h.status, "initial");
  EXPECT_TRUE(update_health(h, true, 3, 2, 102));
  EXPECT_EQ(h.status, "healthy");
  EXPECT_EQ(h.changed_at, 102);
  EXPECT_FALSE(update_health(h, false, 3, 2, 103));
  EXPECT_EQ(h.status, "healthy");
  EXPECT_EQ(h.failures, 1);
  // A success in between resets the failure streak.
  EXPECT_FALSE(update_health(h, true, 3, 2, 104));
  EXPECT_FALSE(update_health(h, false, 3, 2, 105));
  EXPECT_TRUE(update_health(h, false, 3, 2, 106));
  EXPECT_EQ(h.status, "unhealthy");
  EXPECT_FALSE(update_health(h, true, 3, 2, 107));
  EXPECT_FALSE(update_health(h, true, 3, 2, 108));
  EXPECT_EQ(h.status, "unhealthy");
  EXPECT_TRUE(update_health(h, true, 3, 2, 109));
  EXPECT_EQ(h.status, "healthy");
}

TEST(ProxyCheckHealth, StateFileRoundTripsAndRejectsGarbage) {
  std::map<std::string, Health> m;
  m["web/a"] = Health{"healthy", 3, 0, 1700000000};
  m["web/b \"quoted\""] = Health{"unhealthy", 0, 5, 1700000001};
  auto back = parse_health(render_health(m));
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ(back->at("web/a").status, "healthy");
  EXPECT_EQ(back->at("web/a").successes, 3);
  EXPECT_EQ(back->at("web/b \"quoted\"").failures, 5);
  EXPECT_EQ(back->at("web/b \"quoted\"").changed_at, 1700000001);
  EXPECT_TRUE(parse_health("").ok());
  EXPECT_FALSE(parse_health("{not json").ok());
  EXPECT_FALSE(parse_health("[]").ok());
  // An unknown status is read as initial, never trusted.
  auto odd = parse_health(R"({"targets":{"x":{"status":"bogus","successes":9}}})");
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->at("x").status, "initial");
}

CheckOutcome outcome(const Group& g, const TargetSpec& t, State probe, const std::string& health) {
  CheckOutcome o;
  o.group = &g;
  o.target = &t;
  o.result.state = probe;
  o.state = probe;
  o.health.status = health;
  return o;
}

TEST(ProxyCheckGroups, VerdictOkWarningAndFailOpen) {
  Group g;
  g.name = "web";
  g.targets.resize(3);
  auto& t = g.targets;
  std::vector<CheckOutcome> all_up{outcome(g, t[0], State::ok, "healthy"), outcome(g, t[1], State::ok, "healthy"),
                                   outcome(g, t[2], State::ok, "initial")};
  auto v = group_verdict(g, all_up);
  EXPECT_EQ(v.state, State::ok);
  EXPECT_EQ(v.healthy, 3);
  std::vector<CheckOutcome> one_down{outcome(g, t[0], State::ok, "healthy"),
                                     outcome(g, t[1], State::critical, "unhealthy"),
                                     outcome(g, t[2], State::ok, "healthy")};
  v = group_verdict(g, one_down);
  EXPECT_EQ(v.state, State::warning);
  EXPECT_EQ(v.summary, "2 of 3 healthy, 1 unhealthy");
  EXPECT_FALSE(v.fail_open);
  std::vector<CheckOutcome> all_down{outcome(g, t[0], State::critical, "unhealthy"),
                                     outcome(g, t[1], State::critical, "unhealthy"),
                                     outcome(g, t[2], State::critical, "unhealthy")};
  v = group_verdict(g, all_down);
  EXPECT_EQ(v.state, State::critical);
  EXPECT_TRUE(v.fail_open);
  // Command-line targets (no group name): the worst target decides.
  Group cli;
  cli.targets.resize(2);
  std::vector<CheckOutcome> mixed{outcome(cli, cli.targets[0], State::ok, "healthy"),
                                  outcome(cli, cli.targets[1], State::warning, "healthy")};
  EXPECT_EQ(group_verdict(cli, mixed).state, State::warning);
}

TEST(ProxyCheckOutput, WorseFollowsMaxStateAlt) {
  EXPECT_EQ(worse(State::ok, State::unknown), State::unknown);
  EXPECT_EQ(worse(State::unknown, State::warning), State::warning);
  EXPECT_EQ(worse(State::critical, State::unknown), State::critical);
  EXPECT_EQ(worse(State::warning, State::ok), State::warning);
}

TEST(ProxyCheckOutput, NagiosLineHasPerfdataAndLongOutput) {
  Group g;
  TargetSpec a, b;
  a.name = "tcp://a:1";
  b.name = "it's=odd|name";
  a.warning_ms = 500;
  CheckOutcome oa = outcome(g, a, State::ok, "healthy");
  oa.summary = "connected";
  oa.result.phases = {{"connect", std::chrono::microseconds(1500)}, {"total", std::chrono::microseconds(2000)}};
  CheckOutcome ob = outcome(g, b, State::critical, "unhealthy");
  ob.summary = "connect: connection refused";
  ob.result.phases = {{"total", std::chrono::microseconds(10)}};
  std::vector<CheckOutcome> one{oa};
  EXPECT_EQ(render_nagios(one, {}, false, State::ok),
            "PROXY-CHECK OK - tcp://a:1: connected | 'tcp://a:1 time'=0.002000s;0.500000;;0;\n");
  std::vector<CheckOutcome> two{oa, ob};
  std::string text = render_nagios(two, {}, false, State::critical);
  EXPECT_EQ(text,
            "PROXY-CHECK CRITICAL - 2 targets: 1 CRITICAL, 1 OK | 'tcp://a:1 time'=0.002000s;0.500000;;0; "
            "'it_s_odd_name time'=0.000010s;;;0;\n"
            "OK tcp://a:1: connected\n"
            "CRITICAL it's=odd/name: connect: connection refused\n");
}

TEST(ProxyCheckConfig, TargetParametersAndErrors) {
  Config c;
  auto t = make_target("tcp://127.0.0.1:3306?expect=closed&name=db", c, "", "open", "", false);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_TRUE(t->expect_closed);
  EXPECT_EQ(t->name, "db");
  t = make_target("https://h/x?warn-days=10&crit-days=2&warn-ms=300", c, "", "open", "", false);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t->warning_days, 10);
  EXPECT_EQ(*t->critical_days, 2);
  EXPECT_EQ(*t->warning_ms, 300);
  EXPECT_FALSE(t->critical_ms.has_value());
  t = make_target("redis://127.0.0.1:6379", c, "", "open", "tcp://127.0.0.1:16379", false);
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->via.has_value());
  EXPECT_EQ(t->via->hosts[0].port, 16379);
  EXPECT_FALSE(make_target("ftp://h", c, "", "open", "", false).ok());
  EXPECT_FALSE(make_target("tcp://h", c, "", "open", "", false).ok());  // no port
  EXPECT_FALSE(make_target("tcp://h:1?crit-ms=x", c, "", "open", "", false).ok());
  auto both = make_target("tcp://h:1", c, "", "closed", "tcp://p:2", false);
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.error().code, envkit::Exit::usage);
}

TEST(ProxyCheckConfig, GroupsFromYaml) {
  Config c;
  auto g = parse_groups(R"(
groups:
  - name: web
    interval: 5s
    timeout: 2s
    healthy_threshold: 3
    unhealthy_threshold: 2
    targets:
      - http://127.0.0.1:8080/health
      - url: tcp://127.0.0.1:3306
        name: db-closed
        expect: closed
)", c);
  ASSERT_TRUE(g.ok()) << g.error().message;
  ASSERT_EQ(g->size(), 1u);
  const Group& web = (*g)[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.interval, milliseconds(5000));
  EXPECT_EQ(web.timeout, milliseconds(2000));
  EXPECT_EQ(web.healthy_threshold, 3);
  EXPECT_EQ(web.unhealthy_threshold, 2);
  ASSERT_EQ(web.targets.size(), 2u);
  EXPECT_EQ(web.targets[1].name, "db-closed");
  EXPECT_TRUE(web.targets[1].expect_closed);
  for (const char* bad : {"groups: 3", "groups:\n  - name: a\n", "groups:\n  - targets: [tcp://h:1]\n",
                          "groups:\n  - name: a\n    healthy_threshold: 0\n    targets: [tcp://h:1]\n",
                          "groups:\n  - name: a\n    targets: [tcp://h:1]\n  - name: a\n    targets: [tcp://h:1]\n"}) {
    auto r = parse_groups(bad, c);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, envkit::Exit::config) << bad;
  }
}

/// Serves one connection on `listener`: reads what comes, answers `reply`, then waits for
/// the client to go.
class ScriptedPeer {
 public:
  ScriptedPeer(const LoopbackSocket& listener, std::string reply)
      : thread_([fd = listener.fd(), reply = std::move(reply)] {
          int c = ::accept(fd, nullptr, nullptr);
          if (c < 0) return;
          char buf[4096];
          (void)::recv(c, buf, sizeof buf, 0);
          (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
          while (::recv(c, buf, sizeof buf, 0) > 0) {
          }
          ::close(c);
        }) {}
  ~ScriptedPeer() { thread_.join(); }

 private:
  std::thread thread_;
};

ProbeOptions quick() {
  ProbeOptions o;
  o.deadline = envkit::deadline_in(milliseconds(1000));
  o.connection.connect_timeout = milliseconds(1000);
  return o;
}

envkit::Url url(const std::string& text) {
  auto u = envkit::parse_url(text);
  EXPECT_TRUE(u.ok());
  return *u;
}

TEST(ProxyCheckProbes, RedisIdentityFromInfo) {
  LoopbackSocket listener(true);
  std::string info = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\ntcp_port:6379\r\n";
  ScriptedPeer peer(listener, "+PONG\r\n$" + std::to_string(info.size()) + "\r\n" + info + "\r\n");
  auto r = probe_redis(url("redis://127.0.0.1:" + std::to_string(listener.port())), quick());
  EXPECT_EQ(r.state, State::ok) << r.summary;
  EXPECT_EQ(r.identity, "run_id=abc123,port=6379,version=7.0.15");
  EXPECT_EQ(r.summary, "Redis 7.0.15 PONG");
}

TEST(ProxyCheckProbes, RedisErrorReplyIsCritical) {
  LoopbackSocket listener(true);
  ScriptedPeer peer(listener, "-NOAUTH Authentication required.\r\n");
  auto r = probe_redis(url("redis://127.0.0.1:" + std::to_string(listener.port())), quick());
  EXPECT_EQ(r.state, State::critical);
  EXPECT_EQ(r.summary, "ping: NOAUTH Authentication required.");
}

TEST(ProxyCheckProbes, KafkaHugeSizeFieldIsRejectedWithoutAllocating) {
  LoopbackSocket listener(true);
  ScriptedPeer peer(listener, std::string("\x7f\xff\xff\xff", 4));
  auto r = probe_kafka(url("kafka://127.0.0.1:" + std::to_string(listener.port())), quick());
  EXPECT_EQ(r.state, State::critical);
  EXPECT_NE(r.summary.find("not a Kafka response"), std::string::npos) << r.summary;
}

TEST(ProxyCheckProbes, AmqpPeerAnsweringWithItsOwnHeaderIsCritical) {
  LoopbackSocket listener(true);
  ScriptedPeer peer(listener, std::string("AMQP\x00\x00\x09\x01", 8));
  auto r = probe_amqp(url("amqp://127.0.0.1:" + std::to_string(listener.port()) + "/"), quick());
  EXPECT_EQ(r.state, State::critical);
  EXPECT_NE(r.summary.find("does not speak AMQP 0-9-1"), std::string::npos) << r.summary;
}

TEST(ProxyCheckProbes, HttpStatusLineAndChunkedBody) {
  LoopbackSocket listener(true);
  ScriptedPeer peer(listener,
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: t\r\n\r\n"
                    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  auto r = probe_http(url("http://127.0.0.1:" + std::to_string(listener.port()) + "/?match=lo%20wor"), quick());
  EXPECT_EQ(r.state, State::ok) << r.summary;
  EXPECT_EQ(r.summary, "HTTP/1.1 200 OK, body matched");
}

TEST(ProxyCheckProbes, RefusedPortIsClosed) {
  auto r = probe_tcp(url("tcp://127.0.0.1:" + std::to_string(closed_port())), quick());
  EXPECT_EQ(r.state, State::critical);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.summary, "connect: connection refused");
}

}  // namespace
}  // namespace proxy_check
