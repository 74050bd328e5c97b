// Unit tests for HTTP ingest (lib/records/src/http_source.cpp): the source listens on
// 127.0.0.1 in this process, clients POST through the project's HTTP client, and the test
// plays the pipeline: it takes the records with next() and settles them one by one.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>

#include <envkit/http.hpp>

#include "loopback.hpp"
#include "source_testing.hpp"

namespace envkit {
namespace {

using namespace std::chrono_literals;

// An HTTP ingest source on a free loopback port; `url` is where to POST.
std::unique_ptr<Source> open_ingest(std::string& url, const std::string& params = "") {
  url = "http://127.0.0.1:" + std::to_string(test::closed_port()) + "/ingest";
  return test::open_test_source(url + params, {});
}

// POSTs `body` as JSON Lines from a thread and a client of its own: the reply comes when the
// source answers, which is what the tests wait for.
std::future<Result<HttpResponse>> post(const std::string& url, std::string body) {
  return std::async(std::launch::async, [url, body = std::move(body)]() -> Result<HttpResponse> {
    ConnectionOptions options;
    options.connect_timeout = 2000ms;
    options.io_timeout = 20000ms;
    auto http = HttpClient::create(options);
    if (!http) return http.error();
    return http->perform({.method = "POST", .url = url,
                          .headers = {{"Content-Type", "application/x-ndjson"}},
                          .body = std::move(body), .timeout = {}});
  });
}

bool answered(std::future<Result<HttpResponse>>& reply, std::chrono::milliseconds within) {
  return reply.wait_for(within) == std::future_status::ready;
}

// Two requests wait at once: settling one's records answers that one alone, and a request
// of two records is answered only when its second is settled too, each with its verdicts.
TEST(HttpIngest, ARequestIsAnsweredOnlyOnceItsOwnRecordsAreSettled) {
  std::string url;
  auto source = open_ingest(url);
  ASSERT_NE(source, nullptr);
  auto a = post(url, "{\"id\":\"a1\",\"t\":1}\n{\"id\":\"a2\",\"t\":2}\n");
  auto b = post(url, "{\"id\":\"b1\",\"t\":3}\n");
  auto records = test::by_id(test::collect(*source, "", 3, 10s));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records["a2"].record.json, "{\"id\":\"a2\",\"t\":2}");

  test::settle_one(*source, records["b1"], Verdict::ack);
  ASSERT_TRUE(answered(b, 10s)) << "b's only record is settled";
  auto got_b = b.get();
  ASSERT_TRUE(got_b.ok()) << got_b.error().message;
  EXPECT_EQ(got_b->status, 202);
  EXPECT_EQ(got_b->body, "{\"id\":\"b1\",\"result\":\"accepted\"}\n");
  EXPECT_FALSE(answered(a, 300ms)) << "a was answered when b's record was settled";

  test::settle_one(*source, records["a1"], Verdict::ack);
  EXPECT_FALSE(answered(a, 300ms)) << "a was answered with one of its two records unsettled";

  test::settle_one(*source, records["a2"], Verdict::dead);
  ASSERT_TRUE(answered(a, 10s));
  auto got_a = a.get();
  ASSERT_TRUE(got_a.ok()) << got_a.error().message;
  EXPECT_EQ(got_a->status, 400);
  EXPECT_EQ(got_a->body,
            "{\"id\":\"a1\",\"result\":\"accepted\"}\n"
            "{\"id\":\"a2\",\"result\":\"rejected\",\"reason\":\"test\"}\n");
}

// A record to retry makes the request 503 with Retry-After, whatever its others became.
TEST(HttpIngest, ARecordToRetryIsA503WithRetryAfter) {
  std::string url;
  auto source = open_ingest(url);
  ASSERT_NE(source, nullptr);
  auto c = post(url, "{\"id\":\"c1\"}\n{\"id\":\"c2\"}\n");
  auto records = test::by_id(test::collect(*source, "", 2, 10s));
  ASSERT_EQ(records.size(), 2u);
  test::settle_one(*source, records["c1"], Verdict::ack);
  test::settle_one(*source, records["c2"], Verdict::retry);
  ASSERT_TRUE(answered(c, 10s));
  auto got = c.get();
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->status, 503);
  EXPECT_EQ(got->header("Retry-After").value_or(""), "1");
  EXPECT_EQ(got->body,
            "{\"id\":\"c1\",\"result\":\"accepted\"}\n{\"id\":\"c2\",\"result\":\"retry\",\"reason\":\"test\"}\n");
}

// Records not settled within answer-within: the client is told to come back, and settling
// them afterwards (the pipeline still delivers them) answers no one and is no error.
TEST(HttpIngest, ARequestNotSettledWithinAnswerWithinIs503) {
  std::string url;
  auto source = open_ingest(url, "?answer-within=200");
  ASSERT_NE(source, nullptr);
  auto d = post(url, "{\"id\":\"d1\"}\n");
  auto records = test::collect(*source, "", 1, 10s);
  ASSERT_EQ(records.size(), 1u);
  ASSERT_TRUE(answered(d, 10s));
  auto got = d.get();
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->status, 503);
  EXPECT_EQ(got->header("Retry-After").value_or(""), "1");
  EXPECT_NE(got->body.find("no answer within 200 ms"), std::string::npos) << got->body;
  test::settle_one(*source, records[0], Verdict::ack);
}

}  // namespace
}  // namespace envkit
