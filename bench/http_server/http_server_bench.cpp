// The candidate HTTP server libraries, each as the smallest server bench/http_server/run drives
// with wrk: POST /ingest (any small body, read whole) answers 202, GET / answers 200.
//
// Usage: envkit-bench-http-server LIBRARY [--threads N]
//   LIBRARY: mhd (libmicrohttpd, epoll, a pool of N polling threads)
//            mhd-tpc (libmicrohttpd, a thread per connection)
//            httplib (cpp-httplib, a pool of N threads, each serving one connection at a time)
//            beast (Boost.Beast on Asio, one io_context run by N threads)
//            evhttp (libevent's evhttp, N event bases accepting from one listening socket)
//            envkit (envkit::HttpServer: libmicrohttpd with N epoll threads, handlers on a
//                    pool of N workers; what the commands get)
//            envkit-count (the same, counting the records POSTed to /ingest; GET /_count
//                    answers the total: a receiver for bench/sensor-push's open loop)
// Listens on 127.0.0.1, port picked by the kernel, prints "port N" on stdout once it is
// accepting, and serves until SIGTERM or SIGINT.
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/buffer.h>
#include <event2/thread.h>
#include <httplib.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <envkit/http_server.hpp>

namespace {

constexpr std::string_view kAccepted = "accepted\n";
constexpr std::string_view kOk = "ok\n";

void announce(unsigned port) {
  std::printf("port %u\n", port);
  std::fflush(stdout);
}

// Blocks until SIGTERM or SIGINT (both blocked in every thread, so only sigwait sees them).
void wait_for_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
}

sockaddr_in loopback(unsigned short port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// --- libmicrohttpd -----------------------------------------------------------------------

MHD_Result mhd_answer(void*, MHD_Connection* connection, const char* url, const char* method,
                      const char*, const char*, size_t* upload_size, void** state) {
  static int started;
  if (*state == nullptr) {  // headers only so far: say we will take the body
    *state = &started;
    return MHD_YES;
  }
  if (*upload_size != 0) {  // a piece of the body: consume it
    *upload_size = 0;
    return MHD_YES;
  }
  bool post = std::strcmp(method, "POST") == 0 && std::strcmp(url, "/ingest") == 0;
  std::string_view text = post ? kAccepted : kOk;
  MHD_Response* response = MHD_create_response_from_buffer(
      text.size(), const_cast<char*>(text.data()), MHD_RESPMEM_PERSISTENT);
  MHD_Result queued = MHD_queue_response(connection, post ? 202 : 200, response);
  MHD_destroy_response(response);
  return queued;
}

int run_mhd(unsigned threads, bool thread_per_connection) {
  sockaddr_in addr = loopback(0);
  unsigned flags = MHD_USE_ERROR_LOG;
  flags |= thread_per_connection ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL
                                 : MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
  MHD_Daemon* daemon =
      thread_per_connection
          ? MHD_start_daemon(flags, 0, nullptr, nullptr, mhd_answer, nullptr,
                             MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_END)
          : MHD_start_daemon(flags, 0, nullptr, nullptr, mhd_answer, nullptr,
                             MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_THREAD_POOL_SIZE, threads,
                             MHD_OPTION_END);
  if (daemon == nullptr) {
    std::fprintf(stderr, "mhd: cannot start\n");
    return 1;
  }
  announce(MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT)->port);
  wait_for_signal();
  MHD_stop_daemon(daemon);
  return 0;
}

// --- cpp-httplib -------------------------------------------------------------------------

int run_httplib(unsigned threads) {
  httplib::Server server;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.Post("/ingest", [](const httplib::Request&, httplib::Response& res) {
    res.status = 202;
    res.set_content(std::string(kAccepted), "text/plain");
  });
  server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(kOk), "text/plain");
  });
  // Its default closes a keep-alive connection after 5 requests; wrk's connections would
  // then be measuring reconnects. Keep them open as every other candidate does.
  server.set_keep_alive_max_count(1000000);
  // Its default leaves Nagle's algorithm on, and it writes the headers and the body in two
  // calls: each response then waits for the client's delayed ACK (~40 ms, 330 req/s here).
  server.set_tcp_nodelay(true);
  int port = server.bind_to_any_port("127.0.0.1");
  if (port < 0) {
    std::fprintf(stderr, "httplib: cannot bind\n");
    return 1;
  }
  std::thread listener([&] { server.listen_after_bind(); });
  // Bound and listening already: connections wait in the backlog until the loop runs.
  announce(static_cast<unsigned>(port));
  wait_for_signal();
  server.stop();
  listener.join();
  return 0;
}

// --- Boost.Beast ---------------------------------------------------------------------------

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class BeastSession : public std::enable_shared_from_this<BeastSession> {
 public:
  explicit BeastSession(tcp::socket socket) : stream_(std::move(socket)) {}
  void start() { read(); }

 private:
  void read() {
    request_ = {};
    http::async_read(stream_, buffer_, request_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (!ec) self->answer();
                     });
  }
  void answer() {
    bool post = request_.method() == http::verb::post && request_.target() == "/ingest";
    response_ = {};
    response_.version(request_.version());
    response_.keep_alive(request_.keep_alive());
    response_.result(post ? 202 : 200);
    response_.set(http::field::content_type, "text/plain");
    response_.body() = std::string(post ? kAccepted : kOk);
    response_.prepare_payload();
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (!ec && self->response_.keep_alive()) self->read();
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

void beast_accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](beast::error_code ec, tcp::socket socket) {
    if (!ec) std::make_shared<BeastSession>(std::move(socket))->start();
    if (acceptor.is_open()) beast_accept(acceptor);
  });
}

int run_beast(unsigned threads) {
  asio::io_context io(static_cast<int>(threads));
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  beast_accept(acceptor);
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  announce(acceptor.local_endpoint().port());
  wait_for_signal();
  io.stop();
  for (auto& t : pool) t.join();
  return 0;
}

// --- libevent evhttp ---------------------------------------------------------------------

void evhttp_answer(evhttp_request* request, void*) {
  bool post = evhttp_request_get_command(request) == EVHTTP_REQ_POST &&
              std::strcmp(evhttp_request_get_uri(request), "/ingest") == 0;
  std::string_view text = post ? kAccepted : kOk;
  evbuffer* out = evhttp_request_get_output_buffer(request);
  evbuffer_add(out, text.data(), text.size());
  evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", "text/plain");
  evhttp_send_reply(request, post ? 202 : 200, post ? "Accepted" : "OK", nullptr);
}

int run_evhttp(unsigned threads) {
  evthread_use_pthreads();
  // One listening socket, accepted from by every thread's own base (the documented way to
  // spread evhttp over threads: it has no thread pool of its own).
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = loopback(0);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 1024) != 0) {
    std::perror("evhttp: bind");
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::vector<event_base*> bases;
  std::vector<evhttp*> servers;
  for (unsigned i = 0; i < threads; ++i) {
    event_base* base = event_base_new();
    evhttp* server = evhttp_new(base);
    evhttp_set_gencb(server, evhttp_answer, nullptr);
    evhttp_accept_socket(server, fd);
    bases.push_back(base);
    servers.push_back(server);
  }
  std::vector<std::thread> pool;
  for (event_base* base : bases) pool.emplace_back([base] { event_base_dispatch(base); });
  announce(ntohs(addr.sin_port));
  wait_for_signal();
  for (event_base* base : bases) event_base_loopbreak(base);
  for (auto& t : pool) t.join();
  for (evhttp* server : servers) evhttp_free(server);
  for (event_base* base : bases) event_base_free(base);
  return 0;
}

// --- envkit::HttpServer ------------------------------------------------------------------

// Records in a body: top-level JSON objects, alone, as JSON Lines or in one array (what
// envkit's HTTP sink posts). Strings are skipped, so braces inside them do not count.
uint64_t count_records(std::string_view body) {
  uint64_t n = 0;
  int depth = 0;
  bool in_array = false, in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[': if (depth++ == 0) in_array = true; break;
      case '{': if (depth == 0 || (depth == 1 && in_array)) ++n; ++depth; break;
      case ']': case '}': if (--depth == 0) in_array = false; break;
      default: break;
    }
  }
  return n;
}

// `count`: a receiver for load generators (bench/sensor-push): POST /ingest also counts the
// body's records, and GET /_count answers the total. Off for
// the library comparison, which measures the server alone.
int run_envkit(unsigned threads, bool count) {
  envkit::HttpServerOptions options;
  options.io_threads = threads;
  options.workers = threads;
  static std::atomic<uint64_t> lines{0};
  auto server = envkit::HttpServer::start(
      "127.0.0.1", 0,
      [count](const envkit::HttpServerRequest& request) {
        bool post = request.method == "POST" && request.path == "/ingest";
        if (count && post) {
          lines.fetch_add(count_records(request.body), std::memory_order_relaxed);
        }
        if (count && request.method == "GET" && request.path == "/_count") {
          return envkit::HttpReply::text(200, std::to_string(lines.load()) + "\n");
        }
        return envkit::HttpReply::text(post ? 202 : 200, std::string(post ? kAccepted : kOk));
      },
      options);
  if (!server) {
    std::fprintf(stderr, "envkit: %s\n", server.error().message.c_str());
    return 1;
  }
  announce(server->port());
  wait_for_signal();
  server->stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts: they inherit it

  if (argc < 2) {
    std::fprintf(stderr, "usage: envkit-bench-http-server mhd|mhd-tpc|httplib|beast|evhttp|envkit|envkit-count [--threads N]\n");
    return 64;
  }
  std::string library = argv[1];
  unsigned threads = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::string_view(argv[i]) == "--threads") threads = static_cast<unsigned>(std::atoi(argv[i + 1]));
  }
  if (threads == 0) threads = 1;
  if (library == "mhd") return run_mhd(threads, false);
  if (library == "mhd-tpc") return run_mhd(threads, true);
  if (library == "httplib") return run_httplib(threads);
  if (library == "beast") return run_beast(threads);
  if (library == "evhttp") return run_evhttp(threads);
  if (library == "envkit") return run_envkit(threads, false);
  if (library == "envkit-count") return run_envkit(threads, true);
  std::fprintf(stderr, "envkit-bench-http-server: unknown library '%s'\n", library.c_str());
  return 64;
}
