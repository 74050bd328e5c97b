// JSON Lines: records read from and written to files, pipes and stdio, one object a line.
#pragma once

#include <chrono>
#include <cstdint>
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
  /// 1-based number of the line last returned.
  uint64_t line_number() const { return line_; }
  const std::string& name() const { return name_; }

 private:
  int fd_;
  bool owns_;
  std::string name_;
  size_t max_line_;
  std::string buf_;
  size_t start_ = 0;  // first unread byte in buf_
  size_t end_ = 0;    // end of valid bytes in buf_
  size_t scanned_ = 0;  // line_ready(): bytes in [start_, scanned_) hold no newline
  bool eof_ = false;
  uint64_t line_ = 0;

  Status read_more();  // one read(2) behind the buffered bytes; sets eof_
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
