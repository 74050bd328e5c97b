// The probes proxy-check speaks itself (tcp, http/https, tls, redis, amqp, kafka), the one
// dispatch by scheme, and the helpers every probe shares (phase timing, TLS grading).
#pragma once

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include <envkit/socket.hpp>
#include "proxy-check/probe.hpp"

namespace proxy_check {

ProbeResult probe_tcp(const envkit::Url& target, const ProbeOptions& options);
ProbeResult probe_http(const envkit::Url& target, const ProbeOptions& options);
ProbeResult probe_tls(const envkit::Url& target, const ProbeOptions& options);
ProbeResult probe_redis(const envkit::Url& target, const ProbeOptions& options);
ProbeResult probe_amqp(const envkit::Url& target, const ProbeOptions& options);
ProbeResult probe_kafka(const envkit::Url& target, const ProbeOptions& options);

/// True when proxy-check has a probe for `scheme`.
bool known_scheme(std::string_view scheme);

/// Runs the probe for the URL's scheme. An unknown scheme is State::unknown.
ProbeResult probe_target(const envkit::Url& target, const ProbeOptions& options);

/// "OK", "WARNING", "CRITICAL", "UNKNOWN".
const char* state_name(State state);
/// The more severe of two states: CRITICAL > WARNING > UNKNOWN > OK (monitoring-plugins'
/// max_state_alt), the order proxy-check's exit status follows.
State worse(State a, State b);

/// Records phases as they finish, each measured from the previous mark.
class PhaseClock {
 public:
  explicit PhaseClock(ProbeResult& result)
      : result_(result), start_(std::chrono::steady_clock::now()), last_(start_) {}
  /// Appends phase `name`: the time since the previous mark.
  void mark(std::string name);
  /// Appends "total": the time since the clock started.
  void finish();

 private:
  ProbeResult& result_;
  std::chrono::steady_clock::time_point start_, last_;
};

/// Sets `result` to CRITICAL (UNKNOWN for Exit::usage/config/software) with "step: why".
ProbeResult& fail(ProbeResult& result, std::string_view step, const envkit::Error& error);
/// Sets `result` to CRITICAL with "step: why".
ProbeResult& fail(ProbeResult& result, std::string_view step, std::string_view why);

/// Runs `probe()`, a probe's own steps, for a probe that must never throw: an exception that
/// escapes it (std::bad_alloc, a parser bug) becomes UNKNOWN "internal error: what".
template <typename Probe>
ProbeResult without_exceptions(Probe&& probe) {
  try {
    return probe();
  } catch (const std::exception& e) {
    ProbeResult r;
    r.state = State::unknown;
    r.summary = std::string("internal error: ") + e.what();
    return r;
  }
}

/// Connects to the URL's first host (its scheme's default port when none), recording the
/// "connect" phase. On failure fills `result` (closed = refused or timed out) and returns
/// nullopt.
std::optional<envkit::Stream> connect_phase(const envkit::Url& target, const ProbeOptions& options,
                                            ProbeResult& result, PhaseClock& clock);

/// Starts TLS on `stream`, records the "tls" phase and the certificate facts (subject,
/// issuer, not_after, days_to_expiry, tls_version, cipher, verified) and grades them:
/// expired or under critical_days -> CRITICAL, under warning_days -> WARNING, untrusted or
/// misnamed when verifying -> CRITICAL. Returns false (result filled) when the handshake
/// itself failed. `grade` is the state the certificate earned; the caller folds it in.
bool tls_phase(envkit::Stream& stream, const envkit::Url& target, const ProbeOptions& options,
               ProbeResult& result, PhaseClock& clock, State& grade, std::string& note);

/// A connected stream, TLS-wrapped when the target asked for TLS, and the state and note its
/// certificate earned (State::ok and "" without TLS).
struct OpenedStream {
  envkit::Stream stream;
  State tls_grade = State::ok;
  std::string tls_note;
};

/// The opening of a probe whose scheme carries its TLS settings in the URL (redis/rediss,
/// amqp/amqps, kafka): TLS settings from the URL over `options` (tls_options_from_url, a bad
/// one -> "target" UNKNOWN), connect_phase, then tls_phase when TLS is on. On failure fills
/// `result` and returns nullopt; the caller folds tls_grade and tls_note into its verdict.
std::optional<OpenedStream> open_target(const envkit::Url& target, const ProbeOptions& options,
                                        ProbeResult& result, PhaseClock& clock);

/// Folds the grade a certificate earned (tls_phase) into a finished verdict, as the mysql and
/// mongodb probes report it: a grade worse than the state replaces it and its note follows
/// after "; " (a certificate close to expiry makes an otherwise good check a WARNING).
void fold_tls_grade(ProbeResult& result, State grade, const std::string& note);

/// Reads until `needle` appears in `buffer`, the peer closes, or `limit` bytes were read.
/// Returns the outcome: found, closed, too large, or the read error.
enum class ReadUntil { found, closed, too_large };
envkit::Result<ReadUntil> read_until(envkit::Stream& stream, std::string& buffer,
                                     std::string_view needle, size_t limit,
                                     envkit::Deadline deadline);

/// Bytes shown in a summary: printable ASCII kept, others as \xNN, cut at `max` characters.
std::string printable(std::string_view bytes, size_t max = 60);

}  // namespace proxy_check
