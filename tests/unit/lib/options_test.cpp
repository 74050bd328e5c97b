// Unit tests for envkit/options.hpp: precedence flag > environment > config file > default,
// the YAML file, durations, help/version and usage errors.
#include <envkit/options.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace envkit {
namespace {

struct DemoConfig {
  int count = 1;
  std::string to = "-";
  std::vector<std::string> cities;
  Duration every{std::chrono::seconds(15)};
  bool once = false;
};

class Options : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"ENVKIT_COUNT", "ENVKIT_TO", "ENVKIT_EVERY", "ENVKIT_CONFIG", "ENVKIT_ONCE",
                          "ENVKIT_LOG_FORMAT", "ENVKIT_TIMEOUT"}) {
      unsetenv(v);
    }
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    SetUp();  // clears the variables again
    configure_logging(LogSettings{});
  }

  std::string write_config(const std::string& text) {
    auto path = (dir_ / "envkit.yaml").string();
    std::ofstream(path) << text;
    return path;
  }

  // Builds a parser for a demo command bound to cfg_, and parses args.
  Result<ParseOutcome> parse(std::vector<std::string> args) {
    parser_ = std::make_unique<OptionParser>(
        CommandInfo{"sensor-push", "sensor-push [OPTION]...", "Pushes readings.", "See sensor-push(1)."});
    parser_->options().add_options()
        ("count", po::value<int>(&cfg_.count), "how many")
        ("to", po::value<std::string>(&cfg_.to), "sink")
        ("city", po::value<std::vector<std::string>>(&cfg_.cities), "city")
        ("every", po::value<Duration>(&cfg_.every), "interval")
        ("once", po::bool_switch(&cfg_.once), "once");
    parser_->add_connection_options(conn_, password_file_);
    args.insert(args.begin(), "sensor-push");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    out_.str("");
    return parser_->parse(static_cast<int>(argv.size()), argv.data(), out_);
  }

  std::filesystem::path dir_;
  DemoConfig cfg_;
  ConnectionOptions conn_;
  std::optional<std::string> password_file_;
  std::unique_ptr<OptionParser> parser_;
  std::ostringstream out_;
};

TEST_F(Options, DefaultsWhenNothingGiven) {
  auto r = parse({});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, ParseOutcome::run);
  EXPECT_EQ(cfg_.count, 1);
  EXPECT_EQ(cfg_.every.value, std::chrono::seconds(15));
  EXPECT_EQ(conn_.connect_timeout, std::chrono::seconds(5));
  EXPECT_FALSE(parser_->given("count"));
  EXPECT_EQ(log_settings().level, LogLevel::warning);
}

TEST_F(Options, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  std::string config = write_config("count: 3\nto: file:from-file\nevery: 1m\nonce: true\n");
  setenv("ENVKIT_COUNT", "2", 1);
  setenv("ENVKIT_TO", "file:from-env", 1);
  auto r = parse({"--config", config, "--count", "1"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(cfg_.count, 1);                          // flag
  EXPECT_EQ(cfg_.to, "file:from-env");               // environment
  EXPECT_EQ(cfg_.every.value, std::chrono::minutes(1));  // file
  EXPECT_TRUE(cfg_.once);                            // file, bool
  EXPECT_TRUE(parser_->given("count"));
}

TEST_F(Options, ConfigFileFromEnvironment) {
  std::string config = write_config("count: 9\n");
  setenv("ENVKIT_CONFIG", config.c_str(), 1);
  ASSERT_TRUE(parse({}).ok());
  EXPECT_EQ(cfg_.count, 9);
}

TEST_F(Options, CommandSectionBeatsTopLevelAndOtherSectionsAreIgnored) {
  std::string config = write_config(
      "count: 3\nsensor-push:\n  count: 4\n  city: [Bogotá, Cali]\ndb-backup:\n  keep-last: 7\n");
  auto r = parse({"--config", config});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(cfg_.count, 4);
  EXPECT_EQ(cfg_.cities, (std::vector<std::string>{"Bogotá", "Cali"}));
}

TEST_F(Options, RepeatedFlagsCollectAndBeatTheFile) {
  std::string config = write_config("city: [Cali]\n");
  ASSERT_TRUE(parse({"--config", config, "--city", "Bogotá", "--city", "Medellín"}).ok());
  EXPECT_EQ(cfg_.cities, (std::vector<std::string>{"Bogotá", "Medellín"}));
}

TEST_F(Options, UnknownFlagIsUsageError) {
  auto r = parse({"--bogus"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::usage);
  EXPECT_NE(r.error().message.find("--bogus"), std::string::npos);
}

// Boost 1.74 loops forever formatting these; found by fuzz_config.
TEST_F(Options, PlaceholderLookalikesInValuesDoNotHang) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"--count", "%value%"}, {"--x%canonical_option%"}, {"--count", "%option%%prefix%"}}) {
    auto r = parse(args);
    ASSERT_FALSE(r.ok()) << args[0];
    EXPECT_EQ(r.error().code, Exit::usage);
  }
  auto r = parse({"--count", "%value%"});
  EXPECT_NE(r.error().message.find("%25value%25"), std::string::npos) << r.error().message;
  setenv("ENVKIT_COUNT", "%value%", 1);
  EXPECT_FALSE(parse({}).ok());
  unsetenv("ENVKIT_COUNT");
  EXPECT_FALSE(parse({"--config", write_config("count: '%value%'\n")}).ok());
}

TEST_F(Options, AbbreviationsAreNotGuessed) {
  auto r = parse({"--cou", "2"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::usage);
}

TEST_F(Options, BadValueNamesTheOption) {
  auto r = parse({"--count", "many"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::usage);
  EXPECT_NE(r.error().message.find("--count"), std::string::npos);
}

TEST_F(Options, BadEnvironmentValueSaysEnvironment) {
  setenv("ENVKIT_COUNT", "many", 1);
  auto r = parse({});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::usage);
  EXPECT_NE(r.error().message.find("environment"), std::string::npos);
}

TEST_F(Options, MissingConfigFileIsNoInput) {
  auto r = parse({"--config", (dir_ / "absent.yaml").string()});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::no_input);
  EXPECT_NE(r.error().message.find("absent.yaml"), std::string::npos);
}

TEST_F(Options, MalformedConfigFilesNameFileAndLine) {
  struct Case { std::string text, expect; };
  for (const Case& c : std::vector<Case>{
           {"count: [1\n", "envkit.yaml:"},
           {"count: 1\nbogus: 2\n", "envkit.yaml:2: unknown option 'bogus'"},
           {"- a\n- b\n", "expected a mapping"},
           {"city:\n  - {a: 1}\n", "plain values"},
           {"count: {a: 1}\n", "needs a value"},
           {"count: many\n", "envkit.yaml:1: the argument ('many') for option 'count' is invalid"},
           {"help: true\n", "unknown option 'help'"},
           {"sensor-push: 3\n", "must be a mapping"},
           {"'': 1\n", "unknown option ''"},            // found by fuzz_config
           {"-q: true\n", "unknown option '-q'"},
           {"? [a, b]\n: 1\n", "keys must be option names"},
       }) {
    auto r = parse({"--config", write_config(c.text)});
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().code, Exit::config) << c.text;
    EXPECT_NE(r.error().message.find(c.expect), std::string::npos)
        << c.text << " gave: " << r.error().message;
  }
}

TEST_F(Options, EmptyConfigFileSetsNothing) {
  ASSERT_TRUE(parse({"--config", write_config("")}).ok());
  EXPECT_EQ(cfg_.count, 1);
}

TEST_F(Options, AllowedSectionIsLeftToTheCommand) {
  std::string config = write_config("groups:\n  db: {interval: 10s}\n");
  EXPECT_FALSE(parse({"--config", config}).ok());
  parser_.reset();
  cfg_ = {};
  // Same file, with the section declared.
  parser_ = std::make_unique<OptionParser>(CommandInfo{"proxy-check", "proxy-check", "", ""});
  parser_->allow_config_section("groups");
  const char* argv[] = {"proxy-check", "--config", config.c_str()};
  auto r = parser_->parse(3, argv, out_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(parser_->config_document()["groups"]["db"].IsMap());
}

TEST_F(Options, HelpAndVersionPrintToTheGivenStream) {
  auto r = parse({"--help"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, ParseOutcome::exit_now);
  EXPECT_NE(out_.str().find("Usage: sensor-push [OPTION]..."), std::string::npos);
  EXPECT_NE(out_.str().find("--tls-ca"), std::string::npos);
  EXPECT_NE(out_.str().find("See sensor-push(1)."), std::string::npos);
  r = parse({"--version"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(out_.str(), std::string("sensor-push (envkit) ") + ENVKIT_VERSION + "\n");
}

TEST_F(Options, CheckConfigParsesEverythingThenSaysCheckOnly) {
  auto r = parse({"--check-config", "--count", "3"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, ParseOutcome::check_only);
  EXPECT_EQ(cfg_.count, 3);
  EXPECT_EQ(out_.str(), "");
  // Errors are the run's own.
  r = parse({"--check-config", "--count", "many"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::usage);
  r = parse({"--check-config", "--config", write_config("bogus: 1\n")});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::config);
  // The files the shared options name are read now, not at the first connection.
  for (const char* option : {"--tls-ca", "--tls-cert", "--tls-key", "--password-file"}) {
    r = parse({"--check-config", option, (dir_ / "missing").string()});
    ASSERT_FALSE(r.ok()) << option;
    EXPECT_EQ(r.error().code, Exit::no_input) << option;
  }
  // Without --check-config they are left to the run, as before.
  r = parse({"--password-file", (dir_ / "missing").string()});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, ParseOutcome::run);
}

TEST_F(Options, CheckConfigOnlyFromTheCommandLine) {
  setenv("ENVKIT_CHECK_CONFIG", "1", 1);
  auto r = parse({});
  unsetenv("ENVKIT_CHECK_CONFIG");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, ParseOutcome::run);
  r = parse({"--config", write_config("check-config: true\n")});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("unknown option 'check-config'"), std::string::npos);
}

TEST_F(Options, VerbosityAndQuiet) {
  ASSERT_TRUE(parse({"-vv"}).ok());
  EXPECT_EQ(log_settings().level, LogLevel::debug);
  ASSERT_TRUE(parse({"-v"}).ok());
  EXPECT_EQ(log_settings().level, LogLevel::info);
  ASSERT_TRUE(parse({"-q"}).ok());
  EXPECT_EQ(log_settings().level, LogLevel::error);
  auto r = parse({"-q", "-v"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::usage);
}

TEST_F(Options, LogFormatIsChecked) {
  ASSERT_TRUE(parse({"--log-format", "json"}).ok());
  EXPECT_EQ(log_settings().format, LogFormat::json);
  EXPECT_EQ(log_settings().tool, "sensor-push");
  auto r = parse({"--log-format", "xml"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("xml"), std::string::npos);
}

TEST_F(Options, ConnectionGroupFillsConnectionOptions) {
  auto r = parse({"--connect-timeout", "250ms", "--timeout", "2s", "--tls", "--tls-insecure",
                  "--tls-ca", "/ca.pem", "--password-file", "/pw"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(conn_.connect_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(conn_.io_timeout, std::chrono::seconds(2));
  EXPECT_TRUE(conn_.tls.enabled);
  EXPECT_FALSE(conn_.tls.verify);
  EXPECT_EQ(conn_.tls.ca_file, "/ca.pem");
  EXPECT_EQ(password_file_, "/pw");
  auto zero = parse({"--timeout", "0"});
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error().code, Exit::usage);
}

TEST(Size, AcceptedAndRejectedForms) {
  EXPECT_EQ(*parse_size("512"), 512u);
  EXPECT_EQ(*parse_size("64K"), 64u << 10);
  EXPECT_EQ(*parse_size("16MiB"), 16u << 20);
  EXPECT_EQ(*parse_size("1g"), uint64_t{1} << 30);
  for (const char* bad : {"", "M", "-1", "1.5G", "12X", "99999999999999999999", "20000000000T"}) {
    auto n = parse_size(bad);
    ASSERT_FALSE(n.ok()) << bad;
    EXPECT_EQ(n.error().code, Exit::usage);
  }
}

TEST(Duration, AcceptedForms) {
  using namespace std::chrono;
  EXPECT_EQ(*parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(*parse_duration("15s"), seconds(15));
  EXPECT_EQ(*parse_duration("15"), seconds(15));
  EXPECT_EQ(*parse_duration("2.5"), milliseconds(2500));
  EXPECT_EQ(*parse_duration("2m"), minutes(2));
  EXPECT_EQ(*parse_duration("1h"), hours(1));
  EXPECT_EQ(*parse_duration("1d"), hours(24));
  EXPECT_EQ(*parse_duration("0"), milliseconds(0));
}

TEST(Duration, RejectedForms) {
  for (const char* bad : {"", "s", "-1s", "1.2.3s", ".5s", "15 s", "15x", "1e3", "99999999999999999999d",
                          "1hh"}) {
    auto d = parse_duration(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.error().code, Exit::usage);
    EXPECT_NE(d.error().message.find("invalid duration"), std::string::npos);
  }
}

}  // namespace
}  // namespace envkit
