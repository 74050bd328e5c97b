// Unit tests for proxy-check's MySQL protocol pieces (parsers on real, truncated and garbage
// input; scrambles against known vectors) and probe_mysql against scripted hostile servers on
// loopback. LiveProxyMysql runs against a real server (tests/bats/proxy-check-mysql.bats).
#include "proxy-check/mysql_probe.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "loopback.hpp"
#include "proxy-check/probe.hpp"

namespace proxy_check {
namespace {

using namespace mysql;
using envkit::test::closed_port;
using envkit::test::LoopbackSocket;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// The greeting MariaDB 10.11.19 sent to a plain connect (packet header included).
const std::string kMariadbGreetingPacket = unhex(
    "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b646562313275310014000000373131"
    "433b3e666500fef7e00200ff81150000000000001d0000004879483b2e737b32255e2f6c006d7973716c5f6e"
    "61746976655f70617373776f726400");

std::string greeting_payload() { return kMariadbGreetingPacket.substr(4); }

// A MySQL 8 style greeting offering caching_sha2_password and TLS.
std::string mysql8_greeting(std::string_view scramble = "abcdefghijklmnopqrst") {
  std::string p;
  p.push_back(10);
  p += "8.0.36";
  p.push_back('\0');
  p += std::string("\x07\x00\x00\x00", 4);  // connection 7
  p += scramble.substr(0, 8);
  p.push_back('\0');
  uint32_t caps = kClientLongPassword | kClientProtocol41 | kClientSecureConnection |
                  kClientPluginAuth | kClientSsl | kClientConnectWithDb;
  p.push_back(static_cast<char>(caps & 0xff));
  p.push_back(static_cast<char>((caps >> 8) & 0xff));
  p.push_back(static_cast<char>(255));
  p += std::string("\x02\x00", 2);
  p.push_back(static_cast<char>((caps >> 16) & 0xff));
  p.push_back(static_cast<char>((caps >> 24) & 0xff));
  p.push_back(21);
  p += std::string(10, '\0');
  p += scramble.substr(8, 12);
  p.push_back('\0');
  p += "caching_sha2_password";
  p.push_back('\0');
  return p;
}

TEST(MysqlProbeProtocol, ParsesMariadbGreeting) {
  char header[4];
  std::copy_n(kMariadbGreetingPacket.data(), 4, header);
  auto h = parse_packet_header(header);
  EXPECT_EQ(h.length, 100u);
  EXPECT_EQ(h.sequence, 0);
  auto g = parse_greeting(greeting_payload());
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->server_version, "10.11.19-MariaDB-0+deb12u1");  // "5.5.5-" removed
  EXPECT_TRUE(g->mariadb);
  EXPECT_EQ(g->connection_id, 20u);
  EXPECT_EQ(g->capabilities, 0x81fff7feu);
  EXPECT_EQ(format_capabilities(g->capabilities), "0x81fff7fe");
  EXPECT_EQ(g->scramble, "711C;>feHyH;.s{2%^/l");
  EXPECT_EQ(g->scramble.size(), 20u);
  EXPECT_EQ(g->auth_plugin, "mysql_native_password");
  EXPECT_FALSE(g->tls_offered());
}

TEST(MysqlProbeProtocol, ParsesMysql8Greeting) {
  auto g = parse_greeting(mysql8_greeting());
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->server_version, "8.0.36");
  EXPECT_FALSE(g->mariadb);
  EXPECT_EQ(g->connection_id, 7u);
  EXPECT_EQ(g->scramble, "abcdefghijklmnopqrst");
  EXPECT_EQ(g->auth_plugin, "caching_sha2_password");
  EXPECT_TRUE(g->tls_offered());
}

TEST(MysqlProbeProtocol, RejectsOtherProtocols) {
  auto g = parse_greeting(std::string("\x09" "4.0.1\0", 7));
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().message.find("protocol version 9"), std::string::npos);
  EXPECT_FALSE(parse_greeting("").ok());
  EXPECT_FALSE(parse_greeting("HTTP/1.1 400 Bad Request\r\n\r\n").ok());
}

// Every prefix of a real greeting is either rejected or parsed without reading past its end
// (ASan would see that); no prefix crashes.
TEST(MysqlProbeProtocol, TruncatedGreetingsAreRejected) {
  std::string full = greeting_payload();
  int rejected = 0;
  for (size_t n = 0; n < full.size(); ++n) {
    auto g = parse_greeting(std::string_view(full).substr(0, n));
    if (!g.ok()) ++rejected;
  }
  // Only a few tail cuts (inside the plugin name, which may lack its NUL) are accepted.
  EXPECT_GE(rejected, static_cast<int>(full.size()) - 25);
  EXPECT_FALSE(parse_greeting(std::string_view(full).substr(0, 40)).ok());
}

TEST(MysqlProbeProtocol, GarbageNeverCrashesTheParsers) {
  std::mt19937 rng(12345);
  std::string base = greeting_payload();
  for (int i = 0; i < 20000; ++i) {
    std::string s = base;
    int flips = 1 + static_cast<int>(rng() % 8);
    for (int f = 0; f < flips; ++f) s[rng() % s.size()] = static_cast<char>(rng());
    s.resize(rng() % (s.size() + 1));
    (void)parse_greeting(s);
    (void)parse_error_packet(s);
    (void)parse_auth_switch(s);
    (void)parse_text_row(s, 1 + rng() % 4);
    std::string_view v(s);
    (void)read_lenenc_string(v);
  }
  SUCCEED();
}

TEST(MysqlProbeProtocol, ParsesErrorPackets) {
  // Before the handshake: no SQL state (the host-blocked greeting).
  std::string blocked = std::string("\xff\x69\x04", 3) +
                        "Host '127.0.0.2' is blocked because of many connection errors";
  auto e = parse_error_packet(blocked);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, kErrorHostBlocked);
  EXPECT_EQ(e->sql_state, "");
  EXPECT_EQ(describe(*e), "error 1129: Host '127.0.0.2' is blocked because of many connection errors");

  auto denied = parse_error_packet(std::string("\xff\x15\x04", 3) + "#28000Access denied");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->code, kErrorAccessDenied);
  EXPECT_EQ(denied->sql_state, "28000");
  EXPECT_EQ(denied->message, "Access denied");

  EXPECT_FALSE(parse_error_packet(greeting_payload()));
  EXPECT_FALSE(parse_error_packet("\xff"));
}

TEST(MysqlProbeProtocol, BuildsHandshakeResponse41) {
  HandshakeResponse r;
  r.capabilities = client_capabilities(0x81fff7fe, true, false);
  r.user = "envkit";
  r.auth_response = std::string(20, 'x');
  r.database = "db";
  r.auth_plugin = "mysql_native_password";
  std::string p = build_handshake_response(r);
  ASSERT_GE(p.size(), 32u);
  uint32_t caps = static_cast<uint8_t>(p[0]) | (static_cast<uint8_t>(p[1]) << 8) |
                  (static_cast<uint8_t>(p[2]) << 16) | (static_cast<uint32_t>(static_cast<uint8_t>(p[3])) << 24);
  EXPECT_TRUE(caps & kClientProtocol41);
  EXPECT_TRUE(caps & kClientSecureConnection);
  EXPECT_TRUE(caps & kClientPluginAuth);
  EXPECT_TRUE(caps & kClientConnectWithDb);
  EXPECT_FALSE(caps & kClientSsl);
  EXPECT_EQ(p[8], static_cast<char>(kCharsetUtf8mb4));
  EXPECT_EQ(p.substr(9, 23), std::string(23, '\0'));
  EXPECT_EQ(p.substr(32), std::string("envkit\0", 7) + "\x14" + std::string(20, 'x') +
                              std::string("db\0", 3) + std::string("mysql_native_password\0", 22));

  std::string ssl = build_ssl_request(client_capabilities(0x81fff7fe | kClientSsl, false, true));
  EXPECT_EQ(ssl.size(), 32u);
  EXPECT_TRUE(static_cast<uint8_t>(ssl[1]) & (kClientSsl >> 8));
  // A server that does not offer TLS is never asked for it.
  EXPECT_FALSE(client_capabilities(0x81fff7fe, false, true) & kClientSsl);

  EXPECT_EQ(hex(frame_packet(1, "abc")), "03000001616263");
}

// Vectors computed with Python's hashlib (see the report): password "secret", scramble 01..14.
TEST(MysqlProbeProtocol, ScramblesMatchKnownVectors) {
  std::string scramble;
  for (int i = 1; i <= 20; ++i) scramble.push_back(static_cast<char>(i));
  EXPECT_EQ(hex(scramble_native_password("secret", scramble)), "b32bb3a583e1340c0a1108d58b1be49781ad8c2f");
  EXPECT_EQ(hex(scramble_caching_sha2("secret", scramble)),
            "746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9");
  EXPECT_EQ(scramble_native_password("", scramble), "");
  EXPECT_EQ(scramble_caching_sha2("", scramble), "");
}

TEST(MysqlProbeProtocol, RsaEncryptedPasswordDecryptsToPasswordXorScramble) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_RSA_gen(2048), EVP_PKEY_free);
  ASSERT_TRUE(key);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio.get(), key.get()), 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<size_t>(len));
  std::string scramble = "abcdefghijklmnopqrst";

  auto encrypted = encrypt_password_rsa("s3cret", scramble, pem);
  ASSERT_TRUE(encrypted.ok()) << encrypted.error().message;
  EXPECT_EQ(encrypted->size(), 256u);

  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new(key.get(), nullptr),
                                                                  EVP_PKEY_CTX_free);
  ASSERT_EQ(EVP_PKEY_decrypt_init(ctx.get()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING), 1);
  std::string plain(512, '\0');
  size_t plain_len = plain.size();
  ASSERT_EQ(EVP_PKEY_decrypt(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &plain_len,
                             reinterpret_cast<const unsigned char*>(encrypted->data()), encrypted->size()),
            1);
  plain.resize(plain_len);
  ASSERT_EQ(plain.size(), 7u);
  std::string expected = std::string("s3cret\0", 7);
  for (size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<char>(plain[i] ^ scramble[i]);
  EXPECT_EQ(plain, expected);

  EXPECT_FALSE(encrypt_password_rsa("pw", scramble, "not a key").ok());
}

TEST(MysqlProbeProtocol, ParsesAuthSwitch) {
  auto s = parse_auth_switch(std::string("\xfe" "caching_sha2_password\0" "abcdefghijklmnopqrst\0", 43));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->plugin, "caching_sha2_password");
  EXPECT_EQ(s->data, "abcdefghijklmnopqrst");
  EXPECT_FALSE(parse_auth_switch("\xfe" "no-nul").ok());
  EXPECT_FALSE(parse_auth_switch("").ok());
}

TEST(MysqlProbeProtocol, LengthEncodedValuesAndRows) {
  std::string_view v("\x05hello");
  auto s = read_lenenc_string(v);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "hello");
  EXPECT_TRUE(v.empty());
  std::string big("\xfc\x01\x02", 3);
  std::string_view b(big);
  EXPECT_EQ(*read_lenenc_int(b), 0x0201u);
  std::string_view truncated("\xfd\x01");
  EXPECT_FALSE(read_lenenc_int(truncated).ok());
  std::string_view too_long("\x09short");
  EXPECT_FALSE(read_lenenc_string(too_long).ok());
  std::string_view bad("\xff");
  EXPECT_FALSE(read_lenenc_int(bad).ok());

  auto row = parse_text_row(std::string("\x02" "42" "\xfb" "\x00", 5), 3);
  ASSERT_TRUE(row.ok()) << row.error().message;
  ASSERT_EQ(row->size(), 3u);
  EXPECT_EQ((*row)[0], "42");
  EXPECT_FALSE((*row)[1].has_value());
  EXPECT_EQ((*row)[2], "");
  EXPECT_FALSE(parse_text_row("\x02" "4", 1).ok());
  EXPECT_FALSE(parse_text_row("\x01" "4" "extra", 1).ok());

  EXPECT_TRUE(is_eof_packet(std::string("\xfe\x00\x00\x02\x00", 5)));
  EXPECT_FALSE(is_eof_packet(std::string("\xfe" "caching_sha2_password\0", 22)));
  EXPECT_EQ(build_query("SELECT 1"), "\x03SELECT 1");
  EXPECT_EQ(build_quit(), "\x01");
}

// ---- probe_mysql against scripted servers on loopback ----

// Accepts one connection and runs `script` on it in a thread; the listener itself stays open.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::function<void(int)> script) : socket_(true) {
    thread_ = std::thread([this, script = std::move(script)] {
      int fd = ::accept(socket_.fd(), nullptr, nullptr);
      if (fd < 0) return;
      script(fd);
      // Hold the connection until the test is over, unless the script closed it.
      while (!done_) std::this_thread::sleep_for(milliseconds(20));
      ::close(fd);
    });
  }
  ~ScriptedServer() {
    done_ = true;
    ::shutdown(socket_.fd(), SHUT_RDWR);
    thread_.join();
  }
  uint16_t port() const { return socket_.port(); }

 private:
  LoopbackSocket socket_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

ProbeOptions options_for(milliseconds timeout) {
  ProbeOptions o;
  o.deadline = envkit::deadline_in(timeout);
  return o;
}

envkit::Url url_for(uint16_t port, std::string user = "") {
  auto url = envkit::parse_url((user.empty() ? "mysql://127.0.0.1:" : "mysql://" + user + "@127.0.0.1:") +
                               std::to_string(port));
  EXPECT_TRUE(url.ok());
  return *url;
}

std::string fact_of(const ProbeResult& r, const std::string& key) {
  for (const auto& [k, v] : r.facts) {
    if (k == key) return v;
  }
  return "(none)";
}

struct Timed {
  ProbeResult result;
  milliseconds took;
};

Timed probe_for(uint16_t port, milliseconds timeout, std::string user = "") {
  auto start = Clock::now();
  ProbeResult r = probe_mysql(url_for(port, std::move(user)), options_for(timeout));
  return {std::move(r), std::chrono::duration_cast<milliseconds>(Clock::now() - start)};
}

TEST(MysqlProbeHostile, RefusedPortIsClosed) {
  auto t = probe_for(closed_port(), milliseconds(2000));
  EXPECT_EQ(t.result.state, State::critical);
  EXPECT_TRUE(t.result.closed);
}

TEST(MysqlProbeHostile, AcceptsAndNeverAnswers) {
  LoopbackSocket hang(true);
  auto t = probe_for(hang.port(), milliseconds(800));
  EXPECT_EQ(t.result.state, State::critical);
  EXPECT_NE(t.result.summary.find("greeting: "), std::string::npos) << t.result.summary;
  EXPECT_NE(t.result.summary.find("timed out"), std::string::npos) << t.result.summary;
  EXPECT_FALSE(t.result.closed);
  EXPECT_LT(t.took, milliseconds(2000));
}

TEST(MysqlProbeHostile, GarbageGreeting) {
  ScriptedServer server([](int fd) { (void)send_all(fd, "HTTP/1.1 400 Bad Request\r\n\r\n"); });
  auto t = probe_for(server.port(), milliseconds(2000));
  EXPECT_EQ(t.result.state, State::critical);
  EXPECT_NE(t.result.summary.find("greeting: packet of"), std::string::npos) << t.result.summary;
  EXPECT_LT(t.took, milliseconds(1500));
}

TEST(MysqlProbeHostile, WrongProtocolInASmallPacket) {
  ScriptedServer server([](int fd) { (void)send_all(fd, frame_packet(0, "\x09" "garbage")); });
  auto t = probe_for(server.port(), milliseconds(2000));
  EXPECT_EQ(t.result.state, State::critical);
  EXPECT_NE(t.result.summary.find("not a MySQL greeting"), std::string::npos) << t.result.summary;
}

TEST(MysqlProbeHostile, HugePacketIsRejectedWithoutReadingIt) {
  ScriptedServer server([](int fd) { (void)send_all(fd, std::string("\xff\xff\xff\x00", 4)); });
  auto t = probe_for(server.port(), milliseconds(2000));
  EXPECT_EQ(t.result.state, State::critical);
  EXPECT_NE(t.result.summary.find("16777215 bytes announced"), std::string::npos) << t.result.summary;
  EXPECT_LT(t.took, milliseconds(1500));
}

TEST(MysqlProbeHostile, ClosesMidGreeting) {
  ScriptedServer server([](int fd) {
    (void)send_all(fd, std::string_view(kMariadbGreetingPacket).substr(0, 30));
    ::shutdown(fd, SHUT_WR);
  });
  auto t = probe_for(server.port(), milliseconds(2000));
  EXPECT_EQ(t.result.state, State::critical);
  EXPECT_NE(t.result.summary.find("greeting: "), std::string::npos) << t.result.summary;
  EXPECT_NE(t.result.summary.find("closed"), std::string::npos) << t.result.summary;
}

TEST(MysqlProbeHostile, SlowDripHitsTheDeadline) {
  ScriptedServer server([](int fd) {
    // Stops once the probe has gone (a send to a closed peer fails).
    for (char c : kMariadbGreetingPacket) {
      if (!send_all(fd, std::string(1, c))) return;
      std::this_thread::sleep_for(milliseconds(100));
    }
  });
  auto t = probe_for(server.port(), milliseconds(700));
  EXPECT_EQ(t.result.state, State::critical);
  EXPECT_NE(t.result.summary.find("timed out"), std::string::npos) << t.result.summary;
  EXPECT_LT(t.took, milliseconds(1500));
}

TEST(MysqlProbeHostile, HostBlockedIsItsOwnState) {
  ScriptedServer server([](int fd) {
    (void)send_all(fd, frame_packet(0, std::string("\xff\x69\x04", 3) +
                                     "Host '127.0.0.2' is blocked because of many connection errors; "
                                     "unblock with 'mariadb-admin flush-hosts'"));
    ::shutdown(fd, SHUT_WR);
  });
  auto t = probe_for(server.port(), milliseconds(2000));
  EXPECT_EQ(t.result.state, State::critical);
  EXPECT_EQ(t.result.summary.rfind("host blocked (max_connect_errors): error 1129", 0), 0u) << t.result.summary;
  EXPECT_EQ(fact_of(t.result, "host_blocked"), "yes");
  EXPECT_EQ(fact_of(t.result, "error_code"), "1129");
}

// A server that greets, then closes as soon as the handshake response arrives.
TEST(MysqlProbeHostile, ClosesAfterTheHandshakeResponse) {
  ScriptedServer server([](int fd) {
    (void)send_all(fd, kMariadbGreetingPacket);
    char buffer[512];
    (void)::recv(fd, buffer, sizeof buffer, 0);
    ::shutdown(fd, SHUT_RDWR);
  });
  auto t = probe_for(server.port(), milliseconds(2000), "someone");
  EXPECT_EQ(t.result.state, State::critical);
  EXPECT_NE(t.result.summary.find("auth: "), std::string::npos) << t.result.summary;
  EXPECT_EQ(fact_of(t.result, "server_version"), "10.11.19-MariaDB-0+deb12u1");
}

TEST(MysqlProbeHostile, QueryWithoutUserIsUnknown) {
  auto url = envkit::parse_url("mysql://127.0.0.1:1/?query=SELECT%201");
  ASSERT_TRUE(url.ok());
  auto r = probe_mysql(*url, options_for(milliseconds(500)));
  EXPECT_EQ(r.state, State::unknown);
}

// ---- Live: ENVKIT_TEST_MYSQL_URL (password in MYSQL_PWD), from proxy-check-mysql.bats ----

std::optional<envkit::Url> live_url() {
  const char* text = std::getenv("ENVKIT_TEST_MYSQL_URL");
  if (!text || !*text) return std::nullopt;
  auto url = envkit::parse_url(text);
  if (!url) return std::nullopt;
  if (const char* pw = std::getenv("MYSQL_PWD")) url->password = pw;
  return *url;
}

#define LIVE_URL(url)                                                          \
  auto url##_opt = live_url();                                                 \
  if (!url##_opt) GTEST_SKIP() << "set ENVKIT_TEST_MYSQL_URL (and MYSQL_PWD)"; \
  envkit::Url url = *url##_opt

TEST(LiveProxyMysql, GreetingWithoutCredentials) {
  LIVE_URL(url);
  url.user.clear();
  url.password.reset();
  url.path.clear();
  auto r = probe_mysql(url, options_for(milliseconds(5000)));
  EXPECT_EQ(r.state, State::ok) << r.summary;
  EXPECT_NE(fact_of(r, "server_version").find("MariaDB"), std::string::npos);
  EXPECT_EQ(fact_of(r, "probe_login"), "access denied (expected)");
  EXPECT_NE(r.summary.find("not logged in"), std::string::npos) << r.summary;
  ASSERT_GE(r.phases.size(), 4u);
  EXPECT_EQ(r.phases[0].name, "connect");
  EXPECT_EQ(r.phases[1].name, "greeting");
  EXPECT_EQ(r.phases[2].name, "auth");
  EXPECT_EQ(r.phases.back().name, "total");
}

TEST(LiveProxyMysql, LogsInQueriesAndIdentifies) {
  LIVE_URL(url);
  url.query = {{"query", "SELECT 6*7"}, {"expect", "42"}};
  auto r = probe_mysql(url, options_for(milliseconds(5000)));
  EXPECT_EQ(r.state, State::ok) << r.summary;
  EXPECT_EQ(fact_of(r, "query_result"), "42");
  EXPECT_NE(r.identity.find("server_uid="), std::string::npos) << r.identity;
  EXPECT_NE(r.identity.find(",port="), std::string::npos) << r.identity;
  EXPECT_EQ(r.summary.find(*url.password), std::string::npos);
}

TEST(LiveProxyMysql, UnexpectedValueIsCritical) {
  LIVE_URL(url);
  url.query = {{"query", "SELECT 6*7"}, {"expect", "41"}};
  auto r = probe_mysql(url, options_for(milliseconds(5000)));
  EXPECT_EQ(r.state, State::critical) << r.summary;
  EXPECT_NE(r.summary.find("(expected 41)"), std::string::npos) << r.summary;
}

TEST(LiveProxyMysql, WrongPasswordIsCritical) {
  LIVE_URL(url);
  url.password = "wrong-password";
  auto r = probe_mysql(url, options_for(milliseconds(5000)));
  EXPECT_EQ(r.state, State::critical) << r.summary;
  EXPECT_NE(r.summary.find("auth: login failed: error 1045"), std::string::npos) << r.summary;
  EXPECT_EQ(r.summary.find("wrong-password"), std::string::npos);
}

TEST(LiveProxyMysql, FailedQueryIsCritical) {
  LIVE_URL(url);
  url.query = {{"query", "SELECT * FROM no_such_table_here"}};
  auto r = probe_mysql(url, options_for(milliseconds(5000)));
  EXPECT_EQ(r.state, State::critical) << r.summary;
  EXPECT_NE(r.summary.find("query: error 1146"), std::string::npos) << r.summary;
}

}  // namespace
}  // namespace proxy_check
