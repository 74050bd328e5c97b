// race-probe's typed configuration for its three modes (probe, serve, reconcile), filled by
// parse_options() and cross-checked there.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/options.hpp>

namespace race_probe {

enum class Mode { probe, serve, reconcile };
enum class Workload { tasks, stock, register_ };
enum class Format { automatic, human, json };

/// `race-probe serve`: the reference target.
struct ServeConfig {
  std::string listen = "http://127.0.0.1:8080";
  std::string data = "tasks.json";  ///< the tasks file
  bool unsafe = false;
  envkit::Duration race_window{std::chrono::milliseconds(0)};
  double fail_after_commit = 0;  ///< fraction of writes answered 504 after they committed
  envkit::Duration fail_stall{std::chrono::milliseconds(0)};
  size_t workers = 64;
};

/// The probe: send operations, read back, reconcile.
struct ProbeConfig {
  std::string target;     ///< tasks: the collection URL; stock: the stock URL
  std::string read_back;  ///< where to read back ("" = target)
  Workload workload = Workload::tasks;
  size_t workers = 2;
  uint64_t requests = 100;  ///< per worker
  double rate = 0;          ///< requests/s over all workers; 0 = closed load
  std::string client_id;    ///< "" = HOST-PID
  std::string method = "POST";
  std::string body;  ///< template; "" = the workload's default
  std::string id_field = "id";
  uint64_t items = 1;   ///< stock: how many items
  uint64_t stock = 100; ///< stock: initial stock of each
  uint64_t keys = 5;    ///< register: how many keys
  envkit::Duration check_budget{std::chrono::milliseconds(10000)};  ///< register: the checker's time
  envkit::Duration request_timeout{std::chrono::milliseconds(5000)};
};

struct Config {
  Mode mode = Mode::probe;
  ServeConfig serve;
  ProbeConfig probe;
  std::vector<std::string> histories;  ///< reconcile's inputs
  std::string history;                 ///< --history FILE to write ("" none)
  bool export_jepsen = false;          ///< reconcile --export jepsen: print EDN, check nothing
  Format format = Format::automatic;
  envkit::ConnectionOptions connection;
  std::optional<std::string> password_file;
};

/// Parses argv (then ENVKIT_*, then --config) into `config`: `race-probe serve ...` and
/// `race-probe reconcile ...` are told apart by their first argument. exit_now after
/// --help/--version.
envkit::Result<envkit::ParseOutcome> parse_options(int argc, const char* const* argv, Config& config,
                                                   std::ostream& out);

}  // namespace race_probe
