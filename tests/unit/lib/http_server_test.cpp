// Unit tests for envkit/http_server.hpp: a server on 127.0.0.1 in this process, driven by the
// project's HTTP client and by raw sockets (to stall, to half-send, to reuse one connection).
#include <envkit/http_server.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <envkit/http.hpp>
#include <envkit/socket.hpp>

#include "loopback.hpp"

namespace envkit {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

/// A flag a test raises and handlers wait on, every wait bounded.
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }
  bool wait(milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// Waits until `done()` holds, at most `timeout`; true if it did.
template <class F>
bool eventually(F done, milliseconds timeout = milliseconds(5000)) {
  auto until = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

struct RawResponse {
  int status = 0;
  std::string head;  ///< status line and headers, lower-cased
  std::string body;
};

/// An HTTP/1.1 client on one raw connection: sends what it is given, reads responses one at
/// a time (Content-Length bodies, as the server sends them).
class RawClient {
 public:
  static RawClient connect(uint16_t port) {
    auto stream = Stream::connect("127.0.0.1", port, deadline_in(milliseconds(2000)));
    EXPECT_TRUE(stream.ok()) << (stream ? "" : stream.error().message);
    return RawClient(std::move(*stream));
  }

  bool send(std::string_view data) {
    return stream_.write_all(data, deadline_in(milliseconds(2000))).ok();
  }

  /// The next response, or an Error when the server closed or the deadline passed first.
  Result<RawResponse> read(milliseconds timeout = milliseconds(5000)) {
    auto deadline = deadline_in(timeout);
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (auto st = fill(deadline); !st) return st.error();
    }
    RawResponse response;
    response.head = buffer_.substr(0, end);
    for (char& c : response.head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    buffer_.erase(0, end + 4);
    response.status = std::stoi(response.head.substr(9, 3));
    size_t length = 0;
    if (auto at = response.head.find("content-length:"); at != std::string::npos) {
      length = std::stoul(response.head.substr(at + 15));
    }
    while (buffer_.size() < length) {
      if (auto st = fill(deadline); !st) return st.error();
    }
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  /// True once the server has closed the connection (end of stream or reset) within `timeout`.
  bool closed_within(milliseconds timeout) {
    auto deadline = deadline_in(timeout);
    for (;;) {
      char byte[256];
      auto n = stream_.read_some(byte, sizeof byte, deadline);
      if (!n) return n.error().code != Exit::temp_fail;  // reset: closed; timeout: not
      if (*n == 0) return true;
    }
  }

 private:
  explicit RawClient(Stream stream) : stream_(std::move(stream)) {}

  Status fill(Deadline deadline) {
    char chunk[4096];
    auto n = stream_.read_some(chunk, sizeof chunk, deadline);
    if (!n) return n.error();
    if (*n == 0) return Error{Exit::unavailable, "closed by the server"};
    buffer_.append(chunk, *n);
    return {};
  }

  Stream stream_;
  std::string buffer_;
};

// A server on 127.0.0.1, any port; Handler is HttpHandler or HttpDeferredHandler.
template <class Handler = HttpHandler>
HttpServer start_server(Handler handler, HttpServerOptions options = {}) {
  auto server = HttpServer::start("127.0.0.1", 0, std::move(handler), options);
  if (!server) {
    ADD_FAILURE() << server.error().message;
    std::abort();
  }
  return std::move(*server);
}

HttpReply echo(const HttpServerRequest& request) {
  std::string text = request.method + " " + request.path;
  for (const auto& [k, v] : request.query) text += " " + k + "=" + v;
  text += " body=" + request.body;
  if (auto type = request.header("content-type")) text += " type=" + std::string(*type);
  return HttpReply::text(request.method == "POST" ? 202 : 200, text + "\n");
}

HttpClient client() {
  ConnectionOptions options;
  options.connect_timeout = milliseconds(2000);
  options.io_timeout = milliseconds(5000);
  auto c = HttpClient::create(options);
  if (!c) {
    ADD_FAILURE() << c.error().message;
    std::abort();
  }
  return std::move(*c);
}

std::string url(const HttpServer& server, std::string_view path) {
  return "http://127.0.0.1:" + std::to_string(server.port()) + std::string(path);
}

TEST(HttpServer, AnswersGetAndPostThroughTheHttpClient) {
  HttpServer server = start_server(echo);
  ASSERT_NE(server.port(), 0);
  EXPECT_EQ(server.address(), "127.0.0.1:" + std::to_string(server.port()));
  HttpClient http = client();

  auto got = http.perform({.method = "GET", .url = url(server, "/a%20b?x=1&y=two%20words"), .headers = {}, .body = {}, .timeout = {}});
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "GET /a b x=1 y=two words body=\n");
  EXPECT_EQ(got->header("content-type").value_or(""), "text/plain; charset=utf-8");

  auto posted = http.perform({.method = "POST", .url = url(server, "/ingest"),
                              .headers = {{"Content-Type", "application/x-ndjson"}},
                              .body = "{\"id\":1}\n{\"id\":2}\n", .timeout = {}});
  ASSERT_TRUE(posted.ok()) << posted.error().message;
  EXPECT_EQ(posted->status, 202);
  EXPECT_EQ(posted->body, "POST /ingest body={\"id\":1}\n{\"id\":2}\n type=application/x-ndjson\n");
}

TEST(HttpServer, StartsFromAUrlAndRefusesOtherSchemes) {
  uint16_t port = test::closed_port();
  auto parsed = parse_url("http://127.0.0.1:" + std::to_string(port) + "/ignored");
  ASSERT_TRUE(parsed.ok());
  auto server = HttpServer::start(*parsed, echo);
  ASSERT_TRUE(server.ok()) << server.error().message;
  EXPECT_EQ(server->port(), port);

  auto other = HttpServer::start(*parse_url("redis://127.0.0.1:6379"), echo);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, Exit::usage);
}

TEST(HttpServer, KeepsAConnectionAliveForTwoRequests) {
  std::mutex mutex;
  std::vector<std::string> peers;
  HttpServer server = start_server([&](const HttpServerRequest& request) {
    std::lock_guard lock(mutex);
    peers.push_back(request.peer);
    return HttpReply::text(200, "n=" + std::to_string(peers.size()) + "\n");
  });
  RawClient raw = RawClient::connect(server.port());
  ASSERT_TRUE(raw.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto first = raw.read();
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_TRUE(raw.send("POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"));
  auto second = raw.read();
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(first->body, "n=1\n");
  EXPECT_EQ(second->body, "n=2\n");
  EXPECT_EQ(second->head.find("connection: close"), std::string::npos);
  std::lock_guard lock(mutex);
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0], peers[1]);  // the same client port: one connection
}

TEST(HttpServer, RefusesAnOversizedBodyWith413BeforeReadingIt) {
  std::atomic<int> calls{0};
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  HttpServer server = start_server(
      [&](const HttpServerRequest& request) {
        ++calls;
        return HttpReply::text(202, std::to_string(request.body.size()) + "\n");
      },
      options);

  // The client announces a megabyte and waits for "100 Continue" before sending any of it:
  // the answer must come without a byte of the body.
  RawClient raw = RawClient::connect(server.port());
  ASSERT_TRUE(raw.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n"
                       "Expect: 100-continue\r\n\r\n"));
  auto refused = raw.read();
  ASSERT_TRUE(refused.ok()) << refused.error().message;
  EXPECT_EQ(refused->status, 413);
  EXPECT_NE(refused->body.find("over the limit of 1024 bytes"), std::string::npos) << refused->body;
  EXPECT_TRUE(raw.closed_within(milliseconds(2000)));

  // At the limit is fine.
  HttpClient http = client();
  auto at_limit = http.perform({.method = "POST", .url = url(server, "/ingest"), .headers = {},
                                .body = std::string(1024, 'x'), .timeout = {}});
  ASSERT_TRUE(at_limit.ok()) << at_limit.error().message;
  EXPECT_EQ(at_limit->status, 202);
  EXPECT_EQ(at_limit->body, "1024\n");

  // A chunked body has no length to check up front: it is cut off once it passes the limit.
  RawClient chunked = RawClient::connect(server.port());
  std::string chunk(800, 'y');
  ASSERT_TRUE(chunked.send("POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "320\r\n" + chunk + "\r\n320\r\n" + chunk + "\r\n"));
  auto cut = chunked.read(milliseconds(3000));
  if (cut.ok()) {
    EXPECT_EQ(cut->status, 413);
  }  // else the connection was dropped: also a refusal
  EXPECT_TRUE(chunked.closed_within(milliseconds(2000)));
  EXPECT_EQ(calls.load(), 1);  // only the request at the limit reached the handler
}

TEST(HttpServer, RefusesHeadersOverTheLimitWith431) {
  std::atomic<int> calls{0};
  HttpServerOptions options;
  options.max_header_bytes = 8192;
  HttpServer server = start_server(
      [&](const HttpServerRequest&) {
        ++calls;
        return HttpReply::text(200, "ok\n");
      },
      options);
  RawClient raw = RawClient::connect(server.port());
  ASSERT_TRUE(raw.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n"));
  auto refused = raw.read();
  ASSERT_TRUE(refused.ok()) << refused.error().message;
  EXPECT_EQ(refused->status, 431);
  EXPECT_TRUE(raw.closed_within(milliseconds(2000)));
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServer, CutsOffAStalledClientWithinTheReadTimeoutWhileServingOthers) {
  HttpServerOptions options;
  options.read_timeout = milliseconds(500);
  options.idle_timeout = milliseconds(30000);  // so that only the read timeout can cut it
  options.workers = 1;
  HttpServer server = start_server(echo, options);

  RawClient stalled = RawClient::connect(server.port());
  auto sent_at = Clock::now();
  ASSERT_TRUE(stalled.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf of"));

  // Meanwhile another client is served, on the only worker.
  HttpClient http = client();
  for (int i = 0; i < 3; ++i) {
    auto got = http.perform({.method = "GET", .url = url(server, "/meanwhile"), .headers = {}, .body = {}, .timeout = milliseconds(2000)});
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->status, 200);
  }
  EXPECT_TRUE(stalled.closed_within(milliseconds(3000)));
  auto took = Clock::now() - sent_at;
  EXPECT_GE(took, milliseconds(400));
  EXPECT_LT(took, milliseconds(2500));
}

TEST(HttpServer, ClosesAConnectionIdleLongerThanTheIdleTimeout) {
  HttpServerOptions options;
  options.idle_timeout = milliseconds(1000);  // libmicrohttpd's smallest: whole seconds
  options.read_timeout = milliseconds(60000);
  HttpServer server = start_server(echo, options);
  RawClient raw = RawClient::connect(server.port());
  ASSERT_TRUE(raw.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(raw.read().ok());
  auto idle_from = Clock::now();
  EXPECT_TRUE(raw.closed_within(milliseconds(4000)));
  EXPECT_GE(Clock::now() - idle_from, milliseconds(900));
}

TEST(HttpServer, ASlowHandlerHoldsOneWorkerNotTheOtherConnections) {
  Gate release;
  std::atomic<bool> slow_entered{false};
  HttpServerOptions options;
  options.workers = 2;
  HttpServer server = start_server(
      [&](const HttpServerRequest& request) {
        if (request.path == "/slow") {
          slow_entered = true;
          release.wait(milliseconds(10000));
        }
        return HttpReply::text(200, request.path + "\n");
      },
      options);
  RawClient slow = RawClient::connect(server.port());
  ASSERT_TRUE(slow.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(eventually([&] { return slow_entered.load(); }));

  HttpClient http = client();
  for (int i = 0; i < 5; ++i) {
    auto got = http.perform({.method = "GET", .url = url(server, "/fast"), .headers = {}, .body = {}, .timeout = milliseconds(2000)});
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->body, "/fast\n");
  }
  release.open();
  auto answered = slow.read();
  ASSERT_TRUE(answered.ok()) << answered.error().message;
  EXPECT_EQ(answered->body, "/slow\n");
}

TEST(HttpServer, StopLetsARequestInFlightFinishAndRefusesNewConnections) {
  Gate release;
  std::atomic<bool> entered{false};
  HttpServer server = start_server([&](const HttpServerRequest&) {
    entered = true;
    release.wait(milliseconds(10000));
    return HttpReply::text(202, "done\n");
  });
  uint16_t port = server.port();
  RawClient in_flight = RawClient::connect(port);
  ASSERT_TRUE(in_flight.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"));
  ASSERT_TRUE(eventually([&] { return entered.load(); }));

  std::atomic<bool> stopped{false};
  std::jthread stopper([&] {
    server.stop(milliseconds(10000));
    stopped = true;
  });
  // While stop() waits for the request, nobody new gets in.
  EXPECT_TRUE(eventually([&] {
    return !Stream::connect("127.0.0.1", port, deadline_in(milliseconds(500))).ok();
  }));
  EXPECT_FALSE(stopped.load());

  release.open();
  auto answered = in_flight.read();
  ASSERT_TRUE(answered.ok()) << answered.error().message;
  EXPECT_EQ(answered->status, 202);
  EXPECT_EQ(answered->body, "done\n");
  EXPECT_NE(answered->head.find("connection: close"), std::string::npos) << answered->head;
  stopper.join();
  EXPECT_TRUE(stopped.load());
  EXPECT_TRUE(in_flight.closed_within(milliseconds(2000)));
}

TEST(HttpServer, StopPastItsDeadlineAnswers503AndWaitsForTheHandler) {
  Gate release;
  std::atomic<bool> entered{false};
  std::atomic<bool> returned{false};
  HttpServer server = start_server([&](const HttpServerRequest&) {
    entered = true;
    release.wait(milliseconds(10000));
    returned = true;
    return HttpReply::text(200, "too late\n");
  });
  RawClient in_flight = RawClient::connect(server.port());
  ASSERT_TRUE(in_flight.send("GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(eventually([&] { return entered.load(); }));

  std::jthread stopper([&] { server.stop(milliseconds(200)); });
  auto answered = in_flight.read();
  ASSERT_TRUE(answered.ok()) << answered.error().message;
  EXPECT_EQ(answered->status, 503);
  EXPECT_FALSE(returned.load());
  release.open();
  stopper.join();
  EXPECT_TRUE(returned.load());  // stop() returned only after the handler did
}

TEST(HttpServer, APortInUseIsAnErrorNamingTheAddress) {
  test::LoopbackSocket taken(true);
  auto server = HttpServer::start("127.0.0.1", taken.port(), echo);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code, Exit::unavailable);
  EXPECT_NE(server.error().message.find("127.0.0.1:" + std::to_string(taken.port())), std::string::npos)
      << server.error().message;
  EXPECT_NE(server.error().message.find("in use"), std::string::npos) << server.error().message;

  auto foreign = HttpServer::start("192.0.2.1", 0, echo);  // TEST-NET-1: not this host's
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code, Exit::config) << foreign.error().message;
}

TEST(HttpServer, AnswersManyConcurrentClients) {
  std::atomic<int> calls{0};
  HttpServerOptions options;
  options.workers = 4;
  options.io_threads = 2;
  HttpServer server = start_server(
      [&](const HttpServerRequest& request) {
        ++calls;
        return HttpReply::text(202, request.body);
      },
      options);
  constexpr int kClients = 32;
  constexpr int kRequests = 20;
  std::vector<std::future<int>> answered;
  for (int c = 0; c < kClients; ++c) {
    answered.push_back(std::async(std::launch::async, [&, c] {
      HttpClient http = client();
      int ok = 0;
      for (int i = 0; i < kRequests; ++i) {
        std::string body = "client " + std::to_string(c) + " request " + std::to_string(i) + "\n";
        auto got = http.perform({.method = "POST", .url = url(server, "/ingest"), .headers = {}, .body = body, .timeout = milliseconds(10000)});
        if (got.ok() && got->status == 202 && got->body == body) ++ok;
      }
      return ok;
    }));
  }
  int total = 0;
  for (auto& f : answered) total += f.get();
  EXPECT_EQ(total, kClients * kRequests);
  EXPECT_EQ(calls.load(), kClients * kRequests);
}

TEST(HttpServer, AHandlerThatThrowsIsA500) {
  HttpServer server = start_server([](const HttpServerRequest&) -> HttpReply {
    throw std::runtime_error("boom");
  });
  HttpClient http = client();
  auto got = http.perform({.method = "GET", .url = url(server, "/"), .headers = {}, .body = {}, .timeout = {}});
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->status, 500);
}

// Deferred handlers: the request is answered by whoever holds its responder, from any thread.
// Responders are kept here, as HTTP ingest keeps them with its records.
class Responders {
 public:
  void keep(std::string path, HttpResponder r) {
    {
      std::lock_guard lock(mutex_);
      kept_.emplace_back(std::move(path), std::move(r));
    }
    cv_.notify_all();
  }
  // The responder kept for `path`, waiting for it at most 5 s.
  std::optional<HttpResponder> take(const std::string& path) {
    std::unique_lock lock(mutex_);
    std::optional<HttpResponder> found;
    cv_.wait_for(lock, milliseconds(5000), [&] {
      for (auto it = kept_.begin(); it != kept_.end(); ++it) {
        if (it->first == path) {
          found = std::move(it->second);
          kept_.erase(it);
          return true;
        }
      }
      return false;
    });
    return found;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, HttpResponder>> kept_;
};

HttpServer start_deferred(HttpDeferredHandler handler, HttpServerOptions options = {}) {
  return start_server<HttpDeferredHandler>(std::move(handler), options);
}

TEST(HttpServer, ADeferredRequestIsAnsweredByItsResponderFromAnotherThread) {
  Responders kept;
  HttpServer server = start_deferred([&](const HttpServerRequest& r, HttpResponder responder) -> std::optional<HttpReply> {
    if (r.path == "/refused") return HttpReply::text(400, "refused now\n");
    if (r.path == "/during") {
      // Answered before the handler returns, as when the work finishes at once.
      std::thread([&] { responder.reply(HttpReply::text(201, "during " + r.body + "\n")); }).join();
      return std::nullopt;
    }
    kept.keep(r.path, std::move(responder));
    return std::nullopt;
  });
  HttpClient http = client();
  auto refused = http.perform({.method = "POST", .url = url(server, "/refused"), .headers = {}, .body = "x", .timeout = {}});
  ASSERT_TRUE(refused.ok()) << refused.error().message;
  EXPECT_EQ(refused->status, 400);
  auto during = http.perform({.method = "POST", .url = url(server, "/during"), .headers = {}, .body = "x", .timeout = {}});
  ASSERT_TRUE(during.ok()) << during.error().message;
  EXPECT_EQ(during->status, 201);
  EXPECT_EQ(during->body, "during x\n");

  // Later, from another thread; a second reply is dropped. One body small enough for the
  // network thread, one that goes to a worker: both wait on their responder alike.
  for (size_t size : {size_t{10}, HttpServer::kInlineBodyBytes + 1}) {
    std::string path = "/later" + std::to_string(size);
    auto reply = std::async(std::launch::async, [&] {
      HttpClient c = client();
      return c.perform({.method = "POST", .url = url(server, path), .headers = {}, .body = std::string(size, 'b'), .timeout = {}});
    });
    auto responder = kept.take(path);
    ASSERT_TRUE(responder.has_value()) << path;
    EXPECT_EQ(reply.wait_for(milliseconds(100)), std::future_status::timeout) << "answered before its responder";
    std::thread([&] { responder->reply(HttpReply::text(202, "later\n")); }).join();
    responder->reply(HttpReply::text(500, "twice\n"));
    auto got = reply.get();
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->status, 202) << path;
    EXPECT_EQ(got->body, "later\n");
  }
}

TEST(HttpServer, ADeferredRequestNotAnsweredWithinReplyWithinIs503AndItsLateReplyDropped) {
  Responders kept;
  HttpServerOptions options;
  options.reply_within = milliseconds(300);
  HttpServer server = start_deferred([&](const HttpServerRequest& r, HttpResponder responder) -> std::optional<HttpReply> {
    kept.keep(r.path, std::move(responder));
    return std::nullopt;
  }, options);
  HttpClient http = client();
  auto started = Clock::now();
  auto got = http.perform({.method = "GET", .url = url(server, "/slow"), .headers = {}, .body = {}, .timeout = {}});
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_GE(Clock::now() - started, milliseconds(300));
  EXPECT_EQ(got->status, 503);
  EXPECT_EQ(got->header("Retry-After").value_or(""), "1");
  EXPECT_EQ(got->body, "no answer within 300 ms; try again\n");
  auto responder = kept.take("/slow");
  ASSERT_TRUE(responder.has_value());
  responder->reply(HttpReply::text(202, "too late\n"));  // dropped, no harm
  // The connection still serves the next request.
  auto next = http.perform({.method = "GET", .url = url(server, "/next"), .headers = {}, .body = {}, .timeout = {}});
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(next->status, 503);
}

TEST(HttpServer, StopAnswersAWaitingDeferredRequestAndItsResponderOutlivesTheServer) {
  Responders kept;
  std::optional<HttpResponder> held;
  {
    HttpServer server = start_deferred([&](const HttpServerRequest& r, HttpResponder responder) -> std::optional<HttpReply> {
      kept.keep(r.path, std::move(responder));
      return std::nullopt;
    });
    RawClient in_flight = RawClient::connect(server.port());
    ASSERT_TRUE(in_flight.send("GET /waiting HTTP/1.1\r\nHost: x\r\n\r\n"));
    held = kept.take("/waiting");
    ASSERT_TRUE(held.has_value());
    std::jthread stopper([&] { server.stop(milliseconds(200)); });
    auto answered = in_flight.read();
    ASSERT_TRUE(answered.ok()) << answered.error().message;
    EXPECT_EQ(answered->status, 503);
  }
  held->reply(HttpReply::text(202, "the server is gone\n"));  // a no-op, not a use after free
}

}  // namespace
}  // namespace envkit
