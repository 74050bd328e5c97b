// Option parsing shared by every command: flags, then ENVKIT_* variables, then the YAML file.
#include <envkit/options.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

namespace envkit {
namespace {

std::string env_name_for(const std::string& option) {
  std::string name = "ENVKIT_";
  for (char c : option) {
    name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

// Options that make no sense from the environment or a file.
bool command_line_only(const std::string& name) {
  // --check-config from a stray ENVKIT_CHECK_CONFIG would make a daemon exit at once.
  return name == "help" || name == "version" || name == "verbose" || name == "check-config";
}

bool is_command_name(const std::string& key) {
  for (const char* c : kCommandNames) {
    if (key == c) return true;
  }
  return false;
}

// Exact long-name lookup: Boost's find_nothrow() matches "" and "-v" and can throw on
// ambiguity, and a config key must name an option exactly.
const po::option_description* find_option(const po::options_description& all,
                                          const std::string& name) {
  for (const auto& opt : all.options()) {
    if (opt->long_name() == name) return opt.get();
  }
  return nullptr;
}

std::string yaml_where(const std::string& path, const YAML::Node& node) {
  auto mark = node.Mark();
  if (mark.is_null()) return path;
  return path + ":" + std::to_string(mark.line + 1);
}

// Boost 1.74 formats error messages by replacing "%value%"-style placeholders in a loop, so a
// user's value that itself contains such a placeholder (--count '%value%') never terminates.
// Every substitution is defused before what() runs: each '%' that starts a word becomes "%25".
// The protected map is reached through a member pointer named via a derived class.
struct SubstitutionAccess : po::error_with_option_name {
  static std::map<std::string, std::string>& of(po::error_with_option_name& e) {
    return e.*(&SubstitutionAccess::m_substitutions);
  }
};

std::string describe(const po::error& error) {
  auto* named = dynamic_cast<const po::error_with_option_name*>(&error);
  if (named == nullptr) return error.what();
  po::error_with_option_name copy = *named;
  for (auto& [key, value] : SubstitutionAccess::of(copy)) {
    for (size_t at = value.find('%'); at != std::string::npos; at = value.find('%', at + 1)) {
      value.replace(at, 1, "%25");
    }
  }
  return copy.what();
}

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto bad = [&] {
    return Error{Exit::usage, "invalid duration '" + std::string(text) +
                                  "' (use e.g. 500ms, 15s, 2m, 1h, 1d, or seconds as a number)"};
  };
  if (text.empty() || text.size() > 32) return bad();
  size_t unit_at = text.find_first_not_of("0123456789.");
  std::string number(text.substr(0, unit_at));
  std::string_view unit = unit_at == std::string_view::npos ? "s" : text.substr(unit_at);
  if (number.empty() || number.front() == '.' ||
      std::count(number.begin(), number.end(), '.') > 1) {
    return bad();
  }
  double scale = 0;
  if (unit == "ms")
    scale = 1;
  else if (unit == "s")
    scale = 1e3;
  else if (unit == "m" || unit == "min")
    scale = 60e3;
  else if (unit == "h")
    scale = 3600e3;
  else if (unit == "d")
    scale = 86400e3;
  else
    return bad();
  double ms = std::strtod(number.c_str(), nullptr) * scale;
  if (!std::isfinite(ms) || ms > 1e15) return bad();  // ~31,700 years is plenty
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

void validate(boost::any& out, const std::vector<std::string>& values, Duration*, int) {
  po::validators::check_first_occurrence(out);
  const std::string& s = po::validators::get_single_string(values);
  auto d = parse_duration(s);
  if (!d) throw po::invalid_option_value(s);
  out = Duration{*d};
}

Result<uint64_t> parse_size(std::string_view text) {
  auto bad = [&] {
    return Error{Exit::usage, "invalid size '" + std::string(text) + "' (use e.g. 512, 64K, 16M, 1G)"};
  };
  size_t unit_at = std::min(text.find_first_not_of("0123456789"), text.size());
  if (unit_at == 0 || unit_at > 15) return bad();  // 15 digits cannot overflow 64 bits
  uint64_t n = std::stoull(std::string(text.substr(0, unit_at)));
  std::string unit(text.substr(unit_at));
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  int shift = 0;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "K" || unit == "KB" || unit == "KIB") shift = 10;
  else if (unit == "M" || unit == "MB" || unit == "MIB") shift = 20;
  else if (unit == "G" || unit == "GB" || unit == "GIB") shift = 30;
  else if (unit == "T" || unit == "TB" || unit == "TIB") shift = 40;
  else return bad();
  if (shift > 0 && n > (UINT64_MAX >> shift)) return bad();
  return n << shift;
}

void validate(boost::any& out, const std::vector<std::string>& values, ByteSize*, int) {
  po::validators::check_first_occurrence(out);
  const std::string& s = po::validators::get_single_string(values);
  auto n = parse_size(s);
  if (!n) throw po::invalid_option_value(s);
  out = ByteSize{*n};
}

OptionParser::OptionParser(CommandInfo info)
    : info_(std::move(info)),
      own_("Options"),
      connection_("Connection"),
      common_("Logging, configuration and help") {
  common_.add_options()("config", po::value<std::string>(&config_path_)->value_name("FILE"),
                        "read options from a YAML file (flags and ENVKIT_* variables win)")(
      "verbose,v", po::value<std::vector<std::string>>()->zero_tokens()->composing(),
      "log more to stderr (repeat for more)")("quiet,q", po::bool_switch(&quiet_),
                                              "log errors only (for cron)")(
      "log-format", po::value<std::string>(&log_format_)->value_name("FMT"),
      "stderr log format: text (default) or json")(
      "check-config", po::bool_switch(&check_only_),
      "check options, URLs and input files as a run would, connect to nothing, print nothing; "
      "exit 0 if all is well")("help", "print this help and exit")(
      "version", "print the version and exit");
}

void OptionParser::add_connection_options(ConnectionOptions& out,
                                          std::optional<std::string>& password_file) {
  has_connection_ = true;
  connection_out_ = &out;
  connect_timeout_.value = out.connect_timeout;
  io_timeout_.value = out.io_timeout;
  auto file_notifier = [&password_file](const std::string& f) { password_file = f; };
  connection_.add_options()("connect-timeout",
                            po::value<Duration>(&connect_timeout_)->value_name("DUR"),
                            "give up connecting after DUR (default 5s)")(
      "timeout", po::value<Duration>(&io_timeout_)->value_name("DUR"),
      "give up on any one read or write after DUR (default 30s)")(
      "password-file", po::value<std::string>()->value_name("FILE")->notifier(file_notifier),
      "read the password from the first line of FILE")("tls", po::bool_switch(&out.tls.enabled),
                                                       "connect with TLS")(
      "tls-ca", po::value<std::string>(&out.tls.ca_file)->value_name("FILE"),
      "trust the CA certificates in FILE")(
      "tls-cert", po::value<std::string>(&out.tls.cert_file)->value_name("FILE"),
      "client certificate")("tls-key",
                            po::value<std::string>(&out.tls.key_file)->value_name("FILE"),
                            "client private key")(
      "tls-server-name", po::value<std::string>(&out.tls.server_name)->value_name("NAME"),
      "expect NAME in the server certificate (and send it as SNI)")(
      "tls-insecure", po::bool_switch()->notifier([&out](bool b) { out.tls.verify = !b; }),
      "do not verify the server certificate");
}

void OptionParser::positional(const std::string& name, int max_count) {
  positional_.add(name.c_str(), max_count);
}

void OptionParser::allow_config_section(std::string key) {
  config_sections_.push_back(std::move(key));
}

bool OptionParser::given(const std::string& name) const {
  auto it = vm_.find(name);
  return it != vm_.end() && !it->second.defaulted();
}

std::string OptionParser::help_text() const {
  std::ostringstream out;
  out << "Usage: " << info_.usage << "\n";
  if (!info_.summary.empty()) out << "\n" << info_.summary << "\n";
  out << "\n" << own_;
  if (has_connection_) out << "\n" << connection_;
  out << "\n" << common_;
  out << "\nEvery option can also be set as ENVKIT_<OPTION> (e.g. ENVKIT_LOG_FORMAT=json) or\n"
         "in the --config file; a flag beats the environment, which beats the file.\n";
  if (!info_.after_options.empty()) out << "\n" << info_.after_options;
  if (info_.after_options.empty() || info_.after_options.back() != '\n') out << "\n";
  return out.str();
}

Result<ParseOutcome> OptionParser::parse_subcommand(int argc, const char* const* argv,
                                                   const std::vector<std::string>& commands,
                                                   std::string& command, std::ostream& out) {
  LogSettings log;
  log.tool = info_.name;
  configure_logging(log);  // an unknown subcommand is reported under the command's name
  std::string names;
  for (size_t i = 0; i < commands.size(); ++i) {
    names += (i == 0 ? "" : i + 1 == commands.size() ? " or " : ", ") + commands[i];
  }
  std::vector<const char*> rest;
  rest.push_back(argc > 0 ? argv[0] : info_.name.c_str());
  int first = 1;
  if (argc > 1 && argv[1][0] != '-') {
    command = argv[1];
    first = 2;
    if (std::find(commands.begin(), commands.end(), command) == commands.end()) {
      return Error{Exit::usage, "unknown subcommand '" + command + "' (" + names + ")"};
    }
  }
  for (int i = first; i < argc; ++i) rest.push_back(argv[i]);
  auto outcome = parse(static_cast<int>(rest.size()), rest.data(), out);
  if (!outcome || *outcome == ParseOutcome::exit_now) return outcome;
  if (command.empty()) return Error{Exit::usage, "no subcommand: " + names};
  return outcome;
}

Result<ParseOutcome> OptionParser::parse(int argc, const char* const* argv, std::ostream& out) {
  LogSettings log;
  log.tool = info_.name;
  configure_logging(log);  // so that errors below already carry the command's name

  po::options_description all;
  all.add(own_);
  all.add(hidden_);
  if (has_connection_) all.add(connection_);
  all.add(common_);

  po::variables_map vm;
  int verbosity = 0;
  try {
    auto parsed =
        po::command_line_parser(argc, argv)
            .options(all)
            .positional(positional_)
            .style(po::command_line_style::default_style & ~po::command_line_style::allow_guessing)
            .run();
    for (const auto& opt : parsed.options) {
      if (opt.string_key == "verbose") ++verbosity;
    }
    po::store(parsed, vm);
  } catch (const po::error& e) {
    return Error{Exit::usage, describe(e)};
  }
  if (vm.count("help")) {
    out << help_text();
    return ParseOutcome::exit_now;
  }
  if (vm.count("version")) {
    out << info_.name << " (envkit) " << ENVKIT_VERSION << "\n";
    return ParseOutcome::exit_now;
  }

  try {
    auto mapper = [&all](const std::string& env) -> std::string {
      for (const auto& opt : all.options()) {
        const std::string& name = opt->long_name();
        if (!command_line_only(name) && env == env_name_for(name)) return name;
      }
      return {};
    };
    po::store(po::parse_environment(all, mapper), vm);
  } catch (const po::error& e) {
    return Error{Exit::usage, "environment: " + describe(e)};
  }

  if (vm.count("config")) {
    config_path_ = vm["config"].as<std::string>();
    if (auto st = load_config_file(all, vm); !st) return st.error();
  }

  try {
    po::notify(vm);
  } catch (const po::error& e) {
    return Error{Exit::usage, describe(e)};
  }
  vm_ = std::move(vm);

  if (log_format_ != "text" && log_format_ != "json") {
    return Error{Exit::usage, "--log-format must be text or json, not '" + log_format_ + "'"};
  }
  if (quiet_ && verbosity > 0) {
    return Error{Exit::usage, "--quiet and --verbose contradict each other"};
  }
  log.format = log_format_ == "json" ? LogFormat::json : LogFormat::text;
  // Default is warnings; each -v adds a level up to debug.
  log.level = quiet_ ? LogLevel::error : static_cast<LogLevel>(std::min(3, 1 + verbosity));
  configure_logging(log);

  if (connection_out_ != nullptr) {
    if (connect_timeout_.value.count() <= 0 || io_timeout_.value.count() <= 0) {
      return Error{Exit::usage, "--connect-timeout and --timeout must be greater than zero"};
    }
    connection_out_->connect_timeout = connect_timeout_.value;
    connection_out_->io_timeout = io_timeout_.value;
  }
  if (check_only_) {
    if (auto st = check_named_files(); !st) return st.error();
    return ParseOutcome::check_only;
  }
  return ParseOutcome::run;
}

// The files the shared options name are read when a run connects; --check-config reads
// them now (the --config file has been read already).
Status OptionParser::check_named_files() const {
  if (!has_connection_) return {};
  std::vector<std::pair<std::string, std::string>> files;
  for (const char* name : {"tls-ca", "tls-cert", "tls-key", "password-file"}) {
    auto it = vm_.find(name);
    if (it != vm_.end() && !it->second.empty()) files.emplace_back(name, it->second.as<std::string>());
  }
  for (const auto& [option, path] : files) {
    std::ifstream in(path);
    if (!in) return Error{Exit::no_input, path + ": cannot read the --" + option + " file"};
  }
  return {};
}

Status OptionParser::load_config_file(const po::options_description& all, po::variables_map& vm) {
  std::ifstream in(config_path_);
  if (!in) return Error{Exit::no_input, config_path_ + ": cannot read the config file"};
  try {
    config_doc_ = YAML::Load(in);
  } catch (const YAML::Exception& e) {
    return Error{Exit::config, config_path_ + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
  if (config_doc_.IsNull()) return {};  // an empty file sets nothing
  if (!config_doc_.IsMap()) {
    return Error{Exit::config,
                 yaml_where(config_path_, config_doc_) + ": expected a mapping of option: value"};
  }

  // The command's own section beats the top level, so collect it first: the first store wins.
  po::parsed_options parsed(&all);
  std::vector<std::string> where_of;  // "file:line" of each collected option, for errors
  auto collect = [&](const YAML::Node& map, bool top_level) -> Status {
    for (const auto& item : map) {
      if (!item.first.IsScalar()) {
        return Error{Exit::config,
                     yaml_where(config_path_, item.first) + ": keys must be option names"};
      }
      const std::string& key = item.first.Scalar();
      const YAML::Node& value = item.second;
      std::string where = yaml_where(config_path_, item.first);
      if (top_level && is_command_name(key)) {
        if (!value.IsMap())
          return Error{Exit::config, where + ": section '" + key + "' must be a mapping"};
        continue;  // handled separately (own) or meant for another command
      }
      if (std::find(config_sections_.begin(), config_sections_.end(), key) !=
          config_sections_.end()) {
        continue;
      }
      const po::option_description* desc = find_option(all, key);
      if (desc == nullptr || command_line_only(key) || key == "config") {
        return Error{Exit::config, where + ": unknown option '" + key + "'"};
      }
      std::vector<std::string> tokens;
      if (value.IsScalar()) {
        tokens.push_back(value.Scalar());
      } else if (value.IsSequence()) {
        for (const auto& element : value) {
          if (!element.IsScalar()) {
            return Error{Exit::config,
                         yaml_where(config_path_, element) + ": '" + key + "' takes plain values"};
          }
          tokens.push_back(element.Scalar());
        }
      } else {
        return Error{Exit::config, where + ": '" + key + "' needs a value"};
      }
      parsed.options.emplace_back(key, tokens);
      where_of.push_back(where);
    }
    return {};
  };
  try {
    if (const YAML::Node own = config_doc_[info_.name]; own && own.IsMap()) {
      if (auto st = collect(own, false); !st) return st;
    }
    if (auto st = collect(config_doc_, true); !st) return st;
  } catch (const YAML::Exception& e) {
    return Error{Exit::config, config_path_ + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }

  // Keys given twice (section and top level): the first, the command's own, wins. Each
  // option is stored alone so that a bad value is reported with its line.
  std::vector<std::string> stored;
  for (size_t i = 0; i < parsed.options.size(); ++i) {
    const std::string& key = parsed.options[i].string_key;
    if (std::find(stored.begin(), stored.end(), key) != stored.end()) continue;
    stored.push_back(key);
    po::parsed_options one(&all);
    one.options.push_back(parsed.options[i]);
    try {
      po::store(one, vm);
    } catch (const po::error& e) {
      return Error{Exit::config, where_of[i] + ": " + describe(e)};
    }
  }
  return {};
}

}  // namespace envkit
