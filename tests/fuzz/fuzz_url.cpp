// libFuzzer target: parse_url never crashes, and a parsed URL printed by redacted() parses
// back to the same parts (so logs always show a URL a user can paste back).
#include <cstdlib>
#include <string_view>

#include <envkit/url.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto url = envkit::parse_url(text);
  if (!url) {
    if (url.error().message.empty()) std::abort();
    return 0;
  }
  std::string printed = url->redacted();
  auto again = envkit::parse_url(printed);
  if (!again) std::abort();
  if (again->scheme != url->scheme || again->user != url->user || again->path != url->path ||
      again->hosts.size() != url->hosts.size() || again->password.has_value() != url->password.has_value()) {
    std::abort();
  }
  for (size_t i = 0; i < url->hosts.size(); ++i) {
    if (again->hosts[i].host != url->hosts[i].host || again->hosts[i].port != url->hosts[i].port) {
      std::abort();
    }
  }
  if (again->query.size() != url->query.size()) std::abort();
  (void)url->port_or_default();
  return 0;
}
