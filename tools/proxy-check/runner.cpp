// Running checks: worker pool, --via, --expect closed, health thresholds and the state file,
// group verdicts, and the outputs.
#include "proxy-check/runner.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <thread>

#include <envkit/durable_file.hpp>
#include <envkit/exit_status.hpp>
#include <envkit/json.hpp>
#include <envkit/log.hpp>
#include <envkit/metrics.hpp>
#include <envkit/posix.hpp>
#include <envkit/schedule.hpp>
#include <envkit/signals.hpp>
#include <envkit/timefmt.hpp>
#include <envkit/worker_pool.hpp>
#include "proxy-check/probes.hpp"

namespace proxy_check {

using envkit::Error;
using envkit::Exit;
using Clock = std::chrono::steady_clock;

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double phase_seconds(const ProbeResult& r, std::string_view name) {
  for (const auto& p : r.phases)
    if (p.name == name) return std::chrono::duration<double>(p.elapsed).count();
  return -1;
}

std::string fact(const ProbeResult& r, std::string_view key) {
  for (const auto& [k, v] : r.facts)
    if (k == key) return v;
  return {};
}

std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", s);
  return buf;
}

ProbeResult check_closed(const TargetSpec& t, const ProbeOptions& opts) {
  ProbeResult r;
  PhaseClock clock(r);
  auto stream = connect_phase(t.url, opts, r, clock);
  clock.finish();
  if (!stream) {
    if (r.closed) {
      r.state = State::ok;
      r.summary = "port is closed as expected (" + r.summary.substr(r.summary.find(": ") + 2) + ")";
    }
    return r;  // a name that does not resolve proves nothing about the port: stays CRITICAL
  }
  r.state = State::critical;
  r.summary = "port is OPEN (expected closed): connected to " + stream->peer();
  return r;
}

/// With --via: probes the target directly and through the proxy and compares identities.
ProbeResult check_via(const TargetSpec& t, const Group& group, const ProbeOptions& opts) {
  ProbeResult direct = probe_target(t.url, opts);
  envkit::Url through_url = t.url;
  through_url.hosts = t.via->hosts;
  for (auto& h : through_url.hosts)
    if (h.port == 0) h.port = t.url.port_or_default();
  ProbeOptions through_opts = opts;
  through_opts.deadline = envkit::deadline_in(group.timeout);
  ProbeResult through = probe_target(through_url, through_opts);

  ProbeResult r;
  r.phases = direct.phases;
  for (const auto& p : through.phases) r.phases.push_back({"via_" + p.name, p.elapsed});
  r.facts = direct.facts;
  for (const auto& [k, v] : through.facts) r.facts.emplace_back("via_" + k, v);
  r.identity = direct.identity;
  r.closed = direct.closed;
  std::string via_name = t.via->redacted();
  auto passing = [](State s) { return s == State::ok || s == State::warning; };
  if (!passing(direct.state)) {
    r.state = direct.state;
    r.summary = "direct: " + direct.summary;
    return r;
  }
  if (!passing(through.state)) {
    r.state = through.state;
    r.summary = "via " + via_name + ": " + through.summary;
    return r;
  }
  r.state = worse(direct.state, through.state);
  if (direct.identity.empty() || through.identity.empty()) {
    r.state = worse(r.state, State::warning);
    r.summary = "both answer, but " + t.url.scheme + " gives no server identity to compare; direct: " +
                direct.summary + "; via " + via_name + ": " + through.summary;
  } else if (direct.identity != through.identity) {
    r.state = State::critical;
    r.summary = "via " + via_name + " reaches a DIFFERENT backend: direct " + direct.identity + ", via " +
                through.identity;
  } else {
    r.summary = "via " + via_name + " reaches the same backend (" + direct.identity + "); " + through.summary;
  }
  return r;
}

State worst(State a, State b) { return worse(a, b); }

std::string perf_label(const std::string& name, const std::string& what) {
  std::string label = name + " " + what;
  for (auto& c : label)
    if (c == '\'' || c == '=' || c == '|') c = '_';
  return "'" + label + "'";
}

/// A lock on the state file held for one round, so two cron runs never interleave.
envkit::Result<envkit::FileLock> lock_state(const std::string& state_file, std::chrono::milliseconds wait) {
  auto lock = envkit::FileLock::acquire(state_file + ".lock", wait);
  if (!lock && lock.error().code == envkit::exit_for(envkit::Failure::lock_held)) {
    return envkit::fail(envkit::Failure::lock_held,
                        state_file + ": locked by another proxy-check run (" + lock.error().message + ")");
  }
  return lock;
}

}  // namespace

bool update_health(Health& h, bool success, int healthy_threshold, int unhealthy_threshold, int64_t now) {
  if (success) {
    h.successes = std::min(h.successes + 1, 1000000);
    h.failures = 0;
  } else {
    h.failures = std::min(h.failures + 1, 1000000);
    h.successes = 0;
  }
  std::string next = h.status;
  if (success && h.successes >= healthy_threshold) next = "healthy";
  if (!success && h.failures >= unhealthy_threshold) next = "unhealthy";
  if (next == h.status) return false;
  h.status = next;
  h.changed_at = now;
  return true;
}

ProbeResult check_target(const TargetSpec& t, const Group& group, const Config& config) {
  ProbeOptions opts;
  opts.deadline = envkit::deadline_in(group.timeout);
  opts.connection = config.connection;
  opts.connection.io_timeout = group.timeout;
  opts.warning_days = t.warning_days;
  opts.critical_days = t.critical_days;
  auto tls = envkit::tls_options_from_url(t.url, config.connection.tls);
  if (!tls) {
    ProbeResult r;
    return fail(r, "target", tls.error());
  }
  opts.connection.tls = *tls;
  if (t.expect_closed) return check_closed(t, opts);
  auto started = Clock::now();
  ProbeResult r = t.via ? check_via(t, group, opts) : probe_target(t.url, opts);
  if (phase_seconds(r, "total") < 0) {
    // Probes that stop early leave no total: the time to fail is worth plotting too.
    r.phases.push_back({"total", std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started)});
  }
  if (r.state == State::ok || r.state == State::warning) {
    double total_ms = phase_seconds(r, "total") * 1000;
    if (total_ms >= 0) {
      char buf[64];
      if (t.critical_ms && total_ms > *t.critical_ms) {
        std::snprintf(buf, sizeof buf, "%.0f ms > %.0f ms critical", total_ms, *t.critical_ms);
        r.state = State::critical;
        r.summary += std::string(", SLOW: ") + buf;
      } else if (t.warning_ms && total_ms > *t.warning_ms) {
        std::snprintf(buf, sizeof buf, "%.0f ms > %.0f ms warning", total_ms, *t.warning_ms);
        r.state = worse(r.state, State::warning);
        r.summary += std::string(", slow: ") + buf;
      }
    }
  }
  return r;
}

std::vector<ProbeResult> check_all(const std::vector<std::pair<const Group*, const TargetSpec*>>& targets,
                                   const Config& config) {
  std::vector<ProbeResult> results(targets.size());
  // A target's failure is its result, never the pool's: every target is checked.
  (void)envkit::for_each_parallel(targets.size(), config.concurrency, [&](size_t, size_t i) {
    try {
      results[i] = check_target(*targets[i].second, *targets[i].first, config);
    } catch (const std::exception& e) {
      results[i].state = State::unknown;
      results[i].summary = std::string("internal error: ") + e.what();
    }
    return envkit::Status{};
  });
  return results;
}

std::string health_key(const Group& group, const TargetSpec& target) {
  return group.name + "/" + target.name;
}

envkit::Result<std::map<std::string, Health>> parse_health(const std::string& text) {
  std::map<std::string, Health> out;
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return out;
  auto doc = envkit::parse_json(text);
  if (!doc) return Error{Exit::data, "state file is not JSON: " + doc.error().message};
  const auto* targets = envkit::find_member(*doc, "targets");
  if (!targets || !targets->IsObject()) return Error{Exit::data, "state file has no \"targets\" object"};
  for (auto it = targets->MemberBegin(); it != targets->MemberEnd(); ++it) {
    const auto& v = it->value;
    if (!v.IsObject()) continue;
    Health h;
    if (const auto* s = envkit::find_member(v, "status"); s && s->IsString()) h.status = s->GetString();
    if (h.status != "healthy" && h.status != "unhealthy") h.status = "initial";
    if (const auto* s = envkit::find_member(v, "successes"); s && s->IsInt()) h.successes = std::max(0, s->GetInt());
    if (const auto* s = envkit::find_member(v, "failures"); s && s->IsInt()) h.failures = std::max(0, s->GetInt());
    if (const auto* s = envkit::find_member(v, "changed_at"); s && s->IsInt64()) h.changed_at = s->GetInt64();
    out[it->name.GetString()] = h;
  }
  return out;
}

std::string render_health(const std::map<std::string, Health>& health) {
  envkit::JsonWriter w;
  w.begin_object().key("version").number(1).key("targets").begin_object();
  for (const auto& [k, h] : health) {
    w.key(k).begin_object();
    w.key("status").string(h.status).key("successes").number(h.successes).key("failures").number(h.failures);
    w.key("changed_at").number(h.changed_at).end_object();
  }
  w.end_object().end_object();
  return w.take() + "\n";
}

GroupVerdict group_verdict(const Group& group, const std::vector<CheckOutcome>& outcomes) {
  GroupVerdict v;
  v.group = &group;
  int n = 0;
  State worst_target = State::ok;
  for (const auto& o : outcomes) {
    if (o.group != &group) continue;
    ++n;
    bool passing = o.result.state == State::ok || o.result.state == State::warning;
    if (o.health.status == "healthy" || (o.health.status == "initial" && passing)) {
      ++v.healthy;
    } else if (o.health.status == "unhealthy") {
      ++v.unhealthy;
    } else {
      ++v.initial;
    }
    worst_target = worst(worst_target, o.state);
  }
  if (group.name.empty()) {
    // Targets from the command line: each stands alone, the worst one decides.
    v.state = worst_target;
    v.summary = std::to_string(n) + " target(s)";
    return v;
  }
  std::string counts = std::to_string(v.healthy) + " of " + std::to_string(n) + " healthy";
  if (v.unhealthy > 0) counts += ", " + std::to_string(v.unhealthy) + " unhealthy";
  if (v.initial > 0) counts += ", " + std::to_string(v.initial) + " failing (not yet unhealthy)";
  if (v.healthy == n) {
    v.state = worst_target == State::warning ? State::warning : State::ok;
    v.summary = counts;
  } else if (v.healthy == 0 && v.unhealthy == n) {
    v.state = State::critical;
    v.fail_open = true;
    v.summary = counts + ": FAIL-OPEN, every target unhealthy (a load balancer now routes to all of them)";
  } else if (v.healthy == 0) {
    v.state = State::critical;
    v.summary = counts + ": no healthy target";
  } else {
    v.state = State::warning;
    v.summary = counts;
  }
  return v;
}

std::string render_nagios(const std::vector<CheckOutcome>& outcomes, const std::vector<GroupVerdict>& groups,
                          bool per_group, State overall) {
  std::string line = std::string("PROXY-CHECK ") + state_name(overall) + " - ";
  if (outcomes.size() == 1 && !per_group) {
    line += outcomes[0].target->name + ": " + outcomes[0].summary;
  } else {
    int counts[4] = {0, 0, 0, 0};
    for (const auto& o : outcomes) ++counts[static_cast<int>(o.state)];
    line += std::to_string(outcomes.size()) + " targets: ";
    bool first = true;
    for (State s : {State::critical, State::warning, State::unknown, State::ok}) {
      if (counts[static_cast<int>(s)] == 0) continue;
      line += (first ? "" : ", ") + std::to_string(counts[static_cast<int>(s)]) + " " + state_name(s);
      first = false;
    }
    for (const auto& g : groups) {
      if (g.group->name.empty()) continue;
      line += "; " + g.group->name + " " + state_name(g.state) + ": " + g.summary;
    }
  }
  // Perfdata: one total time per target, plus days to expiry where a certificate was seen.
  std::string perf;
  for (const auto& o : outcomes) {
    std::string name = (o.group->name.empty() ? "" : o.group->name + "/") + o.target->name;
    double total = phase_seconds(o.result, "total");
    if (total >= 0) {
      std::string warn = o.target->warning_ms ? format_seconds(*o.target->warning_ms / 1000) : "";
      std::string crit = o.target->critical_ms ? format_seconds(*o.target->critical_ms / 1000) : "";
      perf += " " + perf_label(name, "time") + "=" + format_seconds(total) + "s;" + warn + ";" + crit + ";0;";
    }
    std::string days = fact(o.result, "days_to_expiry");
    if (!days.empty()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, ";%g;%g;;", o.target->warning_days.value_or(0), o.target->critical_days.value_or(0));
      perf += " " + perf_label(name, "days_to_expiry") + "=" + days + buf;
    }
  }
  for (auto& c : line)
    if (c == '|' || c == '\n') c = '/';
  std::string out = line + (perf.empty() ? "" : " |" + perf) + "\n";
  if (outcomes.size() > 1 || per_group) {
    for (const auto& o : outcomes) {
      std::string detail = std::string(state_name(o.state)) + " " +
                           (o.group->name.empty() ? "" : "[" + o.group->name + "] ") + o.target->name + ": " + o.summary;
      for (auto& c : detail)
        if (c == '|' || c == '\n') c = '/';
      out += detail + "\n";
    }
  }
  return out;
}

std::string render_json(const CheckOutcome& o) {
  envkit::JsonWriter w;
  w.begin_object();
  w.key("kind").string("target");
  w.key("time").string(envkit::format_utc(std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()), true));
  if (!o.group->name.empty()) w.key("group").string(o.group->name);
  w.key("target").string(o.target->name);
  w.key("url").string(o.target->shown_url);
  if (o.target->via) w.key("via").string(o.target->via->redacted());
  if (o.target->expect_closed) w.key("expect").string("closed");
  w.key("state").string(state_name(o.state)).key("exit").number(static_cast<int>(o.state));
  w.key("summary").string(o.summary);
  w.key("probe_state").string(state_name(o.result.state));
  w.key("health").string(o.health.status);
  w.key("successes").number(o.health.successes).key("failures").number(o.health.failures);
  w.key("closed").boolean(o.result.closed);
  if (!o.result.identity.empty()) w.key("identity").string(o.result.identity);
  w.key("phases").begin_object();
  for (const auto& p : o.result.phases) w.key(p.name).number(std::chrono::duration<double>(p.elapsed).count());
  w.end_object();
  w.key("facts").begin_object();
  for (const auto& [k, v] : o.result.facts) w.key(k).string(v);
  w.end_object();
  w.end_object();
  return w.take();
}

std::string render_json(const GroupVerdict& g) {
  envkit::JsonWriter w;
  w.begin_object();
  w.key("kind").string("group").key("group").string(g.group->name);
  w.key("state").string(state_name(g.state)).key("exit").number(static_cast<int>(g.state));
  w.key("summary").string(g.summary);
  w.key("healthy").number(g.healthy).key("unhealthy").number(g.unhealthy).key("initial").number(g.initial);
  w.key("fail_open").boolean(g.fail_open);
  w.end_object();
  return w.take();
}

envkit::Status write_metrics(const std::string& path, const std::vector<CheckOutcome>& outcomes,
                             const std::vector<GroupVerdict>& groups) {
  envkit::MetricsFile m;
  for (const auto& o : outcomes) {
    envkit::MetricsFile::Labels labels{{"group", o.group->name}, {"target", o.target->name}};
    bool up = o.result.state == State::ok || o.result.state == State::warning;
    m.add("proxy_check_up", "gauge", "1 when the last check of the target passed", up ? 1 : 0, labels);
    m.add("proxy_check_state", "gauge", "Nagios state of the target: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
          static_cast<int>(o.state), labels);
    m.add("proxy_check_healthy", "gauge", "1 when the target is healthy by its group's thresholds",
          o.health.status == "healthy" ? 1 : 0, labels);
    for (const auto& p : o.result.phases) {
      auto l = labels;
      l.emplace_back("phase", p.name);
      m.add("proxy_check_phase_seconds", "gauge", "time one phase of the check took",
            std::chrono::duration<double>(p.elapsed).count(), l);
    }
    std::string days = fact(o.result, "days_to_expiry");
    if (!days.empty()) {
      m.add("proxy_check_tls_days_to_expiry", "gauge", "days until the peer certificate expires",
            std::strtod(days.c_str(), nullptr), labels);
    }
  }
  for (const auto& g : groups) {
    if (g.group->name.empty()) continue;
    envkit::MetricsFile::Labels labels{{"group", g.group->name}};
    m.add("proxy_check_group_healthy_targets", "gauge", "healthy targets in the group", g.healthy, labels);
    m.add("proxy_check_group_state", "gauge", "Nagios state of the group", static_cast<int>(g.state), labels);
    m.add("proxy_check_group_fail_open", "gauge", "1 when every target of the group is unhealthy",
          g.fail_open ? 1 : 0, labels);
  }
  m.add("proxy_check_last_run_timestamp_seconds", "gauge", "when proxy-check last finished a round",
        static_cast<double>(unix_now()));
  return m.write(path);
}

namespace {

struct Round {
  std::vector<CheckOutcome> outcomes;
  std::vector<GroupVerdict> verdicts;
  State overall = State::ok;
};

/// Checks the given groups once: probes, health (state file locked, read, written), verdicts.
envkit::Result<Round> run_round(const Config& config, const std::vector<const Group*>& groups,
                                std::map<std::string, Health>& memory) {
  std::vector<std::pair<const Group*, const TargetSpec*>> list;
  for (const Group* g : groups)
    for (const auto& t : g->targets) list.emplace_back(g, &t);

  std::optional<envkit::FileLock> lock;
  std::map<std::string, Health> stored;
  if (!config.state_file.empty()) {
    std::chrono::milliseconds longest{0};
    for (const Group* g : groups) longest = std::max(longest, g->timeout);
    auto l = lock_state(config.state_file, longest + std::chrono::seconds(2));
    if (!l) return l.error();
    lock.emplace(std::move(*l));
    auto text = envkit::read_file(config.state_file, 64 << 20);
    if (text) {
      auto parsed = parse_health(*text);
      if (!parsed) return parsed.error().context(config.state_file);
      stored = std::move(*parsed);
    } else if (text.error().code != Exit::no_input) {
      return text.error();
    }
  } else {
    stored = memory;
  }

  auto results = check_all(list, config);
  Round round;
  int64_t now = unix_now();
  for (size_t i = 0; i < list.size(); ++i) {
    const Group& g = *list[i].first;
    const TargetSpec& t = *list[i].second;
    CheckOutcome o;
    o.group = &g;
    o.target = &t;
    o.result = std::move(results[i]);
    std::string key = health_key(g, t);
    Health h = stored.count(key) ? stored[key] : Health{};
    bool success = o.result.state == State::ok || o.result.state == State::warning;
    update_health(h, success, g.healthy_threshold, g.unhealthy_threshold, now);
    o.health = h;
    stored[key] = h;
    o.state = o.result.state;
    o.summary = o.result.summary;
    if (h.status == "healthy" && !success) {
      o.state = State::ok;
      o.summary = "still healthy (failure " + std::to_string(h.failures) + " of " +
                  std::to_string(g.unhealthy_threshold) + " before unhealthy): " + o.result.summary;
    } else if (h.status == "unhealthy" && success) {
      o.state = State::critical;
      o.summary = "still unhealthy (success " + std::to_string(h.successes) + " of " +
                  std::to_string(g.healthy_threshold) + " before healthy): " + o.result.summary;
    } else if (h.status == "initial" && !success) {
      o.state = o.result.state == State::unknown ? State::unknown : State::warning;
      o.summary = "failing (" + std::to_string(h.failures) + " of " + std::to_string(g.unhealthy_threshold) +
                  " before unhealthy): " + o.result.summary;
    }
    round.outcomes.push_back(std::move(o));
  }
  if (lock) {
    if (auto st = envkit::write_file_atomically(config.state_file, render_health(stored), 0600); !st) return st.error();
  } else {
    memory = stored;
  }
  for (const Group* g : groups) {
    round.verdicts.push_back(group_verdict(*g, round.outcomes));
    round.overall = worst(round.overall, round.verdicts.back().state);
  }
  return round;
}

void print_round(const Config& config, const Round& round, std::ostream& out) {
  if (config.format == "json") {
    for (const auto& o : round.outcomes) out << render_json(o) << '\n';
    for (const auto& g : round.verdicts)
      if (!g.group->name.empty()) out << render_json(g) << '\n';
  } else {
    out << render_nagios(round.outcomes, round.verdicts, config.from_config, round.overall);
  }
  out.flush();
}

}  // namespace

envkit::Status check(const Config& config) {
  for (const auto& g : config.groups) {
    for (const auto& t : g.targets) {
      if (auto tls = envkit::tls_options_from_url(t.url, config.connection.tls); !tls) {
        return tls.error().context("bad target " + t.shown_url);
      }
    }
  }
  return {};
}

envkit::Result<int> run(const Config& config, std::ostream& out) {
  std::map<std::string, Health> memory;
  std::vector<const Group*> all;
  for (const auto& g : config.groups) all.push_back(&g);

  if (config.watch.value.count() <= 0) {
    auto round = run_round(config, all, memory);
    if (!round) return round.error();
    if (!config.quiet || round->overall != State::ok) print_round(config, *round, out);
    if (!config.metrics_file.empty()) {
      if (auto st = write_metrics(config.metrics_file, round->outcomes, round->verdicts); !st) return st.error();
    }
    return static_cast<int>(round->overall);
  }

  // --watch: every group at once, then each on its own interval's grid (multiples of the
  // interval since the epoch), so checks never drift and hosts with the same interval check
  // together; print what changed (everything the first time).
  std::map<const Group*, envkit::GridSchedule> schedules;
  for (const Group* g : all) schedules.emplace(g, envkit::GridSchedule(g->interval));
  bool first = true;
  std::map<std::string, CheckOutcome> latest;  // by health key
  std::map<const Group*, GroupVerdict> verdicts;
  State overall = State::ok;
  while (!envkit::stop_requested()) {
    std::vector<const Group*> now_due;
    for (const Group* g : all) {
      auto& schedule = schedules.at(g);
      if (!first && !schedule.due()) continue;
      if (!first) {
        if (uint64_t skipped = schedule.advance(); skipped > 0) {
          envkit::log_warning("group " + g->name + ": checks took longer than its interval; skipping " +
                              std::to_string(skipped) + " tick(s)");
        }
      }
      now_due.push_back(g);
    }
    first = false;
    if (!now_due.empty()) {
      auto round = run_round(config, now_due, memory);
      if (!round) return round.error();
      std::string stamp = envkit::format_utc(
          std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()));
      for (auto& o : round->outcomes) {
        std::string key = health_key(*o.group, *o.target);
        auto it = latest.find(key);
        bool changed = it == latest.end() || it->second.state != o.state || it->second.health.status != o.health.status;
        if (changed) {
          if (config.format == "json") {
            out << render_json(o) << '\n';
          } else {
            out << stamp << ' ' << state_name(o.state) << ' '
                << (o.group->name.empty() ? "" : "[" + o.group->name + "] ") << o.target->name << ": " << o.summary
                << " (health " << o.health.status << ")\n";
          }
        }
        latest[key] = o;
      }
      for (auto& v : round->verdicts) {
        auto it = verdicts.find(v.group);
        bool changed = it == verdicts.end() || it->second.state != v.state;
        if (changed && !v.group->name.empty()) {
          if (config.format == "json") {
            out << render_json(v) << '\n';
          } else {
            out << stamp << ' ' << state_name(v.state) << " group " << v.group->name << ": " << v.summary << '\n';
          }
        }
        verdicts[v.group] = v;
      }
      out.flush();
      overall = State::ok;
      for (const auto& [g, v] : verdicts) overall = worst(overall, v.state);
      if (!config.metrics_file.empty()) {
        std::vector<CheckOutcome> outs;
        for (const auto& [k, o] : latest) outs.push_back(o);
        std::vector<GroupVerdict> vs;
        for (const auto& [g, v] : verdicts) vs.push_back(v);
        if (auto st = write_metrics(config.metrics_file, outs, vs); !st) envkit::log_warning(st.error().message);
      }
    }
    auto next = envkit::SysMillis::max();
    for (const auto& [g, schedule] : schedules) next = std::min(next, schedule.next());
    envkit::sleep_unless_stopped(std::max(next - std::chrono::system_clock::now(),
                                          std::chrono::system_clock::duration::zero()));
  }
  return static_cast<int>(overall);
}

}  // namespace proxy_check
