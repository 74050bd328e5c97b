// Command-line options: Boost.Program_options filling a typed config per command, with the
// shared groups (logging, --config, connection/TLS) and precedence
// flag > environment (ENVKIT_<OPTION>) > YAML config file > default.
#pragma once

#include <yaml-cpp/yaml.h>

#include <boost/any.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/log.hpp>
#include <envkit/result.hpp>

namespace envkit {

namespace po = boost::program_options;

/// A length of time on the command line: "500ms", "15s", "2m", "1h", "1d", or plain seconds
/// ("2.5"). Bind options to it with po::value<Duration>(&config.every).
struct Duration {
  std::chrono::milliseconds value{0};
};

/// Parses a duration; errors (Exit::usage) say which forms are accepted.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

/// Boost.Program_options hook so that options can be typed Duration.
void validate(boost::any& out, const std::vector<std::string>& values, Duration*, int);

/// A size in bytes on the command line: "512", "64K", "16M", "1G" (powers of 1024; "MiB"
/// and "MB" are read the same). Bind options to it with po::value<ByteSize>(&config.max).
struct ByteSize {
  uint64_t bytes = 0;
};

/// Parses a size; errors (Exit::usage) say which forms are accepted.
Result<uint64_t> parse_size(std::string_view text);

/// Boost.Program_options hook so that options can be typed ByteSize.
void validate(boost::any& out, const std::vector<std::string>& values, ByteSize*, int);

/// The six commands; each may have its own section in a shared config file.
inline constexpr const char* kCommandNames[] = {"sensor-push", "db-backup",  "proxy-check",
                                                "shard-route", "race-probe", "queue-relay"};

/// What --help and --version say about a command.
struct CommandInfo {
  std::string name;          ///< "sensor-push"
  std::string usage;         ///< lines after "Usage: ", e.g. "sensor-push [OPTION]... --to URL..."
  std::string summary;       ///< one paragraph under the usage line
  std::string after_options; ///< examples and "See sensor-push(1)."; may be empty
};

/// How parse() ended.
enum class ParseOutcome {
  run,       ///< options are in place: run the command
  exit_now,  ///< --help or --version was printed: exit 0
  /// --check-config: the options are in place and cross-checked, and the files named by the
  /// shared options (--config, --tls-ca/--tls-cert/--tls-key, --password-file) are readable.
  /// The command now checks the rest as a run would (URLs, their parameters and passwords,
  /// its own input files), connects to nothing, writes nothing, prints nothing, and exits:
  /// 0 when all is well, the error's status otherwise. A command must never treat this
  /// outcome as `run`.
  check_only,
};

/// Parses one command's options. The command adds its own options bound to the fields of its
/// typed config, then calls parse(); Boost's notify() writes the values into the config.
class OptionParser {
 public:
  explicit OptionParser(CommandInfo info);

  /// The command's own options: parser.options().add_options()("count", po::value(&c.count)...)
  po::options_description& options() { return own_; }

  /// Adds --connect-timeout, --timeout, --tls, --tls-ca, --tls-cert, --tls-key,
  /// --tls-insecure, --tls-server-name and --password-file, written into the given fields.
  void add_connection_options(ConnectionOptions& out, std::optional<std::string>& password_file);

  /// Options that parse like any other but stay out of --help: the names positional
  /// arguments are bound to, which the usage line already shows.
  po::options_description& hidden_options() { return hidden_; }

  /// Declares a positional argument (max_count -1 for any number); it must also be an option
  /// (usually a hidden one).
  void positional(const std::string& name, int max_count);

  /// Lets the YAML config file carry a structured section that the command reads itself
  /// (e.g. proxy-check's "groups"); other unknown keys are errors.
  void allow_config_section(std::string key);

  /// Parses argv, then the ENVKIT_* environment, then the --config YAML file, applies the
  /// logging options, and prints --help/--version to `out`. --check-config (command line
  /// only) makes the outcome check_only once everything has parsed. Errors: Exit::usage for the
  /// command line and environment, Exit::no_input for a missing config file, Exit::config
  /// for a malformed one.
  Result<ParseOutcome> parse(int argc, const char* const* argv, std::ostream& out);

  /// parse() for a command whose first argument is a subcommand (db-backup dump, shard-route
  /// put): argv[1], when it is not an option, must be one of `commands` and is stored in
  /// `command`; the rest parses as parse() does. Without one, only --help and --version
  /// succeed. Errors: Exit::usage naming the subcommands for an unknown or a missing one.
  Result<ParseOutcome> parse_subcommand(int argc, const char* const* argv,
                                        const std::vector<std::string>& commands, std::string& command,
                                        std::ostream& out);

  /// The config file's document (a null node when there is none).
  const YAML::Node& config_document() const { return config_doc_; }
  /// The config file's path, for messages ("" when there is none).
  const std::string& config_path() const { return config_path_; }
  /// True when `name` came from any source rather than its default.
  bool given(const std::string& name) const;
  /// The full --help text.
  std::string help_text() const;

 private:
  Status load_config_file(const po::options_description& all, po::variables_map& vm);
  Status check_named_files() const;

  CommandInfo info_;
  po::options_description own_;
  po::options_description hidden_;
  po::options_description connection_;
  po::options_description common_;
  po::positional_options_description positional_;
  std::vector<std::string> config_sections_;
  po::variables_map vm_;
  YAML::Node config_doc_;
  std::string config_path_;
  std::string log_format_ = "text";
  bool quiet_ = false;
  bool check_only_ = false;
  bool has_connection_ = false;
  Duration connect_timeout_, io_timeout_;
  ConnectionOptions* connection_out_ = nullptr;
};

}  // namespace envkit
