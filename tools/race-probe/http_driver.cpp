// The HTTP workloads' driver (race-probe/http_driver.hpp). A thread per connection spent most
// of the probe's CPU in the scheduler: a wake-up and a poll timer for every response
// (bench/race-probe). Here each thread waits on its share of the connections at once, as
// wrk does, and a wake-up serves every response that has come.
#include "race-probe/http_driver.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <envkit/exit_status.hpp>
#include <envkit/http1.hpp>
#include <envkit/posix.hpp>
#include <envkit/signals.hpp>
#include <envkit/socket.hpp>
#include <envkit/worker_pool.hpp>

namespace race_probe {

namespace {

using SteadyClock = std::chrono::steady_clock;

// The longest epoll wait: a stop signal is seen within it.
constexpr std::chrono::milliseconds kStopCheck{100};

struct Connection {
  size_t worker = 0;
  HttpWorker* plan = nullptr;
  std::optional<envkit::HttpTarget> target;
  std::optional<envkit::Stream> stream;
  uint32_t watched = 0;  // the events stream's descriptor is in the epoll set for (0: not in it)
  envkit::HttpResponseReader reader;
  Operation op;
  envkit::HttpRequest request;
  enum class State { idle, due, sending, reading, finished } state = State::idle;
  std::string out;
  size_t sent = 0;
  std::string in;
  SteadyClock::time_point whole;     // the request in flight's bound, from its send
  SteadyClock::time_point deadline;  // the earlier of whole and io_timeout past the last byte
};

class Loop {
 public:
  Loop(std::vector<Connection*> conns, const envkit::ConnectionOptions& connection,
       std::chrono::milliseconds request_timeout, std::vector<std::vector<Operation>>& done)
      : conns_(std::move(conns)), connection_(connection), request_timeout_(request_timeout), done_(done) {}

  envkit::Status run() {
    epoll_ = envkit::UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) return envkit::fail(envkit::Failure::internal, "cannot create an epoll instance: " + envkit::errno_text(errno));
    for (auto* c : conns_) begin(*c);
    epoll_event events[64];
    while (std::any_of(conns_.begin(), conns_.end(), [](const Connection* c) { return c->state != Connection::State::finished; })) {
      if (envkit::stop_requested()) stop_due();
      int n = ::epoll_wait(epoll_.get(), events, 64, wait_ms());
      if (n < 0 && errno != EINTR) {
        return envkit::fail(envkit::Failure::internal, "waiting on the connections failed: " + envkit::errno_text(errno));
      }
      for (int i = 0; i < n; ++i) {
        auto* c = static_cast<Connection*>(events[i].data.ptr);
        if (c->state == Connection::State::sending) {
          send_more(*c);
        } else if (c->state == Connection::State::reading) {
          read_more(*c);
        } else {
          close(*c);  // an idle connection that stirs was closed, or spoke unasked: not reused
        }
      }
      expire_and_start_due();
      for (auto* c : conns_) {
        if (c->state == Connection::State::idle) begin(*c);
      }
    }
    return {};
  }

 private:
  // Starts c's next operation, now or at its due time; finishes c when it has no more.
  void begin(Connection& c) {
    for (;;) {
      if (envkit::stop_requested()) {
        finish_connection(c);
        return;
      }
      c.op = Operation{};
      c.request = envkit::HttpRequest{};
      if (!c.plan->next(c.op, c.request)) {
        finish_connection(c);
        return;
      }
      if (c.op.intended > now_us()) {
        c.state = Connection::State::due;
        return;
      }
      if (send(c)) return;
    }
  }

  // Sends c's operation; false when it failed at once (recorded): the caller goes on.
  bool send(Connection& c) {
    c.op.invoke = now_us();
    if (c.op.intended == 0) c.op.intended = c.op.invoke;
    auto start = SteadyClock::now();
    c.whole = start + request_timeout_;
    if (!c.target || c.target->url != c.request.url) {
      auto t = envkit::HttpTarget::parse(c.request.url, connection_.tls);
      if (!t) {
        complete(c, t.error().context(c.request.method + " request failed"));
        return false;
      }
      if (c.stream && (!c.target || t->endpoint != c.target->endpoint || t->tls != c.target->tls)) close(c);
      c.target = std::move(*t);
    }
    // No peek here for a connection the server closed while idle (HttpConnection's check): a
    // connection sends its next request as soon as the last answer is read, and one that
    // waits for a due time is in the epoll set, where a close shows and closes it (run()).
    if (!c.stream) {
      auto s = envkit::connect_http(*c.target, connection_,
                                    std::min(start + connection_.connect_timeout, c.whole));
      if (!s) {
        complete(c, failure(c, s.error()));
        return false;
      }
      c.stream.emplace(std::move(*s));
    }
    c.out.clear();
    c.target->encode(c.request, c.out);
    c.sent = 0;
    c.in.clear();
    c.reader.start(c.request.method);
    c.state = Connection::State::sending;
    progress(c);
    send_more(c);
    return c.state != Connection::State::idle;
  }

  void send_more(Connection& c) {
    while (c.sent < c.out.size()) {
      auto n = c.stream->try_write(std::string_view(c.out).substr(c.sent));
      if (!n) return fail_request(c, n.error());
      if (*n == 0) return watch(c, EPOLLIN | EPOLLOUT);  // the rest when the socket can take it
      c.sent += *n;
      progress(c);
    }
    c.state = Connection::State::reading;
    watch(c, EPOLLIN);
  }

  void read_more(Connection& c) {
    char buffer[16384];
    for (int reads = 0; reads < 1024; ++reads) {
      auto n = c.stream->try_read(buffer, sizeof buffer);
      if (!n) return fail_request(c, n.error());
      if (!*n) return;  // nothing more now: wait
      c.in.append(buffer, **n);
      progress(c);
      auto whole = c.reader.feed(c.in, **n == 0);
      if (!whole) return fail_request(c, whole.error());
      if (*whole) {
        if (!c.reader.keep_alive()) close(c);
        complete(c, std::move(c.reader.response()));
        begin(c);
        return;
      }
    }
  }

  void progress(Connection& c) {
    c.deadline = std::min(SteadyClock::now() + connection_.io_timeout, c.whole);
  }

  envkit::Error failure(const Connection& c, const envkit::Error& e) const {
    return e.context(c.request.method + " " + (c.target ? c.target->redacted : c.request.url) + " failed");
  }

  // Records the failure; the loop starts c's next operation.
  void fail_request(Connection& c, const envkit::Error& e) {
    close(c);
    complete(c, failure(c, e));
  }

  void complete(Connection& c, const envkit::Result<envkit::HttpResponse>& response) {
    c.op.complete = now_us();
    c.plan->finish(c.op, response);
    done_[c.worker].push_back(std::move(c.op));
    c.state = Connection::State::idle;
  }

  // Only a change costs a system call: a connection stays in the set between requests.
  void watch(Connection& c, uint32_t events) {
    if (c.watched == events) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &c;
    ::epoll_ctl(epoll_.get(), c.watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.stream->fd(), &ev);
    c.watched = events;
  }

  void close(Connection& c) {
    if (c.stream && c.watched) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.stream->fd(), nullptr);
    c.watched = 0;
    c.stream.reset();
  }

  void finish_connection(Connection& c) {
    close(c);
    c.state = Connection::State::finished;
  }

  // On a stop signal: operations not yet sent never will be.
  void stop_due() {
    for (auto* c : conns_) {
      if (c->state == Connection::State::due) finish_connection(*c);
    }
  }

  // Until the nearest deadline or due time, at most kStopCheck.
  int wait_ms() const {
    auto now = SteadyClock::now();
    auto wall = now_us();
    auto wait = std::chrono::duration_cast<std::chrono::microseconds>(kStopCheck);
    for (const auto* c : conns_) {
      if (c->state == Connection::State::sending || c->state == Connection::State::reading) {
        wait = std::min(wait, std::chrono::duration_cast<std::chrono::microseconds>(c->deadline - now));
      } else if (c->state == Connection::State::due) {
        wait = std::min(wait, std::chrono::microseconds(c->op.intended - wall));
      }
    }
    // Rounded up: epoll counts whole milliseconds, and waking early only loops once more.
    return static_cast<int>(std::max<int64_t>(0, (wait.count() + 999) / 1000));
  }

  void expire_and_start_due() {
    auto now = SteadyClock::now();
    auto wall = now_us();
    for (auto* c : conns_) {
      bool in_flight = c->state == Connection::State::sending || c->state == Connection::State::reading;
      if (in_flight && c->deadline <= now) {
        fail_request(*c, envkit::fail(envkit::Failure::io_timeout, c->whole <= now ? "the request took longer than its timeout"
                                                                                  : "timed out waiting for data"));
      } else if (c->state == Connection::State::due && c->op.intended <= wall) {
        send(*c);  // one that fails at once is idle: the loop goes on with the next
      }
    }
  }

  std::vector<Connection*> conns_;
  const envkit::ConnectionOptions& connection_;
  std::chrono::milliseconds request_timeout_;
  std::vector<std::vector<Operation>>& done_;
  envkit::UniqueFd epoll_;
};

}  // namespace

envkit::Status drive_http(std::vector<HttpWorker*> workers, const envkit::ConnectionOptions& connection,
                          std::chrono::milliseconds request_timeout, std::vector<std::vector<Operation>>& done) {
  std::vector<std::unique_ptr<Connection>> conns;
  for (size_t w = 0; w < workers.size(); ++w) {
    conns.push_back(std::make_unique<Connection>());
    conns.back()->worker = w;
    conns.back()->plan = workers[w];
  }
  size_t threads = std::min<size_t>(workers.size(), std::max(1u, std::thread::hardware_concurrency()));
  done.resize(workers.size());
  return envkit::run_concurrently(threads, [&](size_t t) -> envkit::Status {
    std::vector<Connection*> mine;
    for (size_t i = t; i < conns.size(); i += threads) mine.push_back(conns[i].get());
    return Loop(std::move(mine), connection, request_timeout, done).run();
  });
}

}  // namespace race_probe
