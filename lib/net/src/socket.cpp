// Byte streams over TCP, plain or TLS: non-blocking sockets, poll() for every deadline,
// OpenSSL 3 for TLS with verification reported rather than enforced.
#include <envkit/socket.hpp>

#include <envkit/exit_status.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

namespace envkit {

namespace detail {
void SslCtxFreer::operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
void SslFreer::operator()(SSL* ssl) const { SSL_free(ssl); }
}  // namespace detail

namespace {

using Clock = std::chrono::steady_clock;

struct AddrinfoFreer {
  void operator()(addrinfo* ai) const { freeaddrinfo(ai); }
};
struct X509Freer {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioFreer {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct GeneralNamesFreer {
  void operator()(GENERAL_NAMES* g) const { GENERAL_NAMES_free(g); }
};

/// Milliseconds left until `deadline` for poll(), at least 0, rounded up so a poll never
/// returns early only to spin.
int ms_left(Deadline deadline) {
  auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms);
}

/// Waits until `fd` is ready for `events` or the deadline passes. False on timeout.
Result<bool> wait_for(int fd, short events, Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, ms_left(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno == EINTR) {
      if (Clock::now() >= deadline) return false;
      continue;
    }
    return fail(Failure::internal, std::string("poll: ") + std::strerror(errno));
  }
}

std::string errno_message(int err) {
  switch (err) {
    case ECONNREFUSED: return "connection refused";
    case ECONNRESET: return "connection reset by peer";
    case EHOSTUNREACH: return "host unreachable";
    case ENETUNREACH: return "network unreachable";
    case EPIPE: return "connection closed by peer";
    default: return std::strerror(err);
  }
}

}  // namespace

std::string format_socket_address(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  auto* in = reinterpret_cast<const sockaddr_in*>(sa);
  ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
}

namespace {

/// The OpenSSL error queue of this thread as one message (and emptied), or `fallback`.
std::string ssl_error_text(const std::string& fallback) {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    // "error:0A000086:SSL routines::certificate verify failed" -> keep the reason only.
    std::string s(buf);
    auto pos = s.rfind(':');
    if (pos != std::string::npos && pos + 1 < s.size()) s = s.substr(pos + 1);
    if (!out.empty()) out += "; ";
    out += s;
  }
  return out.empty() ? fallback : out;
}

bool is_ip_literal(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return ::inet_pton(AF_INET, host.c_str(), &a4) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

std::string name_oneline(const X509_NAME* name) {
  std::unique_ptr<BIO, BioFreer> bio(BIO_new(BIO_s_mem()));
  if (!bio) return {};
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

std::chrono::system_clock::time_point asn1_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

PeerCertificate describe_certificate(X509* cert) {
  PeerCertificate out;
  out.subject = name_oneline(X509_get_subject_name(cert));
  out.issuer = name_oneline(X509_get_issuer_name(cert));
  out.not_before = asn1_time_point(X509_get0_notBefore(cert));
  out.not_after = asn1_time_point(X509_get0_notAfter(cert));
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFreer> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
      if (n->type != GEN_DNS) continue;
      const unsigned char* data = ASN1_STRING_get0_data(n->d.dNSName);
      int len = ASN1_STRING_length(n->d.dNSName);
      if (data && len > 0) out.dns_names.emplace_back(reinterpret_cast<const char*>(data), len);
    }
  }
  return out;
}

/// Keeps a write through OpenSSL's socket BIO (plain write(), no MSG_NOSIGNAL) from killing
/// the process with SIGPIPE when the peer has gone: blocks the signal in this thread and
/// swallows one raised meanwhile, as libcurl does.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    ::pthread_sigmask(SIG_BLOCK, &pipe, &old_);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      timespec zero{0, 0};
      while (::sigtimedwait(&pipe, nullptr, &zero) > 0) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t old_;
  bool was_pending_ = false;
};

}  // namespace

Stream::Stream(int fd, std::string peer) : fd_(fd), peer_(std::move(peer)) {}

Stream::Stream(Stream&& other) noexcept
    : fd_(other.fd_),
      peer_(std::move(other.peer_)),
      ctx_(std::move(other.ctx_)),
      ssl_(std::move(other.ssl_)) {
  other.fd_ = -1;
}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    other.fd_ = -1;
    peer_ = std::move(other.peer_);
    ctx_ = std::move(other.ctx_);
    ssl_ = std::move(other.ssl_);
  }
  return *this;
}

Stream::~Stream() { close(); }

void Stream::close() {
  ssl_.reset();  // no close_notify: a stream dropped mid-protocol just goes away
  ctx_.reset();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

Result<Stream> Stream::connect(const std::string& host, uint16_t port, Deadline deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // AI_ADDRCONFIG asks the kernel which address families are configured (a netlink round
  // trip per call): it matters for names only, so a literal address skips it.
  in6_addr literal{};
  bool numeric = ::inet_pton(AF_INET, host.c_str(), &literal) == 1 || ::inet_pton(AF_INET6, host.c_str(), &literal) == 1;
  hints.ai_flags = numeric ? AI_NUMERICHOST | AI_NUMERICSERV : AI_ADDRCONFIG;
  addrinfo* raw = nullptr;
  // getaddrinfo has no deadline of its own; names are resolved from /etc/hosts or the local
  // resolver, whose own timeouts bound this call.
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &raw);
  if (rc != 0) {
    // A name that does not exist and a resolver that does not answer are different failures
    // (envkit/exit_status.hpp): the first needs an operator, the second passes.
    std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
    return fail(failure_from_gai(rc), "cannot resolve host '" + host + "': " + why);
  }
  std::unique_ptr<addrinfo, AddrinfoFreer> list(raw);

  Error last = fail(Failure::name_not_found, "no address to connect to");
  for (addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = fail(Failure::internal, std::string("socket: ") + std::strerror(errno));
      continue;
    }
    Stream s(fd, format_socket_address(ai->ai_addr));
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) return s;
    if (errno != EINPROGRESS) {
      last = fail(failure_from_socket_errno(errno), errno_message(errno));
      continue;
    }
    auto ready = wait_for(fd, POLLOUT, deadline);
    if (!ready) return ready.error();
    if (!*ready) return fail(Failure::unreachable, "timed out connecting");
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0) return s;
    last = fail(failure_from_socket_errno(err), errno_message(err));
  }
  return last;
}

Result<std::optional<size_t>> Stream::read_once(char* buffer, size_t size, short& want) {
  for (;;) {
    want = POLLIN;
    if (ssl_) {
      ERR_clear_error();
      size_t got = 0;
      SigpipeGuard no_sigpipe;  // a read may send an alert
      if (SSL_read_ex(ssl_.get(), buffer, size, &got) == 1) return std::optional<size_t>(got);
      int e = SSL_get_error(ssl_.get(), 0);
      if (e == SSL_ERROR_ZERO_RETURN) return std::optional<size_t>(0);
      if (e == SSL_ERROR_WANT_WRITE) want = POLLOUT;
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return std::optional<size_t>();
      if (e == SSL_ERROR_SYSCALL && errno != 0) return fail(failure_from_socket_errno(errno), errno_message(errno));
      return fail(Failure::connection_lost, "TLS read: " + ssl_error_text("connection closed"));
    }
    ssize_t n = ::recv(fd_, buffer, size, 0);
    if (n >= 0) return std::optional<size_t>(static_cast<size_t>(n));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::optional<size_t>();
    return fail(failure_from_socket_errno(errno), errno_message(errno));
  }
}

Result<std::optional<size_t>> Stream::write_once(std::string_view data, short& want) {
  for (;;) {
    want = POLLOUT;
    if (ssl_) {
      ERR_clear_error();
      size_t wrote = 0;
      SigpipeGuard no_sigpipe;
      if (SSL_write_ex(ssl_.get(), data.data(), data.size(), &wrote) == 1) return std::optional<size_t>(wrote);
      int e = SSL_get_error(ssl_.get(), 0);
      if (e == SSL_ERROR_WANT_READ) want = POLLIN;
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return std::optional<size_t>();
      if (e == SSL_ERROR_SYSCALL && errno != 0) return fail(failure_from_socket_errno(errno), errno_message(errno));
      return fail(Failure::connection_lost, "TLS write: " + ssl_error_text("connection closed"));
    }
    // MSG_NOSIGNAL: a peer that has gone away is an error value, not a SIGPIPE.
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) return std::optional<size_t>(static_cast<size_t>(n));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::optional<size_t>();
    return fail(failure_from_socket_errno(errno), errno_message(errno));
  }
}

Result<size_t> Stream::read_some(char* buffer, size_t size, Deadline deadline) {
  if (fd_ < 0) return fail(Failure::internal, "read on a closed stream");
  if (size == 0) return size_t{0};
  for (;;) {
    short want = POLLIN;
    auto n = read_once(buffer, size, want);
    if (!n) return n.error();
    if (*n) return **n;
    auto ready = wait_for(fd_, want, deadline);
    if (!ready) return ready.error();
    if (!*ready) return fail(Failure::io_timeout, "timed out waiting for data");
  }
}

Result<std::optional<size_t>> Stream::try_read(char* buffer, size_t size) {
  if (fd_ < 0) return fail(Failure::internal, "read on a closed stream");
  short want = POLLIN;
  return read_once(buffer, size, want);
}

Result<size_t> Stream::try_write(std::string_view data) {
  if (fd_ < 0) return fail(Failure::internal, "write on a closed stream");
  if (data.empty()) return size_t{0};
  short want = POLLOUT;
  auto n = write_once(data, want);
  if (!n) return n.error();
  return n->value_or(0);
}

bool Stream::peer_closed() const {
  if (fd_ < 0) return true;
  char byte;
  for (;;) {
    ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    if (n > 0) return !ssl_;
    if (errno == EINTR) continue;
    return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

Status Stream::read_exact(char* buffer, size_t size, Deadline deadline) {
  size_t done = 0;
  while (done < size) {
    auto n = read_some(buffer + done, size - done, deadline);
    if (!n) return n.error();
    if (*n == 0)
      return fail(Failure::connection_lost, "connection closed after " + std::to_string(done) +
                                                " of " + std::to_string(size) + " bytes");
    done += *n;
  }
  return {};
}

Status Stream::write_all(std::string_view data, Deadline deadline) {
  if (fd_ < 0) return fail(Failure::internal, "write on a closed stream");
  size_t done = 0;
  while (done < data.size()) {
    short want = POLLOUT;
    auto n = write_once(data.substr(done), want);
    if (!n) return n.error();
    if (*n) {
      done += **n;
      continue;
    }
    auto ready = wait_for(fd_, want, deadline);
    if (!ready) return ready.error();
    if (!*ready) return fail(Failure::io_timeout, "timed out writing");
  }
  return {};
}

Result<TlsSessionInfo> Stream::start_tls(const TlsOptions& options, const std::string& host,
                                         Deadline deadline) {
  if (fd_ < 0) return fail(Failure::internal, "TLS on a closed stream");
  if (ssl_) return fail(Failure::internal, "TLS already started");
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, detail::SslCtxFreer> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return fail(Failure::internal, "TLS context: " + ssl_error_text("out of memory"));
  // Verification runs but never aborts the handshake: its verdict is reported instead, so
  // an expired or misnamed certificate can still be inspected.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), options.ca_file.c_str(), nullptr) != 1)
      return fail(Failure::config, "cannot load CA file " + options.ca_file + ": " + ssl_error_text("unreadable"));
  } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    ERR_clear_error();  // no system store: nothing will verify, which start_tls reports
  }
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), options.cert_file.c_str()) != 1)
      return fail(Failure::config, "cannot load certificate " + options.cert_file + ": " + ssl_error_text("unreadable"));
    const std::string& key = options.key_file.empty() ? options.cert_file : options.key_file;
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1)
      return fail(Failure::config, "cannot load key " + key + ": " + ssl_error_text("unreadable"));
  }

  std::unique_ptr<SSL, detail::SslFreer> ssl(SSL_new(ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd_) != 1)
    return fail(Failure::internal, "TLS session: " + ssl_error_text("out of memory"));
  const std::string& name = options.server_name.empty() ? host : options.server_name;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  if (is_ip_literal(name)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  } else if (!name.empty()) {
    SSL_set_tlsext_host_name(ssl.get(), name.c_str());
    X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
  }

  for (;;) {
    ERR_clear_error();
    SigpipeGuard no_sigpipe;
    int rc = SSL_connect(ssl.get());
    if (rc == 1) break;
    int e = SSL_get_error(ssl.get(), rc);
    short want = 0;
    if (e == SSL_ERROR_WANT_READ) {
      want = POLLIN;
    } else if (e == SSL_ERROR_WANT_WRITE) {
      want = POLLOUT;
    } else if (e == SSL_ERROR_SYSCALL && errno != 0 && ERR_peek_error() == 0) {
      return fail(failure_from_socket_errno(errno), "TLS handshake: " + errno_message(errno));
    } else if (ERR_peek_error() == 0) {
      return fail(Failure::connection_lost, "TLS handshake: connection closed during handshake");
    } else {
      // The peer answered, but no TLS session could be agreed (a plain-text port, no
      // common protocol version or cipher): someone must change a setting.
      return fail(Failure::tls_failed, "TLS handshake: " + ssl_error_text("failed"));
    }
    auto ready = wait_for(fd_, want, deadline);
    if (!ready) return ready.error();
    if (!*ready) return fail(Failure::io_timeout, "timed out in TLS handshake");
  }

  TlsSessionInfo info;
  info.version = SSL_get_version(ssl.get());
  if (const char* c = SSL_get_cipher_name(ssl.get())) info.cipher = c;
  std::unique_ptr<X509, X509Freer> cert(SSL_get1_peer_certificate(ssl.get()));
  if (cert) info.certificate = describe_certificate(cert.get());
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get())) info.chain_length = sk_X509_num(chain);
  long verify = SSL_get_verify_result(ssl.get());
  if (!cert) {
    info.verify_error = "no peer certificate";
  } else if (verify == X509_V_OK) {
    info.verified = true;
  } else {
    info.verify_error = X509_verify_cert_error_string(verify);
  }
  ctx_ = std::move(ctx);
  ssl_ = std::move(ssl);
  return info;
}

void Stream::shutdown_write() {
  if (fd_ < 0) return;
  if (ssl_) {
    ERR_clear_error();
    SigpipeGuard no_sigpipe;
    SSL_shutdown(ssl_.get());  // sends close_notify; the peer's reply is not awaited
  }
  ::shutdown(fd_, SHUT_WR);
}

Listener::Listener(int fd, uint16_t port, std::string address)
    : fd_(fd), port_(port), address_(std::move(address)) {}

Listener::Listener(Listener&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), port_(other.port_), address_(std::move(other.address_)) {}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    port_ = other.port_;
    address_ = std::move(other.address_);
  }
  return *this;
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
}

int Listener::release() { return std::exchange(fd_, -1); }

Result<Listener> Listener::bind(const std::string& host, uint16_t port, int backlog) {
  std::string asked = (host.find(':') != std::string::npos ? "[" + host + "]" : host.empty() ? "*" : host) +
                      ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* raw = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &raw);
  if (rc != 0) {
    std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
    return fail(failure_from_gai(rc), "listen on " + asked + ": cannot resolve host: " + why);
  }
  std::unique_ptr<addrinfo, AddrinfoFreer> list(raw);

  Error last = fail(Failure::name_not_found, "listen on " + asked + ": no address to bind");
  for (addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
    std::string where = format_socket_address(ai->ai_addr);
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = fail(Failure::internal, "listen on " + where + ": socket: " + std::strerror(errno));
      continue;
    }
    Listener listener(fd, port, where);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, backlog) != 0) {
      int err = errno;
      // A taken port may be free later; a foreign address or a privileged port will not be.
      Failure kind = err == EADDRINUSE                  ? Failure::address_in_use
                     : err == EACCES || err == EPERM    ? Failure::permission_denied
                                                        : Failure::config;
      last = fail(kind, "listen on " + where + ": " + std::strerror(err));
      continue;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
      listener.address_ = format_socket_address(reinterpret_cast<const sockaddr*>(&bound));
      listener.port_ = ntohs(bound.ss_family == AF_INET6
                                 ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                 : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
    }
    return listener;
  }
  return last;
}

}  // namespace envkit
