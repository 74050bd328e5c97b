// The HTTP server: libmicrohttpd's epoll threads read and write, a pool of worker threads runs
// the handlers on suspended connections, a sweeper enforces the whole-request read timeout.
#include <envkit/http_server.hpp>

#include <microhttpd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <envkit/exit_status.hpp>
#include <envkit/log.hpp>
#include <envkit/socket.hpp>

namespace envkit {

namespace {

using Clock = std::chrono::steady_clock;

/// One connection, as the read-timeout sweeper sees it. Lives from libmicrohttpd's
/// "connection started" to its "closed" notice, which comes before the socket is closed: so
/// while a record is in Impl::connections_ (under its mutex) its descriptor is this one's.
struct ConnectionState {
  int fd = -1;
  Clock::time_point waiting_since;  ///< accepted, or the previous reply finished
  bool busy = false;                ///< a request read whole and not yet answered
  bool cut = false;                 ///< already shut down by the sweeper
};

}  // namespace

namespace detail {

/// The server as the responders of its deferred requests see it: null once it is gone.
struct HttpServerLink {
  std::mutex mutex;
  HttpServer::Impl* impl = nullptr;
};

/// One request on one connection: created when its headers are in, freed when libmicrohttpd
/// reports it completed (and no responder holds it). A worker holds a reference while the
/// handler runs.
struct HttpCall {
  HttpServerRequest request;
  MHD_Connection* connection = nullptr;
  ConnectionState* state = nullptr;
  bool replied_early = false;  ///< 413 or 503 queued by the network thread, no handler
  bool dispatched = false;     ///< read whole, handed to a handler
  bool answered = false;       ///< reply queued and connection resumed (Impl::calls_mutex)
  bool forced = false;         ///< answered 503 by stop() at its deadline (Impl::calls_mutex)
  /// A deferred handler returned without a reply: answered by its responder, or by the
  /// sweeper at reply_by (Impl::calls_mutex).
  bool awaiting = false;
  std::chrono::steady_clock::time_point reply_by;
  /// A responder's reply that came while the network thread was still running the handler:
  /// sent by that thread once the handler returns (Impl::calls_mutex).
  std::optional<HttpReply> early;
  std::shared_ptr<HttpServerLink> link;
};

}  // namespace detail

namespace {

using Call = detail::HttpCall;
using CallHolder = std::shared_ptr<Call>;

HttpReply make_text_reply(int status, std::string body, std::string_view type) {
  HttpReply reply;
  reply.status = status;
  reply.headers.emplace_back("Content-Type", std::string(type));
  reply.body = std::move(body);
  return reply;
}

/// A libmicrohttpd response from a reply (the body copied), closing the connection after it
/// when `close` is set. Null only when libmicrohttpd cannot allocate.
MHD_Response* to_mhd_response(const HttpReply& reply, bool close) {
  MHD_Response* response = MHD_create_response_from_buffer(
      reply.body.size(), const_cast<char*>(reply.body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return nullptr;
  for (const auto& [name, value] : reply.headers) {
    // The server frames the body itself; a handler's own length could only disagree.
    if (header_name_equals(name, "Content-Length")) continue;
    MHD_add_response_header(response, name.c_str(), value.c_str());
  }
  if (close) MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
  return response;
}

MHD_Result queue_reply(MHD_Connection* connection, const HttpReply& reply, bool close) {
  MHD_Response* response = to_mhd_response(reply, close);
  if (response == nullptr) return MHD_NO;
  MHD_Result queued = MHD_queue_response(connection, static_cast<unsigned>(reply.status), response);
  MHD_destroy_response(response);  // reference counted: the connection keeps its own
  return queued;
}

/// Runs a handler; an exception escaping it is logged and answered 500.
template <class F>
std::optional<HttpReply> guarded(const detail::HttpCall& call, F run) {
  auto what = [&] { return "http server: handler failed on " + call.request.method + " " + call.request.path; };
  try {
    return run();
  } catch (const std::exception& e) {
    log_error(what() + ": " + e.what());
  } catch (...) {
    log_error(what());
  }
  return HttpReply::text(500, "internal error\n");
}

MHD_Result collect_pair(void* into, MHD_ValueKind, const char* key, const char* value) {
  static_cast<std::vector<std::pair<std::string, std::string>>*>(into)->emplace_back(
      key ? key : "", value ? value : "");
  return MHD_YES;
}

void log_from_mhd(void*, const char* format, va_list args) {
  char text[512];
  std::vsnprintf(text, sizeof text, format, args);
  std::string_view message(text);
  while (!message.empty() && message.back() == '\n') message.remove_suffix(1);
  log_debug("http server: libmicrohttpd: " + std::string(message));
}

}  // namespace

std::optional<std::string> HttpServerRequest::param(std::string_view key) const {
  std::optional<std::string> found;
  for (const auto& [k, v] : query) {
    if (k == key) found = v;
  }
  return found;
}

HttpReply HttpReply::text(int status, std::string body) {
  return make_text_reply(status, std::move(body), "text/plain; charset=utf-8");
}

HttpReply HttpReply::json(int status, std::string body) {
  return make_text_reply(status, std::move(body), "application/json");
}

struct HttpServer::Impl {
  HttpHandler handler;
  HttpDeferredHandler deferred;  ///< set instead of handler for a deferred server
  std::shared_ptr<detail::HttpServerLink> link = std::make_shared<detail::HttpServerLink>();
  HttpServerOptions options;
  std::string address;
  uint16_t port = 0;
  int listen_fd = -1;  ///< owned by the daemon until quiesced
  MHD_Daemon* daemon = nullptr;

  std::atomic<bool> stopping{false};
  bool stopped = false;
  std::mutex stop_mutex;  ///< one stop() at a time

  // Requests started and not yet completed (reading, queued, in a handler, being sent).
  std::mutex flight_mutex;
  std::condition_variable flight_cv;
  size_t in_flight = 0;
  size_t forced_unsent = 0;  ///< stop()'s 503s not yet sent

  // Suspended connections: a worker or stop() answers each exactly once, under calls_mutex.
  std::mutex calls_mutex;
  std::unordered_set<Call*> suspended;

  // The handler pool and its queue (at most one entry per connection: bounded by it).
  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<CallHolder> queue;
  bool queue_closed = false;
  std::vector<std::thread> workers;

  // Connections, for the read-timeout sweeper.
  std::mutex connections_mutex;
  std::condition_variable sweeper_cv;
  std::unordered_set<ConnectionState*> connections;
  bool sweeper_stop = false;
  std::thread sweeper;

  ~Impl() {
    shutdown(std::chrono::milliseconds(5000));
    std::lock_guard lock(link->mutex);  // a responder answering now finishes first
    link->impl = nullptr;
  }

  void shutdown(std::chrono::milliseconds deadline);
  void run_worker();
  void answer(Call& call, HttpReply reply);
  void answer_locked(Call& call, const HttpReply& reply);  // under calls_mutex
  /// Runs the deferred handler; an escaping exception becomes a 500.
  std::optional<HttpReply> run_deferred(const CallHolder& call);
  /// After run_deferred() gave no reply (under calls_mutex): its deadline starts now.
  void await_locked(Call& call);
  void run_sweeper();

  // libmicrohttpd's callbacks (on its network threads).
  static MHD_Result on_request(void* self, MHD_Connection* connection, const char* url,
                               const char* method, const char* version, const char* upload,
                               size_t* upload_size, void** request_state);
  static void on_completed(void* self, MHD_Connection* connection, void** request_state,
                           MHD_RequestTerminationCode why);
  static void on_connection(void* self, MHD_Connection* connection, void** connection_state,
                            MHD_ConnectionNotificationCode what);
};

MHD_Result HttpServer::Impl::on_request(void* self_ptr, MHD_Connection* connection,
                                        const char* url, const char* method, const char*,
                                        const char* upload, size_t* upload_size,
                                        void** request_state) {
  auto* self = static_cast<Impl*>(self_ptr);
  auto* holder = static_cast<CallHolder*>(*request_state);

  if (holder == nullptr) {  // the headers are in; the body, if any, is still to come
    auto call = std::make_shared<Call>();
    call->link = self->link;
    call->connection = connection;
    call->request.method = method;
    call->request.path = url;
    MHD_get_connection_values(connection, MHD_HEADER_KIND, collect_pair, &call->request.headers);
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, collect_pair, &call->request.query);
    if (const auto* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) {
      call->request.peer = format_socket_address(info->client_addr);
    }
    if (const auto* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT)) {
      call->state = static_cast<ConnectionState*>(info->socket_context);
    }
    *request_state = new CallHolder(call);
    {
      std::lock_guard lock(self->flight_mutex);
      ++self->in_flight;
    }
    if (self->stopping) {
      call->replied_early = true;
      HttpReply reply = HttpReply::text(503, "server is stopping\n");
      reply.headers.emplace_back("Retry-After", "1");
      return queue_reply(connection, reply, true);
    }
    // Refuse an oversized body before reading any of it: queuing the reply now also keeps
    // libmicrohttpd from sending "100 Continue" to a client that waits for one.
    if (auto length = call->request.header("Content-Length")) {
      unsigned long long declared = 0;
      bool number = !length->empty();
      for (char c : *length) {
        number = number && c >= '0' && c <= '9' && declared < (1ULL << 60);
        if (number) declared = declared * 10 + static_cast<unsigned>(c - '0');
      }
      if (number && declared > self->options.max_body_bytes) {
        call->replied_early = true;
        return queue_reply(connection,
                           HttpReply::text(413, "request body of " + std::to_string(declared) +
                                                    " bytes is over the limit of " +
                                                    std::to_string(self->options.max_body_bytes) +
                                                    " bytes\n"),
                           true);
      }
    }
    return MHD_YES;
  }

  Call& call = **holder;
  if (*upload_size != 0) {
    size_t size = *upload_size;
    *upload_size = 0;
    if (call.replied_early) return MHD_YES;  // being refused: the rest is discarded
    if (call.request.body.size() + size > self->options.max_body_bytes) {
      // A chunked body that grew past the limit: refuse it if libmicrohttpd still lets us
      // answer at this point, else drop the connection; either way read no more of it.
      call.replied_early = true;
      call.request.body.clear();
      HttpReply reply = HttpReply::text(413, "request body is over the limit of " +
                                                 std::to_string(self->options.max_body_bytes) +
                                                 " bytes\n");
      return queue_reply(connection, reply, true);
    }
    call.request.body.append(upload, size);
    return MHD_YES;
  }
  if (call.replied_early || call.dispatched) return MHD_YES;  // reply queued already

  // Read whole.
  call.dispatched = true;
  if (call.state != nullptr) {
    std::lock_guard lock(self->connections_mutex);
    call.state->busy = true;
  }
  if (self->deferred && call.request.body.size() <= kInlineBodyBytes) {
    // A deferred handler does not block: run it here, and suspend the connection only if it
    // gave no reply. A responder that answers meanwhile leaves its reply in `early`.
    std::optional<HttpReply> now = self->run_deferred(*holder);
    std::lock_guard lock(self->calls_mutex);
    if (!now && call.early) now = std::move(call.early);
    if (now) {
      call.answered = true;
      return queue_reply(connection, *now, self->stopping);
    }
    self->suspended.insert(&call);
    MHD_suspend_connection(connection);
    self->await_locked(call);
    return MHD_YES;
  }
  {
    // Suspend the connection and hand the request to a worker. Both under the mutex: stop()
    // resumes what is in `suspended`, and must never find a connection there that is not
    // suspended yet.
    std::lock_guard lock(self->calls_mutex);
    self->suspended.insert(&call);
    MHD_suspend_connection(connection);
  }
  {
    std::lock_guard lock(self->queue_mutex);
    self->queue.push_back(*holder);
  }
  self->queue_cv.notify_one();
  return MHD_YES;
}

void HttpServer::Impl::on_completed(void* self_ptr, MHD_Connection*, void** request_state,
                                    MHD_RequestTerminationCode) {
  auto* self = static_cast<Impl*>(self_ptr);
  auto* holder = static_cast<CallHolder*>(*request_state);
  if (holder == nullptr) return;
  *request_state = nullptr;
  if (ConnectionState* state = (*holder)->state) {
    std::lock_guard lock(self->connections_mutex);
    state->busy = false;
    state->waiting_since = Clock::now();  // the next request's read time starts now
  }
  bool forced;
  {
    std::lock_guard lock(self->calls_mutex);
    forced = (*holder)->forced;
  }
  delete holder;
  {
    std::lock_guard lock(self->flight_mutex);
    --self->in_flight;
    if (forced) --self->forced_unsent;
  }
  self->flight_cv.notify_all();
}

void HttpServer::Impl::on_connection(void* self_ptr, MHD_Connection* connection,
                                     void** connection_state, MHD_ConnectionNotificationCode what) {
  auto* self = static_cast<Impl*>(self_ptr);
  if (what == MHD_CONNECTION_NOTIFY_STARTED) {
    auto* state = new ConnectionState;
    state->waiting_since = Clock::now();
    if (const auto* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD)) {
      state->fd = info->connect_fd;
    }
    *connection_state = state;
    std::lock_guard lock(self->connections_mutex);
    self->connections.insert(state);
    return;
  }
  auto* state = static_cast<ConnectionState*>(*connection_state);
  if (state == nullptr) return;
  *connection_state = nullptr;
  {
    std::lock_guard lock(self->connections_mutex);
    self->connections.erase(state);
  }
  delete state;
}

void HttpServer::Impl::run_worker() {
  for (;;) {
    CallHolder call;
    {
      std::unique_lock lock(queue_mutex);
      queue_cv.wait(lock, [&] { return queue_closed || !queue.empty(); });
      if (queue.empty()) return;  // closed and drained
      call = std::move(queue.front());
      queue.pop_front();
    }
    {
      std::lock_guard lock(calls_mutex);
      if (call->answered) continue;  // stop() gave up on it while it waited
    }
    if (deferred) {
      std::optional<HttpReply> now = run_deferred(call);
      if (now) {
        answer(*call, std::move(*now));
      } else {
        std::lock_guard lock(calls_mutex);
        if (!call->answered) await_locked(*call);
      }
      continue;
    }
    HttpReply reply = *guarded(*call, [&] { return std::optional<HttpReply>(handler(call->request)); });
    answer(*call, std::move(reply));
  }
}

std::optional<HttpReply> HttpServer::Impl::run_deferred(const CallHolder& call) {
  return guarded(*call, [&] { return deferred(call->request, HttpResponder(call)); });
}

void HttpServer::Impl::await_locked(Call& call) {
  call.awaiting = true;
  call.reply_by = Clock::now() + options.reply_within;
}

void HttpServer::Impl::answer(Call& call, HttpReply reply) {
  std::lock_guard lock(calls_mutex);
  if (call.answered) return;  // stop() or the sweeper answered it: this reply is dropped
  if (suspended.count(&call) == 0) {
    // Not suspended yet: its deferred handler still runs on the network thread, which sends
    // this when it returns.
    if (!call.early) call.early = std::move(reply);
    return;
  }
  answer_locked(call, reply);
}

void HttpServer::Impl::answer_locked(Call& call, const HttpReply& reply) {
  call.answered = true;
  suspended.erase(&call);
  // A suspended connection may be given its reply from any thread; it is sent on resume.
  if (queue_reply(call.connection, reply, stopping) != MHD_YES) {
    log_warning("http server: could not queue the reply to " + call.request.peer);
  }
  MHD_resume_connection(call.connection);
}

void HttpResponder::reply(const HttpReply& reply) const {
  if (!call_) return;
  std::lock_guard lock(call_->link->mutex);
  if (call_->link->impl != nullptr) call_->link->impl->answer(*call_, reply);
}

void HttpServer::Impl::run_sweeper() {
  const auto period = std::chrono::milliseconds(100);
  std::unique_lock lock(connections_mutex);
  while (!sweeper_stop) {
    sweeper_cv.wait_for(lock, period, [&] { return sweeper_stop; });
    auto now = Clock::now();
    if (deferred) {
      // Deferred requests past reply_within: answered here, their responders' replies dropped.
      lock.unlock();
      {
        std::lock_guard calls_lock(calls_mutex);
        std::vector<Call*> late;
        for (Call* call : suspended) {
          if (call->awaiting && now >= call->reply_by) late.push_back(call);
        }
        for (Call* call : late) {
          HttpReply reply = HttpReply::text(503, "no answer within " + std::to_string(options.reply_within.count()) +
                                                     " ms; try again\n");
          reply.headers.emplace_back("Retry-After", "1");
          answer_locked(*call, reply);
        }
      }
      lock.lock();
      if (sweeper_stop) break;
    }
    for (ConnectionState* state : connections) {
      if (state->busy || state->cut || state->fd < 0) continue;
      if (now - state->waiting_since < options.read_timeout) continue;
      // libmicrohttpd sees the end of the stream and closes the connection itself. The
      // descriptor is still this connection's: its "closed" notice, which would remove this
      // record, waits for the mutex held here, and the socket is closed only after it.
      ::shutdown(state->fd, SHUT_RDWR);
      state->cut = true;
      log_debug("http server: closed a connection that sent no whole request within the read timeout");
    }
  }
}

void HttpServer::Impl::shutdown(std::chrono::milliseconds deadline) {
  std::lock_guard stop_lock(stop_mutex);
  if (stopped) return;
  stopped = true;
  stopping = true;
  auto until = Clock::now() + deadline;

  if (daemon != nullptr) {
    // Refuse new connections at once: the listening socket comes back to us to close.
    MHD_socket fd = MHD_quiesce_daemon(daemon);
    if (fd != MHD_INVALID_SOCKET) ::close(fd);
    {
      std::unique_lock lock(flight_mutex);
      flight_cv.wait_until(lock, until, [&] { return in_flight == 0; });
    }
    // Past the deadline: answer whoever still waits on a handler, so that no connection is
    // left suspended (libmicrohttpd will not stop with one), and forget their handlers.
    {
      std::lock_guard lock(calls_mutex);
      std::lock_guard flight_lock(flight_mutex);
      for (Call* call : suspended) {
        call->answered = true;
        call->forced = true;
        ++forced_unsent;
        HttpReply reply = HttpReply::text(503, "server stopped before the request was answered\n");
        queue_reply(call->connection, reply, true);
        MHD_resume_connection(call->connection);
      }
      suspended.clear();
    }
    // Stopping the daemon closes connections whether or not their reply went out: give
    // those 503s a moment to be sent (a client that does not read them is not waited for).
    {
      std::unique_lock lock(flight_mutex);
      flight_cv.wait_for(lock, std::chrono::milliseconds(1000), [&] { return forced_unsent == 0; });
    }
    MHD_stop_daemon(daemon);  // closes every connection; completes every request
    daemon = nullptr;
  }
  listen_fd = -1;  // the daemon's, closed by it or by us after quiescing

  {
    std::lock_guard lock(connections_mutex);
    sweeper_stop = true;
  }
  sweeper_cv.notify_all();
  if (sweeper.joinable()) sweeper.join();
  {
    std::lock_guard lock(queue_mutex);
    queue_closed = true;
  }
  queue_cv.notify_all();
  for (auto& worker : workers) {
    if (worker.joinable()) worker.join();
  }
  workers.clear();
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::HttpServer(HttpServer&&) noexcept = default;
HttpServer& HttpServer::operator=(HttpServer&&) noexcept = default;
HttpServer::~HttpServer() = default;  // Impl's destructor stops

uint16_t HttpServer::port() const { return impl_->port; }
const std::string& HttpServer::address() const { return impl_->address; }

void HttpServer::stop(std::chrono::milliseconds deadline) {
  if (impl_) impl_->shutdown(deadline);
}

Result<HttpServer> HttpServer::start(const std::string& host, uint16_t port, HttpHandler handler,
                                     HttpServerOptions options) {
  if (!handler) return fail(Failure::internal, "http server: no handler");
  return start_impl(host, port, std::move(handler), nullptr, std::move(options));
}

Result<HttpServer> HttpServer::start(const std::string& host, uint16_t port, HttpDeferredHandler handler,
                                     HttpServerOptions options) {
  if (!handler) return fail(Failure::internal, "http server: no handler");
  return start_impl(host, port, nullptr, std::move(handler), std::move(options));
}

Result<HttpServer> HttpServer::start_impl(const std::string& host, uint16_t port, HttpHandler handler,
                                          HttpDeferredHandler deferred, HttpServerOptions options) {
  if (options.workers == 0) options.workers = 1;
  if (options.io_threads == 0) options.io_threads = 1;
  if (options.max_connections == 0) options.max_connections = 1;
  options.max_header_bytes = std::max<size_t>(options.max_header_bytes, 8192);

  auto listener = Listener::bind(host, port);
  if (!listener) return listener.error();

  auto impl = std::make_unique<Impl>();
  impl->handler = std::move(handler);
  impl->deferred = std::move(deferred);
  impl->link->impl = impl.get();
  impl->options = options;
  impl->address = listener->address();
  impl->port = listener->port();
  impl->listen_fd = listener->release();

  auto idle_seconds = std::chrono::ceil<std::chrono::seconds>(options.idle_timeout).count();
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG;
  std::vector<MHD_OptionItem> items = {
      {MHD_OPTION_LISTEN_SOCKET, impl->listen_fd, nullptr},
      {MHD_OPTION_CONNECTION_LIMIT, static_cast<intptr_t>(options.max_connections), nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, std::max<intptr_t>(1, idle_seconds), nullptr},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<intptr_t>(options.max_header_bytes), nullptr},
      {MHD_OPTION_NOTIFY_COMPLETED, reinterpret_cast<intptr_t>(&Impl::on_completed), impl.get()},
      {MHD_OPTION_NOTIFY_CONNECTION, reinterpret_cast<intptr_t>(&Impl::on_connection), impl.get()},
      {MHD_OPTION_EXTERNAL_LOGGER, reinterpret_cast<intptr_t>(&log_from_mhd), nullptr},
  };
  if (options.io_threads > 1) {
    items.push_back({MHD_OPTION_THREAD_POOL_SIZE, options.io_threads, nullptr});
  }
  items.push_back({MHD_OPTION_END, 0, nullptr});

  // The pool and the sweeper first: the daemon may hand them work as soon as it runs.
  for (size_t i = 0; i < options.workers; ++i) {
    impl->workers.emplace_back([raw = impl.get()] { raw->run_worker(); });
  }
  impl->sweeper = std::thread([raw = impl.get()] { raw->run_sweeper(); });

  // Whether a failed MHD_start_daemon closes the socket it was given depends on where it
  // failed. A duplicate kept meanwhile keeps the socket alive, so the descriptor, if still
  // open, is still our socket (same inode) and can be closed without hitting another's.
  int kept = ::dup(impl->listen_fd);
  impl->daemon = MHD_start_daemon(flags, 0, nullptr, nullptr, &Impl::on_request, impl.get(),
                                  MHD_OPTION_ARRAY, items.data(), MHD_OPTION_END);
  if (impl->daemon == nullptr) {
    std::string where = impl->address;
    struct stat given{}, ours{};
    if (kept >= 0 && ::fstat(impl->listen_fd, &given) == 0 && ::fstat(kept, &ours) == 0 &&
        given.st_ino == ours.st_ino && given.st_dev == ours.st_dev) {
      ::close(impl->listen_fd);
    }
    if (kept >= 0) ::close(kept);
    impl->shutdown(std::chrono::milliseconds(0));
    return fail(Failure::internal, "http server on " + where + ": libmicrohttpd would not start");
  }
  if (kept >= 0) ::close(kept);
  log_debug("http server: listening on " + impl->address);
  return HttpServer(std::move(impl));
}

Result<HttpServer> HttpServer::start(const Url& url, HttpHandler handler,
                                     HttpServerOptions options) {
  if (!handler) return fail(Failure::internal, "http server: no handler");
  return start_impl(url, std::move(handler), nullptr, std::move(options));
}

Result<HttpServer> HttpServer::start(const Url& url, HttpDeferredHandler handler,
                                     HttpServerOptions options) {
  if (!handler) return fail(Failure::internal, "http server: no handler");
  return start_impl(url, nullptr, std::move(handler), std::move(options));
}

Result<HttpServer> HttpServer::start_impl(const Url& url, HttpHandler handler, HttpDeferredHandler deferred,
                                          HttpServerOptions options) {
  if (url.scheme != "http" || url.hosts.size() != 1) {
    return fail(Failure::usage, "http server: cannot listen on '" + url.redacted() +
                                  "': expected http://HOST:PORT");
  }
  return start_impl(url.hosts[0].host, url.port_or_default(), std::move(handler), std::move(deferred),
                    std::move(options));
}

}  // namespace envkit
