// One check of one target, as every protocol probe (tcp, mysql, http, tls, redis, amqp,
// kafka, mongodb) reports it; the runner turns these into verdicts, groups and output.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/socket.hpp>
#include <envkit/url.hpp>

namespace proxy_check {

/// Nagios plugin states, in order of severity (the process exit status is the worst one).
enum class State { ok = 0, warning = 1, critical = 2, unknown = 3 };

/// How long one step of a check took: "connect", "tls", "greeting", "first_byte", "auth",
/// "query", "total". Phases are listed in the order they happened.
struct Phase {
  std::string name;
  std::chrono::microseconds elapsed{0};
};

/// What one probe of one target found.
struct ProbeResult {
  State state = State::unknown;
  /// One line for people: "MariaDB 10.11.6 (connection 42, mysql_native_password, TLS
  /// offered), SELECT 1 = 1" or "connect: connection refused". Never holds a password.
  std::string summary;
  std::vector<Phase> phases;
  /// Facts the probe learned, as key/value pairs in a stable order, for --format json and
  /// perfdata: "server_version", "connection_id", "auth_plugin", "tls_offered",
  /// "days_to_expiry", "status", "replica_set", "primary", ...
  std::vector<std::pair<std::string, std::string>> facts;
  /// What identifies the server behind the endpoint, for --via: two endpoints reach the same
  /// backend when their identities are equal. E.g. MySQL "server_uuid=...,hostname=...,
  /// port=3306,version=10.11.6-MariaDB". Empty when the protocol offers none.
  std::string identity;
  /// The port refused or timed out (what --expect closed wants).
  bool closed = false;
};

/// What a probe may use. Every network call must finish by `deadline`.
struct ProbeOptions {
  envkit::Deadline deadline;
  envkit::ConnectionOptions connection;  ///< TLS settings; timeouts are already in deadline
  /// Thresholds for probes that grade (TLS days to expiry, latency); nullopt: not graded.
  std::optional<double> warning_days;
  std::optional<double> critical_days;
};

/// Probes of the protocols proxy-check speaks. Each takes the target URL (password already
/// resolved into it where one is needed) and never throws; a malformed target is
/// State::unknown, a refused/unanswering/hostile server State::critical with the reason.
ProbeResult probe_mysql(const envkit::Url& target, const ProbeOptions& options);
ProbeResult probe_mongodb(const envkit::Url& target, const ProbeOptions& options);

}  // namespace proxy_check
