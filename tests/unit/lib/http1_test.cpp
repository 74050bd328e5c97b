// Unit tests for envkit/http1.hpp: the response-head parser, chunked decoding, and the
// keep-alive connection against a scripted HTTP/1.1 server on 127.0.0.1 in this process.
#include <envkit/http1.hpp>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <envkit/exit_status.hpp>

#include "http_script.hpp"
#include "loopback.hpp"

namespace envkit {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

TEST(HttpResponseHead, StatusVersionAndTrimmedFields) {
  auto h = parse_response_head("HTTP/1.0 201 Created\r\nContent-Length:  2 \r\nX-A:b\r\nbroken line\r\n");
  ASSERT_TRUE(h.ok()) << h.error().message;
  EXPECT_EQ(h->status, 201);
  EXPECT_EQ(h->minor_version, 0);
  EXPECT_EQ(h->status_line, "HTTP/1.0 201 Created");
  ASSERT_EQ(h->headers.size(), 2u);
  EXPECT_EQ(h->headers[0], (std::pair<std::string, std::string>{"Content-Length", "2"}));
  EXPECT_EQ(h->headers[1], (std::pair<std::string, std::string>{"X-A", "b"}));
  EXPECT_EQ(parse_response_head("HTTP/1.1 204")->status, 204);
}

TEST(HttpResponseHead, AnythingButAnHttp1StatusLineIsWrongProtocol) {
  for (const char* head : {"SSH-2.0-OpenSSH_9.2", "HTTP/2 200", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "",
                           "HTTP/1.x 200 OK", "http/1.1 200 OK"}) {
    auto h = parse_response_head(head);
    ASSERT_FALSE(h.ok()) << head;
    EXPECT_TRUE(is(h.error(), Failure::wrong_protocol)) << head;
  }
}

TEST(Dechunk, ChunksExtensionsAndWhatIsComplete) {
  EXPECT_EQ(dechunk("5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n"), "hello 0123456789");
  EXPECT_EQ(dechunk("5\r\nhel"), "hel");  // as far as it goes
  EXPECT_EQ(dechunk("zz\r\nhello\r\n"), "");
  EXPECT_EQ(dechunk(""), "");
}

HttpRequest request(std::string url, std::string method = "GET", std::string body = "") {
  HttpRequest r;
  r.url = std::move(url);
  r.method = std::move(method);
  r.body = std::move(body);
  return r;
}

TEST(HttpConnection, KeepsOneConnectionForManyRequests) {
  test::ScriptedHttpServer server;
  HttpConnection c(test::short_timeouts());
  for (int i = 0; i < 200; ++i) {
    auto r = c.perform(request(server.url("/len"), "POST", "{\"i\":" + std::to_string(i) + "}"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->status, 201);
    ASSERT_EQ(r->body, "[]");
  }
  EXPECT_EQ(server.connections, 1);
  EXPECT_EQ(server.requests, 200);
  auto missing = c.perform(request(server.url("/nothing")));
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body, "");
  EXPECT_EQ(server.connections, 1);
}

TEST(HttpConnection, ChunkedBodiesAndInformationalResponses) {
  test::ScriptedHttpServer server;
  HttpConnection c(test::short_timeouts());
  auto r = c.perform(request(server.url("/chunked")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "hello world");
  auto next = c.perform(request(server.url("/continue")));
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(next->status, 200);
  EXPECT_EQ(next->body, "done");
  EXPECT_EQ(server.connections, 1);  // the trailer was read to its end: the connection goes on
}

TEST(HttpConnection, ConnectionCloseAndBodiesToTheEndReconnectForTheNext) {
  test::ScriptedHttpServer server;
  HttpConnection c(test::short_timeouts());
  auto closing = c.perform(request(server.url("/close")));
  ASSERT_TRUE(closing.ok()) << closing.error().message;
  EXPECT_EQ(closing->body, "ok");
  auto eof = c.perform(request(server.url("/eof")));
  ASSERT_TRUE(eof.ok()) << eof.error().message;
  EXPECT_EQ(eof->body, "until the end");
  auto after = c.perform(request(server.url("/len")));
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(server.connections, 3);
  EXPECT_EQ(server.requests, 3);
}

// A keep-alive connection the server closed while idle is seen before sending: the request
// goes once, on a new connection, and is not lost or doubled.
TEST(HttpConnection, IdleConnectionClosedByTheServerIsReplacedBeforeSending) {
  test::ScriptedHttpServer server;
  HttpConnection c(test::short_timeouts());
  ASSERT_TRUE(c.perform(request(server.url("/idle"))).ok());
  for (auto end = Clock::now() + milliseconds(5000); server.closed < 1 && Clock::now() < end;) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(server.closed, 1);
  auto r = c.perform(request(server.url("/len"), "POST", "{}"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(server.connections, 2);
  EXPECT_EQ(server.requests, 2);
}

TEST(HttpConnection, SendsHostAgentLengthAndCredentialsButNotThePassword) {
  test::ScriptedHttpServer server;
  HttpConnection c(test::short_timeouts());
  std::string url = server.url("/echo?a=1%202#frag");
  url.insert(url.find("//") + 2, "user:s3cret@");
  auto req = request(url, "PUT", "body!");
  req.headers.emplace_back("Content-Type", "application/json");
  auto r = c.perform(req);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body.substr(0, r->body.find("\r\n")), "PUT /echo?a=1%202 HTTP/1.1");
  EXPECT_NE(r->body.find("\r\nHost: 127.0.0.1:"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("\r\nUser-Agent: envkit/"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("\r\nAuthorization: Basic dXNlcjpzM2NyZXQ=\r\n"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("\r\nContent-Type: application/json\r\n"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("\r\nContent-Length: 5\r\n\r\nbody!"), std::string::npos) << r->body;
  EXPECT_EQ(r->effective_url.find("s3cret"), std::string::npos);
}

TEST(HttpConnection, FailuresAreClassifiedAndBounded) {
  test::ScriptedHttpServer server;
  {
    HttpConnection c(test::short_timeouts());
    auto r = c.perform(request("http://127.0.0.1:" + std::to_string(test::closed_port()) + "/"));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(is(r.error(), Failure::connection_refused)) << r.error().message;
  }
  HttpConnection c(test::short_timeouts());
  auto dropped = c.perform(request(server.url("/drop"), "POST", "{}"));
  ASSERT_FALSE(dropped.ok());
  EXPECT_TRUE(is(dropped.error(), Failure::connection_lost)) << dropped.error().message;
  EXPECT_NE(dropped.error().message.find("POST http://127.0.0.1:"), std::string::npos) << dropped.error().message;
  auto garbage = c.perform(request(server.url("/garbage")));
  ASSERT_FALSE(garbage.ok());
  EXPECT_TRUE(is(garbage.error(), Failure::wrong_protocol)) << garbage.error().message;
  auto start = Clock::now();
  auto silent = c.perform(request(server.url("/silent")));
  ASSERT_FALSE(silent.ok());
  EXPECT_TRUE(is(silent.error(), Failure::io_timeout)) << silent.error().message;
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  HttpConnection small(test::short_timeouts(), 1000);
  auto big = small.perform(request(server.url("/big")));
  ASSERT_FALSE(big.ok());
  EXPECT_TRUE(is(big.error(), Failure::bad_data)) << big.error().message;
  auto bad = c.perform(request("ftp://127.0.0.1/x"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Exit::usage) << bad.error().message;
  // After all that, the same connection object still works.
  auto ok = c.perform(request(server.url("/len")));
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->status, 201);
}

TEST(HttpConnection, RequestTimeoutBoundsTheWholeRequest) {
  test::ScriptedHttpServer server;
  HttpConnection c(test::short_timeouts(milliseconds(300), milliseconds(5000)));
  auto req = request(server.url("/silent"));
  req.timeout = milliseconds(200);
  auto start = Clock::now();
  auto r = c.perform(req);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(is(r.error(), Failure::io_timeout)) << r.error().message;
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
}

}  // namespace
}  // namespace envkit
