// Base64 encoding and decoding (RFC 4648, standard alphabet, padded).
#include <envkit/base64.hpp>

#include <array>
#include <cstdint>

#include <envkit/exit_status.hpp>

namespace envkit {

char* base64_encode_to(char* out, std::string_view in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    *out++ = t[v >> 18];
    *out++ = t[(v >> 12) & 63];
    *out++ = t[(v >> 6) & 63];
    *out++ = t[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    *out++ = t[v >> 18];
    *out++ = t[(v >> 12) & 63];
    *out++ = '=';
    *out++ = '=';
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    *out++ = t[v >> 18];
    *out++ = t[(v >> 12) & 63];
    *out++ = t[(v >> 6) & 63];
    *out++ = '=';
  }
  return out;
}

std::string base64_encode(std::string_view in) {
  std::string out((in.size() + 2) / 3 * 4, '\0');
  base64_encode_to(out.data(), in);
  return out;
}

Result<std::string> base64_decode(std::string_view in) {
  // Each character's 6-bit value; -1 for a character outside the alphabet.
  static constexpr auto kValue = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
    return t;
  }();
  auto val = [](char c) -> int { return kValue[static_cast<unsigned char>(c)]; };
  if (in.size() % 4 != 0) return fail(Failure::bad_data, "invalid base64 (length)");
  std::string out(in.size() / 4 * 3, '\0');
  char* p = out.data();
  for (size_t i = 0; i < in.size(); i += 4) {
    int a = val(in[i]), b = val(in[i + 1]);
    bool last = i + 4 == in.size();
    int c = (last && in[i + 2] == '=') ? -2 : val(in[i + 2]);
    int d = (last && in[i + 3] == '=') ? -2 : val(in[i + 3]);
    if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2))
      return fail(Failure::bad_data, "invalid base64");
    uint32_t v = (uint32_t(a) << 18) | (uint32_t(b) << 12) | (uint32_t(c < 0 ? 0 : c) << 6) |
                 uint32_t(d < 0 ? 0 : d);
    *p++ = char(v >> 16);
    if (c >= 0) *p++ = char((v >> 8) & 255);
    if (d >= 0) *p++ = char(v & 255);
  }
  out.resize(static_cast<size_t>(p - out.data()));
  return out;
}

}  // namespace envkit
