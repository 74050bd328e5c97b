// tcp:// (connect, optional ?send=...&expect=...) and tls:// (handshake and certificate).
#include "proxy-check/probes.hpp"

namespace proxy_check {

namespace {
/// The most a tcp:// probe reads while looking for ?expect=: enough for any banner, and a
/// bound on a server that streams without end.
constexpr size_t kMaxTcpRead = 64 * 1024;
}  // namespace

ProbeResult probe_tcp(const envkit::Url& target, const ProbeOptions& options) {
  ProbeResult r;
  PhaseClock clock(r);
  auto stream = connect_phase(target, options, r, clock);
  if (!stream) return r;
  auto send = target.param("send");
  auto expect = target.param("expect");
  if (expect && *expect == "closed") expect.reset();  // the runner's ?expect=closed
  std::string what = "connected to " + stream->peer();
  if (send) {
    if (auto st = stream->write_all(*send, options.deadline); !st) return fail(r, "send", st.error());
    clock.mark("send");
  }
  if (expect) {
    std::string got;
    auto until = read_until(*stream, got, *expect, kMaxTcpRead, options.deadline);
    clock.mark("first_byte");
    if (!until) {
      return fail(r, "expect", until.error().message + " (got " + std::to_string(got.size()) + " bytes: '" +
                                   printable(got) + "')");
    }
    if (*until != ReadUntil::found) {
      return fail(r, "expect", "'" + printable(*expect) + "' not in the " +
                                   (*until == ReadUntil::closed ? "reply before the server closed"
                                                                : "first 64 KiB of the reply") +
                                   ": '" + printable(got) + "'");
    }
    what += ", got '" + printable(*expect) + "'";
  }
  clock.finish();
  r.state = State::ok;
  r.summary = what;
  return r;
}

ProbeResult probe_tls(const envkit::Url& target, const ProbeOptions& options) {
  ProbeResult r;
  PhaseClock clock(r);
  auto stream = connect_phase(target, options, r, clock);
  if (!stream) return r;
  State grade = State::ok;
  std::string note;
  if (!tls_phase(*stream, target, options, r, clock, grade, note)) return r;
  stream->shutdown_write();
  clock.finish();
  r.state = grade;
  r.summary = note;
  return r;
}

}  // namespace proxy_check
