// JSON Lines reading and writing on raw descriptors, so pipes, files and stdio behave alike.
#include <envkit/jsonl.hpp>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace envkit {
namespace {

// The most one read() asks for. 256 KiB of lines are still in the core's cache when they are
// split: over 10M keys, shard-route explain ran 4-5 ms faster than with 1 MiB reads.
constexpr size_t kReadChunk = 256 << 10;

Error io_error(const std::string& name, const char* what) {
  return Error{Exit::io, name + ": " + what + ": " + std::strerror(errno)};
}

}  // namespace

Result<LineReader> LineReader::open(const std::string& path, size_t max_line_bytes) {
  if (path == "-") return LineReader(STDIN_FILENO, false, "stdin", max_line_bytes);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Error e = io_error(path, "cannot open");
    if (errno == ENOENT || errno == EACCES) e.code = Exit::no_input;
    return e;
  }
  return LineReader(fd, true, path, max_line_bytes);
}

LineReader::LineReader(int fd, bool owns, std::string name, size_t max_line_bytes)
    : fd_(fd),
      owns_(owns),
      name_(std::move(name)),
      max_line_(max_line_bytes),
      buf_(std::make_unique_for_overwrite<char[]>(kReadChunk)),
      cap_(kReadChunk) {}

LineReader::LineReader(LineReader&& o) noexcept
    : fd_(o.fd_),
      owns_(o.owns_),
      name_(std::move(o.name_)),
      max_line_(o.max_line_),
      buf_(std::move(o.buf_)),
      cap_(o.cap_),
      start_(o.start_),
      end_(o.end_),
      scanned_(o.scanned_),
      eof_(o.eof_),
      line_(o.line_) {
  o.owns_ = false;
}

LineReader::~LineReader() {
  if (owns_) ::close(fd_);
}

Result<std::optional<std::string_view>> LineReader::next() {
  auto too_long = [this] {
    return Error{Exit::data, name_ + ":" + std::to_string(line_ + 1) + ": line longer than " +
                                 std::to_string(max_line_) + " bytes"};
  };
  size_t scanned = start_;  // bytes before this index hold no newline
  while (true) {
    const char* nl =
        static_cast<const char*>(std::memchr(buf_.get() + scanned, '\n', end_ - scanned));
    if (nl != nullptr) {
      size_t at = static_cast<size_t>(nl - buf_.get());
      if (at - start_ > max_line_) return too_long();
      std::string_view line(buf_.get() + start_, at - start_);
      start_ = at + 1;
      ++line_;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      return std::optional<std::string_view>(line);
    }
    scanned = end_;
    if (end_ - start_ > max_line_) return too_long();
    if (eof_) {
      if (start_ == end_) return std::optional<std::string_view>();
      std::string_view line(buf_.get() + start_, end_ - start_);  // last line, no newline
      start_ = end_;
      ++line_;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      return std::optional<std::string_view>(line);
    }
    size_t before = start_;
    if (auto st = read_more(); !st) return st.error();
    scanned -= before - start_;
  }
}

Result<std::optional<std::string_view>> LineReader::next_lines() {
  while (true) {
    const char* from = buf_.get() + start_;
    size_t have = end_ - start_;
    if (eof_) {
      if (have == 0) return std::optional<std::string_view>();
      start_ = end_;
      return std::optional<std::string_view>(std::string_view(from, have));
    }
    if (have > 0) {
      if (const void* last = ::memrchr(from, '\n', have)) {
        size_t n = static_cast<size_t>(static_cast<const char*>(last) - from) + 1;
        start_ += n;
        return std::optional<std::string_view>(std::string_view(from, n));
      }
      if (have > max_line_) {
        return Error{Exit::data, name_ + ": line longer than " + std::to_string(max_line_) + " bytes"};
      }
    }
    if (auto st = read_more(); !st) return st.error();
  }
}

Status LineReader::read_more() {
  // Move the partial line to the front, then read more behind it.
  if (start_ > 0) {
    std::memmove(buf_.get(), buf_.get() + start_, end_ - start_);
    end_ -= start_;
    scanned_ = scanned_ > start_ ? scanned_ - start_ : 0;
    start_ = 0;
  }
  if (cap_ < end_ + kReadChunk) {  // room for a whole read behind the partial line
    size_t cap = std::max(end_ + kReadChunk, 2 * cap_);
    auto bigger = std::make_unique_for_overwrite<char[]>(cap);
    std::memcpy(bigger.get(), buf_.get(), end_);
    buf_ = std::move(bigger);
    cap_ = cap;
  }
  ssize_t n;
  do {
    n = ::read(fd_, buf_.get() + end_, std::min(cap_ - end_, kReadChunk));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return io_error(name_, "read failed");
  if (n == 0) eof_ = true;
  end_ += static_cast<size_t>(n);
  return {};
}

bool LineReader::line_ready() {
  if (eof_ || end_ - start_ > max_line_) return true;
  if (scanned_ < start_) scanned_ = start_;
  if (std::memchr(buf_.get() + scanned_, '\n', end_ - scanned_) != nullptr) return true;
  scanned_ = end_;
  return false;
}

Result<bool> LineReader::wait_readable(std::chrono::milliseconds wait) {
  if (eof_) return true;
  pollfd p{fd_, POLLIN, 0};
  int ready = ::poll(&p, 1, static_cast<int>(std::clamp<long long>(wait.count(), 0, INT_MAX)));
  if (ready < 0 && errno == EINTR) return false;
  if (ready < 0) return io_error(name_, "poll failed");
  if (ready == 0) return false;
  if (auto st = read_more(); !st) return st.error();
  return true;
}

Result<JsonLinesReader> JsonLinesReader::open(const std::string& path) {
  auto lines = LineReader::open(path);
  if (!lines) return lines.error();
  return JsonLinesReader(std::move(*lines));
}

Result<bool> JsonLinesReader::next(JsonDocument& doc) {
  while (true) {
    auto line = lines_.next();
    if (!line) return line.error();
    if (!*line) return false;
    std::string_view text = **line;
    if (text.find_first_not_of(" \t") == std::string_view::npos) continue;
    // A reused Document keeps every earlier line's values in its pool until cleared.
    doc.SetNull();
    doc.GetAllocator().Clear();
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
    std::string where = lines_.name() + ":" + std::to_string(lines_.line_number());
    if (doc.HasParseError()) {
      auto parsed = parse_json(text);  // for the same message the rest of envkit gives
      return Error{Exit::data, where + ": " + (parsed ? "invalid JSON" : parsed.error().message)};
    }
    if (!doc.IsObject()) return Error{Exit::data, where + ": a record must be a JSON object"};
    raw_ = text;
    return true;
  }
}

JsonLinesWriter::JsonLinesWriter(int fd, bool owns, std::string name, size_t buffer_bytes)
    : fd_(fd), owns_(owns), name_(std::move(name)), limit_(buffer_bytes) {
  buf_.reserve(limit_ + 4096);
}

JsonLinesWriter JsonLinesWriter::to_stdout() {
  return JsonLinesWriter(STDOUT_FILENO, false, "stdout");
}

JsonLinesWriter::JsonLinesWriter(JsonLinesWriter&& o) noexcept
    : fd_(o.fd_),
      owns_(o.owns_),
      name_(std::move(o.name_)),
      limit_(o.limit_),
      buf_(std::move(o.buf_)),
      records_(o.records_) {
  o.owns_ = false;
  o.fd_ = -1;
}

JsonLinesWriter::~JsonLinesWriter() {
  if (fd_ >= 0) (void)flush();
  if (owns_) ::close(fd_);
}

Status JsonLinesWriter::write(std::string_view json) {
  buf_.append(json);
  buf_.push_back('\n');
  ++records_;
  if (buf_.size() >= limit_) return flush();
  return {};
}

Status JsonLinesWriter::write(const JsonValue& record) {
  JsonWriter w;
  w.value(record);
  return write(w.view());
}

Status JsonLinesWriter::flush() {
  size_t done = 0;
  while (done < buf_.size()) {
    ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      buf_.erase(0, done);
      return io_error(name_, "write failed");
    }
    done += static_cast<size_t>(n);
  }
  buf_.clear();
  return {};
}

Status JsonLinesWriter::close(bool durable) {
  Status st = flush();
  if (st && durable && ::fsync(fd_) != 0 && errno != EINVAL) st = io_error(name_, "fsync failed");
  if (owns_ && ::close(fd_) != 0 && st) st = io_error(name_, "close failed");
  owns_ = false;
  fd_ = -1;
  return st;
}

}  // namespace envkit
