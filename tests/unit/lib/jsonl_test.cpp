// Unit tests for envkit/jsonl.hpp: round trips through files and pipes, line numbers in errors.
#include <envkit/jsonl.hpp>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace envkit {
namespace {

std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "jsonl_test";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::string write_temp(const std::string& name, const std::string& content) {
  std::string path = temp_path(name);
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::vector<std::string> read_all_lines(LineReader& r) {
  std::vector<std::string> out;
  while (true) {
    auto line = r.next();
    EXPECT_TRUE(line.ok());
    if (!line.ok() || !*line) break;
    out.emplace_back(**line);
  }
  return out;
}

TEST(LineReader, SplitsLinesHandlesCrlfAndMissingFinalNewline) {
  auto r = LineReader::open(write_temp("a.txt", "one\ntwo\r\n\nthree"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(read_all_lines(*r), (std::vector<std::string>{"one", "two", "", "three"}));
  EXPECT_EQ(r->line_number(), 4u);
}

TEST(LineReader, EmptyInputHasNoLines) {
  auto r = LineReader::open(write_temp("empty.txt", ""));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(read_all_lines(*r).empty());
}

TEST(LineReader, MissingFileIsNoInput) {
  auto r = LineReader::open(temp_path("absent.txt"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::no_input);
  EXPECT_NE(r.error().message.find("absent.txt"), std::string::npos);
}

TEST(LineReader, OverlongLineIsAnErrorWithItsNumber) {
  auto r = LineReader::open(write_temp("long.txt", "ok\n" + std::string(5000, 'x') + "\n"), 1000);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->next().ok());
  auto line = r->next();
  ASSERT_FALSE(line.ok());
  EXPECT_EQ(line.error().code, Exit::data);
  EXPECT_NE(line.error().message.find(":2: line longer than 1000 bytes"), std::string::npos);
}

TEST(LineReader, LinesSpanningManyReadsFromAPipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // Lines of growing size, one longer than a read chunk.
  std::string expected_text;
  std::vector<std::string> expected;
  for (int i = 0; i < 40; ++i) {
    expected.push_back(std::string(static_cast<size_t>(i) * 97 + (i == 20 ? 3 << 20 : 0), 'a' + i % 26));
    expected_text += expected.back() + "\n";
  }
  std::thread writer([&] {
    // Alternate tiny and 1 MiB pieces so lines straddle read boundaries every way.
    size_t off = 0;
    for (int piece = 0; off < expected_text.size(); ++piece) {
      size_t n = std::min<size_t>(piece % 2 == 0 ? 7 : 1 << 20, expected_text.size() - off);
      ASSERT_EQ(::write(fds[1], expected_text.data() + off, n), static_cast<ssize_t>(n));
      off += n;
    }
    ::close(fds[1]);
  });
  LineReader r(fds[0], true, "pipe");
  auto got = read_all_lines(r);
  writer.join();
  EXPECT_EQ(got, expected);
}

// next_lines() and LineSplitter give the lines next() gives: CRLF, empty lines, a last line
// without its newline, lines on both sides of every 16- and 64-byte boundary, lines longer
// than 64 bytes, runs cut anywhere by the pipe's pieces.
TEST(LineReader, RunsOfLinesSplitAsNextDoes) {
  std::string text;
  uint32_t seed = 7;
  for (int i = 0; i < 20000; ++i) {
    seed = seed * 1103515245 + 12345;
    size_t len = (seed >> 8) % (i % 100 == 0 ? 300 : 40);
    for (size_t j = 0; j < len; ++j) text += static_cast<char>('a' + (i + j) % 26);
    text += (seed >> 20) % 5 == 0 ? "\r\n" : "\n";
  }
  for (const std::string& last : {std::string(), std::string("tail"), std::string("tail\r"), std::string("\n\n")}) {
    const std::string input = text + last;
    auto by_next = LineReader::open(write_temp("next.txt", input));
    ASSERT_TRUE(by_next.ok());
    const std::vector<std::string> expected = read_all_lines(*by_next);

    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    std::thread writer([&] {
      size_t off = 0;
      for (int piece = 0; off < input.size(); ++piece) {
        size_t n = std::min<size_t>(piece % 3 == 0 ? 1 : 4093 * (piece % 7 + 1), input.size() - off);
        ASSERT_EQ(::write(fds[1], input.data() + off, n), static_cast<ssize_t>(n));
        off += n;
      }
      ::close(fds[1]);
    });
    LineReader r(fds[0], true, "pipe");
    std::vector<std::string> got;
    for (;;) {
      auto run = r.next_lines();
      ASSERT_TRUE(run.ok());
      if (!*run) break;
      EXPECT_FALSE((*run)->empty());
      LineSplitter split(**run);
      for (std::string_view line; split.next(line);) got.emplace_back(line);
    }
    writer.join();
    EXPECT_EQ(got, expected) << "input ending in \"" << last << "\"";
  }
  std::vector<std::string> one;
  LineSplitter split("no newline at all");
  for (std::string_view line; split.next(line);) one.emplace_back(line);
  EXPECT_EQ(one, std::vector<std::string>{"no newline at all"});
  LineSplitter none("");
  std::string_view line;
  EXPECT_FALSE(none.next(line));
}

TEST(LineReader, RunsRefuseAnOverlongLine) {
  LineReader r(::open(write_temp("runs-long.txt", "ok\n" + std::string(5000, 'x')).c_str(), O_RDONLY), true,
               "runs-long.txt", 1000);
  auto first = r.next_lines();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(*first);
  EXPECT_EQ(**first, "ok\n");
  auto second = r.next_lines();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Exit::data);
  EXPECT_NE(second.error().message.find("longer than 1000 bytes"), std::string::npos);
}

TEST(LineReader, WaitReadableNeverBlocksPastItsWaitOnAQuietPipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  LineReader r(fds[0], true, "pipe");
  EXPECT_FALSE(r.line_ready());
  auto start = std::chrono::steady_clock::now();
  auto got = r.wait_readable(std::chrono::milliseconds(100));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
  EXPECT_GE(took, std::chrono::milliseconds(90));
  EXPECT_LT(took, std::chrono::milliseconds(2000));

  // Half a line: bytes came, but no line is ready, and next() is not to be called yet.
  ASSERT_EQ(::write(fds[1], "{\"a\":", 5), 5);
  got = r.wait_readable(std::chrono::milliseconds(2000));
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got);
  EXPECT_FALSE(r.line_ready());
  ASSERT_EQ(::write(fds[1], "1}\nnext", 7), 7);
  ASSERT_TRUE(r.wait_readable(std::chrono::milliseconds(2000)).ok());
  ASSERT_TRUE(r.line_ready());
  auto line = r.next();
  ASSERT_TRUE(line.ok() && *line);
  EXPECT_EQ(**line, "{\"a\":1}");
  EXPECT_FALSE(r.line_ready());  // "next" has no newline yet

  ::close(fds[1]);  // the end of input makes the last partial line ready
  ASSERT_TRUE(r.wait_readable(std::chrono::milliseconds(2000)).ok());
  ASSERT_TRUE(r.line_ready());
  line = r.next();
  ASSERT_TRUE(line.ok() && *line);
  EXPECT_EQ(**line, "next");
  ASSERT_TRUE(r.line_ready());
  line = r.next();
  ASSERT_TRUE(line.ok());
  EXPECT_FALSE(*line);
}

TEST(LineReader, AnOverlongPartialLineIsReadySoNextReportsIt) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  LineReader r(fds[0], true, "pipe", 16);
  ASSERT_EQ(::write(fds[1], std::string(40, 'x').data(), 40), 40);
  ASSERT_TRUE(r.wait_readable(std::chrono::milliseconds(2000)).ok());
  ASSERT_TRUE(r.line_ready());
  auto line = r.next();
  ASSERT_FALSE(line.ok());
  EXPECT_NE(line.error().message.find("line longer than 16 bytes"), std::string::npos);
  ::close(fds[1]);
}

TEST(JsonLines, RoundTripThroughAFile) {
  std::string path = temp_path("records.jsonl");
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  {
    JsonLinesWriter w(fd, true, path, 64);  // tiny buffer: many flushes
    for (int i = 0; i < 1000; ++i) {
      JsonWriter rec;
      rec.begin_object().key("i").number(i).key("s").string("línea\n\"" + std::to_string(i) + "\"");
      rec.end_object();
      ASSERT_TRUE(w.write(rec.view()).ok());
    }
    EXPECT_EQ(w.records_written(), 1000u);
    ASSERT_TRUE(w.close(true).ok());
  }
  auto r = JsonLinesReader::open(path);
  ASSERT_TRUE(r.ok());
  JsonDocument doc;
  int n = 0;
  while (true) {
    auto more = r->next(doc);
    ASSERT_TRUE(more.ok()) << more.error().message;
    if (!*more) break;
    EXPECT_EQ(doc["i"].GetInt(), n);
    EXPECT_EQ(std::string(doc["s"].GetString()), "línea\n\"" + std::to_string(n) + "\"");
    ++n;
  }
  EXPECT_EQ(n, 1000);
}

TEST(JsonLines, SkipsBlankLinesAndNamesTheBadLine) {
  auto r = JsonLinesReader::open(write_temp("bad.jsonl", "{\"a\":1}\n\n  \n{\"a\":2}\n{\"a\":\n"));
  ASSERT_TRUE(r.ok());
  JsonDocument doc;
  ASSERT_TRUE(*r->next(doc));
  EXPECT_EQ(r->raw(), "{\"a\":1}");
  ASSERT_TRUE(*r->next(doc));
  EXPECT_EQ(doc["a"].GetInt(), 2);
  auto bad = r->next(doc);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Exit::data);
  EXPECT_NE(bad.error().message.find("bad.jsonl:5: invalid JSON at byte"), std::string::npos)
      << bad.error().message;
}

TEST(JsonLines, RecordsMustBeObjects) {
  auto r = JsonLinesReader::open(write_temp("array.jsonl", "[1,2]\n"));
  ASSERT_TRUE(r.ok());
  JsonDocument doc;
  auto bad = r->next(doc);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("array.jsonl:1: a record must be a JSON object"),
            std::string::npos);
}

TEST(JsonLines, WriteToAClosedPipeIsAnIoError) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  signal(SIGPIPE, SIG_IGN);
  JsonLinesWriter w(fds[1], true, "pipe");
  ASSERT_TRUE(w.write("{}").ok());  // still buffered
  auto st = w.flush();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::io);
  EXPECT_NE(st.error().message.find("pipe: write failed"), std::string::npos);
}

}  // namespace
}  // namespace envkit
