// The hash functions shard-route routes with (see hashes.hpp for whose definition each follows).
#include "shard-route/hashes.hpp"

#include <openssl/evp.h>
#include <zlib.h>

#include <array>
#include <cstring>

namespace shard_route {

namespace {

constexpr std::array<uint16_t, 256> make_crc16_table() {
  std::array<uint16_t, 256> table{};
  for (int i = 0; i < 256; ++i) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[i] = crc;
  }
  return table;
}

constexpr auto kCrc16Table = make_crc16_table();

}  // namespace

uint16_t crc16_xmodem(std::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc = static_cast<uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ c) & 0xff]);
  }
  return crc;
}

uint16_t redis_slot(std::string_view key) {
  // As Redis Cluster's keyHashSlot(): an empty tag ("{}") hashes the whole key.
  if (auto open = key.find('{'); open != std::string_view::npos) {
    if (auto close = key.find('}', open + 1); close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return crc16_xmodem(key) & 16383;
}

uint64_t fnv1a_64(std::string_view data) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint32_t fnv1a_32(std::string_view data) {
  uint32_t h = 0x811c9dc5U;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x01000193U;
  }
  return h;
}

uint32_t crc32_zlib(std::string_view data) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

uint32_t murmur3_32(std::string_view data, uint32_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  uint32_t h = seed;
  const uint32_t c1 = 0xcc9e2d51, c2 = 0x1b873593;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    uint32_t k;
    std::memcpy(&k, p + i, 4);  // little-endian hosts only, as every target here is
    k *= c1;
    k = (k << 15) | (k >> 17);
    k *= c2;
    h ^= k;
    h = (h << 13) | (h >> 19);
    h = h * 5 + 0xe6546b64;
  }
  uint32_t k = 0;
  switch (n & 3) {
    case 3: k ^= static_cast<uint32_t>(p[i + 2]) << 16; [[fallthrough]];
    case 2: k ^= static_cast<uint32_t>(p[i + 1]) << 8; [[fallthrough]];
    case 1:
      k ^= p[i];
      k *= c1;
      k = (k << 15) | (k >> 17);
      k *= c2;
      h ^= k;
  }
  h ^= static_cast<uint32_t>(n);
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return h;
}

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

int32_t jump_hash(uint64_t key, int32_t buckets) {
  if (buckets < 1) return 0;
  int64_t b = -1, j = 0;
  while (j < buckets) {
    b = j;
    key = key * 2862933555777941757ULL + 1;
    j = static_cast<int64_t>((b + 1) * (static_cast<double>(1LL << 31) /
                                        static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<int32_t>(b);
}

std::optional<HashFunction> hash_function_named(std::string_view name) {
  if (name == "fnv1a_64") return HashFunction::fnv1a_64;
  if (name == "fnv1a_32") return HashFunction::fnv1a_32;
  if (name == "crc32") return HashFunction::crc32;
  if (name == "murmur3") return HashFunction::murmur3;
  if (name == "crc16") return HashFunction::crc16;
  return std::nullopt;
}

std::string_view hash_function_name(HashFunction f) {
  switch (f) {
    case HashFunction::fnv1a_64: return "fnv1a_64";
    case HashFunction::fnv1a_32: return "fnv1a_32";
    case HashFunction::crc32: return "crc32";
    case HashFunction::murmur3: return "murmur3";
    case HashFunction::crc16: return "crc16";
  }
  return "?";
}

uint64_t hash_with(HashFunction f, std::string_view data) {
  switch (f) {
    case HashFunction::fnv1a_64: return fnv1a_64(data);
    case HashFunction::fnv1a_32: return fnv1a_32(data);
    case HashFunction::crc32: return crc32_zlib(data);
    case HashFunction::murmur3: return murmur3_32(data);
    case HashFunction::crc16: return crc16_xmodem(data);
  }
  return 0;
}

void md5_digest(std::string_view data, unsigned char out[16]) {
  unsigned int size = 16;
  EVP_Digest(data.data(), data.size(), out, &size, EVP_md5(), nullptr);
}

}  // namespace shard_route
