// One failure, one exit status: the kinds of failure every command can meet, and the one
// sysexits code each maps to. Connectors classify what went wrong as a Failure; nobody
// picks an Exit code ad hoc, because cron jobs and retry loops decide on that code.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include <envkit/result.hpp>

namespace envkit {

/// What went wrong, in the terms an operator acts on. Each kind has exactly one Exit code
/// (kFailureTable); the rows and the reasons for each code are documented there.
enum class Failure : int {
  usage,                 ///< a bad command line, URL or option
  config,                ///< a bad configuration file or setting
  name_not_found,        ///< the host name does not exist (NXDOMAIN)
  resolver_unavailable,  ///< the resolver could not answer now (EAI_AGAIN)
  connection_refused,    ///< nothing listens at the address
  unreachable,           ///< no route, or no answer while connecting
  connection_lost,       ///< the peer reset or closed the connection mid-way
  address_in_use,        ///< the address to listen on is taken by another socket
  io_timeout,            ///< connected, then no answer within the I/O timeout
  server_busy,           ///< the server is there but overloaded, locked or read-only
  wrong_protocol,        ///< the peer does not speak the protocol expected
  tls_failed,            ///< TLS handshake or certificate verification failed
  auth_refused,          ///< the credentials were refused
  not_found,             ///< an unknown database, vhost, queue, topic, table or key
  permission_denied,     ///< logged in, but not allowed to do this
  bad_data,              ///< input data or a record is malformed, or the server refused a value
  no_input,              ///< a local input file is missing or unreadable
  local_io,              ///< a local read or write failed: disk full, spool full, I/O error
  lock_held,             ///< another run holds the lock
  interrupted,           ///< stopped by SIGINT/SIGTERM before the work was done
  internal,              ///< a bug, or out of memory
};

/// One row of the table: a failure kind, its exit status, and what it means.
struct FailureRow {
  Failure kind;
  std::string_view name;     ///< stable identifier ("connection_refused"), for logs and tests
  Exit code;
  std::string_view meaning;  ///< one line for the man page
};

// The exit status of each kind, and why (sysexits(3) semantics):
//   64 EX_USAGE       the command line is wrong: fix it and run again.
//   78 EX_CONFIG      an operator must change something (a name, a password, a grant, a
//                     certificate, a port): retrying as is will fail the same way.
//   69 EX_UNAVAILABLE the service cannot be reached or used now: cron's next run, or a
//                     spool, is the right answer; a tight retry loop is not.
//   75 EX_TEMPFAIL    the service is there but did not finish now: worth retrying soon.
//   65 EX_DATAERR     the data is at fault, not the environment: retrying repeats it.
//   66 EX_NOINPUT     an input file the operator named is missing or unreadable.
//   74 EX_IOERR       a local disk said no.
//   70 EX_SOFTWARE    a bug: report it.
inline constexpr std::array<FailureRow, 21> kFailureTable{{
    {Failure::usage, "usage", Exit::usage, "bad command line, URL or option"},
    // A configuration file says what the operator meant: only the operator can fix it.
    {Failure::config, "config", Exit::config, "bad configuration file or setting"},
    // NXDOMAIN is an answer: the name does not exist, so retrying cannot help; a misspelt
    // or retired name in the configuration is the likely cause.
    {Failure::name_not_found, "name_not_found", Exit::config,
     "host name does not exist (NXDOMAIN)"},
    // EAI_AGAIN is no answer at all: the resolver is down or slow, which passes.
    {Failure::resolver_unavailable, "resolver_unavailable", Exit::temp_fail,
     "name resolver did not answer (EAI_AGAIN)"},
    // Nothing listening: the service is down (or restarting). The next run may find it.
    {Failure::connection_refused, "connection_refused", Exit::unavailable,
     "connection refused: nothing listens at the address"},
    {Failure::unreachable, "unreachable", Exit::unavailable,
     "host unreachable, or no answer while connecting"},
    // A server that went away mid-conversation (restart, crash, proxy closing) is a server
    // that cannot be used now, as if it had refused.
    {Failure::connection_lost, "connection_lost", Exit::unavailable,
     "connection reset or closed by the peer"},
    // A server of ours cannot listen because something else holds the port (often the
    // previous instance, still stopping): the next start may find it free.
    {Failure::address_in_use, "address_in_use", Exit::unavailable,
     "the address to listen on is in use by another process"},
    // Once connected, silence means the server is there but slow: retry soon.
    {Failure::io_timeout, "io_timeout", Exit::temp_fail,
     "no answer within the I/O timeout after connecting"},
    {Failure::server_busy, "server_busy", Exit::temp_fail,
     "server overloaded, locked or read-only (too many connections, lock wait)"},
    // Something else answers at that address (a wrong port in the URL): retrying cannot
    // turn it into the right server.
    {Failure::wrong_protocol, "wrong_protocol", Exit::config,
     "the peer does not speak the expected protocol (wrong port?)"},
    // A certificate that does not verify, or a TLS set-up the server will not accept, stays
    // so until someone changes a certificate, a CA file or an option.
    {Failure::tls_failed, "tls_failed", Exit::config,
     "TLS handshake or certificate verification failed"},
    {Failure::auth_refused, "auth_refused", Exit::config, "credentials refused"},
    {Failure::not_found, "not_found", Exit::config,
     "unknown database, vhost, queue, topic or table"},
    {Failure::permission_denied, "permission_denied", Exit::config,
     "logged in, but not allowed (a grant or ACL is missing)"},
    {Failure::bad_data, "bad_data", Exit::data,
     "bad input data, or a value the server refused"},
    {Failure::no_input, "no_input", Exit::no_input, "local input file missing or unreadable"},
    // A full disk or spool is local and not fixed by waiting a second: stop and say so.
    {Failure::local_io, "local_io", Exit::io, "local I/O error: disk full, spool full"},
    // The other run will finish: the same command succeeds later.
    {Failure::lock_held, "lock_held", Exit::temp_fail, "another run holds the lock"},
    // Nothing is wrong with the environment; the work is undone and can be redone.
    {Failure::interrupted, "interrupted", Exit::temp_fail,
     "stopped by SIGINT/SIGTERM before the work was done"},
    {Failure::internal, "internal", Exit::software, "internal error (a bug): please report it"},
}};

/// The table's row for `kind`.
const FailureRow& failure_row(Failure kind);

/// The exit status of a failure kind.
inline Exit exit_for(Failure kind) { return failure_row(kind).code; }

/// An Error of kind `kind`: the one way below main() to say what failed and so which
/// status the command ends with.
inline Error fail(Failure kind, std::string message) {
  return Error{exit_for(kind), std::move(message), kind};
}

/// True when `error` is of kind `kind` (an Error built without fail() is of none).
inline bool is(const Error& error, Failure kind) { return error.kind == kind; }

/// getaddrinfo()'s return code as a failure: EAI_NONAME/EAI_NODATA (the name does not
/// exist) is name_not_found; EAI_AGAIN and EAI_FAIL (no answer) resolver_unavailable;
/// EAI_MEMORY internal; the rest (EAI_SERVICE, EAI_FAMILY...) usage.
Failure failure_from_gai(int rc);

/// Why `host` does not resolve, for clients (libcurl, libmariadb, hiredis) that report
/// "cannot resolve" without saying whether the name is unknown or the resolver silent:
/// asks getaddrinfo() once more and classifies its answer (failure_from_gai), so every
/// connector gives a DNS failure the same status as Stream::connect.
Failure failure_resolving(const std::string& host);

/// A connect()/send()/recv() errno as a failure: ECONNREFUSED connection_refused;
/// EHOSTUNREACH, ENETUNREACH, ETIMEDOUT unreachable; ECONNRESET, EPIPE, ECONNABORTED
/// connection_lost; EACCES, EPERM permission_denied (a firewall rule); ENOMEM internal; any
/// other connection_lost.
Failure failure_from_socket_errno(int err);

/// `text` as roff prints it: backslashes and hyphens escaped, no leading request character.
/// For the man-page tables generated from the code (this one, queue-relay(1)'s URL forms).
std::string roff_escape(std::string_view text);

/// The "EXIT STATUS" lines every man page carries, in roff, generated from kFailureTable:
/// one .TP entry per code, listing its kinds. Tests compare each man page with it.
std::string exit_status_roff();

}  // namespace envkit
