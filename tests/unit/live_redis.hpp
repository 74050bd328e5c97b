// The Redis server the Live* suites run against: ENVKIT_TEST_REDIS_URL, set by the Bats files
// that start one (tests/bats/connectors.bats, tests/bats/sources-redis.bats).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <envkit/url.hpp>

namespace envkit::test {

/// The server's URL, its password from REDISCLI_AUTH when the URL has none; nullopt (the
/// test skips, which the Bats files refuse to count as a pass) when the variable is unset.
inline std::optional<Url> live_redis_url() {
  const char* text = std::getenv("ENVKIT_TEST_REDIS_URL");
  if (!text || !*text) return std::nullopt;
  auto url = parse_url(text);
  if (!url) {
    ADD_FAILURE() << url.error().message;
    return std::nullopt;
  }
  if (!url->password) {
    if (const char* pwd = std::getenv("REDISCLI_AUTH")) url->password = pwd;
  }
  return *url;
}

/// A key no other test run uses: the tests share one server.
inline std::string redis_test_key(std::string_view name) {
  return "envkit-test:" + std::to_string(::getpid()) + ":" + std::string(name);
}

}  // namespace envkit::test

#define REQUIRE_LIVE_REDIS(url)                                                  \
  auto url##_opt = ::envkit::test::live_redis_url();                             \
  if (!url##_opt) GTEST_SKIP() << "set ENVKIT_TEST_REDIS_URL to run";            \
  ::envkit::Url url = *url##_opt
