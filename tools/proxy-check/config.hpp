// proxy-check's typed configuration: options, and the targets and groups they name.
#pragma once

#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/options.hpp>
#include <envkit/url.hpp>

namespace proxy_check {

/// One thing to check.
struct TargetSpec {
  std::string name;      ///< as shown: the given name, else shown_url
  std::string shown_url; ///< the URL as given, any password in it as "***"
  envkit::Url url;       ///< password resolved (never shown: see shown_url)
  bool expect_closed = false;
  std::optional<envkit::Url> via;  ///< --via / via:: the proxy that should reach the same backend
  std::optional<double> warning_ms, critical_ms;      ///< latency thresholds on "total"
  std::optional<double> warning_days, critical_days;  ///< TLS expiry thresholds
};

/// A target group with load-balancer health semantics.
struct Group {
  std::string name;  ///< empty for the targets given on the command line
  std::chrono::milliseconds interval{30000};  ///< between checks with --watch
  std::chrono::milliseconds timeout{10000};   ///< bound on one target's whole check
  int healthy_threshold = 1;    ///< consecutive successes to become healthy
  int unhealthy_threshold = 1;  ///< consecutive failures to become unhealthy
  std::vector<TargetSpec> targets;
};

struct Config {
  std::vector<std::string> target_texts;  ///< positional URLs
  std::string via;
  std::string expect = "open";  ///< open | closed (for the command-line targets)
  std::string format = "nagios";  ///< nagios | json
  std::string metrics_file;
  std::string state_file;
  envkit::Duration watch{};
  size_t concurrency = 64;
  double warning_days = 30;
  double critical_days = 7;
  std::optional<double> warning_ms, critical_ms;
  int healthy_threshold = 1;
  int unhealthy_threshold = 1;
  envkit::ConnectionOptions connection;
  std::optional<std::string> password_file;

  std::vector<Group> groups;  ///< resolved: command-line targets first (unnamed), then --config's
  bool from_config = false;   ///< groups came from a config file (verdicts are per group)
  bool quiet = false;         ///< -q: no status line when everything is OK (cron mails output)
};

/// Parses argv (then ENVKIT_*, then --config), resolves targets and groups. exit_now after
/// --help/--version. Errors are usage (bad option or URL) or config (bad groups).
envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv, Config& config,
                                                   std::ostream& out);

/// Builds the groups from a YAML "groups" sequence (the config file's section). Exposed for tests.
envkit::Result<std::vector<Group>> parse_groups(const std::string& yaml_text, const Config& defaults);

/// Builds one target from its URL text and options (password resolved, thresholds read).
envkit::Result<TargetSpec> make_target(const std::string& url_text, const Config& config,
                                       const std::string& name, const std::string& expect,
                                       const std::string& via, bool url_from_argv);

}  // namespace proxy_check
