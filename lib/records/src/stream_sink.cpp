// JSON Lines sinks: stdout ("-"), or a file appended to and fsynced once a batch.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <envkit/jsonl.hpp>
#include <envkit/posix.hpp>
#include "records_internal.hpp"

namespace envkit {
namespace {

class StreamSink : public Sink {
 public:
  /// `fd` is the descriptor to fsync when `durable`; the writer owns it.
  StreamSink(std::string name, JsonLinesWriter writer, bool durable, int fd = -1)
      : name_(std::move(name)), writer_(std::move(writer)), durable_(durable), fd_(fd) {}

  std::string name() const override { return name_; }

  Result<std::vector<Delivery>> write(std::span<const Record> batch) override {
    for (const auto& r : batch) {
      if (auto st = writer_.write(r.json); !st) return st.error();
    }
    if (auto st = writer_.flush(); !st) return st.error();
    if (durable_) {
      if (int err = fsync_retrying(fd_)) return Error{Exit::io, name_ + ": fsync failed: " + std::strerror(err)};
    }
    return std::vector<Delivery>(batch.size(), Delivery{Outcome::durable, {}});
  }

 private:
  std::string name_;
  JsonLinesWriter writer_;
  bool durable_;
  int fd_;  // owned by writer_
};

}  // namespace

Result<std::unique_ptr<Sink>> open_stream_sink(const Url& url) {
  if (url.is_stdio()) {
    return std::unique_ptr<Sink>(new StreamSink("-", JsonLinesWriter::to_stdout(), false));
  }
  int fd = ::open(url.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Error{Exit::io, url.path + ": cannot open for appending: " + std::strerror(errno)};
  }
  // Only a regular file is made durable: a FIFO or a device (file:/dev/null) has no fsync.
  struct stat st {};
  const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  return std::unique_ptr<Sink>(
      new StreamSink(url.redacted(), JsonLinesWriter(fd, true, url.path), regular, fd));
}

}  // namespace envkit
