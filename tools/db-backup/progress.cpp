// Terminal progress: a status line redrawn in place, one summary line per object.
#include <unistd.h>

#include <cstdio>

#include "db-backup/progress.hpp"
#include <envkit/log.hpp>

namespace db_backup {

namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", b, units[u]);
  return buf;
}

void write_stderr(const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(2, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

TerminalProgress::TerminalProgress(std::string verb)
    : verb_(std::move(verb)), thread_([this] { loop(); }) {}

TerminalProgress::~TerminalProgress() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  write_stderr("\r\033[K");
}

void TerminalProgress::begin_object(const std::string& name, uint64_t expected) {
  std::lock_guard lock(mu_);
  auto& o = objects_[name];
  o.expected = expected;
  o.start = std::chrono::steady_clock::now();
}

void TerminalProgress::advance(const std::string& name, uint64_t rows, uint64_t bytes) {
  std::lock_guard lock(mu_);
  auto& o = objects_[name];
  o.rows += rows;
  o.bytes += bytes;
}

void TerminalProgress::end_object(const std::string& name) {
  std::lock_guard lock(mu_);
  auto& o = objects_[name];
  if (o.done) return;
  o.done = true;
  draw_locked(true, name);
}

void TerminalProgress::draw_locked(bool final_line, const std::string& name) {
  const auto& o = objects_[name];
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - o.start).count();
  double rate = secs > 0 ? static_cast<double>(o.rows) / secs : 0;
  char buf[256];
  std::string eta = "?";
  if (!final_line && rate > 0 && o.expected > o.rows) {
    eta = std::to_string(static_cast<long long>(static_cast<double>(o.expected - o.rows) / rate)) +
          "s";
  }
  if (final_line) {
    std::snprintf(buf, sizeof buf, "\r\033[K%s %s: %llu rows, %s in %.1fs (%.0f rows/s)\n",
                  verb_.c_str(), name.c_str(), static_cast<unsigned long long>(o.rows),
                  human_bytes(static_cast<double>(o.bytes)).c_str(), secs, rate);
  } else {
    std::snprintf(buf, sizeof buf, "\r\033[K%s %s: %llu/%llu rows, %s, %.0f rows/s, ETA %s",
                  verb_.c_str(), name.c_str(), static_cast<unsigned long long>(o.rows),
                  static_cast<unsigned long long>(o.expected),
                  human_bytes(static_cast<double>(o.bytes)).c_str(), rate, eta.c_str());
  }
  write_stderr(buf);
}

void TerminalProgress::loop() {
  std::unique_lock lock(mu_);
  size_t turn = 0;
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(500));
    if (stop_) break;
    // Show the active objects in turn, one status line.
    std::vector<std::string> active;
    for (const auto& [name, o] : objects_)
      if (!o.done && o.rows > 0) active.push_back(name);
    if (!active.empty()) draw_locked(false, active[turn++ % active.size()]);
  }
}

std::unique_ptr<Progress> make_progress(const std::string& verb, bool wanted) {
  if (wanted && ::isatty(2) && envkit::log_settings().level >= envkit::LogLevel::warning) {
    return std::make_unique<TerminalProgress>(verb);
  }
  return std::make_unique<SilentProgress>();
}

}  // namespace db_backup
