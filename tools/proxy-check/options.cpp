// proxy-check's options: declared once, bound to Config; targets and groups resolved here.
#include <yaml-cpp/yaml.h>

#include <iostream>

#include "proxy-check/config.hpp"
#include "proxy-check/probes.hpp"

namespace proxy_check {

using envkit::Error;
using envkit::Exit;
using envkit::Result;
using envkit::po::value;

namespace {

const char* kUsage =
    "proxy-check [OPTION]... URL...\n"
    "  or:  proxy-check [OPTION]... --config FILE";

const char* kSummary =
    "Checks that each target URL works end to end by speaking its protocol: tcp:// (connect,\n"
    "send/expect), http(s):// (status, body, headers, redirects), tls:// (certificate chain,\n"
    "name, days to expiry), mysql://, redis://, amqp://, kafka://, mongodb://. --via checks\n"
    "that a proxy reaches the same backend; --expect closed that a port is not exposed.\n"
    "Many targets are checked in parallel; target groups from --config get load-balancer\n"
    "health thresholds kept in a --state-file between runs. Output follows the Nagios plugin\n"
    "convention, or JSON lines, plus Prometheus text-file metrics.";

const char* kAfter =
    "Examples:\n"
    "  proxy-check mysql://monitor@127.0.0.1:33060/ --via tcp://127.0.0.1:33060\n"
    "  proxy-check --expect closed tcp://db.example:3306\n"
    "  proxy-check --warning-days 30 --critical-days 7 https://shop.example/health?match=ok\n"
    "  proxy-check --config /etc/envkit/targets.yaml --state-file /var/lib/envkit/pc.json\n"
    "\n"
    "Exit status (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also bad options, URLs or\n"
    "config); --help and --version exit 0. See proxy-check(1).";

std::optional<double> number_param(const envkit::Url& u, const char* key, Result<void>& bad) {
  auto v = u.param(key);
  if (!v) return std::nullopt;
  try {
    size_t used = 0;
    double d = std::stod(*v, &used);
    if (used == v->size() && d >= 0) return d;
  } catch (...) {
  }
  bad = Error{Exit::usage, std::string("bad URL parameter ") + key + "=" + *v + " in " + u.redacted() +
                               ": expected a number"};
  return std::nullopt;
}

}  // namespace

envkit::Result<TargetSpec> make_target(const std::string& url_text, const Config& c, const std::string& name,
                                       const std::string& expect, const std::string& via, bool url_from_argv) {
  auto url = envkit::parse_url(url_text);
  if (!url) return url.error().context("bad target");
  if (url->is_file() || url->is_stdio() || !known_scheme(url->scheme)) {
    return Error{Exit::usage, "bad target " + url->redacted() + ": no probe for scheme '" + url->scheme +
                                  "' (tcp, http, https, tls, mysql, redis, amqp, kafka, mongodb)"};
  }
  if (url->hosts.empty()) return Error{Exit::usage, "bad target " + url->redacted() + ": no host"};
  if (url->port_or_default() == 0) return Error{Exit::usage, "bad target " + url->redacted() + ": no port"};
  // Shown as given: a password resolved from a file or the environment below must not turn
  // mysql://weather@db into mysql://weather:***@db in names and perfdata labels.
  std::string shown_url = url->redacted();
  envkit::SecretSources secrets;
  secrets.password_file = c.password_file;
  secrets.url_from_argv = url_from_argv;
  if (url->scheme == "mysql" || url->scheme == "redis" || url->scheme == "rediss" || url->scheme == "amqp" ||
      url->scheme == "amqps" || url->scheme == "mongodb" || !url->user.empty()) {
    if (auto st = envkit::resolve_password(*url, secrets); !st) return st.error();
  }
  TargetSpec t;
  t.url = *url;
  t.shown_url = shown_url;
  t.name = !name.empty() ? name : url->param("name").value_or(shown_url);
  std::string exp = url->param("expect") == std::optional<std::string>("closed") ? "closed" : expect;
  if (exp != "open" && exp != "closed") return Error{Exit::usage, "--expect must be open or closed, not '" + exp + "'"};
  t.expect_closed = exp == "closed";
  Result<void> bad;
  t.warning_days = number_param(*url, "warn-days", bad);
  t.critical_days = number_param(*url, "crit-days", bad);
  t.warning_ms = number_param(*url, "warn-ms", bad);
  t.critical_ms = number_param(*url, "crit-ms", bad);
  if (!bad) return bad.error();
  if (!t.warning_days) t.warning_days = c.warning_days;
  if (!t.critical_days) t.critical_days = c.critical_days;
  if (!t.warning_ms) t.warning_ms = c.warning_ms;
  if (!t.critical_ms) t.critical_ms = c.critical_ms;
  std::string via_text = url->param("via").value_or(via);
  if (!via_text.empty()) {
    auto v = envkit::parse_url(via_text);
    if (!v) return v.error().context("bad --via");
    if (v->hosts.empty()) return Error{Exit::usage, "bad --via " + v->redacted() + ": no host"};
    if (t.expect_closed) return Error{Exit::usage, "--via and --expect closed exclude each other"};
    t.via = *v;
  }
  return t;
}

namespace {

Result<std::chrono::milliseconds> yaml_duration(const YAML::Node& n, const std::string& where) {
  auto d = envkit::parse_duration(n.Scalar());
  if (!d || d->count() <= 0) return Error{Exit::config, where + ": bad duration '" + n.Scalar() + "'"};
  return *d;
}

Result<int> yaml_threshold(const YAML::Node& n, const std::string& where) {
  try {
    int v = n.as<int>();
    if (v >= 1 && v <= 100) return v;
  } catch (const YAML::Exception&) {
  }
  return Error{Exit::config, where + ": thresholds are whole numbers from 1 to 100"};
}

Result<std::vector<Group>> groups_from_node(const YAML::Node& groups, const Config& c, const std::string& file) {
  auto where = [&](const YAML::Node& n) {
    return file + ":" + std::to_string(n.Mark().line + 1);
  };
  if (!groups.IsSequence()) return Error{Exit::config, where(groups) + ": 'groups' must be a list of groups"};
  std::vector<Group> out;
  for (const auto& g : groups) {
    if (!g.IsMap()) return Error{Exit::config, where(g) + ": a group is a mapping (name, targets, ...)"};
    Group group;
    group.timeout = c.connection.io_timeout;
    group.interval = c.watch.value.count() > 0 ? c.watch.value : std::chrono::milliseconds(30000);
    group.healthy_threshold = c.healthy_threshold;
    group.unhealthy_threshold = c.unhealthy_threshold;
    std::string expect = "open";
    const YAML::Node* targets = nullptr;
    YAML::Node targets_node;
    for (const auto& kv : g) {
      std::string key = kv.first.Scalar();
      const YAML::Node& v = kv.second;
      std::string at = where(kv.first);
      if (key == "name") {
        group.name = v.Scalar();
      } else if (key == "interval") {
        auto d = yaml_duration(v, at);
        if (!d) return d.error();
        group.interval = *d;
      } else if (key == "timeout") {
        auto d = yaml_duration(v, at);
        if (!d) return d.error();
        group.timeout = *d;
      } else if (key == "healthy_threshold" || key == "healthy-threshold") {
        auto t = yaml_threshold(v, at);
        if (!t) return t.error();
        group.healthy_threshold = *t;
      } else if (key == "unhealthy_threshold" || key == "unhealthy-threshold") {
        auto t = yaml_threshold(v, at);
        if (!t) return t.error();
        group.unhealthy_threshold = *t;
      } else if (key == "expect") {
        expect = v.Scalar();
      } else if (key == "targets") {
        targets_node = v;
        targets = &targets_node;
      } else {
        return Error{Exit::config, at + ": unknown group key '" + key +
                                       "' (name, interval, timeout, healthy_threshold, unhealthy_threshold, "
                                       "expect, targets)"};
      }
    }
    if (group.name.empty()) return Error{Exit::config, where(g) + ": a group needs a name"};
    for (const auto& other : out)
      if (other.name == group.name) return Error{Exit::config, where(g) + ": two groups named '" + group.name + "'"};
    if (!targets || !targets->IsSequence() || targets->size() == 0) {
      return Error{Exit::config, where(g) + ": group '" + group.name + "' needs a list of targets"};
    }
    for (const auto& t : *targets) {
      std::string url, name, via, texpect = expect;
      if (t.IsScalar()) {
        url = t.Scalar();
      } else if (t.IsMap()) {
        for (const auto& kv : t) {
          std::string key = kv.first.Scalar();
          if (!kv.second.IsScalar()) return Error{Exit::config, where(kv.first) + ": '" + key + "' takes a plain value"};
          if (key == "url") {
            url = kv.second.Scalar();
          } else if (key == "name") {
            name = kv.second.Scalar();
          } else if (key == "via") {
            via = kv.second.Scalar();
          } else if (key == "expect") {
            texpect = kv.second.Scalar();
          } else {
            return Error{Exit::config, where(kv.first) + ": unknown target key '" + key + "' (url, name, via, expect)"};
          }
        }
      } else {
        return Error{Exit::config, where(t) + ": a target is a URL or a mapping with url:"};
      }
      if (url.empty()) return Error{Exit::config, where(t) + ": target without url"};
      auto spec = make_target(url, c, name, texpect, via, false);
      if (!spec) return Error{Exit::config, where(t) + ": " + spec.error().message};
      group.targets.push_back(std::move(*spec));
    }
    out.push_back(std::move(group));
  }
  return out;
}

}  // namespace

Result<std::vector<Group>> parse_groups(const std::string& yaml_text, const Config& c) {
  try {
    YAML::Node doc = YAML::Load(yaml_text);
    return groups_from_node(doc["groups"] ? doc["groups"] : doc, c, "config");
  } catch (const YAML::Exception& e) {
    return Error{Exit::config, "config:" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
}

envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv, Config& c, std::ostream& out) {
  c.connection.io_timeout = std::chrono::seconds(10);  // check_tcp's default, not a transfer's 30 s
  envkit::Duration default_timeout{c.connection.io_timeout};
  envkit::OptionParser parser({"proxy-check", kUsage, kSummary, kAfter});
  parser.options().add_options()
      ("target", value(&c.target_texts)->value_name("URL"), "a target URL (also as plain arguments)")
      ("via", value(&c.via)->value_name("URL"),
       "check that this proxy reaches the same backend as each target URL (host:port taken from it)")
      ("expect", value(&c.expect)->value_name("open|closed"),
       "closed: pass only when the port refuses or times out (default open)")
      ("format", value(&c.format)->value_name("FMT"), "nagios (default: status line, perfdata) or json")
      ("metrics-file", value(&c.metrics_file)->value_name("FILE"), "write Prometheus text-file metrics to FILE")
      ("state-file", value(&c.state_file)->value_name("FILE"),
       "keep health between runs (thresholds across cron runs) in FILE")
      ("watch", value(&c.watch)->value_name("DUR"), "keep checking every DUR, print changes, until stopped")
      ("concurrency", value(&c.concurrency)->value_name("N"), "targets checked at once (default 64)")
      ("warning-days", value(&c.warning_days)->value_name("D"), "TLS: WARNING under D days to expiry (default 30)")
      ("critical-days", value(&c.critical_days)->value_name("D"), "TLS: CRITICAL under D days to expiry (default 7)")
      ("warning-ms", envkit::po::value<double>()->value_name("MS")->notifier([&c](double v) { c.warning_ms = v; }),
       "WARNING when a check takes longer than MS milliseconds")
      ("critical-ms", envkit::po::value<double>()->value_name("MS")->notifier([&c](double v) { c.critical_ms = v; }),
       "CRITICAL when a check takes longer than MS milliseconds")
      ("healthy-threshold", value(&c.healthy_threshold)->value_name("N"),
       "consecutive successes before a target counts as healthy (default 1)")
      ("unhealthy-threshold", value(&c.unhealthy_threshold)->value_name("N"),
       "consecutive failures before a target counts as unhealthy (default 1)");
  parser.positional("target", -1);
  parser.allow_config_section("groups");
  parser.add_connection_options(c.connection, c.password_file);
  auto outcome = parser.parse(argc, argv, out);
  if (!outcome || *outcome == envkit::ParseOutcome::exit_now) return outcome;
  (void)default_timeout;

  auto usage = [](std::string m) { return Error{Exit::usage, std::move(m)}; };
  if (c.format != "nagios" && c.format != "json") return usage("--format must be nagios or json, not '" + c.format + "'");
  if (c.expect != "open" && c.expect != "closed") return usage("--expect must be open or closed, not '" + c.expect + "'");
  if (c.concurrency < 1 || c.concurrency > 1024) return usage("--concurrency must be from 1 to 1024");
  if (c.healthy_threshold < 1 || c.healthy_threshold > 100 || c.unhealthy_threshold < 1 || c.unhealthy_threshold > 100)
    return usage("--healthy-threshold and --unhealthy-threshold must be from 1 to 100");
  if (c.critical_days > c.warning_days) return usage("--critical-days must not exceed --warning-days");
  if (parser.given("watch") && c.watch.value.count() <= 0) return usage("--watch must be longer than 0");
  c.quiet = parser.given("quiet");

  if (!c.target_texts.empty()) {
    Group cli;
    cli.timeout = c.connection.io_timeout;
    cli.interval = c.watch.value.count() > 0 ? c.watch.value : std::chrono::milliseconds(30000);
    cli.healthy_threshold = c.healthy_threshold;
    cli.unhealthy_threshold = c.unhealthy_threshold;
    for (const auto& text : c.target_texts) {
      auto t = make_target(text, c, "", c.expect, c.via, true);
      if (!t) return t.error();
      cli.targets.push_back(std::move(*t));
    }
    c.groups.push_back(std::move(cli));
  }
  const YAML::Node& doc = parser.config_document();
  YAML::Node groups;
  bool have_groups = false;
  try {
    if (doc.IsMap()) {
      if (doc["proxy-check"] && doc["proxy-check"]["groups"]) {
        groups = doc["proxy-check"]["groups"];
        have_groups = true;
      } else if (doc["groups"]) {
        groups = doc["groups"];
        have_groups = true;
      }
    }
    if (have_groups) {
      auto g = groups_from_node(groups, c, parser.config_path());
      if (!g) return g.error();
      for (auto& group : *g) c.groups.push_back(std::move(group));
      c.from_config = true;
    }
  } catch (const YAML::Exception& e) {
    return Error{Exit::config, parser.config_path() + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
  if (c.groups.empty()) return usage("no target: give at least one URL, or --config with groups");
  return outcome;
}

}  // namespace proxy_check
