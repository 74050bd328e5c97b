// JSON Lines: records read from and written to files, pipes and stdio, one object a line.
#pragma once

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <envkit/json.hpp>
#include <envkit/result.hpp>

namespace envkit {

/// Reads '\n'-terminated lines from a file descriptor through a large buffer. The last line
/// may lack its newline. Lines longer than max_line_bytes are an error, not a memory blow-up.
class LineReader {
 public:
  static constexpr size_t kDefaultMaxLine = 64 * 1024 * 1024;

  /// Opens `path` for reading; "-" is stdin. `name` in errors is the path ("stdin" for "-").
  static Result<LineReader> open(const std::string& path, size_t max_line_bytes = kDefaultMaxLine);
  /// Reads an already open descriptor; closes it on destruction when `owns` is true.
  LineReader(int fd, bool owns, std::string name, size_t max_line_bytes = kDefaultMaxLine);
  LineReader(LineReader&&) noexcept;
  LineReader& operator=(LineReader&&) = delete;
  ~LineReader();

  /// The next line without its "\n" (or "\r\n"); std::nullopt at end of input. The view is
  /// valid until the next call.
  Result<std::optional<std::string_view>> next();
  /// True when next() can answer without reading: a whole line, the end of input, or a line
  /// already too long is buffered. With wait_readable() this reads a pipe that may go quiet
  /// (stdin of a long-running relay) without ever blocking past a deadline.
  bool line_ready();
  /// Waits at most `wait` for the descriptor to become readable, then reads once what it
  /// has. False when nothing came in time or a signal interrupted the wait (the caller then
  /// checks its stop flag); true when bytes or the end of input arrived. Errors: Exit::io.
  Result<bool> wait_readable(std::chrono::milliseconds wait);
  /// Every whole line buffered, read more first when none is: a run of lines each with its
  /// '\n' (the input's last line may lack it); std::nullopt at end of input. For loops that
  /// split lines themselves (LineSplitter below) at the speed of reading; line_number()
  /// does not count them. The view is valid until the next call. A reader uses next() or
  /// next_lines(), not both.
  Result<std::optional<std::string_view>> next_lines();
  /// 1-based number of the line last returned by next().
  uint64_t line_number() const { return line_; }
  const std::string& name() const { return name_; }

 private:
  int fd_;
  bool owns_;
  std::string name_;
  size_t max_line_;
  // Not zeroed (not a std::string): read() writes the bytes used, and a zero fill would
  // first touch every page of it, a cost each run pays before its first line.
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t start_ = 0;  // first unread byte in buf_
  size_t end_ = 0;    // end of valid bytes in buf_
  size_t scanned_ = 0;  // line_ready(): bytes in [start_, scanned_) hold no newline
  bool eof_ = false;
  uint64_t line_ = 0;

  Status read_more();  // one read(2) behind the buffered bytes; sets eof_
};

/// The lines of a run from LineReader::next_lines(), one by one, without their '\n' or a
/// '\r' before it; a last line without a newline counts. Newlines are found sixteen bytes at
/// a time, not one memchr() per line. Inline and small, so that a loop over it keeps its
/// state in registers:
///   envkit::LineSplitter split(*run);
///   for (std::string_view line; split.next(line);) { ... }
class LineSplitter {
 public:
  explicit LineSplitter(std::string_view lines)
      : p_(lines.data()), end_(lines.data() + lines.size()), start_(lines.data()) {}

  bool next(std::string_view& line) {
#if defined(__SSE2__)
    while (mask_ == 0) {
      p_ += scanned_;
      scanned_ = 0;
      if (end_ - p_ < 64) return next_tail(line);
      const __m128i newline = _mm_set1_epi8('\n');
      for (int i = 0; i < 4; ++i) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_ + 16 * i));
        mask_ |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, newline))))
                 << (16 * i);
      }
      scanned_ = 64;
    }
    const char* nl = p_ + __builtin_ctzll(mask_);
    mask_ &= mask_ - 1;
    line = cut(nl);
    return true;
#else
    return next_tail(line);
#endif
  }

 private:
  const char* p_;           // the 64 bytes at p_ (scanned_ of them) are in mask_
  const char* const end_;
  const char* start_;       // the next line's first byte
  uint64_t mask_ = 0;       // newlines at p_ not yet returned, a bit each
  size_t scanned_ = 0;

  std::string_view cut(const char* nl) {
    const char* e = (nl > start_ && nl[-1] == '\r') ? nl - 1 : nl;
    std::string_view line(start_, static_cast<size_t>(e - start_));
    start_ = nl + 1;
    return line;
  }
  // Past the last whole 64 bytes: memchr, then the last line without a newline.
  bool next_tail(std::string_view& line) {
    if (start_ >= end_) return false;
    const char* from = std::max(p_, start_);
    if (const void* nl = std::memchr(from, '\n', static_cast<size_t>(end_ - from))) {
      line = cut(static_cast<const char*>(nl));
      return true;
    }
    const char* e = end_[-1] == '\r' ? end_ - 1 : end_;
    line = std::string_view(start_, static_cast<size_t>(e - start_));
    start_ = end_;
    return true;
  }
};

/// Reads JSON Lines records. Blank lines are skipped; every other line must be one JSON
/// object. Errors (Exit::data) read "NAME:LINE: invalid JSON at byte N: why".
class JsonLinesReader {
 public:
  explicit JsonLinesReader(LineReader lines) : lines_(std::move(lines)) {}
  static Result<JsonLinesReader> open(const std::string& path);

  /// Parses the next record into `doc`; false at end of input.
  Result<bool> next(JsonDocument& doc);
  /// The raw text of the record last returned (valid until the next call).
  std::string_view raw() const { return raw_; }
  uint64_t line_number() const { return lines_.line_number(); }
  const std::string& name() const { return lines_.name(); }

 private:
  LineReader lines_;
  std::string_view raw_;
};

/// Writes JSON Lines to a descriptor through a buffer, one write(2) per flush.
class JsonLinesWriter {
 public:
  /// Writes to `fd`, closing it on destruction when `owns` is true. `name` is for errors.
  JsonLinesWriter(int fd, bool owns, std::string name, size_t buffer_bytes = 256 * 1024);
  /// stdout, not owned.
  static JsonLinesWriter to_stdout();
  JsonLinesWriter(JsonLinesWriter&&) noexcept;
  JsonLinesWriter& operator=(JsonLinesWriter&&) = delete;
  /// Flushes what is buffered (errors then are lost: call close() to see them).
  ~JsonLinesWriter();

  /// Appends one record (serialised JSON, no newline) and a newline.
  Status write(std::string_view json);
  Status write(const JsonValue& record);
  /// Hands buffered bytes to the kernel. Errors: Exit::io (EPIPE included).
  Status flush();
  /// Flushes and, when `durable`, fsyncs; then closes if owned.
  Status close(bool durable = false);
  uint64_t records_written() const { return records_; }

 private:
  int fd_;
  bool owns_;
  std::string name_;
  size_t limit_;
  std::string buf_;
  uint64_t records_ = 0;
};

}  // namespace envkit
