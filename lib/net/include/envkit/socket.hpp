// Byte streams over TCP, plain or TLS (OpenSSL), with a deadline on every call: what
// protocol probes and hand-written protocol clients speak through.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/result.hpp>

struct sockaddr;

namespace envkit {

/// The moment by which a call must have finished; every Stream call takes one.
using Deadline = std::chrono::steady_clock::time_point;

/// A deadline `timeout` from now.
inline Deadline deadline_in(std::chrono::milliseconds timeout) {
  return std::chrono::steady_clock::now() + timeout;
}

/// The leaf certificate a TLS peer presented.
struct PeerCertificate {
  std::string subject;                 ///< one line, RFC 2253 ("CN=db.example,O=Example")
  std::string issuer;                  ///< one line, RFC 2253
  std::vector<std::string> dns_names;  ///< subjectAltName DNS entries
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};

/// What a TLS handshake established. The handshake completes even when the peer's
/// certificate cannot be trusted, so that an expired or misnamed certificate can still be
/// reported: whoever needs trust checks `verified`.
struct TlsSessionInfo {
  std::string version;       ///< "TLSv1.3"
  std::string cipher;        ///< "TLS_AES_256_GCM_SHA384"
  bool verified = false;     ///< chain trusted (TlsOptions::ca_file or the system store)
                             ///< and name matched (server_name, else the host dialled)
  std::string verify_error;  ///< why not verified: "certificate has expired", "hostname
                             ///< mismatch", ...; empty when verified
  std::optional<PeerCertificate> certificate;  ///< the leaf; nullopt if the peer sent none
  int chain_length = 0;      ///< certificates the peer sent
};

namespace detail {
struct SslCtxFreer {
  void operator()(SSL_CTX* ctx) const;
};
struct SslFreer {
  void operator()(SSL* ssl) const;
};
}  // namespace detail

/// One connected TCP stream, optionally upgraded to TLS. Move-only; closes on destruction.
/// Not thread-safe.
class Stream {
 public:
  /// Resolves `host` and connects. Errors are classified by envkit/exit_status.hpp:
  /// name_not_found (NXDOMAIN) or resolver_unavailable (EAI_AGAIN); connection_refused;
  /// unreachable when no route or the deadline passes first (message "timed out
  /// connecting"). The message never has a "host:port: " prefix: callers add context.
  static Result<Stream> connect(const std::string& host, uint16_t port, Deadline deadline);

  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  ~Stream();

  /// Reads what is available, at most `size` bytes, waiting until the deadline for at least
  /// one. Returns 0 when the peer closed the stream. Errors: io_timeout on timeout,
  /// connection_lost on a reset or TLS failure (envkit/exit_status.hpp).
  Result<size_t> read_some(char* buffer, size_t size, Deadline deadline);
  /// Reads exactly `size` bytes; the peer closing first is an Error (connection_lost,
  /// "connection closed after N of M bytes").
  Status read_exact(char* buffer, size_t size, Deadline deadline);
  /// Writes all of `data`.
  Status write_all(std::string_view data, Deadline deadline);

  /// Starts TLS on this connection: at once for tls:// and https, or in the middle of a
  /// protocol that negotiates it (MySQL's SSLRequest). SNI and the name checked are
  /// `options.server_name` when set, else `host`. Completes even when verification fails
  /// (see TlsSessionInfo); errors are handshake failures (tls_failed, or connection_lost
  /// when the peer hangs up), timeouts (io_timeout) and unreadable CA/certificate/key files
  /// (config), as classified in envkit/exit_status.hpp.
  Result<TlsSessionInfo> start_tls(const TlsOptions& options, const std::string& host,
                                   Deadline deadline);

  /// For callers that wait on many streams themselves (epoll): the descriptor, and one read
  /// or write that never waits. try_read gives nullopt when nothing can be read yet, 0 when
  /// the peer closed the stream; try_write the bytes written (0 when none could be). Over
  /// TLS a record may need the other direction first: wait for both, then try again.
  int fd() const { return fd_; }
  Result<std::optional<size_t>> try_read(char* buffer, size_t size);
  Result<size_t> try_write(std::string_view data);

  /// True when the peer has closed or reset the connection, seen without waiting and
  /// without consuming anything: whether an idle keep-alive connection can take a request.
  /// Bytes waiting on a plain connection count as closed too (an idle peer sends nothing);
  /// on TLS they may be a session ticket, so only the end of the stream counts.
  bool peer_closed() const;

  bool is_tls() const { return ssl_ != nullptr; }
  /// The address actually connected to, "127.0.0.1:3306" or "[::1]:3306".
  const std::string& peer() const { return peer_; }
  /// Half-closes the sending side (sends FIN, or TLS close_notify then FIN).
  void shutdown_write();

 private:
  Stream(int fd, std::string peer);
  void close();
  // One read or write that never waits: bytes moved (a read's 0: the peer closed), or
  // nullopt with `want` set to the readiness to wait for (TLS may need the other one).
  Result<std::optional<size_t>> read_once(char* buffer, size_t size, short& want);
  Result<std::optional<size_t>> write_once(std::string_view data, short& want);

  int fd_ = -1;
  std::string peer_;
  std::unique_ptr<SSL_CTX, detail::SslCtxFreer> ctx_;
  std::unique_ptr<SSL, detail::SslFreer> ssl_;
};

/// An IPv4 or IPv6 socket address as text: "127.0.0.1:3306" or "[::1]:3306".
std::string format_socket_address(const sockaddr* address);

/// A listening TCP socket (non-blocking, close-on-exec). Move-only; closes on destruction
/// unless release()d to a server that takes it over.
class Listener {
 public:
  /// Binds `host` (a numeric address or a name; empty: every interface) and `port` (0: the
  /// kernel picks a free one) and listens. SO_REUSEADDR is set, so a restart is not refused
  /// while old connections sit in TIME_WAIT (a port another socket listens on still is).
  /// Errors name the address ("listen on 127.0.0.1:8080: Address already in use") and are
  /// classified by envkit/exit_status.hpp: address_in_use (unavailable) when the port is
  /// taken; permission_denied for a port that needs privileges; config for an address that
  /// is not this host's; a name that does not resolve as getaddrinfo says (failure_from_gai).
  static Result<Listener> bind(const std::string& host, uint16_t port, int backlog = 511);

  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&& other) noexcept;
  ~Listener();

  int fd() const { return fd_; }
  /// The port bound: the one asked for, or the kernel's pick for port 0.
  uint16_t port() const { return port_; }
  /// The address bound, "127.0.0.1:41234" or "[::1]:41234".
  const std::string& address() const { return address_; }
  /// Gives up ownership: the caller closes the descriptor from now on.
  int release();

 private:
  Listener(int fd, uint16_t port, std::string address);

  int fd_ = -1;
  uint16_t port_ = 0;
  std::string address_;
};

}  // namespace envkit
