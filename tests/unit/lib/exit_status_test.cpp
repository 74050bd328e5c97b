// The failure table (envkit/exit_status.hpp): one test per row that provokes the failure for
// real on loopback where it can be, and checks the exit status the connectors give it; and
// every man page's EXIT STATUS section against the table.
#include <envkit/exit_status.hpp>

#include <envkit/http.hpp>
#include <envkit/mongo.hpp>
#include <envkit/mysql.hpp>
#include <envkit/redis.hpp>
#include <envkit/socket.hpp>
#include <envkit/durable_file.hpp>
#include <envkit/spool.hpp>
#include <envkit/url.hpp>
#include "loopback.hpp"

#include <gtest/gtest.h>
#include <netdb.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace envkit {
namespace {

using std::chrono::milliseconds;
using test::closed_port;
using test::LoopbackSocket;
using test::short_timeouts;
using test::url_of;

constexpr const char* kNoSuchHost = "no-such-host.invalid";  // RFC 2606: never resolves

// A one-connection server on loopback: accepts (within 5 s), then answers each read with
// the next canned reply, and closes after the last. A reply of "" closes at once; the
// server never sends anything when `replies` is empty but holds the connection open until
// the client goes.
class CannedServer {
 public:
  explicit CannedServer(std::vector<std::string> replies)
      : listener_(true), thread_([this, replies = std::move(replies)] { serve(replies); }) {}
  ~CannedServer() { thread_.join(); }
  uint16_t port() const { return listener_.port(); }

 private:
  void serve(const std::vector<std::string>& replies) {
    pollfd p{listener_.fd(), POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return;
    int c = ::accept(listener_.fd(), nullptr, nullptr);
    if (c < 0) return;
    char buf[4096];
    for (const auto& reply : replies) {
      if (reply.empty()) break;
      pollfd r{c, POLLIN, 0};
      if (::poll(&r, 1, 5000) != 1 || ::recv(c, buf, sizeof buf, 0) <= 0) break;
      (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
    if (replies.empty()) {
      pollfd r{c, POLLIN, 0};
      while (::poll(&r, 1, 5000) == 1 && ::recv(c, buf, sizeof buf, 0) > 0) {
      }
    }
    ::close(c);
  }

  LoopbackSocket listener_;
  std::thread thread_;
};

// Connecting to a CannedServer that answers the handshake's first command with `reply`
// (after AUTH when `password` is set, SELECT when `db` is): the status of the failure.
Exit redis_exit_for_reply(const std::string& reply, const std::string& userinfo = "",
                          const std::string& db = "") {
  CannedServer server({reply});
  auto redis = RedisConnection::connect(
      url_of("redis://" + userinfo + "127.0.0.1:" + std::to_string(server.port()) + db),
      short_timeouts());
  EXPECT_FALSE(redis.ok());
  return redis.ok() ? Exit::ok : redis.error().code;
}

// ---- the table itself --------------------------------------------------------------------

TEST(FailureTable, EveryKindHasExactlyOneRowInEnumOrder) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < kFailureTable.size(); ++i) {
    EXPECT_EQ(static_cast<size_t>(kFailureTable[i].kind), i) << kFailureTable[i].name;
    EXPECT_TRUE(names.insert(kFailureTable[i].name).second) << kFailureTable[i].name;
    EXPECT_FALSE(kFailureTable[i].meaning.empty());
    EXPECT_NE(kFailureTable[i].code, Exit::ok);
    EXPECT_EQ(&failure_row(kFailureTable[i].kind), &kFailureTable[i]);
  }
  EXPECT_EQ(static_cast<size_t>(Failure::internal) + 1, kFailureTable.size());
}

// The kind travels with the Error, through context(), so callers that must tell two
// failures of one status apart (proxy-check: its CA file vs the server's certificate) can.
TEST(FailureTable, AnErrorKeepsItsKindThroughContext) {
  Error e = fail(Failure::tls_failed, "certificate has expired").context("connecting");
  EXPECT_EQ(e.code, Exit::config);
  EXPECT_TRUE(is(e, Failure::tls_failed));
  EXPECT_FALSE(is(e, Failure::config));
  EXPECT_EQ(e.message, "connecting: certificate has expired");
  EXPECT_FALSE(Error(Exit::config, "by hand").kind.has_value());
}

TEST(FailureTable, ResolverAndSocketErrorsAreClassified) {
  EXPECT_EQ(failure_from_gai(EAI_NONAME), Failure::name_not_found);
  EXPECT_EQ(failure_from_gai(EAI_AGAIN), Failure::resolver_unavailable);
  EXPECT_EQ(failure_from_gai(EAI_FAIL), Failure::resolver_unavailable);
  EXPECT_EQ(failure_from_gai(EAI_MEMORY), Failure::internal);
  EXPECT_EQ(failure_from_gai(EAI_SERVICE), Failure::usage);
  EXPECT_EQ(failure_from_socket_errno(ECONNREFUSED), Failure::connection_refused);
  EXPECT_EQ(failure_from_socket_errno(EHOSTUNREACH), Failure::unreachable);
  EXPECT_EQ(failure_from_socket_errno(ETIMEDOUT), Failure::unreachable);
  EXPECT_EQ(failure_from_socket_errno(ECONNRESET), Failure::connection_lost);
  EXPECT_EQ(failure_from_socket_errno(EPIPE), Failure::connection_lost);
}

// ---- one test per row ----------------------------------------------------------------------

TEST(FailureRows, Usage) {
  EXPECT_EQ(exit_for(Failure::usage), Exit::usage);
  auto url = parse_url("mysql://u@host:notaport/db");
  ASSERT_FALSE(url.ok());
  EXPECT_EQ(url.error().code, Exit::usage) << url.error().message;
  auto redis = RedisConnection::connect(url_of("redis://127.0.0.1/notanumber"), short_timeouts());
  ASSERT_FALSE(redis.ok());
  EXPECT_EQ(redis.error().code, Exit::usage) << redis.error().message;
}

TEST(FailureRows, Config) {
  EXPECT_EQ(exit_for(Failure::config), Exit::config);
  LoopbackSocket listener(true);
  auto s = Stream::connect("127.0.0.1", listener.port(), deadline_in(milliseconds(1000)));
  ASSERT_TRUE(s.ok()) << s.error().message;
  TlsOptions tls;
  tls.ca_file = "/nonexistent/ca.pem";
  auto info = s->start_tls(tls, "localhost", deadline_in(milliseconds(500)));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, Exit::config) << info.error().message;
}

// NXDOMAIN, the same status from every client library.
TEST(FailureRows, NameNotFound) {
  EXPECT_EQ(exit_for(Failure::name_not_found), Exit::config);
  ASSERT_EQ(failure_resolving(kNoSuchHost), Failure::name_not_found)
      << "this machine's resolver does not answer NXDOMAIN for " << kNoSuchHost;
  auto s = Stream::connect(kNoSuchHost, 80, deadline_in(milliseconds(2000)));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Exit::config) << s.error().message;
  auto mysql = MysqlConnection::connect(url_of(std::string("mysql://u@") + kNoSuchHost + "/db"),
                                        short_timeouts());
  ASSERT_FALSE(mysql.ok());
  EXPECT_EQ(mysql.error().code, Exit::config) << mysql.error().message;
  auto redis = RedisConnection::connect(url_of(std::string("redis://") + kNoSuchHost),
                                        short_timeouts());
  ASSERT_FALSE(redis.ok());
  EXPECT_EQ(redis.error().code, Exit::config) << redis.error().message;
  auto http = HttpClient::create(short_timeouts());
  ASSERT_TRUE(http.ok());
  HttpRequest request;
  request.url = std::string("http://") + kNoSuchHost + "/";
  auto r = http->perform(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::config) << r.error().message;
}

// EAI_AGAIN cannot be provoked on a machine whose resolver answers; the classification and
// the row are pinned here, the resolver's side by failure_from_gai above.
TEST(FailureRows, ResolverUnavailable) {
  EXPECT_EQ(exit_for(Failure::resolver_unavailable), Exit::temp_fail);
  EXPECT_EQ(exit_for(failure_from_gai(EAI_AGAIN)), Exit::temp_fail);
}

// A server that cannot listen because the port is taken: Listener (and so HttpServer).
TEST(FailureRows, AddressInUse) {
  EXPECT_EQ(exit_for(Failure::address_in_use), Exit::unavailable);
  test::LoopbackSocket taken(true);
  auto listener = Listener::bind("127.0.0.1", taken.port());
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.error().code, Exit::unavailable) << listener.error().message;
}

TEST(FailureRows, ConnectionRefused) {
  EXPECT_EQ(exit_for(Failure::connection_refused), Exit::unavailable);
  uint16_t port = closed_port();
  auto s = Stream::connect("127.0.0.1", port, deadline_in(milliseconds(1000)));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Exit::unavailable) << s.error().message;
  auto mysql = MysqlConnection::connect(url_of("mysql://u@127.0.0.1:" + std::to_string(port) + "/db"),
                                        short_timeouts());
  ASSERT_FALSE(mysql.ok());
  EXPECT_EQ(mysql.error().code, Exit::unavailable) << mysql.error().message;
  auto redis = RedisConnection::connect(url_of("redis://127.0.0.1:" + std::to_string(port)),
                                        short_timeouts());
  ASSERT_FALSE(redis.ok());
  EXPECT_EQ(redis.error().code, Exit::unavailable) << redis.error().message;
  auto http = HttpClient::create(short_timeouts());
  ASSERT_TRUE(http.ok());
  HttpRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  auto r = http->perform(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::unavailable) << r.error().message;
}

// A listener that never answers: the connection opens (the kernel accepts it), the protocol's
// greeting never comes. Within the connect timeout, that is "cannot be reached".
TEST(FailureRows, UnreachableOrSilentWhileConnecting) {
  EXPECT_EQ(exit_for(Failure::unreachable), Exit::unavailable);
  LoopbackSocket silent(true);
  auto redis = RedisConnection::connect(url_of("redis://127.0.0.1:" + std::to_string(silent.port())),
                                        short_timeouts());
  ASSERT_FALSE(redis.ok());
  EXPECT_EQ(redis.error().code, Exit::unavailable) << redis.error().message;
  auto mysql = MysqlConnection::connect(
      url_of("mysql://u@127.0.0.1:" + std::to_string(silent.port()) + "/db"), short_timeouts());
  ASSERT_FALSE(mysql.ok());
  EXPECT_EQ(mysql.error().code, Exit::unavailable) << mysql.error().message;
}

TEST(FailureRows, ConnectionLost) {
  EXPECT_EQ(exit_for(Failure::connection_lost), Exit::unavailable);
  EXPECT_EQ(redis_exit_for_reply(""), Exit::unavailable);  // "" hangs up at once
}

// Connected, then silence: the server is there but slow.
TEST(FailureRows, IoTimeout) {
  EXPECT_EQ(exit_for(Failure::io_timeout), Exit::temp_fail);
  LoopbackSocket silent(true);
  auto s = Stream::connect("127.0.0.1", silent.port(), deadline_in(milliseconds(1000)));
  ASSERT_TRUE(s.ok()) << s.error().message;
  char buf[16];
  auto n = s->read_some(buf, sizeof buf, deadline_in(milliseconds(100)));
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code, Exit::temp_fail) << n.error().message;
}

TEST(FailureRows, ServerBusy) {
  EXPECT_EQ(exit_for(Failure::server_busy), Exit::temp_fail);
  EXPECT_EQ(redis_exit_for_reply("-LOADING Redis is loading the dataset in memory\r\n"),
            Exit::temp_fail);
  EXPECT_EQ(exit_for(mysql_failure(1040)), Exit::temp_fail);  // too many connections
}

TEST(FailureRows, WrongProtocol) {
  EXPECT_EQ(exit_for(Failure::wrong_protocol), Exit::config);
  CannedServer ssh({"SSH-2.0-OpenSSH_9.2\r\n\r\n"});
  auto http = HttpClient::create(short_timeouts());
  ASSERT_TRUE(http.ok());
  HttpRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(ssh.port()) + "/";
  auto r = http->perform(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::config) << r.error().message;
}

TEST(FailureRows, TlsFailed) {
  EXPECT_EQ(exit_for(Failure::tls_failed), Exit::config);
  CannedServer plain({"HTTP/1.0 400 Bad Request\r\n\r\nnot tls at all"});
  auto s = Stream::connect("127.0.0.1", plain.port(), deadline_in(milliseconds(1000)));
  ASSERT_TRUE(s.ok()) << s.error().message;
  auto info = s->start_tls(TlsOptions{}, "localhost", deadline_in(milliseconds(1000)));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, Exit::config) << info.error().message;
}

TEST(FailureRows, AuthRefused) {
  EXPECT_EQ(exit_for(Failure::auth_refused), Exit::config);
  EXPECT_EQ(redis_exit_for_reply(
                "-WRONGPASS invalid username-password pair or user is disabled.\r\n", ":bad@"),
            Exit::config);
}

TEST(FailureRows, NotFound) {
  EXPECT_EQ(exit_for(Failure::not_found), Exit::config);
  EXPECT_EQ(redis_exit_for_reply("-ERR DB index is out of range\r\n", "", "/99"), Exit::config);
}

TEST(FailureRows, PermissionDenied) {
  EXPECT_EQ(exit_for(Failure::permission_denied), Exit::config);
  EXPECT_EQ(redis_exit_for_reply("-NOPERM this user has no permissions to run the 'ping' command\r\n"),
            Exit::config);
}

TEST(FailureRows, BadData) {
  EXPECT_EQ(exit_for(Failure::bad_data), Exit::data);
  auto doc = bson_from_json("{not json");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.error().code, Exit::data) << doc.error().message;
}

TEST(FailureRows, NoInput) {
  EXPECT_EQ(exit_for(Failure::no_input), Exit::no_input);
  SecretSources sources;
  sources.password_file = "/nonexistent/password";
  Url url = url_of("mysql://u@127.0.0.1/db");
  auto st = resolve_password(url, sources);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::no_input) << st.error().message;
}

TEST(FailureRows, LocalIo) {
  EXPECT_EQ(exit_for(Failure::local_io), Exit::io);
  auto st = make_directories("/proc/envkit-cannot-create-this");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::io) << st.error().message;
}

TEST(FailureRows, LockHeld) {
  EXPECT_EQ(exit_for(Failure::lock_held), Exit::temp_fail);
  auto dir = std::filesystem::temp_directory_path() /
             ("envkit-lock-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto first = Spool::open(dir.string(), SpoolOptions{});
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = Spool::open(dir.string(), SpoolOptions{});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Exit::temp_fail) << second.error().message;
  std::filesystem::remove_all(dir);
}

// Stopped by a signal: tools report it (db-backup's dump); the row is pinned here.
TEST(FailureRows, Interrupted) { EXPECT_EQ(exit_for(Failure::interrupted), Exit::temp_fail); }

TEST(FailureRows, Internal) {
  EXPECT_EQ(exit_for(Failure::internal), Exit::software);
  EXPECT_EQ(exit_for(mysql_failure(2014)), Exit::software);  // commands out of sync
}

// ---- the man pages -------------------------------------------------------------------------

constexpr std::string_view kBegin = ".\\\" BEGIN exit-status-table";
constexpr std::string_view kEnd = ".\\\" END exit-status-table";

// Every man page carries the generated table between its two marker comments, unchanged.
// ENVKIT_UPDATE_MAN=1 rewrites the pages from the table instead (then review the diff).
TEST(FailureTable, EveryManPageCarriesTheTable) {
  const std::string expected = exit_status_roff();
  bool update = std::getenv("ENVKIT_UPDATE_MAN") != nullptr;
  int pages = 0;
  for (const auto& entry : std::filesystem::directory_iterator(ENVKIT_SOURCE_DIR "/man")) {
    if (entry.path().extension() != ".1") continue;
    ++pages;
    std::ifstream in(entry.path());
    std::stringstream buf;
    buf << in.rdbuf();
    std::string text = buf.str();
    auto begin = text.find(kBegin);
    auto end = text.find(kEnd);
    ASSERT_NE(begin, std::string::npos) << entry.path() << " has no " << kBegin;
    ASSERT_NE(end, std::string::npos) << entry.path() << " has no " << kEnd;
    auto body_start = text.find('\n', begin) + 1;
    std::string body = text.substr(body_start, end - body_start);
    if (update && body != expected) {
      text.replace(body_start, end - body_start, expected);
      std::ofstream(entry.path()) << text;
      continue;
    }
    EXPECT_EQ(body, expected) << entry.path()
                              << ": the EXIT STATUS table differs from envkit/exit_status.hpp; "
                                 "ENVKIT_UPDATE_MAN=1 envkit_unit_tests "
                                 "--gtest_filter=FailureTable.EveryManPageCarriesTheTable";
  }
  EXPECT_GE(pages, 3);
}

}  // namespace
}  // namespace envkit
