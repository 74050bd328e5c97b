// The real servers the Live* suites run against, named by environment variables that the Bats
// files starting them set (tests/bats/connectors.bats, tests/bats/sources-redis.bats).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <envkit/url.hpp>

namespace envkit::test {

/// The URL in `url_var`, its password from `password_var` when the URL has none; nullopt (the
/// test skips, which the Bats files refuse to count as a pass) when the variable is unset.
inline std::optional<Url> live_url(const char* url_var, const char* password_var) {
  const char* text = std::getenv(url_var);
  if (!text || !*text) return std::nullopt;
  auto url = parse_url(text);
  if (!url) {
    ADD_FAILURE() << url.error().message;
    return std::nullopt;
  }
  if (!url->password) {
    if (const char* pwd = std::getenv(password_var)) url->password = pwd;
  }
  return *url;
}

/// ENVKIT_TEST_REDIS_URL, the password from REDISCLI_AUTH.
inline std::optional<Url> live_redis_url() { return live_url("ENVKIT_TEST_REDIS_URL", "REDISCLI_AUTH"); }

/// A key no other test run uses: the tests share one server.
inline std::string redis_test_key(std::string_view name) {
  return "envkit-test:" + std::to_string(::getpid()) + ":" + std::string(name);
}

}  // namespace envkit::test

#define REQUIRE_LIVE_REDIS(url)                                                  \
  auto url##_opt = ::envkit::test::live_redis_url();                             \
  if (!url##_opt) GTEST_SKIP() << "set ENVKIT_TEST_REDIS_URL to run";            \
  ::envkit::Url url = *url##_opt
