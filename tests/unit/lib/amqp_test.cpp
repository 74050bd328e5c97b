// Unit tests for envkit/amqp.hpp and the AMQP source (loopback only), and LiveAmqp* and
// LiveSourceAmqp* tests against a real broker.
#include <envkit/sinks.hpp>
#include <envkit/amqp.hpp>
#include <envkit/registry.hpp>
#include "loopback.hpp"
#include "source_testing.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <thread>
#include <unordered_set>

namespace envkit {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

using test::closed_port;
using test::LoopbackSocket;
using test::short_timeouts;

Url amqp_url(uint16_t port, std::string query = "queue=q") {
  auto url = parse_url("amqp://envkit:hunter2@127.0.0.1:" + std::to_string(port) + "/%2f?" + query);
  EXPECT_TRUE(url.ok());
  return *url;
}

AmqpSettings settings_of(std::string_view text, ConnectionOptions options = {}) {
  auto url = parse_url(text);
  EXPECT_TRUE(url.ok()) << text;
  auto s = amqp_settings(*url, options);
  EXPECT_TRUE(s.ok()) << text << ": " << (s.ok() ? "" : s.error().message);
  return s.ok() ? *s : AmqpSettings{};
}

// ---------------------------------------------------------------------------------------------
// URL -> settings

TEST(Amqp, VhostIsThePercentDecodedPathAndDefaultsToSlash) {
  EXPECT_EQ(settings_of("amqp://u@h/%2f").vhost, "/");
  EXPECT_EQ(settings_of("amqp://u@h/%2F").vhost, "/");
  EXPECT_EQ(settings_of("amqp://u@h").vhost, "/");
  EXPECT_EQ(settings_of("amqp://u@h/").vhost, "/");
  EXPECT_EQ(settings_of("amqp://u@h/prod").vhost, "prod");
  EXPECT_EQ(settings_of("amqp://u@h/team%2fa").vhost, "team/a");
}

TEST(Amqp, SettingsFromUrl) {
  AmqpSettings s = settings_of("amqp://envkit:p%40ss@broker:5673/%2f?queue=tweets");
  ASSERT_EQ(s.hosts.size(), 1u);
  EXPECT_EQ(s.hosts[0].host, "broker");
  EXPECT_EQ(s.hosts[0].port, 5673);
  EXPECT_EQ(s.user, "envkit");
  EXPECT_EQ(s.password, "p@ss");
  EXPECT_EQ(s.queue, "tweets");
  EXPECT_EQ(s.exchange, "");
  EXPECT_EQ(s.routing_key, "tweets") << "the default exchange routes by queue name";
  EXPECT_EQ(s.heartbeat_seconds, 60);
  EXPECT_FALSE(s.tls.enabled);
  EXPECT_EQ(s.endpoint.find("p@ss"), std::string::npos) << s.endpoint;
  EXPECT_EQ(s.endpoint.find("p%40ss"), std::string::npos) << s.endpoint;

  AmqpSettings x = settings_of("amqp://h?exchange=events&routing-key=orders.created&heartbeat=0");
  EXPECT_EQ(x.hosts[0].port, 5672);
  EXPECT_EQ(x.exchange, "events");
  EXPECT_EQ(x.routing_key, "orders.created");
  EXPECT_EQ(x.queue, "");
  EXPECT_EQ(x.heartbeat_seconds, 0);
  EXPECT_EQ(x.user, "guest") << "no credentials at all: RabbitMQ's default, as amqp-tools";
  EXPECT_EQ(x.password, "guest");

  AmqpSettings no_password = settings_of("amqp://envkit@h/%2f?queue=q");
  EXPECT_EQ(no_password.user, "envkit");
  EXPECT_EQ(no_password.password, "") << "a user without a password never becomes guest's";

  AmqpSettings several = settings_of("amqp://h1,h2:5999/v?queue=q");
  ASSERT_EQ(several.hosts.size(), 2u);
  EXPECT_EQ(several.hosts[0].port, 5672);
  EXPECT_EQ(several.hosts[1].port, 5999);
}

TEST(Amqp, QueueArgumentsKeepIntegersAsIntegers) {
  AmqpSettings s =
      settings_of("amqp://h/%2f?queue=q&queue-arg.x-queue-type=quorum&queue-arg.x-max-length=5");
  ASSERT_EQ(s.queue_arguments.size(), 2u);
  EXPECT_EQ(s.queue_arguments[0].first, "x-queue-type");
  EXPECT_EQ(std::get<std::string>(s.queue_arguments[0].second), "quorum");
  EXPECT_EQ(s.queue_arguments[1].first, "x-max-length");
  EXPECT_EQ(std::get<int64_t>(s.queue_arguments[1].second), 5);
}

TEST(Amqp, TlsFromSchemeUrlAndOptions) {
  AmqpSettings s = settings_of("amqps://h/%2f?queue=q");
  EXPECT_TRUE(s.tls.enabled);
  EXPECT_EQ(s.hosts[0].port, 5671);
  AmqpSettings p = settings_of("amqp://h/%2f?queue=q&tls-ca=/etc/ca.pem&tls-insecure=true");
  EXPECT_TRUE(p.tls.enabled) << "a CA file asks for TLS";
  EXPECT_FALSE(p.tls.verify);
  EXPECT_EQ(p.tls.ca_file, "/etc/ca.pem");
  ConnectionOptions o;
  o.tls.enabled = true;
  o.tls.server_name = "rabbit.internal";
  AmqpSettings q = settings_of("amqp://h/%2f?queue=q", o);
  EXPECT_TRUE(q.tls.enabled);
  EXPECT_EQ(q.tls.server_name, "rabbit.internal");
  EXPECT_FALSE(settings_of("amqps://h/%2f?tls=false").tls.enabled) << "the URL has the last word";
}

TEST(Amqp, BadParametersAreUsageErrorsWithoutThePassword) {
  for (std::string q : {"heartbeat=soon", "prefetch=0", "prefetch=70000", "tls=maybe",
                        "routing-key=k", "tls-cert=c.pem"}) {
    auto url = parse_url("amqp://u:hunter2@h/%2f?" + q);
    ASSERT_TRUE(url.ok()) << q;
    auto s = amqp_settings(*url, {});
    ASSERT_FALSE(s.ok()) << q;
    EXPECT_EQ(s.error().code, Exit::usage) << q;
    EXPECT_EQ(s.error().message.find("hunter2"), std::string::npos) << s.error().message;
  }
  auto url = parse_url("mysql://h/db");
  ASSERT_TRUE(url.ok());
  EXPECT_FALSE(amqp_settings(*url, {}).ok());
}

TEST(Amqp, SinkNeedsAQueueOrAnExchange) {
  auto sink = open_amqp_sink(amqp_url(closed_port(), "heartbeat=5"), short_timeouts());
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.error().code, Exit::usage);
  EXPECT_NE(sink.error().message.find("?queue= or ?exchange="), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Confirm bookkeeping

std::vector<Outcome> states(const AmqpConfirmTracker& t) {
  std::vector<Outcome> out;
  for (const auto& o : t.outcomes("unconfirmed")) out.push_back(o.delivery.outcome);
  return out;
}

constexpr auto kDurable = Outcome::durable;
constexpr auto kRetry = Outcome::failed;

TEST(AmqpConfirmTracker, SingleAndMultipleAcks) {
  AmqpConfirmTracker t;
  t.begin(1);
  for (size_t i = 0; i < 5; ++i) t.published(i, "id" + std::to_string(i));
  EXPECT_EQ(t.unresolved(), 5u);
  t.acked(2, false);
  EXPECT_EQ(t.unresolved(), 4u);
  EXPECT_EQ(states(t), (std::vector{kRetry, kDurable, kRetry, kRetry, kRetry}));
  t.acked(4, true);  // 1, 3, 4
  EXPECT_EQ(t.unresolved(), 1u);
  EXPECT_EQ(states(t), (std::vector{kDurable, kDurable, kDurable, kDurable, kRetry}));
  auto outcomes = t.outcomes("no confirm within 300 ms");
  EXPECT_EQ(outcomes[4].delivery.error, "no confirm within 300 ms");
  EXPECT_EQ(outcomes[4].index, 4u);
}

TEST(AmqpConfirmTracker, NacksAreRetryAndAckZeroMultipleMeansAll) {
  AmqpConfirmTracker t;
  t.begin(1);
  for (size_t i = 0; i < 4; ++i) t.published(i, "x");
  t.nacked(2, true);  // 1 and 2
  t.acked(0, true);   // every outstanding one: 3 and 4
  EXPECT_EQ(t.unresolved(), 0u);
  EXPECT_EQ(states(t), (std::vector{kRetry, kRetry, kDurable, kDurable}));
  EXPECT_NE(t.outcomes("")[0].delivery.error.find("basic.nack"), std::string::npos);
}

TEST(AmqpConfirmTracker, StragglersFromAnEarlierBatchAreIgnored) {
  AmqpConfirmTracker t;
  t.begin(101);  // tags 1..100 belonged to a batch that was already reported
  t.published(0, "a");
  t.published(1, "b");
  t.acked(100, false);
  t.nacked(50, true);
  EXPECT_EQ(t.unresolved(), 2u);
  t.acked(101, true);
  EXPECT_EQ(states(t), (std::vector{kDurable, kRetry}));
  t.acked(500, false);  // never sent: ignored rather than settling the whole batch
  EXPECT_EQ(t.unresolved(), 1u);
}

TEST(AmqpConfirmTracker, ReturnsFindTheirMessageByIdInPublishOrder) {
  AmqpConfirmTracker t;
  t.begin(1);
  // The batch skipped index 1 (rejected before sending): indexes and tags differ.
  t.published(0, "a");
  t.published(2, "dup");
  t.published(3, "b");
  t.published(4, "dup");
  EXPECT_TRUE(t.returned("dup", "unroutable 1"));
  EXPECT_TRUE(t.returned("dup", "unroutable 2"));
  EXPECT_FALSE(t.returned("dup", "a third one matches nothing"));
  EXPECT_FALSE(t.returned("zzz", "unknown id"));
  t.acked(4, true);  // the broker acks returned messages too
  auto outcomes = t.outcomes("");
  ASSERT_EQ(outcomes.size(), 4u);
  EXPECT_EQ(outcomes[0].delivery.outcome, kDurable);
  EXPECT_EQ(outcomes[1].index, 2u);
  EXPECT_EQ(outcomes[1].delivery.outcome, kRetry);
  EXPECT_EQ(outcomes[1].delivery.error, "unroutable 1");
  EXPECT_EQ(outcomes[2].delivery.outcome, kDurable);
  EXPECT_EQ(outcomes[3].delivery.error, "unroutable 2");
}

// ---------------------------------------------------------------------------------------------
// Unreachable and silent brokers

TEST(Amqp, ClosedPortIsUnavailableFastAndNamesRedactedUrl) {
  Url url = amqp_url(closed_port());
  auto start = Clock::now();
  auto conn = AmqpConnection::connect(url, short_timeouts());
  auto took = Clock::now() - start;
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::unavailable);
  EXPECT_NE(conn.error().message.find(url.redacted()), std::string::npos) << conn.error().message;
  EXPECT_NE(conn.error().message.find("refused"), std::string::npos) << conn.error().message;
  EXPECT_EQ(conn.error().message.find("hunter2"), std::string::npos) << conn.error().message;
  EXPECT_LT(took, milliseconds(1000));

  auto sink = open_amqp_sink(url, short_timeouts());
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.error().code, Exit::unavailable);
  EXPECT_EQ(sink.error().message.find("hunter2"), std::string::npos);
}

TEST(Amqp, EveryHostIsTriedAndNamed) {
  uint16_t a = closed_port();
  uint16_t b = closed_port();
  auto url = parse_url("amqp://u:hunter2@127.0.0.1:" + std::to_string(a) +
                       ",127.0.0.1:" + std::to_string(b) + "/%2f?queue=q");
  ASSERT_TRUE(url.ok());
  auto conn = AmqpConnection::connect(*url, short_timeouts());
  ASSERT_FALSE(conn.ok());
  EXPECT_NE(conn.error().message.find("127.0.0.1:" + std::to_string(a) + ": connection refused"),
            std::string::npos)
      << conn.error().message;
  EXPECT_NE(conn.error().message.find("127.0.0.1:" + std::to_string(b) + ": connection refused"),
            std::string::npos)
      << conn.error().message;
}

TEST(Amqp, BrokerThatNeverAnswersTimesOutWithinBound) {
  LoopbackSocket silent(true);
  auto start = Clock::now();
  auto conn = AmqpConnection::connect(amqp_url(silent.port()), short_timeouts());
  auto took = Clock::now() - start;
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::unavailable) << conn.error().message;
  EXPECT_NE(conn.error().message.find("no answer within 300 ms"), std::string::npos)
      << conn.error().message;
  EXPECT_EQ(conn.error().message.find("hunter2"), std::string::npos);
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(1500));
}

TEST(Amqp, TlsHandshakeWithASilentPeerTimesOutWithinBound) {
  LoopbackSocket silent(true);
  auto start = Clock::now();
  auto conn =
      AmqpConnection::connect(amqp_url(silent.port(), "queue=q&tls=true"), short_timeouts());
  auto took = Clock::now() - start;
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::unavailable) << conn.error().message;
  EXPECT_EQ(conn.error().message.find("hunter2"), std::string::npos);
  EXPECT_LT(took, milliseconds(1500));
}

// A "server" that answers the protocol header with something that is not AMQP and hangs up.
TEST(Amqp, PeerThatHangsUpDuringTheHandshakeIsUnavailable) {
  LoopbackSocket server(true);
  std::thread peer([fd = server.fd()] {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return;
    int c = ::accept(fd, nullptr, nullptr);
    if (c < 0) return;
    char buf[8];
    (void)::read(c, buf, sizeof buf);
    (void)::write(c, "HTTP/1.1 400 Bad Request\r\n\r\n", 28);
    ::close(c);
  });
  auto conn = AmqpConnection::connect(amqp_url(server.port()), short_timeouts());
  peer.join();
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::unavailable) << conn.error().message;
}

// ---------------------------------------------------------------------------------------------
// TLS against a loopback TLS server (OpenSSL) that completes the handshake and then hangs up
// instead of speaking AMQP: how far the client got says what TLS checked.

class TlsPeer {
 public:
  TlsPeer() : listener_(true) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "envkit-amqp-tls-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    cert_ = dir_ + "/cert.pem";
    // A self-signed certificate for "localhost", made in-process (no openssl command).
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "DNS:localhost");
    X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(x, key, EVP_sha256());
    FILE* f = std::fopen(cert_.c_str(), "w");
    if (f != nullptr) {
      PEM_write_X509(f, x);
      std::fclose(f);
    }
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate(ctx_, x) != 1 || SSL_CTX_use_PrivateKey(ctx_, key) != 1) {
      ADD_FAILURE() << "cannot load the test certificate";
    }
    X509_free(x);
    EVP_PKEY_free(key);
    thread_ = std::thread([this] { serve(); });
  }
  ~TlsPeer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (ctx_) SSL_CTX_free(ctx_);
    std::filesystem::remove_all(dir_);
  }
  uint16_t port() const { return listener_.port(); }
  const std::string& cert() const { return cert_; }
  int handshakes() const { return handshakes_; }

 private:
  void serve() {
    // OpenSSL writes with write(2): a client that hung up would raise SIGPIPE and kill the
    // test binary. Blocked in this thread only, it leaves an EPIPE and nothing else.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    while (!stop_) {  // bounded by the test's lifetime; each wait is 50 ms
      pollfd p{listener_.fd(), POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      int c = ::accept(listener_.fd(), nullptr, nullptr);
      if (c < 0) continue;
      timeval tv{2, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) == 1) {
        ++handshakes_;
        char header[8];
        (void)SSL_read(ssl, header, sizeof header);  // "AMQP\0\0\9\1", then hang up
        SSL_shutdown(ssl);
      }
      ERR_clear_error();
      SSL_free(ssl);
      ::close(c);
    }
  }

  LoopbackSocket listener_;
  std::string dir_, cert_;
  SSL_CTX* ctx_ = nullptr;
  std::atomic<int> handshakes_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

Url tls_url(const std::string& host, uint16_t port, const std::string& query) {
  return *parse_url("amqps://envkit:hunter2@" + host + ":" + std::to_string(port) + "/%2f?" +
                    query);
}

TEST(AmqpTls, TrustedCertificateGetsPastTheHandshake) {
  TlsPeer peer;
  auto conn = AmqpConnection::connect(tls_url("localhost", peer.port(), "tls-ca=" + peer.cert()),
                                      short_timeouts());
  ASSERT_FALSE(conn.ok());
  // TLS was fine; what failed is the AMQP login with a peer that hung up.
  EXPECT_EQ(conn.error().code, Exit::unavailable) << conn.error().message;
  EXPECT_GE(peer.handshakes(), 1);
  EXPECT_EQ(conn.error().message.find("hunter2"), std::string::npos);
}

// (The server's handshake count cannot show a refusal: under TLS 1.3 the server finishes
// before the client checks the certificate and hangs up.)
TEST(AmqpTls, UntrustedCertificateIsAConfigError) {
  TlsPeer peer;  // self-signed: not in the system store
  auto conn =
      AmqpConnection::connect(tls_url("localhost", peer.port(), "queue=q"), short_timeouts());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::config) << conn.error().message;
}

TEST(AmqpTls, NameMismatchFailsUnlessTheExpectedNameIsGiven) {
  TlsPeer peer;  // the certificate names "localhost", not 127.0.0.1
  auto wrong = AmqpConnection::connect(tls_url("127.0.0.1", peer.port(), "tls-ca=" + peer.cert()),
                                       short_timeouts());
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, Exit::config) << wrong.error().message;

  auto named = AmqpConnection::connect(
      tls_url("127.0.0.1", peer.port(), "tls-ca=" + peer.cert() + "&tls-server-name=localhost"),
      short_timeouts());
  ASSERT_FALSE(named.ok());
  EXPECT_EQ(named.error().code, Exit::unavailable) << named.error().message;
}

TEST(AmqpTls, InsecureSkipsVerification) {
  TlsPeer peer;
  auto conn = AmqpConnection::connect(tls_url("127.0.0.1", peer.port(), "tls-insecure=true"),
                                      short_timeouts());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::unavailable) << conn.error().message;
  EXPECT_GE(peer.handshakes(), 1);
}

// ---------------------------------------------------------------------------------------------
// Live tests: ENVKIT_TEST_AMQP_URL=amqp://envkit@127.0.0.1:PORT/%2f, ENVKIT_AMQP_PASSWORD=...

std::optional<Url> live_url(const std::string& query) {
  const char* text = std::getenv("ENVKIT_TEST_AMQP_URL");
  if (text == nullptr || *text == '\0') return std::nullopt;
  std::string full = text;
  full += (full.find('?') == std::string::npos ? "?" : "&") + query;
  auto url = parse_url(full);
  if (!url.ok()) {
    ADD_FAILURE() << url.error().message;
    return std::nullopt;
  }
  if (!url->password) {
    if (const char* pw = std::getenv("ENVKIT_AMQP_PASSWORD")) url->password = pw;
  }
  return *url;
}

#define LIVE_URL_OR_SKIP(var, query)                                    \
  auto var##_opt = live_url(query);                                     \
  if (!var##_opt) {                                                     \
    GTEST_SKIP() << "set ENVKIT_TEST_AMQP_URL to run against a broker"; \
  }                                                                     \
  const Url& var = *var##_opt

std::string unique_name(std::string_view what) {
  static int counter = 0;
  return "envkit-test-" + std::string(what) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(++counter);
}

ConnectionOptions live_options() {
  ConnectionOptions o;
  o.connect_timeout = milliseconds(5000);
  o.io_timeout = milliseconds(10000);
  return o;
}

std::vector<Record> make_records(size_t n, std::string_view prefix, size_t pad = 0) {
  std::vector<Record> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string id = std::string(prefix) + "-" + std::to_string(i);
    out.push_back({id, "{\"id\":\"" + id + "\",\"temp\":" + std::to_string(i % 40) + ",\"pad\":\"" +
                           std::string(pad, 'x') + "\"}"});
  }
  return out;
}

// Every message-id in `queue`, read with a consumer and acknowledged.
std::vector<std::string> drain_ids(const Url& url, const std::string& queue, size_t expected) {
  std::vector<std::string> ids;
  auto conn = AmqpConnection::connect(url, live_options());
  if (!conn.ok()) {
    ADD_FAILURE() << conn.error().message;
    return ids;
  }
  auto st = conn->consume(queue, 1000);
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
  // Bounded: stop after the expected count, or after a quiet second.
  for (size_t guard = 0; guard < expected + 1000; ++guard) {
    auto m = conn->next(milliseconds(1000));
    if (!m.ok()) {
      ADD_FAILURE() << m.error().message;
      break;
    }
    if (!*m) break;
    ids.push_back((*m)->message_id);
    EXPECT_EQ((*m)->content_type, "application/json");
    if (ids.size() % 500 == 0 || ids.size() == expected) {
      EXPECT_TRUE(conn->ack((*m)->delivery_tag, true).ok());
    }
  }
  (void)conn->ack(0, true);
  return ids;
}

// The "nothing lost" check: every record the sink called durable must be in the broker.
// Returns the durable ids that are missing.
std::vector<std::string> lost(const std::vector<std::string>& durable,
                              const std::vector<std::string>& present) {
  std::unordered_set<std::string> have(present.begin(), present.end());
  std::vector<std::string> missing;
  for (const auto& id : durable) {
    if (!have.count(id)) missing.push_back(id);
  }
  return missing;
}

TEST(Amqp, LossCheckNoticesADroppedRecord) {
  std::vector<std::string> durable{"a", "b", "c"};
  EXPECT_TRUE(lost(durable, {"c", "b", "a", "x"}).empty());
  EXPECT_EQ(lost(durable, {"a", "c"}), std::vector<std::string>{"b"});
}

void delete_queue(const Url& url, const std::string& queue) {
  auto conn = AmqpConnection::connect(url, live_options());
  if (conn.ok()) (void)conn->delete_queue(queue);
}

TEST(LiveAmqp, TenThousandRecordsAreConfirmedAndAllInTheQueue) {
  std::string queue = unique_name("bulk");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  auto sink = open_amqp_sink(url, live_options());
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  EXPECT_EQ((*sink)->name().find(url.password.value_or("\x01")), std::string::npos);

  auto records = make_records(10000, "bulk", 100);
  auto start = Clock::now();
  auto deliveries = (*sink)->write(records);
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_TRUE(deliveries.ok()) << deliveries.error().message;
  ASSERT_EQ(deliveries->size(), records.size());
  size_t durable = 0;
  for (const auto& d : *deliveries) durable += d.outcome == Outcome::durable;
  EXPECT_EQ(durable, records.size());
  std::fprintf(stderr, "[ perf     ] AmqpSink: %zu records in %.3f s = %.0f records/s\n",
               records.size(), seconds, records.size() / seconds);
  RecordProperty("records_per_second", static_cast<int>(records.size() / seconds));

  auto conn = AmqpConnection::connect(url, live_options());
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  auto count = conn->queue_message_count(queue);
  ASSERT_TRUE(count.ok()) << count.error().message;
  EXPECT_EQ(*count, records.size());

  std::vector<std::string> sent;
  for (const auto& r : records) sent.push_back(r.id);
  auto present = drain_ids(url, queue, records.size());
  EXPECT_EQ(present.size(), records.size());
  EXPECT_TRUE(lost(sent, present).empty());
  EXPECT_EQ(std::set<std::string>(present.begin(), present.end()).size(), present.size())
      << "no duplicates without a failure";
  delete_queue(url, queue);
}

TEST(LiveAmqp, ManyBatchesOnOneConnection) {
  std::string queue = unique_name("batches");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  auto sink = open_amqp_sink(url, live_options());
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  auto records = make_records(2000, "batch");
  for (size_t off = 0; off < records.size(); off += 100) {
    auto d = (*sink)->write(std::span(records).subspan(off, 100));
    ASSERT_TRUE(d.ok()) << d.error().message;
    for (const auto& x : *d) ASSERT_EQ(x.outcome, Outcome::durable) << x.error;
  }
  auto conn = AmqpConnection::connect(url, live_options());
  ASSERT_TRUE(conn.ok());
  EXPECT_EQ(*conn->queue_message_count(queue), records.size());
  (void)conn->delete_queue(queue);
}

TEST(LiveAmqp, UnroutableRecordsAreRetryNeverDurable) {
  LIVE_URL_OR_SKIP(url, "exchange=amq.direct&routing-key=" + unique_name("nowhere"));
  auto sink = open_amqp_sink(url, live_options());
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  auto records = make_records(50, "unroutable");
  auto d = (*sink)->write(records);
  ASSERT_TRUE(d.ok()) << d.error().message;
  for (const auto& x : *d) {
    EXPECT_EQ(x.outcome, Outcome::failed);
    EXPECT_NE(x.error.find("NO_ROUTE"), std::string::npos) << x.error;
  }
}

TEST(LiveAmqp, NackedRecordsAreRetryAndTheRestDurable) {
  std::string queue = unique_name("limited");
  // A queue that holds 5 messages and refuses the rest: RabbitMQ nacks those publishes.
  LIVE_URL_OR_SKIP(
      url, "queue=" + queue + "&queue-arg.x-max-length=5&queue-arg.x-overflow=reject-publish");
  auto sink = open_amqp_sink(url, live_options());
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  auto records = make_records(12, "limited");
  auto d = (*sink)->write(records);
  ASSERT_TRUE(d.ok()) << d.error().message;
  size_t durable = 0;
  for (size_t i = 0; i < d->size(); ++i) {
    if ((*d)[i].outcome == Outcome::durable) {
      ++durable;
      EXPECT_LT(i, 5u);
    } else {
      EXPECT_EQ((*d)[i].outcome, Outcome::failed);
      EXPECT_NE((*d)[i].error.find("basic.nack"), std::string::npos) << (*d)[i].error;
    }
  }
  EXPECT_EQ(durable, 5u);
  delete_queue(url, queue);
}

TEST(LiveAmqp, OversizedIdIsRejectedAndTheRestOfTheBatchGoesThrough) {
  std::string queue = unique_name("reject");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  auto sink = open_amqp_sink(url, live_options());
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  std::vector<Record> records = {{"ok-1", "{}"}, {std::string(300, 'i'), "{}"}, {"ok-2", "{}"}};
  auto d = (*sink)->write(records);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ((*d)[0].outcome, Outcome::durable);
  EXPECT_EQ((*d)[1].outcome, Outcome::rejected);
  EXPECT_EQ((*d)[2].outcome, Outcome::durable);
  delete_queue(url, queue);
}

TEST(LiveAmqp, MissingExchangeIsAConfigErrorForTheWholeBatch) {
  LIVE_URL_OR_SKIP(url, "exchange=" + unique_name("no-such-exchange"));
  auto sink = open_amqp_sink(url, live_options());
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  auto records = make_records(20, "noexchange");
  for (int round = 0; round < 2; ++round) {  // and the sink reconnects for the next batch
    auto d = (*sink)->write(records);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, Exit::config) << d.error().message;
    EXPECT_NE(d.error().message.find("404"), std::string::npos) << d.error().message;
  }
}

TEST(LiveAmqp, QueueDeclaredWithOtherPropertiesIsAConfigError) {
  std::string queue = unique_name("mismatch");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  {
    auto conn = AmqpConnection::connect(url, live_options());
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(conn->declare_queue(queue, /*durable=*/false).ok());
  }
  auto sink = open_amqp_sink(url, live_options());
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.error().code, Exit::config);
  EXPECT_NE(sink.error().message.find("PRECONDITION_FAILED"), std::string::npos)
      << sink.error().message;
  delete_queue(url, queue);
}

TEST(LiveAmqp, WrongPasswordIsAConfigErrorThatHidesIt) {
  LIVE_URL_OR_SKIP(good, "queue=q");
  Url url = good;
  url.password = "not-the-password";
  auto conn = AmqpConnection::connect(url, live_options());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::config) << conn.error().message;
  EXPECT_NE(conn.error().message.find("login refused"), std::string::npos) << conn.error().message;
  EXPECT_EQ(conn.error().message.find("not-the-password"), std::string::npos);
}

TEST(LiveAmqp, UnknownVhostIsAConfigError) {
  LIVE_URL_OR_SKIP(good, "queue=q");
  Url url = good;
  url.path = unique_name("vhost");
  auto conn = AmqpConnection::connect(url, live_options());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::config) << conn.error().message;
}

TEST(LiveAmqp, ConsumeAcksOnlyWhatTheCallerAcks) {
  std::string queue = unique_name("consume");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  auto sink = open_amqp_sink(url, live_options());
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  auto records = make_records(10, "consume");
  ASSERT_TRUE((*sink)->write(records).ok());
  {
    auto conn = AmqpConnection::connect(url, live_options());
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(conn->consume(queue, 4).ok());
    for (int i = 0; i < 3; ++i) {
      auto m = conn->next(milliseconds(2000));
      ASSERT_TRUE(m.ok() && m->has_value());
      EXPECT_EQ((*m)->message_id, records[i].id);
      EXPECT_EQ((*m)->body, records[i].json);
      EXPECT_FALSE((*m)->redelivered);
      if (i < 2) {
        ASSERT_TRUE(conn->ack((*m)->delivery_tag).ok());
      }
    }
    // The third was never acknowledged: closing hands it back to the queue.
  }
  auto conn = AmqpConnection::connect(url, live_options());
  ASSERT_TRUE(conn.ok());
  EXPECT_EQ(*conn->queue_message_count(queue), 8u);
  ASSERT_TRUE(conn->consume(queue, 4).ok());
  auto m = conn->next(milliseconds(2000));
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->message_id, records[2].id);
  EXPECT_TRUE((*m)->redelivered);
  ASSERT_TRUE(conn->nack((*m)->delivery_tag, /*requeue=*/true).ok());

  // Consuming a queue that does not exist is a config error, and costs the connection.
  auto other = AmqpConnection::connect(url, live_options());
  ASSERT_TRUE(other.ok());
  auto missing = other->consume(unique_name("missing"), 1);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Exit::config) << missing.error().message;
  EXPECT_FALSE(other->usable());
  delete_queue(url, queue);
}

TEST(LiveAmqp, ReadbackQueueForTheRealClients) {
  // Leaves messages for brokers.bats to read back with amqp-get: the sink's messages must be
  // readable by another client, not only by this connector.
  const char* queue = std::getenv("ENVKIT_TEST_AMQP_READBACK_QUEUE");
  LIVE_URL_OR_SKIP(url, std::string("queue=") + (queue ? queue : "envkit-readback"));
  auto sink = open_amqp_sink(url, live_options());
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  std::vector<Record> records;
  for (int i = 0; i < 3; ++i) {
    records.push_back(
        {"readback-" + std::to_string(i), "{\"city\":\"Bogotá\",\"n\":" + std::to_string(i) + "}"});
  }
  auto d = (*sink)->write(records);
  ASSERT_TRUE(d.ok()) << d.error().message;
  for (const auto& x : *d) EXPECT_EQ(x.outcome, Outcome::durable) << x.error;
}

// A TCP proxy in front of the broker that cuts or freezes the first connection once the
// client has sent `after_bytes` and, after that, the broker has answered `after_reply_bytes`
// (so some confirms are on their way back): the connection lost, or the broker hung, in the
// middle of a batch, at a point the test controls rather than by a race.
class CuttingProxy {
 public:
  enum class Mode { cut, freeze };
  CuttingProxy(std::string upstream_host, uint16_t upstream_port, size_t after_bytes,
               size_t after_reply_bytes, Mode mode)
      : listener_(true),
        host_(std::move(upstream_host)),
        port_(upstream_port),
        after_(after_bytes),
        after_reply_(after_reply_bytes),
        mode_(mode) {
    thread_ = std::thread([this] { run(); });
  }
  ~CuttingProxy() {
    stop_ = true;
    thread_.join();
  }
  uint16_t port() const { return listener_.port(); }
  bool triggered() const { return triggered_; }

 private:
  void run() {
    // Serves connections one after another (the sink reconnects); bounded by stop_.
    while (!stop_) {
      pollfd p{listener_.fd(), POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      int client = ::accept(listener_.fd(), nullptr, nullptr);
      if (client < 0) continue;
      int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(port_);
      ::inet_pton(AF_INET, host_.c_str(), &addr.sin_addr);
      if (::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) relay(client, up);
      ::close(client);
      ::close(up);
    }
  }

  void relay(int client, int up) {
    char buf[65536];
    bool frozen = false;
    size_t from_client = 0;
    size_t from_up = 0;
    while (!stop_) {
      short events = frozen ? 0 : POLLIN;
      pollfd p[2] = {{client, events, 0}, {up, events, 0}};
      if (::poll(p, 2, 50) <= 0) continue;
      for (int side = 0; side < 2; ++side) {
        if (!(p[side].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        int from = side == 0 ? client : up;
        int to = side == 0 ? up : client;
        ssize_t r = ::read(from, buf, sizeof buf);
        if (r <= 0) return;
        if (::write(to, buf, r) != r) return;
        if (side == 0) {
          from_client += static_cast<size_t>(r);
        } else if (from_client >= after_) {
          from_up += static_cast<size_t>(r);
        }
      }
      // Only the first connection is hurt: the sink's reconnection passes untouched.
      if (!triggered_ && from_client >= after_ && from_up >= after_reply_) {
        triggered_ = true;
        if (mode_ == Mode::cut) return;
        frozen = true;  // both sockets stay open and nothing is read: a hung broker
      }
    }
  }

  LoopbackSocket listener_;
  std::string host_;
  uint16_t port_;
  size_t after_;
  size_t after_reply_;
  Mode mode_;
  std::atomic<bool> triggered_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

Url through_proxy(Url url, uint16_t port) {
  url.hosts = {HostPort{"127.0.0.1", port, false}};
  return url;
}

// The batch goes out, the connection dies after ~1 MB: whatever was confirmed before is
// durable, the rest retry, and every durable record really is in the queue.
TEST(LiveAmqp, ConnectionLostMidBatchReportsUnconfirmedAsRetry) {
  std::string queue = unique_name("cut");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  // Cut at the first confirm frame (21 bytes) after 1 MiB went out.
  CuttingProxy proxy(url.hosts[0].host, url.port_or_default(), 1 << 20, 21,
                     CuttingProxy::Mode::cut);
  auto sink = open_amqp_sink(through_proxy(url, proxy.port()), live_options());
  ASSERT_TRUE(sink.ok()) << sink.error().message;

  auto records = make_records(20000, "cut", 200);
  std::vector<std::string> durable;
  size_t retry = 0;
  auto d = (*sink)->write(records);
  EXPECT_TRUE(proxy.triggered());
  if (d.ok()) {
    for (size_t i = 0; i < d->size(); ++i) {
      if ((*d)[i].outcome == Outcome::durable) {
        durable.push_back(records[i].id);
      } else {
        ++retry;
        EXPECT_FALSE((*d)[i].error.empty());
      }
    }
  } else {
    EXPECT_EQ(d.error().code, Exit::unavailable) << d.error().message;
    retry = records.size();
  }
  EXPECT_GT(retry, 0u) << "the cut must cost something, or this test shows nothing";
  EXPECT_GT(durable.size(), 0u) << "confirms that arrived before the cut count";
  // The sink reconnects by itself on the next write.
  auto again = (*sink)->write(std::span(records).first(10));
  ASSERT_TRUE(again.ok()) << again.error().message;
  for (const auto& x : *again) EXPECT_EQ(x.outcome, Outcome::durable) << x.error;

  auto present = drain_ids(url, queue, records.size() + 10);
  EXPECT_TRUE(lost(durable, present).empty()) << lost(durable, present).size() << " lost";
  // And the check can fail: drop one durable record and it is noticed.
  if (!durable.empty()) {
    std::vector<std::string> tampered = present;
    std::erase(tampered, durable.front());
    EXPECT_EQ(lost(durable, tampered).size(), 1u);
  }
  std::fprintf(stderr, "[ info     ] cut mid-batch: %zu durable, %zu retry, %zu in queue\n",
               durable.size(), retry, present.size());
  delete_queue(url, queue);
}

// The broker stops reading and answering mid-batch (a hung broker, a blocked connection):
// write() comes back within the I/O timeout instead of hanging, and nothing unconfirmed is
// durable.
TEST(LiveAmqp, HungBrokerMidBatchIsBoundedByTheIoTimeout) {
  std::string queue = unique_name("freeze");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  CuttingProxy proxy(url.hosts[0].host, url.port_or_default(), 256 << 10, 0,
                     CuttingProxy::Mode::freeze);
  ConnectionOptions options = live_options();
  options.io_timeout = milliseconds(1000);
  auto sink = open_amqp_sink(through_proxy(url, proxy.port()), options);
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  // 40 MB: far more than the socket buffers hold, so sending itself blocks.
  auto records = make_records(20000, "freeze", 2000);
  auto start = Clock::now();
  auto d = (*sink)->write(records);
  auto took = Clock::now() - start;
  EXPECT_TRUE(proxy.triggered());
  EXPECT_LT(took, milliseconds(5000));
  std::vector<std::string> durable;
  if (d.ok()) {
    for (size_t i = 0; i < d->size(); ++i) {
      if ((*d)[i].outcome == Outcome::durable) durable.push_back(records[i].id);
    }
    EXPECT_LT(durable.size(), records.size());
  } else {
    EXPECT_EQ(d.error().code, Exit::unavailable) << d.error().message;
  }
  auto present = drain_ids(url, queue, records.size());
  EXPECT_TRUE(lost(durable, present).empty());
  delete_queue(url, queue);
}

// rabbitmqctl close_all_connections while batches are in flight: the broker sends
// connection.close (320 CONNECTION_FORCED). ENVKIT_TEST_AMQP_CLOSE_CMD is the command to run.
TEST(LiveAmqp, ConnectionsClosedByTheBrokerLoseNothing) {
  std::string queue = unique_name("forced");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  const char* close_cmd = std::getenv("ENVKIT_TEST_AMQP_CLOSE_CMD");
  if (close_cmd == nullptr || *close_cmd == '\0') {
    GTEST_SKIP() << "set ENVKIT_TEST_AMQP_CLOSE_CMD (e.g. rabbitmqctl close_all_connections x)";
  }
  auto sink = open_amqp_sink(url, live_options());
  ASSERT_TRUE(sink.ok()) << sink.error().message;

  auto records = make_records(400000, "forced", 100);
  // Started only now, so that the close lands in the batches, not in the set-up (which an
  // ASan build makes slow).
  std::atomic<bool> closer_done{false};
  std::thread closer([&] {
    std::this_thread::sleep_for(milliseconds(300));
    int rc = std::system(close_cmd);
    EXPECT_EQ(rc, 0) << close_cmd;
    closer_done = true;
  });
  std::vector<std::string> durable;
  size_t retry = 0;
  size_t sent = 0;
  auto deadline = Clock::now() + std::chrono::seconds(60);
  // Batches of 20,000 (seconds each) until one has started after the close: the close
  // lands inside a batch, and the sink's reconnection is exercised by the next.
  while (sent < records.size() && Clock::now() < deadline) {
    auto batch = std::span(records).subspan(sent, std::min<size_t>(20000, records.size() - sent));
    bool closed_before = closer_done;
    auto d = (*sink)->write(batch);
    if (d.ok()) {
      for (size_t i = 0; i < d->size(); ++i) {
        if ((*d)[i].outcome == Outcome::durable) {
          durable.push_back(batch[i].id);
        } else {
          ++retry;
        }
      }
    } else {
      retry += batch.size();
      EXPECT_EQ(d.error().code, Exit::unavailable) << d.error().message;
    }
    sent += batch.size();
    std::fprintf(stderr, "[ info     ] batch up to %zu: %s, closer done: %s, retry so far %zu\n",
                 sent, d.ok() ? "deliveries" : "error", closer_done ? "yes" : "no", retry);
    if (closed_before) break;
  }
  closer.join();
  EXPECT_GT(retry, 0u) << "the broker never closed a connection mid-batch: nothing was shown";
  auto present = drain_ids(url, queue, sent);
  EXPECT_TRUE(lost(durable, present).empty()) << lost(durable, present).size() << " lost";
  std::fprintf(
      stderr,
      "[ info     ] close_all_connections: %zu sent, %zu durable, %zu retry, %zu in queue\n", sent,
      durable.size(), retry, present.size());
  delete_queue(url, queue);
}

// ---------------------------------------------------------------------------------------------
// The AMQP source (envkit/source.hpp), opened through the registry.

TEST(Amqp, SourceNeedsAQueue) {
  auto source = open_source("amqp://127.0.0.1:1/%2f", test::source_options(short_timeouts()));
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.error().code, Exit::usage);
  EXPECT_NE(source.error().message.find("?queue="), std::string::npos) << source.error().message;
}

// The source for `query` on the live broker: ENVKIT_TEST_AMQP_URL, the password from
// ENVKIT_AMQP_PASSWORD as any command would read it.
// nullptr (the test failed) when it cannot be opened.
std::unique_ptr<Source> live_source(const std::string& query) {
  std::string text = std::getenv("ENVKIT_TEST_AMQP_URL");
  text += (text.find('?') == std::string::npos ? "?" : "&") + query;
  return test::open_test_source(text, live_options());
}

// How every source test ends: with the source gone, nothing is left in the queue (every
// record was settled for good); then the queue goes.
void expect_drained(std::unique_ptr<Source>& source, const Url& url, const std::string& queue) {
  source.reset();
  EXPECT_EQ(drain_ids(url, queue, 0), std::vector<std::string>{});
  delete_queue(url, queue);
}

// Publishes `n` records to a new queue (declared by the sink, with `queue_args`) and
// returns them.
std::vector<Record> fill_queue(const Url& sink_url, size_t n, std::string_view prefix) {
  auto sink = open_amqp_sink(sink_url, live_options());
  EXPECT_TRUE(sink.ok()) << sink.error().message;
  if (!sink.ok()) return {};
  auto records = make_records(n, prefix);
  auto d = (*sink)->write(records);
  EXPECT_TRUE(d.ok()) << d.error().message;
  if (d.ok()) {
    for (const auto& x : *d) EXPECT_EQ(x.outcome, Outcome::durable) << x.error;
  }
  return records;
}

TEST(LiveSourceAmqp, ConsumeAndAckEmptiesTheQueue) {
  std::string queue = unique_name("src-ack");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  auto records = fill_queue(url, 50, "src-ack");
  {
    auto source = live_source("queue=" + queue + "&prefetch=16");
    ASSERT_TRUE(source);
    // The prefetch window holds: no more than 16 are out before some are acknowledged.
    auto window = test::collect(*source, "src-ack", records.size(), milliseconds(1500));
    EXPECT_EQ(window.size(), 16u);
    std::vector<Received> got;
    for (int round = 0; round < 10 && got.size() < records.size(); ++round) {
      std::vector<Settlement> acks;
      for (auto& r : window) {
        acks.push_back({r.handle, Verdict::ack, ""});
        got.push_back(std::move(r));
      }
      ASSERT_TRUE(source->settle(acks).ok());
      window = test::collect(*source, "src-ack", std::min<size_t>(16, records.size() - got.size()),
                             std::chrono::seconds(10));
    }
    ASSERT_EQ(got.size(), records.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].record.id, records[i].id) << "one consumer reads a queue in order";
      EXPECT_EQ(got[i].record.json, records[i].json);
      EXPECT_EQ(got[i].deliveries, 1u);
    }
    EXPECT_TRUE(source->commit().ok());
  }
  // Every record was acknowledged: none comes back when the connection is gone.
  EXPECT_EQ(drain_ids(url, queue, 0), std::vector<std::string>{});
  delete_queue(url, queue);
}

TEST(LiveSourceAmqp, NextReturnsAtMostMaxAndWaitsAtMostWait) {
  std::string queue = unique_name("src-next");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  auto records = fill_queue(url, 10, "src-next");
  auto source = live_source("queue=" + queue + "&prefetch=100");
  ASSERT_TRUE(source);
  auto first = test::collect(*source, "src-next", 1, std::chrono::seconds(30), /*max=*/1);
  ASSERT_EQ(first.size(), 1u);
  auto rest = test::collect(*source, "src-next", 9, std::chrono::seconds(30), /*max=*/4);
  ASSERT_EQ(rest.size(), 9u);
  // Empty now: the wait is bounded by `wait`, not by the I/O timeout.
  auto start = Clock::now();
  auto none = source->next(10, milliseconds(300));
  auto took = Clock::now() - start;
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->records.empty());
  EXPECT_FALSE(none->end) << "a queue never ends";
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(3000));
  delete_queue(url, queue);
}

TEST(LiveSourceAmqp, UnackedRecordsComeBackRedeliveredWhenTheSourceGoes) {
  std::string queue = unique_name("src-crash");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  auto records = fill_queue(url, 3, "src-crash");
  {
    auto source = live_source("queue=" + queue);
    ASSERT_TRUE(source);
    auto got = test::collect(*source, "src-crash", 3);
    ASSERT_EQ(got.size(), 3u);
    test::settle_one(*source, got[0], Verdict::ack);
    // Gone before the sinks answered for the other two: a crash, as far as the broker knows.
  }
  auto source = live_source("queue=" + queue);
  ASSERT_TRUE(source);
  auto again = test::collect(*source, "src-crash", 2);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].record.id, records[1].id);
  EXPECT_EQ(again[1].record.id, records[2].id);
  for (const auto& r : again) {
    EXPECT_EQ(r.deliveries, 2u) << "a classic queue says only: redelivered";
    test::settle_one(*source, r, Verdict::ack);
  }
  expect_drained(source, url, queue);
}

TEST(LiveSourceAmqp, RetryRequeuesTheRecordAndDeadRemovesIt) {
  std::string queue = unique_name("src-retry");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  auto records = fill_queue(url, 3, "src-retry");
  auto source = live_source("queue=" + queue);
  ASSERT_TRUE(source);
  auto got = test::collect(*source, "src-retry", 3);
  ASSERT_EQ(got.size(), 3u);
  test::settle_one(*source, got[0], Verdict::retry);
  test::settle_one(*source, got[1], Verdict::ack);
  test::settle_one(*source, got[2], Verdict::dead);
  auto again = test::collect(*source, "src-retry", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].record.id, records[0].id);
  EXPECT_EQ(again[0].record.json, records[0].json);
  EXPECT_EQ(again[0].deliveries, 2u);
  EXPECT_NE(again[0].handle, got[0].handle);
  test::settle_one(*source, again[0], Verdict::ack);
  // Retried once and acked, acked, dead: nothing is left.
  expect_drained(source, url, queue);
}

// Acks of a batch are coalesced into one basic.ack with multiple set, which acknowledges
// every unacknowledged delivery up to its tag: it must stop below the lowest delivery still
// out. Settled out of order (the later half first, then the first five, a retry and one past
// a record still out), the records still out, and the retried one, come back when the
// source goes; nothing else does.
TEST(LiveSourceAmqp, CoalescedAcksNeverCoverARecordStillOut) {
  std::string queue = unique_name("src-coalesce");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  auto records = fill_queue(url, 20, "src-coalesce");
  {
    auto source = live_source("queue=" + queue + "&prefetch=100");
    ASSERT_TRUE(source);
    auto got = test::collect(*source, "src-coalesce", 20);
    ASSERT_EQ(got.size(), 20u);
    std::vector<Settlement> later_half, first_part;
    for (size_t i = 10; i < 20; ++i) later_half.push_back({got[i].handle, Verdict::ack, ""});
    ASSERT_TRUE(source->settle(later_half).ok());
    for (size_t i : {0, 1, 2, 3, 4, 7}) first_part.push_back({got[i].handle, Verdict::ack, ""});
    first_part.push_back({got[5].handle, Verdict::retry, ""});
    ASSERT_TRUE(source->settle(first_part).ok());
    // 6, 8 and 9 are still out when the source goes.
  }
  auto source = live_source("queue=" + queue + "&prefetch=100");
  ASSERT_TRUE(source);
  auto again = test::collect(*source, "src-coalesce", 4, std::chrono::seconds(10));
  std::vector<std::string> ids;
  for (const auto& r : again) ids.push_back(r.record.id);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{records[5].id, records[6].id, records[8].id, records[9].id}));
  auto more = source->next(10, milliseconds(500));
  ASSERT_TRUE(more.ok()) << more.error().message;
  EXPECT_TRUE(more->records.empty()) << "an acknowledged record came back";
  std::vector<Settlement> acks;
  for (const auto& r : again) acks.push_back({r.handle, Verdict::ack, ""});
  ASSERT_TRUE(source->settle(acks).ok());
  expect_drained(source, url, queue);
}

TEST(LiveSourceAmqp, QuorumQueueCountsEveryDelivery) {
  std::string queue = unique_name("src-quorum");
  LIVE_URL_OR_SKIP(url, "queue=" + queue + "&queue-arg.x-queue-type=quorum");
  auto records = fill_queue(url, 1, "src-quorum");
  {
    auto source = live_source("queue=" + queue);
    ASSERT_TRUE(source);
    for (uint32_t n = 1; n <= 3; ++n) {
      auto got = test::collect(*source, "src-quorum", 1);
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(got[0].deliveries, n) << "from x-delivery-count";
      test::settle_one(*source, got[0], Verdict::retry);
    }
    auto got = test::collect(*source, "src-quorum", 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].deliveries, 4u);
    // Dropped without a verdict: the broker counts that return too.
  }
  auto source = live_source("queue=" + queue);
  ASSERT_TRUE(source);
  auto got = test::collect(*source, "src-quorum", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].deliveries, 5u);
  EXPECT_EQ(got[0].record.id, records[0].id);
  test::settle_one(*source, got[0], Verdict::ack);
  expect_drained(source, url, queue);
}

TEST(LiveSourceAmqp, SettlingTwiceIsRefusedAndCostsNothing) {
  std::string queue = unique_name("src-twice");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  auto records = fill_queue(url, 2, "src-twice");
  auto source = live_source("queue=" + queue);
  ASSERT_TRUE(source);
  auto got = test::collect(*source, "src-twice", 2);
  ASSERT_EQ(got.size(), 2u);
  test::settle_one(*source, got[0], Verdict::ack);
  Settlement twice{got[0].handle, Verdict::ack, ""};
  auto st = source->settle(std::span(&twice, 1));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::software) << st.error().message;
  // The broker never saw the bad tag: the channel and the other delivery are fine.
  test::settle_one(*source, got[1], Verdict::ack);
  auto none = source->next(10, milliseconds(200));
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->records.empty());
  expect_drained(source, url, queue);
}

// Without a message-id, the id is the body's `id` member, else a digest of the body: the
// same on a redelivery, so a sink with a unique key absorbs the duplicate.
TEST(LiveSourceAmqp, IdsWithoutAMessageIdComeFromTheBody) {
  std::string queue = unique_name("src-ids");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  auto sink = open_amqp_sink(url, live_options());
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  std::vector<Record> records{{"", R"({"id":"order-7","n":1})"}, {"", R"({"n":2})"}};
  ASSERT_TRUE((*sink)->write(records).ok());
  auto source = live_source("queue=" + queue);
  ASSERT_TRUE(source);
  auto got = test::collect(*source, "", 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].record.id, "order-7");
  EXPECT_EQ(got[1].record.id.rfind("sha256:", 0), 0u) << got[1].record.id;
  test::settle_one(*source, got[0], Verdict::ack);
  test::settle_one(*source, got[1], Verdict::retry);
  auto again = test::collect(*source, "", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].record.id, got[1].record.id);
  test::settle_one(*source, again[0], Verdict::ack);
  expect_drained(source, url, queue);
}

TEST(LiveSourceAmqp, MissingQueueIsAConfigError) {
  LIVE_URL_OR_SKIP(url, "queue=unused");
  (void)url;
  std::string text = std::getenv("ENVKIT_TEST_AMQP_URL");
  auto source = open_source(text + "?queue=" + unique_name("src-missing"),
                            test::source_options(live_options()));
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.error().code, Exit::config) << source.error().message;
}

// The broker closes the connection (rabbitmqctl close_all_connections): next() says
// unavailable, the next call reconnects, and what was out comes back; a late settlement of
// a delivery from the lost connection is dropped, not sent as a tag of the new channel.
TEST(LiveSourceAmqp, LostConnectionIsUnavailableAndWhatWasOutComesBack) {
  std::string queue = unique_name("src-lost");
  LIVE_URL_OR_SKIP(url, "queue=" + queue);
  const char* close_cmd = std::getenv("ENVKIT_TEST_AMQP_CLOSE_CMD");
  if (close_cmd == nullptr || *close_cmd == '\0') {
    GTEST_SKIP() << "set ENVKIT_TEST_AMQP_CLOSE_CMD (e.g. rabbitmqctl close_all_connections x)";
  }
  auto records = fill_queue(url, 2, "src-lost");
  auto source = live_source("queue=" + queue);
  ASSERT_TRUE(source);
  auto got = test::collect(*source, "src-lost", 2);
  ASSERT_EQ(got.size(), 2u);
  test::settle_one(*source, got[0], Verdict::ack);
  ASSERT_EQ(std::system(close_cmd), 0) << close_cmd;

  // Bounded: the close arrives within the I/O timeout; nothing else is in the queue.
  std::optional<Error> lost;
  for (int i = 0; i < 30 && !lost; ++i) {
    auto batch = source->next(10, milliseconds(500));
    if (!batch.ok()) {
      lost = batch.error();
    } else {
      EXPECT_TRUE(batch->records.empty());
    }
  }
  ASSERT_TRUE(lost.has_value()) << "the source never noticed the closed connection";
  EXPECT_EQ(lost->code, Exit::unavailable) << lost->message;

  auto again = test::collect(*source, "src-lost", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].record.id, records[1].id);
  EXPECT_EQ(again[0].deliveries, 2u);
  EXPECT_GT(again[0].handle, got[1].handle) << "handles are never reused across connections";
  // Settled after the reconnection: dropped (the broker requeued it), not an error, and not
  // sent as tag 2 of the new channel, which the broker would answer by closing the channel.
  test::settle_one(*source, got[1], Verdict::ack);
  test::settle_one(*source, again[0], Verdict::ack);
  auto none = source->next(10, milliseconds(300));
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->records.empty());
  expect_drained(source, url, queue);
}

}  // namespace
}  // namespace envkit
