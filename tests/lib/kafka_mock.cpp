// envkit-kafka-mock: serves librdkafka's mock Kafka cluster on loopback for the Bats tests.
//
// Debian 12 ships no Kafka broker; librdkafka's mock cluster speaks the real protocol over
// TCP, so kcat and the project's commands can produce and consume against it from another
// process. The program prints the bootstrap address as one line and then serves until
// SIGTERM/SIGINT or until its stdin reaches EOF (so a test can tie its lifetime to a pipe).
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr const char* kProgram = "envkit-kafka-mock";

// sysexits-style codes, as every envkit command uses.
enum ExitStatus : int { kOk = 0, kUsage = 64, kUnavailable = 69, kIoError = 74, kSoftware = 70 };

struct TopicSpec {
  std::string name;
  int partitions = 1;
};

struct Config {
  int brokers = 3;
  std::vector<TopicSpec> topics;
  bool help = false;
};

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
// Measured with librdkafka 2.0.2: this sometimes takes up to 1 s, as the mock's thread
// only notices the request on its next 1 s tick; callers' stop timeouts allow for it.
struct MockClusterDeleter {
  void operator()(rd_kafka_mock_cluster_t* mc) const { rd_kafka_mock_cluster_destroy(mc); }
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
// Owns a file descriptor (here the signalfd) and closes it on every return path.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using MockCluster = std::unique_ptr<rd_kafka_mock_cluster_t, MockClusterDeleter>;
using KafkaConf = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: %s [--brokers N] [--topic NAME[:PARTITIONS]]...\n"
               "Serve librdkafka's mock Kafka cluster on 127.0.0.1 for tests.\n"
               "\n"
               "  --brokers N                 number of mock brokers (default 3)\n"
               "  --topic NAME[:PARTITIONS]   create a topic (default 1 partition); repeatable.\n"
               "                              The mock does not auto-create topics.\n"
               "  --help                      print this help and exit\n"
               "\n"
               "Prints the bootstrap address (host:port,...) as one line on stdout, then\n"
               "serves until SIGTERM or SIGINT, or until stdin reaches EOF (a closed\n"
               "stdin is not watched).\n"
               "\n"
               "Exit status: 0 stopped cleanly, 64 usage error, 69 the cluster could not be\n"
               "created, 74 stdout could not be written.\n",
               kProgram);
}

void print_error(const std::string& message) {
  std::fprintf(stderr, "%s: error: %s\n", kProgram, message.c_str());
}

int usage_error(const std::string& message) {
  print_error(message);
  std::fprintf(stderr, "Try '%s --help' for more information.\n", kProgram);
  return kUsage;
}

std::optional<int> parse_count(std::string_view text, int max) {
  int value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || value < 1 || value > max) return std::nullopt;
  return value;
}

// Kafka's own rule for topic names, so a typo fails here rather than as a protocol error.
bool valid_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::optional<TopicSpec> parse_topic(std::string_view spec) {
  TopicSpec topic;
  auto colon = spec.rfind(':');
  topic.name = std::string(spec.substr(0, colon));
  if (colon != std::string_view::npos) {
    auto partitions = parse_count(spec.substr(colon + 1), 10000);
    if (!partitions) return std::nullopt;
    topic.partitions = *partitions;
  }
  if (!valid_topic_name(topic.name)) return std::nullopt;
  return topic;
}

// Returns the exit status to use when parsing fails, or nothing when it succeeded.
std::optional<int> parse_args(int argc, char** argv, Config& config) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    std::string_view value;
    bool has_inline_value = false;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline_value = true;
    }
    auto take_value = [&]() -> std::optional<std::string_view> {
      if (has_inline_value) return value;
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    if (arg == "--help" || arg == "-h") {
      config.help = true;
      return std::nullopt;
    } else if (arg == "--brokers") {
      auto text = take_value();
      if (!text) return usage_error("--brokers needs a value");
      auto n = parse_count(*text, 64);
      if (!n) return usage_error("--brokers: not a number from 1 to 64: '" + std::string(*text) + "'");
      config.brokers = *n;
    } else if (arg == "--topic") {
      auto text = take_value();
      if (!text) return usage_error("--topic needs a value");
      auto topic = parse_topic(*text);
      if (!topic) return usage_error("--topic: expected NAME[:PARTITIONS]: '" + std::string(*text) + "'");
      config.topics.push_back(std::move(*topic));
    } else {
      return usage_error("unknown argument: '" + std::string(args[i]) + "'");
    }
  }
  return std::nullopt;
}

// A producer handle is only the vehicle for the mock cluster; nothing is produced with it.
KafkaHandle make_handle(std::string& error) {
  KafkaConf conf(rd_kafka_conf_new());
  char errstr[512] = {};
  // Keep the vehicle's own client from chattering about the brokers it never uses.
  if (rd_kafka_conf_set(conf.get(), "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    error = errstr;
    return nullptr;
  }
  KafkaHandle rk(rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), errstr, sizeof errstr));
  if (!rk) {
    error = errstr;
    return nullptr;
  }
  conf.release();  // rd_kafka_new took ownership on success.
  return rk;
}

enum class StopReason { kSignal, kStdinEof, kError };

// Signals arrive through a signalfd so the wait needs no handler and no race with poll().
StopReason wait_for_stop(int signal_fd, bool watch_stdin) {
  char buffer[4096];
  for (;;) {
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    int rc = ::poll(fds, watch_stdin ? 2 : 1, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      print_error(std::string("poll: ") + std::strerror(errno));
      return StopReason::kError;
    }
    if (fds[0].revents & POLLIN) return StopReason::kSignal;
    if (watch_stdin && fds[1].revents != 0) {
      if (fds[1].revents & POLLNVAL) {
        watch_stdin = false;
        continue;
      }
      // Whatever is written to stdin is ignored; only its end matters.
      ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
      if (n == 0) return StopReason::kStdinEof;
      if (n < 0 && errno != EINTR && errno != EAGAIN) return StopReason::kStdinEof;
    }
  }
}

int run(const Config& config) {
  // Started with stdin closed, the program serves until a signal. fd 0 is then taken by
  // /dev/null so that no socket or the signalfd lands on it and passes for stdin.
  bool watch_stdin = fcntl(STDIN_FILENO, F_GETFD) != -1;
  if (!watch_stdin && ::open("/dev/null", O_RDONLY) != STDIN_FILENO) {
    print_error("cannot open /dev/null as stdin");
    return kSoftware;
  }

  // Block before librdkafka starts its threads, so they inherit the mask and the
  // signals are left for the signalfd.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0) {
    print_error(std::string("sigprocmask: ") + std::strerror(errno));
    return kSoftware;
  }
  FileDescriptor signal_fd(signalfd(-1, &stop_signals, SFD_CLOEXEC));
  if (signal_fd.get() < 0) {
    print_error(std::string("signalfd: ") + std::strerror(errno));
    return kSoftware;
  }
  std::signal(SIGPIPE, SIG_IGN);

  std::string error;
  KafkaHandle rk = make_handle(error);
  if (!rk) {
    print_error("cannot create the Kafka handle: " + error);
    return kUnavailable;
  }
  // Declared after rk so that it is destroyed first: the cluster lives inside rk.
  MockCluster cluster(rd_kafka_mock_cluster_new(rk.get(), config.brokers));
  if (!cluster) {
    print_error("cannot create the mock cluster with " + std::to_string(config.brokers) + " brokers");
    return kUnavailable;
  }
  int replication = config.brokers < 3 ? config.brokers : 3;
  for (const auto& topic : config.topics) {
    rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(cluster.get(), topic.name.c_str(), topic.partitions, replication);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      print_error("cannot create topic '" + topic.name + "': " + rd_kafka_err2str(err));
      return kUnavailable;
    }
  }

  const char* bootstraps = rd_kafka_mock_cluster_bootstraps(cluster.get());
  if (std::printf("%s\n", bootstraps) < 0 || std::fflush(stdout) != 0) {
    print_error(std::string("cannot write the bootstrap address: ") + std::strerror(errno));
    return kIoError;
  }

  StopReason reason = wait_for_stop(signal_fd.get(), watch_stdin);
  return reason == StopReason::kError ? kSoftware : kOk;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Config config;
    if (auto status = parse_args(argc, argv, config)) return *status;
    if (config.help) {
      print_usage(stdout);
      return std::fflush(stdout) == 0 ? kOk : kIoError;
    }
    return run(config);
  } catch (const std::exception& e) {
    print_error(e.what());
  } catch (...) {
    print_error("unexpected exception");
  }
  return kSoftware;
}
