// libFuzzer target: proxy-check's MySQL parsers (greeting, ERR, AuthSwitchRequest, text rows)
// never crash or read out of bounds on hostile bytes, and a parsed greeting is sane.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mysql_probe.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  using namespace proxy_check::mysql;
  auto greeting = parse_greeting(bytes);
  if (greeting) {
    if (greeting->protocol_version != 10) std::abort();
    if (greeting->scramble.size() > size) std::abort();
  } else if (greeting.error().message.empty()) {
    std::abort();
  }
  if (auto err = parse_error_packet(bytes)) {
    if (describe(*err).empty()) std::abort();
  }
  (void)parse_auth_switch(bytes);
  for (size_t columns = 1; columns <= 3; ++columns) (void)parse_text_row(bytes, columns);
  std::string_view cursor = bytes;
  for (int i = 0; i < 8 && !cursor.empty(); ++i) {
    if (!read_lenenc_string(cursor)) break;
  }
  return 0;
}
