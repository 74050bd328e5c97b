// Unit tests for envkit/http.hpp against a tiny HTTP/1.1 server on 127.0.0.1 in this process.
#include <envkit/http.hpp>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "loopback.hpp"

namespace envkit {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using test::closed_port;

int loopback_socket(bool listening, uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      (listening && ::listen(fd, 64) != 0)) {
    ADD_FAILURE() << "cannot set up a loopback socket";
  }
  port = ntohs(addr.sin_port);
  return fd;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;  // the client gave up (as it should past max_body_bytes)
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// One thread per connection, so concurrent requests really overlap. Every wait is bounded,
// and the destructor stops slow handlers early.
//   /ok  /missing (404)  /slow (3 s)  /delay (200 ms)  /big  /big-chunked (2 MiB)
//   /auth (echoes Authorization)  /echo (method, User-Agent, body)  /redirect (-> /ok)
class TestHttpServer {
 public:
  TestHttpServer() {
    listen_fd_ = loopback_socket(true, port_);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~TestHttpServer() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : handlers_) t.join();
    ::close(listen_fd_);
  }
  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  int peak_in_flight() const { return peak_; }

 private:
  void accept_loop() {
    for (int i = 0; i < 100000 && !stop_; ++i) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      handlers_.emplace_back([this, fd] {
        handle(fd);
        ::close(fd);
      });
    }
  }

  // Waits up to `d` unless the server is stopping; false when it is.
  bool wait(milliseconds d) {
    for (auto end = Clock::now() + d; Clock::now() < end;) {
      if (stop_) return false;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return true;
  }

  void handle(int fd) {
    std::string in;
    size_t head_end = std::string::npos;
    char buf[8192];
    for (int i = 0; i < 1000 && head_end == std::string::npos; ++i) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) return;
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
      head_end = in.find("\r\n\r\n");
    }
    if (head_end == std::string::npos) return;
    std::string head = in.substr(0, head_end);
    std::string body = in.substr(head_end + 4);
    std::string method = head.substr(0, head.find(' '));
    size_t path_start = head.find(' ') + 1;
    std::string path = head.substr(path_start, head.find(' ', path_start) - path_start);
    auto header = [&](std::string name) -> std::string {
      std::string lhead = lower(head);
      size_t at = lhead.find("\r\n" + name + ":");
      if (at == std::string::npos) return "";
      size_t start = at + name.size() + 3;
      while (start < head.size() && head[start] == ' ') ++start;
      return head.substr(start, head.find("\r\n", start) - start);
    };
    std::string length = header("content-length");
    size_t want = length.empty() ? 0 : std::stoul(length);
    for (int i = 0; i < 1000 && body.size() < want; ++i) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) return;
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      body.append(buf, static_cast<size_t>(n));
    }

    int now = ++in_flight_;
    for (int peak = peak_; now > peak && !peak_.compare_exchange_weak(peak, now);) {
    }
    respond(fd, method, path, body, header("authorization"), header("user-agent"));
  }

  void respond(int fd, const std::string& method, const std::string& path, const std::string& body,
               const std::string& auth, const std::string& agent) {
    // The request stops counting as in flight before its reply goes out: once the client
    // has the reply it may start the next request, which must not overlap this one's count.
    bool released = false;
    auto release = [&] {
      if (!released) --in_flight_;
      released = true;
    };
    struct ReleaseOnReturn {
      decltype(release)& f;
      ~ReleaseOnReturn() { f(); }
    } guard{release};
    auto reply = [&](int status, std::string_view reason, std::string_view text,
                     std::string_view extra = "") {
      release();
      send_all(fd, "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                       "\r\nContent-Length: " + std::to_string(text.size()) +
                       "\r\nContent-Type: text/plain\r\nX-Test: yes\r\nConnection: close\r\n" +
                       std::string(extra) + "\r\n" + std::string(text));
    };
    if (path == "/ok") {
      reply(200, "OK", "hello");
    } else if (path == "/missing") {
      reply(404, "Not Found", "not here");
    } else if (path == "/slow") {
      if (wait(milliseconds(3000))) reply(200, "OK", "late");
    } else if (path == "/delay") {
      if (wait(milliseconds(200))) reply(200, "OK", "done");
    } else if (path == "/big") {
      reply(200, "OK", std::string(2 << 20, 'b'));
    } else if (path == "/big-chunked") {
      if (!send_all(fd,
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")) {
        return;
      }
      std::string chunk(64 << 10, 'c');
      for (int i = 0; i < 32; ++i) {
        if (!send_all(fd, "10000\r\n" + chunk + "\r\n")) return;
      }
      send_all(fd, "0\r\n\r\n");
    } else if (path == "/auth") {
      reply(200, "OK", auth);
    } else if (path == "/echo") {
      reply(200, "OK", method + "\n" + agent + "\n" + body);
    } else if (path == "/redirect") {
      reply(302, "Found", "", "Location: /ok\r\n");
    } else {
      reply(500, "Internal Server Error", "no route");
    }
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<int> peak_{0};
  std::thread acceptor_;
  std::vector<std::thread> handlers_;  // touched only by the acceptor until it is joined
};

HttpClient make_client(ConnectionOptions o = {}, HttpClientOptions c = {}) {
  auto client = HttpClient::create(o, std::move(c));
  EXPECT_TRUE(client.ok()) << client.error().message;
  return std::move(*client);
}

HttpRequest get(std::string url) {
  HttpRequest r;
  r.url = std::move(url);
  return r;
}

TEST(Http, GetReturnsStatusBodyHeadersAndTimings) {
  TestHttpServer server;
  HttpClient client = make_client();
  auto r = client.perform(get(server.url("/ok")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->header("x-test"), "yes");
  EXPECT_EQ(r->header("CONTENT-TYPE"), "text/plain");
  EXPECT_EQ(r->header("absent"), std::nullopt);
  EXPECT_EQ(r->effective_url, server.url("/ok"));
  EXPECT_GT(r->timings.total.count(), 0);
  EXPECT_LE(r->timings.connect, r->timings.first_byte);
  EXPECT_LE(r->timings.first_byte, r->timings.total);
  EXPECT_EQ(r->timings.tls_handshake.count(), 0);
}

TEST(Http, ErrorStatusIsAResponseNotAnError) {
  TestHttpServer server;
  HttpClient client = make_client();
  auto r = client.perform(get(server.url("/missing")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "not here");
}

TEST(Http, RequestTimeoutBoundsASlowResponse) {
  TestHttpServer server;
  HttpClient client = make_client();
  HttpRequest req = get(server.url("/slow"));
  req.timeout = milliseconds(300);
  auto start = Clock::now();
  auto r = client.perform(req);
  auto took = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::temp_fail) << r.error().message;
  EXPECT_NE(r.error().message.find("GET " + server.url("/slow")), std::string::npos)
      << r.error().message;
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(1500));
}

TEST(Http, IoTimeoutBoundsAServerThatNeverAnswers) {
  uint16_t port = 0;
  int silent = loopback_socket(true, port);  // accepts (in the kernel), never answers
  ConnectionOptions o;
  o.connect_timeout = milliseconds(300);
  o.io_timeout = milliseconds(300);
  HttpClient client = make_client(o);
  auto start = Clock::now();
  auto r = client.perform(get("http://127.0.0.1:" + std::to_string(port) + "/"));
  auto took = Clock::now() - start;
  ::close(silent);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::temp_fail) << r.error().message;
  // libcurl's stall check counts whole seconds: 300 ms becomes 1 s (checked once a second).
  EXPECT_LT(took, milliseconds(2500));
}

TEST(Http, ClosedPortIsUnavailableAndNeverShowsThePassword) {
  HttpClient client = make_client();
  std::string port = std::to_string(closed_port());
  auto start = Clock::now();
  auto r = client.perform(get("http://alice:hunter2@127.0.0.1:" + port + "/x"));
  ASSERT_FALSE(r.ok());
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
  EXPECT_EQ(r.error().code, Exit::unavailable);
  EXPECT_NE(r.error().message.find("GET http://alice:***@127.0.0.1:" + port + "/x failed"),
            std::string::npos)
      << r.error().message;
  EXPECT_EQ(r.error().message.find("hunter2"), std::string::npos) << r.error().message;
}

TEST(Http, BodyOverTheLimitIsAnErrorNotACrash) {
  TestHttpServer server;
  HttpClientOptions c;
  c.max_body_bytes = 1 << 20;
  HttpClient client = make_client({}, c);
  for (const char* path : {"/big", "/big-chunked"}) {  // announced length, and not announced
    auto r = client.perform(get(server.url(path)));
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.error().code, Exit::data) << r.error().message;
    EXPECT_NE(r.error().message.find("1048576-byte limit"), std::string::npos) << r.error().message;
  }
  HttpRequest head = get(server.url("/big"));
  head.method = "HEAD";  // announces 2 MiB but sends none of it: not over the limit
  auto headers_only = client.perform(head);
  ASSERT_TRUE(headers_only.ok()) << headers_only.error().message;
  EXPECT_EQ(headers_only->status, 200);
  EXPECT_EQ(headers_only->header("content-length"), std::to_string(2 << 20));
  EXPECT_TRUE(headers_only->body.empty());

  c.max_body_bytes = 4 << 20;
  HttpClient roomy = make_client({}, c);
  auto r = roomy.perform(get(server.url("/big-chunked")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body.size(), size_t{2} << 20);
}

TEST(Http, PerformAllOverlapsRequests) {
  TestHttpServer server;
  HttpClient client = make_client();
  std::vector<HttpRequest> requests(8, get(server.url("/delay")));
  auto start = Clock::now();
  auto results = client.perform_all(requests, 8);
  auto took = Clock::now() - start;
  ASSERT_TRUE(results.ok()) << results.error().message;
  ASSERT_EQ(results->size(), 8u);
  for (const auto& r : *results) {
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "done");
  }
  EXPECT_LT(took, milliseconds(800));  // one after another would take 1600 ms
  EXPECT_GT(server.peak_in_flight(), 1);
}

TEST(Http, PerformAllRespectsTheConcurrencyLimit) {
  TestHttpServer server;
  HttpClient client = make_client();
  std::vector<HttpRequest> requests(4, get(server.url("/delay")));
  auto start = Clock::now();
  auto results = client.perform_all(requests, 2);
  auto took = Clock::now() - start;
  ASSERT_TRUE(results.ok()) << results.error().message;
  for (const auto& r : *results) EXPECT_TRUE(r.ok());
  EXPECT_GE(took, milliseconds(400));  // two rounds of 200 ms
  EXPECT_LE(server.peak_in_flight(), 2);
}

TEST(Http, PerformAllKeepsOrderAndFailsRequestsOneByOne) {
  TestHttpServer server;
  HttpClient client = make_client();
  HttpRequest slow = get(server.url("/slow"));
  slow.timeout = milliseconds(200);
  std::vector<HttpRequest> requests{
      get(server.url("/ok")),
      get(server.url("/missing")),
      get("http://127.0.0.1:" + std::to_string(closed_port()) + "/"),
      get("ftp://127.0.0.1/file"),
      slow,
      get(server.url("/ok")),
  };
  auto results = client.perform_all(requests, 3);
  ASSERT_TRUE(results.ok()) << results.error().message;
  auto& r = *results;
  ASSERT_EQ(r.size(), requests.size());
  ASSERT_TRUE(r[0].ok());
  EXPECT_EQ(r[0]->body, "hello");
  ASSERT_TRUE(r[1].ok());
  EXPECT_EQ(r[1]->status, 404);
  ASSERT_FALSE(r[2].ok());
  EXPECT_EQ(r[2].error().code, Exit::unavailable);
  ASSERT_FALSE(r[3].ok());
  EXPECT_EQ(r[3].error().code, Exit::usage) << r[3].error().message;
  ASSERT_FALSE(r[4].ok());
  EXPECT_EQ(r[4].error().code, Exit::temp_fail);
  ASSERT_TRUE(r[5].ok());
  EXPECT_EQ(r[5]->status, 200);
}

TEST(Http, BasicAuthComesFromTheUrlAndStaysOutOfEffectiveUrl) {
  TestHttpServer server;
  HttpClient client = make_client();
  std::string url = server.url("/auth");
  url.insert(url.find("//") + 2, "alice:s3cr%40t@");
  auto r = client.perform(get(url));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "Basic YWxpY2U6czNjckB0");  // base64("alice:s3cr@t")
  EXPECT_EQ(r->effective_url.find("s3cr"), std::string::npos) << r->effective_url;
}

TEST(Http, PostSendsBodyHeadersAndUserAgent) {
  TestHttpServer server;
  HttpClient client = make_client();
  HttpRequest req = get(server.url("/echo"));
  req.method = "POST";
  req.body = std::string("{\"city\":\"Bogotá\"}\0tail", 23);
  req.headers.emplace_back("Content-Type", "application/json");
  auto r = client.perform(req);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "POST\nenvkit/" ENVKIT_VERSION "\n" + req.body);

  req.method = "PUT";
  r = client.perform(req);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body.substr(0, 4), "PUT\n");
}

TEST(Http, RedirectsAreFollowedOnlyWhenAsked) {
  TestHttpServer server;
  HttpClient plain = make_client();
  auto r = plain.perform(get(server.url("/redirect")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(r->header("location"), "/ok");

  HttpClientOptions c;
  c.follow_redirects = true;
  HttpClient following = make_client({}, c);
  r = following.perform(get(server.url("/redirect")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->effective_url, server.url("/ok"));
  EXPECT_EQ(r->header("location"), std::nullopt);  // headers are the last response's
}

}  // namespace
}  // namespace envkit
