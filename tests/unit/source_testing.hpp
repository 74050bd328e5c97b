// Helpers for tests of Source implementations: collect records with a deadline, settle them.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/registry.hpp>
#include <envkit/source.hpp>

namespace envkit::test {

/// SourceOptions for a test: these connection options, no warning about a password in a URL.
inline SourceOptions source_options(ConnectionOptions connection) {
  SourceOptions o;
  o.connection = connection;
  o.url_from_argv = false;
  return o;
}

/// open_source(url, source_options(connection)), or nullptr after failing the test.
inline std::unique_ptr<Source> open_test_source(const std::string& url,
                                                ConnectionOptions connection) {
  auto source = open_source(url, source_options(connection));
  if (!source.ok()) {
    ADD_FAILURE() << "cannot open " << url << ": " << source.error().message;
    return nullptr;
  }
  return std::move(*source);
}

/// Calls next() until `want` records whose id starts with `prefix` came, or `limit` passed.
/// Records of other runs (ids without the prefix) are acknowledged at once and left out.
/// Returns what came, in order; a next() error fails the test and ends the wait.
inline std::vector<Received> collect(Source& source, std::string_view prefix, size_t want,
                                     std::chrono::milliseconds limit = std::chrono::seconds(30),
                                     size_t max = 64) {
  using Clock = std::chrono::steady_clock;
  std::vector<Received> out;
  const auto deadline = Clock::now() + limit;
  while (out.size() < want && Clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto batch = source.next(max, std::min(left, std::chrono::milliseconds(1000)));
    if (!batch.ok()) {
      ADD_FAILURE() << "next() failed: " << batch.error().message;
      break;
    }
    std::vector<Settlement> foreign;
    for (auto& r : batch->records) {
      if (r.record.id.compare(0, prefix.size(), prefix) == 0) {
        out.push_back(std::move(r));
      } else {
        foreign.push_back({r.handle, Verdict::ack, ""});
      }
    }
    if (!foreign.empty()) {
      EXPECT_TRUE(source.settle(foreign).ok());
    }
  }
  return out;
}

/// Settles one record; the test fails when the source refuses.
inline void settle_one(Source& source, const Received& r, Verdict v) {
  Settlement s{r.handle, v, v == Verdict::ack ? "" : "test"};
  auto st = source.settle(std::span(&s, 1));
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
}

/// The records by id (the last one of each id wins).
inline std::map<std::string, Received> by_id(const std::vector<Received>& records) {
  std::map<std::string, Received> out;
  for (const auto& r : records) out[r.record.id] = r;
  return out;
}

}  // namespace envkit::test
