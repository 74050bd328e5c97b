// Running checks: the worker pool, --via and --expect closed, health thresholds kept in the
// state file, group verdicts, and the three outputs (Nagios, JSON lines, Prometheus).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "proxy-check/config.hpp"
#include "proxy-check/probe.hpp"

namespace proxy_check {

/// Health of one target as a load balancer keeps it between checks.
struct Health {
  std::string status = "initial";  ///< initial | healthy | unhealthy
  int successes = 0;               ///< consecutive
  int failures = 0;                ///< consecutive
  int64_t changed_at = 0;          ///< Unix seconds of the last status change
};

/// Moves `health` by one check result (success = OK or WARNING): healthy after
/// `healthy_threshold` consecutive successes, unhealthy after `unhealthy_threshold`
/// consecutive failures, unchanged in between. True when the status changed.
bool update_health(Health& health, bool success, int healthy_threshold, int unhealthy_threshold, int64_t now);

/// One target's outcome in a round.
struct CheckOutcome {
  const Group* group = nullptr;
  const TargetSpec* target = nullptr;
  ProbeResult result;      ///< the probe's (with --via: the comparison's) result
  State state = State::unknown;  ///< after health thresholds
  std::string summary;     ///< after health thresholds
  Health health;
};

/// One group's verdict.
struct GroupVerdict {
  const Group* group = nullptr;
  State state = State::ok;
  int healthy = 0, unhealthy = 0, initial = 0;
  bool fail_open = false;  ///< every target unhealthy: a load balancer routes to all of them
  std::string summary;
};

/// Checks one target (probe, --expect closed, --via comparison, latency thresholds), before
/// health thresholds.
ProbeResult check_target(const TargetSpec& target, const Group& group, const Config& config);

/// Checks `targets` with at most `concurrency` at once. Results in the order given.
std::vector<ProbeResult> check_all(const std::vector<std::pair<const Group*, const TargetSpec*>>& targets,
                                   const Config& config);

/// The state file's key for a target.
std::string health_key(const Group& group, const TargetSpec& target);
/// Reads / renders the state file's content (JSON). A missing or empty file is no state.
envkit::Result<std::map<std::string, Health>> parse_health(const std::string& text);
std::string render_health(const std::map<std::string, Health>& health);

/// Applies health to a round's results and computes group verdicts.
GroupVerdict group_verdict(const Group& group, const std::vector<CheckOutcome>& outcomes);

/// The outputs.
std::string render_nagios(const std::vector<CheckOutcome>& outcomes, const std::vector<GroupVerdict>& groups,
                          bool per_group, State overall);
std::string render_json(const CheckOutcome& outcome);
std::string render_json(const GroupVerdict& verdict);
envkit::Status write_metrics(const std::string& path, const std::vector<CheckOutcome>& outcomes,
                             const std::vector<GroupVerdict>& groups);

/// Runs proxy-check: once, or with --watch until stopped. Returns the Nagios exit status.
envkit::Result<int> run(const Config& config, std::ostream& out);

/// --check-config: parse_options() has resolved every target, group and password; this adds
/// each target's TLS settings from its URL, as a check would, and connects to nothing.
/// Parameters a probe reads as it speaks (http's method=, follow=) are checked then.
envkit::Status check(const Config& config);

}  // namespace proxy_check
