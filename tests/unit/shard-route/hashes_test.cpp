// The hash functions against their published reference values.
#include "shard-route/hashes.hpp"

#include <gtest/gtest.h>

namespace shard_route {
namespace {

TEST(ShardRouteHashes, Crc16MatchesRedisCluster) {
  EXPECT_EQ(crc16_xmodem("123456789"), 0x31C3);
  EXPECT_EQ(redis_slot("somekey"), 11058);
  EXPECT_EQ(redis_slot("foo{hash_tag}"), 2515);
  EXPECT_EQ(redis_slot("{hash_tag}"), 2515);
  EXPECT_EQ(redis_slot("hash_tag"), 2515);
  // An empty tag hashes the whole key; only the first '{' and the first '}' after it count.
  EXPECT_EQ(redis_slot("foo{}bar"), crc16_xmodem("foo{}bar") & 16383);
  EXPECT_EQ(redis_slot("foo{{bar}}zap"), crc16_xmodem("{bar") & 16383);
  EXPECT_EQ(redis_slot("foo{bar}{zap}"), redis_slot("bar"));
  EXPECT_EQ(redis_slot("{user1000}.following"), redis_slot("{user1000}.followers"));
}

TEST(ShardRouteHashes, JumpHashReferenceValues) {
  // Lamping & Veach's algorithm as the reference implementations test it.
  EXPECT_EQ(jump_hash(1, 1), 0);
  EXPECT_EQ(jump_hash(42, 57), 43);
  EXPECT_EQ(jump_hash(0xDEAD10CC, 1), 0);
  EXPECT_EQ(jump_hash(0xDEAD10CC, 666), 361);
  EXPECT_EQ(jump_hash(256, 1024), 520);
  EXPECT_EQ(jump_hash(0, -10), 0);
  EXPECT_EQ(jump_hash(0xDEAD10CC, -666), 0);
}

TEST(ShardRouteHashes, NamedFunctionsReferenceValues) {
  EXPECT_EQ(fnv1a_64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a_64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a_32("a"), 0xe40c292cU);
  EXPECT_EQ(crc32_zlib("123456789"), 0xCBF43926U);
  EXPECT_EQ(murmur3_32(""), 0U);
  EXPECT_EQ(murmur3_32("hello"), 0x248bfa47U);
  for (auto name : {"fnv1a_64", "fnv1a_32", "crc32", "murmur3", "crc16"}) {
    auto f = hash_function_named(name);
    ASSERT_TRUE(f) << name;
    EXPECT_EQ(hash_function_name(*f), name);
  }
  EXPECT_FALSE(hash_function_named("md5"));
  EXPECT_EQ(hash_with(HashFunction::crc16, "123456789"), 0x31C3U);
}

}  // namespace
}  // namespace shard_route
