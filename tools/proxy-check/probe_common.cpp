// What every probe shares: phase timing, failure reporting, connecting, TLS grading, bounded
// reads; and the dispatch from a URL's scheme to its probe.
#include <cmath>
#include <cstdio>
#include <ctime>

#include <envkit/exit_status.hpp>
#include <envkit/timefmt.hpp>
#include "proxy-check/probes.hpp"

namespace proxy_check {

using envkit::Error;
using envkit::Exit;
using Clock = std::chrono::steady_clock;

const char* state_name(State state) {
  switch (state) {
    case State::ok: return "OK";
    case State::warning: return "WARNING";
    case State::critical: return "CRITICAL";
    case State::unknown: return "UNKNOWN";
  }
  return "UNKNOWN";
}

namespace {
/// monitoring-plugins' max_state_alt order: CRITICAL > WARNING > UNKNOWN > OK, so that one
/// target's UNKNOWN never hides another's CRITICAL.
int rank(State s) {
  switch (s) {
    case State::ok: return 0;
    case State::unknown: return 1;
    case State::warning: return 2;
    case State::critical: return 3;
  }
  return 1;
}
}  // namespace

State worse(State a, State b) { return rank(a) >= rank(b) ? a : b; }

void PhaseClock::mark(std::string name) {
  auto now = Clock::now();
  result_.phases.push_back({std::move(name), std::chrono::duration_cast<std::chrono::microseconds>(now - last_)});
  last_ = now;
}

void PhaseClock::finish() {
  result_.phases.push_back(
      {"total", std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_)});
}

ProbeResult& fail(ProbeResult& result, std::string_view step, const Error& error) {
  // proxy-check's own trouble (a bad target parameter, an unreadable CA file, a bug) is
  // UNKNOWN; anything the target did, whatever its exit status elsewhere (a name that does
  // not exist, refused credentials, a certificate that does not verify), is CRITICAL.
  bool ours = error.kind ? *error.kind == envkit::Failure::usage || *error.kind == envkit::Failure::config ||
                               *error.kind == envkit::Failure::internal
                         : error.code == Exit::usage || error.code == Exit::config || error.code == Exit::software;
  result.state = ours ? State::unknown : State::critical;
  result.summary = std::string(step) + ": " + error.message;
  return result;
}

ProbeResult& fail(ProbeResult& result, std::string_view step, std::string_view why) {
  result.state = State::critical;
  result.summary = std::string(step) + ": " + std::string(why);
  return result;
}

std::optional<envkit::Stream> connect_phase(const envkit::Url& target, const ProbeOptions& options,
                                            ProbeResult& result, PhaseClock& clock) {
  if (target.hosts.empty()) {
    fail(result, "target", Error{Exit::usage, "no host in " + target.redacted()});
    return std::nullopt;
  }
  uint16_t port = target.port_or_default(0);
  if (port == 0) {
    fail(result, "target", Error{Exit::usage, "no port in " + target.redacted()});
    return std::nullopt;
  }
  // The connect phase has its own, shorter bound (--connect-timeout) inside the whole check's.
  auto connect_deadline = std::min(options.deadline, envkit::deadline_in(options.connection.connect_timeout));
  auto stream = envkit::Stream::connect(target.hosts[0].host, port, connect_deadline);
  clock.mark("connect");
  if (!stream) {
    // A port that refuses or never answers the SYN is "closed" (what --expect closed wants);
    // a name that does not resolve is not: it says nothing about the port.
    const auto& e = stream.error();
    result.closed = envkit::is(e, envkit::Failure::connection_refused) || envkit::is(e, envkit::Failure::unreachable);
    fail(result, "connect", e);
    return std::nullopt;
  }
  result.facts.emplace_back("peer", stream->peer());
  return std::move(*stream);
}

bool tls_phase(envkit::Stream& stream, const envkit::Url& target, const ProbeOptions& options,
               ProbeResult& result, PhaseClock& clock, State& grade, std::string& note) {
  const auto& tls = options.connection.tls;
  auto info = stream.start_tls(tls, target.hosts[0].host, options.deadline);
  clock.mark("tls");
  if (!info) {
    fail(result, "tls", info.error());
    return false;
  }
  result.facts.emplace_back("tls_version", info->version);
  result.facts.emplace_back("tls_cipher", info->cipher);
  result.facts.emplace_back("tls_verified", info->verified ? "true" : "false");
  if (!info->verify_error.empty()) result.facts.emplace_back("tls_verify_error", info->verify_error);
  result.facts.emplace_back("tls_chain_length", std::to_string(info->chain_length));
  grade = State::ok;
  std::vector<std::string> notes;
  notes.push_back(info->version);
  if (info->certificate) {
    const auto& c = *info->certificate;
    result.facts.emplace_back("tls_subject", c.subject);
    result.facts.emplace_back("tls_issuer", c.issuer);
    result.facts.emplace_back("tls_not_after", envkit::format_utc(std::chrono::time_point_cast<std::chrono::milliseconds>(c.not_after)));
    double days = std::chrono::duration<double>(c.not_after - std::chrono::system_clock::now()).count() / 86400.0;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", days);
    result.facts.emplace_back("days_to_expiry", buf);
    notes.push_back(c.subject.empty() ? "no subject" : c.subject);
    if (days < 0) {
      grade = State::critical;
      std::snprintf(buf, sizeof buf, "%.0f", std::ceil(-days));
      notes.push_back(std::string("certificate EXPIRED ") + buf + " days ago");
    } else {
      std::snprintf(buf, sizeof buf, "%.0f", std::floor(days));
      std::string expiry = std::string("expires in ") + buf + " days";
      if (options.critical_days && days < *options.critical_days) {
        grade = State::critical;
        expiry += " (critical under " + std::to_string(static_cast<long>(*options.critical_days)) + ")";
      } else if (options.warning_days && days < *options.warning_days) {
        grade = State::warning;
        expiry += " (warning under " + std::to_string(static_cast<long>(*options.warning_days)) + ")";
      }
      notes.push_back(expiry);
    }
  } else {
    notes.push_back("no certificate");
    if (tls.verify) grade = State::critical;
  }
  if (tls.verify && !info->verified && info->verify_error != "certificate has expired") {
    grade = State::critical;
    notes.push_back("NOT TRUSTED: " + info->verify_error);
  } else if (!tls.verify && !info->verified) {
    notes.push_back("unverified (" + info->verify_error + ", tls-insecure)");
  } else if (info->verified) {
    notes.push_back("verified");
  }
  note.clear();
  for (const auto& n : notes) note += (note.empty() ? "" : ", ") + n;
  return true;
}

void fold_tls_grade(ProbeResult& result, State grade, const std::string& note) {
  if (grade == State::ok || worse(grade, result.state) == result.state) return;
  result.state = grade;
  if (!note.empty()) result.summary += "; " + note;
}

std::optional<OpenedStream> open_target(const envkit::Url& target, const ProbeOptions& options,
                                        ProbeResult& result, PhaseClock& clock) {
  ProbeOptions opts = options;
  auto tls = envkit::tls_options_from_url(target, options.connection.tls);
  if (!tls) {
    fail(result, "target", tls.error());
    return std::nullopt;
  }
  opts.connection.tls = *tls;
  auto stream = connect_phase(target, opts, result, clock);
  if (!stream) return std::nullopt;
  OpenedStream opened{std::move(*stream), State::ok, {}};
  if (tls->enabled &&
      !tls_phase(opened.stream, target, opts, result, clock, opened.tls_grade, opened.tls_note)) {
    return std::nullopt;
  }
  return opened;
}

envkit::Result<ReadUntil> read_until(envkit::Stream& stream, std::string& buffer, std::string_view needle,
                                     size_t limit, envkit::Deadline deadline) {
  char chunk[16384];
  for (;;) {
    if (!needle.empty() && buffer.find(needle) != std::string::npos) return ReadUntil::found;
    if (buffer.size() >= limit) return ReadUntil::too_large;
    auto n = stream.read_some(chunk, std::min(sizeof chunk, limit - buffer.size()), deadline);
    if (!n) return n.error();
    if (*n == 0) return ReadUntil::closed;
    buffer.append(chunk, *n);
  }
}

std::string printable(std::string_view bytes, size_t max) {
  std::string out;
  for (unsigned char c : bytes) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

bool known_scheme(std::string_view s) {
  return s == "tcp" || s == "http" || s == "https" || s == "tls" || s == "redis" ||
         s == "rediss" || s == "amqp" || s == "amqps" || s == "kafka" || s == "mysql" ||
         s == "mongodb";
}

ProbeResult probe_target(const envkit::Url& target, const ProbeOptions& options) {
  const auto& s = target.scheme;
  if (s == "tcp") return probe_tcp(target, options);
  if (s == "http" || s == "https") return probe_http(target, options);
  if (s == "tls") return probe_tls(target, options);
  if (s == "redis" || s == "rediss") return probe_redis(target, options);
  if (s == "amqp" || s == "amqps") return probe_amqp(target, options);
  if (s == "kafka") return probe_kafka(target, options);
  if (s == "mysql") return probe_mysql(target, options);
  if (s == "mongodb") return probe_mongodb(target, options);
  ProbeResult r;
  r.state = State::unknown;
  r.summary = "no probe for scheme '" + s + "'";
  return r;
}

}  // namespace proxy_check
