// The hash functions shard-route routes with, each as the system it copies defines it, so a
// map can agree with Redis Cluster, twemproxy or a jump-hash client byte for byte.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace shard_route {

/// CRC16-CCITT (XMODEM: poly 0x1021, init 0), Redis Cluster's key hash. "123456789" -> 0x31C3.
uint16_t crc16_xmodem(std::string_view data);

/// Redis Cluster's slot of a key (0..16383): CRC16 of the hash tag when the key has a
/// non-empty {tag}, of the whole key otherwise (the first '{' and the first '}' after it).
uint16_t redis_slot(std::string_view key);

/// FNV-1a, 64 and 32 bits (twemproxy's fnv1a_64 / fnv1a_32).
uint64_t fnv1a_64(std::string_view data);
uint32_t fnv1a_32(std::string_view data);
/// CRC-32 as zlib computes it.
uint32_t crc32_zlib(std::string_view data);
/// MurmurHash3 x86_32 with the given seed.
uint32_t murmur3_32(std::string_view data, uint32_t seed = 0);

/// A 64-bit finaliser (splitmix64's): spreads every input bit over every output bit, so
/// rendezvous scores of related keys are independent.
uint64_t mix64(uint64_t x);

/// Lamping and Veach's jump consistent hash: the bucket (0..buckets-1) of a 64-bit key; 0
/// when buckets < 1.
int32_t jump_hash(uint64_t key, int32_t buckets);

/// The named hash functions a map may choose for `hash`, `jump`, `ketama` and `rendezvous`.
enum class HashFunction { fnv1a_64, fnv1a_32, crc32, murmur3, crc16 };

/// The function called `name` ("fnv1a_64", "fnv1a_32", "crc32", "murmur3", "crc16").
std::optional<HashFunction> hash_function_named(std::string_view name);
std::string_view hash_function_name(HashFunction f);
/// `data` hashed with `f`, widened to 64 bits.
uint64_t hash_with(HashFunction f, std::string_view data);

/// The first 16 bytes of MD5(data), for ketama's ring points (computed when a map loads,
/// never per key).
void md5_digest(std::string_view data, unsigned char out[16]);

}  // namespace shard_route
