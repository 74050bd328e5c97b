// Progress for people: rows, bytes, rate and ETA per table on a terminal, nothing otherwise.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "db-backup/backend.hpp"

namespace db_backup {

/// Says nothing: for cron, pipes and files.
class SilentProgress : public Progress {
 public:
  void begin_object(const std::string&, uint64_t) override {}
  void advance(const std::string&, uint64_t, uint64_t) override {}
  void end_object(const std::string&) override {}
};

/// Redraws one status line on stderr twice a second and prints a line per finished object.
class TerminalProgress : public Progress {
 public:
  explicit TerminalProgress(std::string verb);
  ~TerminalProgress() override;
  void begin_object(const std::string& name, uint64_t expected_rows) override;
  void advance(const std::string& name, uint64_t rows, uint64_t bytes) override;
  void end_object(const std::string& name) override;

 private:
  struct Object {
    uint64_t expected = 0, rows = 0, bytes = 0;
    std::chrono::steady_clock::time_point start;
    bool done = false;
  };
  void draw_locked(bool final_line, const std::string& name);
  void loop();

  std::string verb_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Object> objects_;
  bool stop_ = false;
  std::thread thread_;
};

/// TerminalProgress when stderr is a terminal and `wanted`, else SilentProgress.
std::unique_ptr<Progress> make_progress(const std::string& verb, bool wanted);

}  // namespace db_backup
