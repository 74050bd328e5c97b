// Fixed-width integers in and out of byte buffers, for hand-written binary protocols (AMQP,
// Kafka, MySQL, MongoDB wire formats): a bounds-checked reader, so hostile input can never
// read past the end, and the matching appenders.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace envkit {

/// FNV-1a, 64 bits: a stable hash of bytes, the same on every host and build (std::hash is
/// not), for seeding simulations by name and checksumming payloads a peer must recompute.
/// Not cryptographic.
constexpr uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

/// Reads integers and byte runs from the front of a buffer it does not own. A read past the
/// end returns zero / an empty view, consumes nothing, and marks the reader bad; once bad,
/// every later read fails too, so a parser may read a whole structure and check bad() once.
class ByteReader {
 public:
  ByteReader() = default;
  explicit ByteReader(std::string_view in) : in_(in) {}

  /// The next `n` bytes, or an empty view (and bad) when fewer are left.
  std::string_view take(size_t n) {
    if (bad_ || in_.size() < n) {
      bad_ = true;
      return {};
    }
    auto out = in_.substr(0, n);
    in_.remove_prefix(n);
    return out;
  }

  uint8_t u8() {
    auto b = take(1);
    return b.empty() ? 0 : byte(b, 0);
  }
  uint16_t u16be() {
    auto b = take(2);
    return b.size() < 2 ? 0 : static_cast<uint16_t>((byte(b, 0) << 8) | byte(b, 1));
  }
  uint32_t u32be() {
    auto b = take(4);
    if (b.size() < 4) return 0;
    return (uint32_t{byte(b, 0)} << 24) | (uint32_t{byte(b, 1)} << 16) |
           (uint32_t{byte(b, 2)} << 8) | uint32_t{byte(b, 3)};
  }
  uint16_t u16le() {
    auto b = take(2);
    return b.size() < 2 ? 0 : static_cast<uint16_t>(byte(b, 0) | (byte(b, 1) << 8));
  }
  uint32_t u32le() {
    auto b = take(4);
    if (b.size() < 4) return 0;
    return uint32_t{byte(b, 0)} | (uint32_t{byte(b, 1)} << 8) | (uint32_t{byte(b, 2)} << 16) |
           (uint32_t{byte(b, 3)} << 24);
  }

  /// True once a read ran past the end (or fail() was called).
  bool bad() const { return bad_; }
  /// Marks the input malformed, for checks the reader cannot make itself.
  void fail() { bad_ = true; }
  /// The bytes not read yet.
  std::string_view rest() const { return in_; }
  size_t remaining() const { return in_.size(); }
  bool empty() const { return in_.empty(); }

 private:
  static uint8_t byte(std::string_view b, size_t i) { return static_cast<uint8_t>(b[i]); }

  std::string_view in_;
  bool bad_ = false;
};

/// Appends `v` in network (big-endian) or little-endian byte order.
inline void append_u16be(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}
inline void append_u32be(std::string& out, uint32_t v) {
  append_u16be(out, static_cast<uint16_t>(v >> 16));
  append_u16be(out, static_cast<uint16_t>(v & 0xffff));
}
inline void append_u16le(std::string& out, uint16_t v) {
  out += static_cast<char>(v & 0xff);
  out += static_cast<char>(v >> 8);
}
inline void append_u32le(std::string& out, uint32_t v) {
  append_u16le(out, static_cast<uint16_t>(v & 0xffff));
  append_u16le(out, static_cast<uint16_t>(v >> 16));
}

}  // namespace envkit
