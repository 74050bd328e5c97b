// libFuzzer target: any --config file content gives options or a one-line error, never a
// crash or an exception escaping. The input is served to the parser through a memfd.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <string>

#include <envkit/options.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = memfd_create("envkit-config", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (size > 0 && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return 0;
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd);

  struct {
    int count = 0;
    std::string to;
    std::vector<std::string> cities;
    envkit::Duration every;
    bool once = false;
  } cfg;
  envkit::ConnectionOptions conn;
  std::optional<std::string> password_file;
  envkit::OptionParser parser({"sensor-push", "sensor-push", "", ""});
  parser.options().add_options()
      ("count", envkit::po::value<int>(&cfg.count), "")
      ("to", envkit::po::value<std::string>(&cfg.to), "")
      ("city", envkit::po::value<std::vector<std::string>>(&cfg.cities), "")
      ("every", envkit::po::value<envkit::Duration>(&cfg.every), "")
      ("once", envkit::po::bool_switch(&cfg.once), "");
  parser.add_connection_options(conn, password_file);
  parser.allow_config_section("groups");
  const char* argv[] = {"sensor-push", "--config", path.c_str(), "-q"};
  std::ostringstream out;
  auto result = parser.parse(4, argv, out);
  ::close(fd);
  if (!result && result.error().message.empty()) std::abort();
  return 0;
}
