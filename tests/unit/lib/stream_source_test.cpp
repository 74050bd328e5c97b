// Unit tests for the JSON Lines sources ("-" and file:PATH) through the registry: files and
// pipes (file:/dev/fd/N stands in for stdin), ids, bad lines, retries, the end, bounded waits.
#include <envkit/pipeline.hpp>
#include <envkit/registry.hpp>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace envkit {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string write_temp(const std::string& name, const std::string& content) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "stream_source_test";
  std::filesystem::create_directories(dir);
  std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::unique_ptr<Source> open(const std::string& url) {
  auto s = open_source(url, {});
  EXPECT_TRUE(s.ok()) << s.error().message;
  return s ? std::move(*s) : nullptr;
}

// A pipe whose read end the source opens as file:/dev/fd/N, as it would read stdin.
struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() { EXPECT_EQ(::pipe(fds), 0); }
  ~Pipe() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  std::string url() const { return "file:/dev/fd/" + std::to_string(fds[0]); }
  void write(const std::string& text) { ASSERT_EQ(::write(fds[1], text.data(), text.size()), static_cast<ssize_t>(text.size())); }
  void close_writer() {
    ::close(fds[1]);
    fds[1] = -1;
  }
};

Status settle_all(Source& s, const std::vector<Received>& got, Verdict v) {
  std::vector<Settlement> st;
  for (const auto& r : got) st.push_back({r.handle, v, {}});
  return s.settle(st);
}

TEST(LinesSource, RegistryRowsReadStdinAndFiles) {
  const Connector* dash = find_connector("-");
  const Connector* file = find_connector("file");
  ASSERT_NE(dash, nullptr);
  ASSERT_NE(file, nullptr);
  EXPECT_NE(dash->open_source, nullptr);
  EXPECT_NE(file->open_source, nullptr);
  EXPECT_NE(dash->source_parameters.find("stdin"), std::string_view::npos);
}

TEST(LinesSource, ReadsAFileToTheEndWithIdsBlankLinesAndBadLines) {
  std::string path = write_temp("a.jsonl",
                                "{\"id\":\"r1\",\"t\":1}\n"
                                "\n"
                                "{\"t\":2}\n"
                                "{\"id\":42}\n"
                                "not json\n"
                                "[1,2]\n"
                                "{\"t\":2}");  // the same record again, no final newline
  auto s = open("file:" + path);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name(), "file://" + path);
  auto b = s->next(100, milliseconds(1000));
  ASSERT_TRUE(b.ok()) << b.error().message;
  ASSERT_EQ(b->records.size(), 6u);
  EXPECT_FALSE(b->end) << "records are out: a retry could still need handing out";
  const std::vector<Received> r = b->records;  // b is reused below
  EXPECT_EQ(r[0].record.id, "r1");
  EXPECT_EQ(r[0].record.json, "{\"id\":\"r1\",\"t\":1}");
  EXPECT_EQ(r[0].deliveries, 1u);
  // No id member: a digest of the line, the same for the same line.
  EXPECT_EQ(r[1].record.id.rfind("sha256:", 0), 0u) << r[1].record.id;
  EXPECT_EQ(r[1].record.id.size(), 7u + 32u);
  EXPECT_EQ(r[1].record.id, r[5].record.id);
  EXPECT_EQ(r[2].record.id, "42");
  // Not records: handed on as they are, for the sinks to reject and the pipeline to dead-letter.
  EXPECT_EQ(r[3].record.json, "not json");
  EXPECT_EQ(r[3].record.id.rfind("sha256:", 0), 0u);
  EXPECT_EQ(r[4].record.json, "[1,2]");
  EXPECT_NE(r[3].record.id, r[4].record.id);
  std::map<uint64_t, int> handles;
  for (const auto& x : r) ++handles[x.handle];
  EXPECT_EQ(handles.size(), 6u) << "handles must be unique among unsettled records";

  ASSERT_TRUE(settle_all(*s, {r.begin(), r.begin() + 3}, Verdict::ack).ok());
  b = s->next(100, milliseconds(0));
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->records.empty());
  EXPECT_FALSE(b->end);
  ASSERT_TRUE(settle_all(*s, {r.begin() + 3, r.end()}, Verdict::dead).ok());
  b = s->next(100, milliseconds(0));
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->records.empty());
  EXPECT_TRUE(b->end);
}

TEST(LinesSource, HandsOutAtMostMaxAndTheRestNextTime) {
  std::string text;
  for (int i = 0; i < 25; ++i) text += "{\"id\":\"" + std::to_string(i) + "\"}\n";
  auto s = open("file:" + write_temp("b.jsonl", text));
  ASSERT_TRUE(s);
  std::vector<std::string> ids;
  bool end = false;
  for (int round = 0; round < 10 && !end; ++round) {
    auto b = s->next(10, milliseconds(100));
    ASSERT_TRUE(b.ok());
    EXPECT_LE(b->records.size(), 10u);
    for (const auto& r : b->records) ids.push_back(r.record.id);
    ASSERT_TRUE(settle_all(*s, b->records, Verdict::ack).ok());
    end = b->end;
  }
  ASSERT_EQ(ids.size(), 25u);
  for (int i = 0; i < 25; ++i) EXPECT_EQ(ids[i], std::to_string(i));
  EXPECT_TRUE(end);
}

TEST(LinesSource, ARetryComesBackFromMemoryWithItsDeliveryCount) {
  Pipe p;
  auto s = open(p.url());
  ASSERT_TRUE(s);
  p.write("{\"id\":\"a\"}\n{\"id\":\"b\"}\n");
  p.close_writer();
  auto b = s->next(10, milliseconds(2000));
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->records.size(), 2u);
  ASSERT_TRUE(s->settle(std::vector<Settlement>{{b->records[0].handle, Verdict::ack, {}},
                                                {b->records[1].handle, Verdict::retry, "sink down"}})
                  .ok());
  // The pipe cannot be read again: "b" comes back from memory, about a second later.
  std::vector<Received> again;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (again.empty() && Clock::now() < deadline) {
    auto n = s->next(10, milliseconds(200));
    ASSERT_TRUE(n.ok());
    EXPECT_FALSE(n->end);
    again = n->records;
  }
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].record.id, "b");
  EXPECT_EQ(again[0].record.json, "{\"id\":\"b\"}");
  EXPECT_EQ(again[0].deliveries, 2u);
  ASSERT_TRUE(settle_all(*s, again, Verdict::ack).ok());
  auto n = s->next(10, milliseconds(0));
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->records.empty());
  EXPECT_TRUE(n->end);
}

TEST(LinesSource, AQuietPipeNeverHoldsNextPastItsWait) {
  Pipe p;
  auto s = open(p.url());
  ASSERT_TRUE(s);
  auto start = Clock::now();
  auto b = s->next(10, milliseconds(150));
  auto took = Clock::now() - start;
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->records.empty());
  EXPECT_FALSE(b->end);
  EXPECT_GE(took, milliseconds(140));
  EXPECT_LT(took, milliseconds(2000));

  // Half a line must not hold it either.
  p.write("{\"id\":");
  start = Clock::now();
  b = s->next(10, milliseconds(150));
  took = Clock::now() - start;
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->records.empty());
  EXPECT_LT(took, milliseconds(2000));

  // What has arrived is taken even with no wait at all.
  p.write("\"x\"}\n{\"id\":\"y\"}\n");
  std::vector<std::string> ids;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (ids.size() < 2 && Clock::now() < deadline) {
    auto n = s->next(10, milliseconds(0));
    ASSERT_TRUE(n.ok());
    for (const auto& r : n->records) ids.push_back(r.record.id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"x", "y"}));
}

TEST(LinesSource, SettlingAHandleTwiceIsAnError) {
  auto s = open("file:" + write_temp("c.jsonl", "{\"id\":1}\n"));
  ASSERT_TRUE(s);
  auto b = s->next(10, milliseconds(100));
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->records.size(), 1u);
  ASSERT_TRUE(settle_all(*s, b->records, Verdict::ack).ok());
  auto again = settle_all(*s, b->records, Verdict::ack);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Exit::software);
}

TEST(LinesSource, AMissingFileIsNoInput) {
  auto s = open_source("file:" + write_temp("d.jsonl", "") + ".missing", {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Exit::no_input);
}

TEST(LinesSource, AnOffsetFileLetsALaterRunStartAfterWhatIsSettled) {
  std::string text;
  for (int i = 1; i <= 5; ++i) text += "{\"id\":\"" + std::to_string(i) + "\"}\n";
  std::string path = write_temp("offset.jsonl", text);
  std::string offsets = path + ".offset";
  std::filesystem::remove(offsets);
  std::string url = "file:" + path + "?offset-file=" + offsets;
  auto read_offset = [&] {
    std::ifstream in(offsets);
    std::string s;
    std::getline(in, s);
    return s;
  };
  {
    auto s = open(url);
    ASSERT_TRUE(s);
    auto b = s->next(10, milliseconds(100));
    ASSERT_TRUE(b.ok());
    ASSERT_EQ(b->records.size(), 5u);
    const std::vector<Received> r = b->records;
    ASSERT_TRUE(s->commit().ok());
    EXPECT_FALSE(std::filesystem::exists(offsets)) << "nothing settled: nothing to write";
    // Out of order: lines 1, 2 and 4 done, 3 retried: only the first two count.
    ASSERT_TRUE(s->settle(std::vector<Settlement>{{r[0].handle, Verdict::ack, {}},
                                                  {r[3].handle, Verdict::dead, "bad"},
                                                  {r[1].handle, Verdict::ack, {}},
                                                  {r[2].handle, Verdict::retry, "later"}})
                    .ok());
    ASSERT_TRUE(s->commit().ok());
    EXPECT_EQ(read_offset(), "2");
    // A crash now: line 3 (retried) and 5 (out) were not settled.
  }
  std::vector<std::string> ids;
  {
    auto s = open(url);
    ASSERT_TRUE(s);
    auto b = s->next(10, milliseconds(100));
    ASSERT_TRUE(b.ok());
    for (const auto& r : b->records) ids.push_back(r.record.id);
    // Line 4 again too: the offset counts a prefix, so at least once, never lost.
    EXPECT_EQ(ids, (std::vector<std::string>{"3", "4", "5"}));
    ASSERT_TRUE(settle_all(*s, b->records, Verdict::ack).ok());
    ASSERT_TRUE(s->commit().ok());
    EXPECT_EQ(read_offset(), "5");
  }
  {
    std::ofstream(path, std::ios::app) << "{\"id\":\"6\"}\n";
    auto s = open(url);
    ASSERT_TRUE(s);
    auto b = s->next(10, milliseconds(100));
    ASSERT_TRUE(b.ok());
    ASSERT_EQ(b->records.size(), 1u);
    EXPECT_EQ(b->records[0].record.id, "6");
  }
  // A file shorter than the offset is not the file it was kept for.
  write_temp("offset.jsonl", "{\"id\":\"1\"}\n");
  auto shorter = open_source(url, {});
  ASSERT_FALSE(shorter.ok());
  EXPECT_EQ(shorter.error().code, Exit::data);
  EXPECT_NE(shorter.error().message.find("has only 1"), std::string::npos) << shorter.error().message;
  // stdin cannot be read again.
  auto dash = open_source("-?offset-file=" + offsets, {});
  if (dash.ok()) ADD_FAILURE() << "offset-file accepted for stdin";
}

// Through the real pipeline: every line arrives once, and the run ends by itself at the end
// of the input (end is reported only once everything is settled, and the pipeline stops).
TEST(LinesSource, APipelineFromAFileToAFileEndsWithEveryRecordOnce) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "{\"id\":\"" + std::to_string(i) + "\",\"v\":" + std::to_string(i) + "}\n";
  std::string in = write_temp("pipe-in.jsonl", text);
  std::string out = write_temp("pipe-out.jsonl", "");
  std::filesystem::remove(out);
  auto source = open("file:" + in);
  ASSERT_TRUE(source);
  PipelineOptions o;
  o.batch = 64;
  o.workers = 2;
  auto p = Pipeline::open({{"file:" + out, [&] { return open_sink("file:" + out, {}); }}}, o);
  ASSERT_TRUE(p.ok()) << p.error().message;
  auto start = Clock::now();
  auto st = (*p)->run(*source);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(30));
  EXPECT_EQ((*p)->counters().received, 1000u);
  EXPECT_EQ((*p)->counters().acked, 1000u);
  std::ifstream got(out);
  std::multiset<std::string> lines;
  for (std::string line; std::getline(got, line);) lines.insert(line);
  std::multiset<std::string> expected;
  for (int i = 0; i < 1000; ++i) expected.insert("{\"id\":\"" + std::to_string(i) + "\",\"v\":" + std::to_string(i) + "}");
  EXPECT_EQ(lines, expected);
}

}  // namespace
}  // namespace envkit
