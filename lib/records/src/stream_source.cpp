// JSON Lines sources: stdin ("-") or a file (file:PATH), one record a line, to the end.
//
// - The record is the line as it is; its id is the object's `id` member, else content_id()
//   of the line, so re-reading the same input yields the same ids.
// - A line that is not a JSON object is still handed out, its json the raw line (with a
//   warning naming the line): a source cannot dead-letter, the pipeline can. Sinks that parse
//   records reject it, so it ends in the dead letters with the sink's reason; a sink that
//   stores bytes (stdout, a file) passes it on unchanged. Blank lines are skipped.
// - stdin cannot be read twice, so a record to retry is kept in memory and handed out again
//   kRetryDelay later. The source holds nothing but records already handed out and not yet
//   settled (a retried one is moved, not copied), so its memory is bounded by what the
//   pipeline keeps in flight.
// - `end` is reported once the input is at its end and every record handed out is settled
//   for good: until then a retry could still need handing out.
// - Waits are bounded: a quiet pipe never holds next() past its `wait`, so a relay reading
//   stdin still notices SIGTERM.
// - file:PATH?offset-file=OFF: commit() writes to OFF (atomically) how many lines from the
//   start of PATH are settled for good (acked or dead, nothing before them still out), and
//   a later run skips that many lines first. Lines are counted, not bytes, so a file that is
//   only appended to resumes where it stopped; a file that now has fewer lines is an error.
#include <charconv>
#include <deque>
#include <filesystem>
#include <set>
#include <thread>

#include <envkit/durable_file.hpp>
#include <envkit/jsonl.hpp>
#include <envkit/log.hpp>
#include "records_internal.hpp"

namespace envkit {
namespace {

using Clock = std::chrono::steady_clock;

/// How long a retried record waits before it is handed out again: long enough that a sink
/// that is down is not hammered by the same record, short against the pipeline's batching.
constexpr std::chrono::milliseconds kRetryDelay{1000};

class LinesSource : public Source {
 public:
  LinesSource(std::string name, LineReader lines, std::string offset_file = {}, uint64_t settled_lines = 0)
      : name_(std::move(name)), lines_(std::move(lines)), offset_file_(std::move(offset_file)),
        committed_(settled_lines) {}

  std::string name() const override { return name_; }

  Result<SourceBatch> next(size_t max, std::chrono::milliseconds wait) override {
    const auto deadline = Clock::now() + wait;
    SourceBatch batch;
    bool polled = false;
    while (batch.records.size() < max) {
      // Retries first, once due: they were read before anything still unread.
      if (!retries_.empty() && retries_.front().due <= Clock::now()) {
        Retry r = std::move(retries_.front());
        retries_.pop_front();
        r.held.received.deliveries += 1;
        hand_out(std::move(r.held), batch);
        continue;
      }
      if (eof_) break;
      if (!lines_.line_ready()) {
        // Poll at least once, so that next(max, 0) still takes what has already arrived; with
        // records in hand, only take what is there rather than wait.
        auto now = Clock::now();
        if (polled && (now >= deadline || !batch.records.empty())) break;
        auto until = batch.records.empty() ? deadline : now;
        if (!retries_.empty()) until = std::min(until, retries_.front().due);
        auto left = std::max(std::chrono::ceil<std::chrono::milliseconds>(until - now), std::chrono::milliseconds(0));
        auto got = lines_.wait_readable(left);
        if (!got) return got.error();
        polled = true;
        continue;
      }
      auto line = lines_.next();
      if (!line) return line.error();
      if (!*line) {
        eof_ = true;
        break;
      }
      std::string_view text = **line;
      if (text.find_first_not_of(" \t") == std::string_view::npos) continue;
      hand_out({read_record(text), lines_.line_number()}, batch);
      polled = false;  // a partial line after it may complete with what is there already
    }
    if (batch.records.empty() && eof_ && !retries_.empty()) {
      // Nothing more to read: wait (within `wait`) for the first retry to fall due.
      auto until = std::min(deadline, retries_.front().due);
      if (until > Clock::now()) std::this_thread::sleep_until(until);
      if (retries_.front().due <= Clock::now()) return next(max, std::chrono::milliseconds(0));
    } else if (batch.records.empty() && eof_ && !out_.empty()) {
      // Only a settlement can change anything now: give the pipeline its `wait` back.
      std::this_thread::sleep_until(deadline);
    }
    batch.end = eof_ && retries_.empty() && out_.empty();
    return batch;
  }

  Status settle(std::span<const Settlement> settlements) override {
    for (const auto& s : settlements) {
      auto held = out_.take(s.handle);
      if (!held) continue;
      if (s.verdict == Verdict::retry) retries_.push_back({Clock::now() + kRetryDelay, std::move(*held)});
      else lines_out_.erase(held->line);
    }
    return out_.settled(name_);
  }

  Status commit() override {
    if (offset_file_.empty()) return {};
    // Every line before the first one still out is settled (blank lines included).
    uint64_t settled = lines_out_.empty() ? lines_.line_number() : *lines_out_.begin() - 1;
    if (settled == committed_) return {};
    if (auto st = write_file_atomically(offset_file_, std::to_string(settled) + "\n", 0644); !st) return st;
    committed_ = settled;
    return {};
  }

 private:
  struct Held {
    Received received;
    uint64_t line = 0;  // where it was read: what the offset file counts
  };
  struct Retry {
    Clock::time_point due;
    Held held;
  };

  Received read_record(std::string_view text) {
    Received r;
    r.record.json.assign(text);
    doc_.SetNull();
    doc_.GetAllocator().Clear();  // one Document for the run: drop the last line's values
    doc_.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
    if (doc_.HasParseError() || !doc_.IsObject()) {
      log_warning(lines_.name() + ":" + std::to_string(lines_.line_number()) +
                  ": not a JSON object; handed on as it is, for the sinks to reject");
      r.record.id = content_id(text);
    } else {
      r.record.id = record_id(doc_, content_id(text));
    }
    return r;
  }

  void hand_out(Held h, SourceBatch& batch) {
    lines_out_.insert(h.line);
    batch.records.push_back(h.received);
    batch.records.back().handle = out_.add(std::move(h));
  }

  std::string name_;
  LineReader lines_;
  JsonDocument doc_;
  bool eof_ = false;
  Outstanding<Held> out_;       // handed out, not yet settled
  std::deque<Retry> retries_;   // in order of due time
  std::set<uint64_t> lines_out_;  // the lines of both: the offset file stops before the first
  std::string offset_file_;       // empty: none
  uint64_t committed_ = 0;        // what the offset file says
};

// The number of lines an offset file says are settled; 0 when there is no such file yet.
Result<uint64_t> read_offset_file(const std::string& path) {
  std::error_code missing;
  if (!std::filesystem::exists(path, missing) && !missing) return uint64_t{0};  // the first run
  auto lines = LineReader::open(path, 64);
  if (!lines) return lines.error();
  auto line = lines->next();
  if (!line) return Error{Exit::data, path + ": not an offset file (one whole number of lines)"};
  if (!*line) return uint64_t{0};
  uint64_t n = 0;
  auto [end, ec] = std::from_chars((*line)->data(), (*line)->data() + (*line)->size(), n);
  if (ec != std::errc() || end != (*line)->data() + (*line)->size()) {
    return Error{Exit::data, path + ": not an offset file (one whole number of lines)"};
  }
  return n;
}

}  // namespace

Result<std::unique_ptr<Source>> open_stream_source(const Url& url) {
  auto offset_file = url.param("offset-file");
  if (offset_file && (url.is_stdio() || offset_file->empty())) {
    return Error{Exit::usage, url.redacted() + ": offset-file=PATH is for file: sources (stdin cannot be read again)"};
  }
  auto lines = LineReader::open(url.is_stdio() ? "-" : url.path);
  if (!lines) return lines.error();
  uint64_t skip = 0;
  if (offset_file) {
    auto text = read_offset_file(*offset_file);
    if (!text) return text.error();
    skip = *text;
    for (uint64_t i = 0; i < skip; ++i) {
      auto line = lines->next();
      if (!line) return line.error();
      if (!*line) {
        return Error{Exit::data, *offset_file + ": " + std::to_string(skip) + " lines of " + url.path +
                                     " were settled, but it has only " + std::to_string(i) +
                                     " now: not the file the offset was kept for"};
      }
    }
  }
  return std::unique_ptr<Source>(new LinesSource(url.is_stdio() ? "-" : url.redacted(), std::move(*lines),
                                                 offset_file.value_or(""), skip));
}

}  // namespace envkit
