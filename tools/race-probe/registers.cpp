// The register workload against Redis/Valkey: GET, SET, and a compare-and-set script, one
// connection per worker, reopened after a transport error.
#include "race-probe/registers.hpp"

#include <charconv>
#include <optional>

#include <envkit/exit_status.hpp>
#include <envkit/redis.hpp>
#include <envkit/url.hpp>

namespace race_probe {

using envkit::Error;
using envkit::Exit;

namespace {

// Sets KEYS[1] to ARGV[2] when it holds ARGV[1]: 1 swapped, 0 refused.
constexpr const char* kCasScript =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 "
    "else return 0 end";

class RedisRegisters : public RegisterTarget {
 public:
  RedisRegisters(envkit::Url url, envkit::ConnectionOptions connection, std::string prefix, bool reset)
      : url_(std::move(url)), connection_(std::move(connection)), prefix_(std::move(prefix)), reset_(reset) {}

  envkit::Status reset(uint64_t keys) override {
    if (!reset_) return {};
    auto link = envkit::RedisConnection::connect(url_, connection_);
    if (!link) return link.error();
    std::vector<std::string> del{"DEL"};
    for (uint64_t k = 0; k < keys; ++k) del.push_back(prefix_ + "k" + std::to_string(k));
    auto r = link->command(del);
    if (!r) return r.error();
    if (r->is_error()) return Error{Exit::unavailable, link->endpoint() + ": DEL: " + r->str};
    return {};
  }

  envkit::Result<Buyer> client() override {
    auto link = envkit::RedisConnection::connect(url_, connection_);
    if (!link) return link.error();
    auto held = std::make_shared<std::optional<envkit::RedisConnection>>(std::move(*link));
    return Buyer([this, held](Operation& op) { return perform(*held, op); });
  }

 private:
  bool perform(std::optional<envkit::RedisConnection>& link, Operation& op) {
    if (!link) {
      auto again = envkit::RedisConnection::connect(url_, connection_);
      if (!again) {
        classify_transport_failure(again.error(), op);
        return false;
      }
      link.emplace(std::move(*again));
    }
    const std::string key = prefix_ + op.id;
    std::vector<std::string> argv;
    if (op.f == "read") argv = {"GET", key};
    else if (op.f == "write") argv = {"SET", key, std::to_string(op.value.value_or(0))};
    else argv = {"EVAL", kCasScript, "1", key, std::to_string(op.from), std::to_string(op.to)};
    auto r = link->command(argv);
    if (!r) {
      classify_transport_failure(r.error(), op);
      link.reset();  // unusable after a transport error or a timeout
      return false;
    }
    if (r->is_error()) {
      op.outcome = Outcome::unknown;  // the server answered, but not what it did
      op.error = r->str;
      return true;
    }
    op.outcome = Outcome::ok;
    if (op.f == "read") {
      op.value.reset();
      if (!r->is_nil()) {
        int64_t v = 0;
        auto [end, ec] = std::from_chars(r->str.data(), r->str.data() + r->str.size(), v);
        if (ec != std::errc() || end != r->str.data() + r->str.size()) {
          op.outcome = Outcome::unknown;  // not a value this probe writes: it tells nothing
          op.error = "unreadable value: " + r->str.substr(0, 100);
          return true;
        }
        op.value = v;
      }
    } else if (op.f == "cas" && r->integer != 1) {
      op.outcome = Outcome::fail;
      op.status = 409;
      op.error = "the key did not hold " + std::to_string(op.from);
    }
    return true;
  }

  envkit::Url url_;
  envkit::ConnectionOptions connection_;
  std::string prefix_;
  bool reset_;
};

}  // namespace

envkit::Result<std::unique_ptr<RegisterTarget>> open_register_target(const Config& config) {
  auto url = envkit::parse_url(config.probe.target);
  if (!url) return url.error();
  if (url->scheme != "redis") {
    return Error{Exit::usage, "--target " + url->redacted() + ": registers are read over http(s):// or redis://"};
  }
  std::string reset = url->param("reset").value_or("true");
  if (reset != "true" && reset != "false") return Error{Exit::usage, url->redacted() + ": reset= is true or false"};
  return std::unique_ptr<RegisterTarget>(std::make_unique<RedisRegisters>(
      *url, config.connection, url->param("prefix").value_or("race-probe:"), reset == "true"));
}

}  // namespace race_probe
