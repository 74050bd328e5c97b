// `queue-relay spool check DIR`: each spool opened as a run opens it, and reported.
#include "queue-relay/spool_check.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <string_view>
#include <vector>

#include <envkit/durable_file.hpp>
#include <envkit/exit_status.hpp>
#include <envkit/json.hpp>
#include <envkit/log.hpp>
#include <envkit/pipeline.hpp>
#include <envkit/spool.hpp>

namespace queue_relay {

using envkit::Exit;
namespace fs = std::filesystem;

namespace {

constexpr const char* kSpoolUsage =
    "Usage: queue-relay spool check DIR\n"
    "\n"
    "Verifies the spools in DIR (a --spool directory: one spool per sink) as a run would open\n"
    "them: a damaged segment is moved to the spool's quarantine/ directory and reported, and\n"
    "whole records after the damage are kept for replay. Prints one JSON line per spool:\n"
    "sink, records, bytes, segments, oldest (the id of the first record to replay),\n"
    "oldest_spooled_by (when its segment was last written), quarantine (files there).\n"
    "\n"
    "Exit status: 0 the spools are sound; 65 a quarantine holds damaged records (now or from\n"
    "before); 66 DIR does not exist; 74 I/O error; 75 a run holds a spool. See queue-relay(1).\n";

bool is_spool(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name == "lock" || name == "ack" || name == envkit::kSpoolSinkFile || e.path().extension() == ".spool") {
      return true;
    }
  }
  return false;
}

std::vector<fs::path> sorted_entries(const fs::path& dir, bool directories) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory(ec) == directories) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// When `path` was last written, as UTC ISO 8601 ("" when it cannot be read).
std::string modified(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  std::tm tm{};
  ::gmtime_r(&st.st_mtime, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// Checks one spool, prints its line; the exit status it calls for.
Exit check_one(const fs::path& dir, std::ostream& out) {
  envkit::SpoolOptions options;
  options.max_bytes = UINT64_MAX / 2;  // verifying must not refuse what a run accepted
  auto spool = envkit::Spool::open(dir.string(), options);
  if (!spool) {
    envkit::log_error(spool.error().message);
    return spool.error().code;
  }
  envkit::JsonWriter w;
  w.begin_object();
  w.key("spool").string(dir.string());
  auto sink = envkit::read_file((dir / envkit::kSpoolSinkFile).string(), 4096);
  std::string name = sink ? *sink : std::string();
  while (!name.empty() && name.back() == '\n') name.pop_back();
  w.key("sink").string(name);
  w.key("records").number(spool->pending_records());
  w.key("bytes").number(spool->pending_bytes());
  w.key("segments").number(static_cast<uint64_t>(spool->segment_count()));
  auto oldest = spool->peek(1);
  if (!oldest) {
    envkit::log_error(oldest.error().message);
    return oldest.error().code;
  }
  w.key("oldest").string(oldest->empty() ? std::string() : oldest->front().id);
  std::string oldest_by;
  for (const auto& f : sorted_entries(dir, false)) {
    if (f.extension() == ".spool") {
      oldest_by = modified(f);
      break;
    }
  }
  w.key("oldest_spooled_by").string(oldest->empty() ? std::string() : oldest_by);
  bool damaged = false;
  w.key("quarantine").begin_array();
  for (const auto& f : sorted_entries(dir / "quarantine", false)) {
    w.string(f.string());
    damaged = damaged || f.extension() == ".damaged";
  }
  w.end_array();
  w.end_object();
  out << w.take() << "\n";
  if (damaged) {
    envkit::log_error(dir.string() + "/quarantine holds damaged records: they will not be replayed");
  }
  return damaged ? Exit::data : Exit::ok;
}

}  // namespace

envkit::Result<Exit> check_spools(const std::string& dir, std::ostream& out) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return envkit::fail(envkit::Failure::no_input, dir + ": no such spool directory");
  }
  std::vector<fs::path> spools;
  if (is_spool(dir)) {
    spools.push_back(dir);
  } else {
    for (const auto& d : sorted_entries(dir, true)) {
      if (is_spool(d)) spools.push_back(d);
    }
  }
  if (spools.empty()) envkit::log_info(dir + ": no spools here");
  // The most serious status wins: damage, then what stopped a check, then ok.
  Exit worst = Exit::ok;
  auto rank = [](Exit e) { return e == Exit::data ? 3 : e == Exit::ok ? 0 : e == Exit::temp_fail ? 1 : 2; };
  for (const auto& s : spools) {
    Exit e = check_one(s, out);
    if (rank(e) > rank(worst)) worst = e;
  }
  return worst;
}

int spool_main(int argc, const char* const* argv, std::ostream& out) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    out << kSpoolUsage;
    return 0;
  }
  if (args.size() != 2 || args[0] != "check") {
    std::cerr << kSpoolUsage;
    return envkit::to_int(Exit::usage);
  }
  auto status = check_spools(std::string(args[1]), out);
  if (!status) return envkit::report(status.error());
  return envkit::to_int(*status);
}

}  // namespace queue_relay
