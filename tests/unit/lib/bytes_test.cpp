// Unit tests for envkit/bytes.hpp: ByteReader's byte orders and its bounds checks, and the
// appenders as its inverse.
#include <envkit/bytes.hpp>

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace envkit {
namespace {

using namespace std::string_view_literals;

TEST(ByteReader, ReadsBothByteOrders) {
  ByteReader r("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\xff"sv);
  EXPECT_EQ(r.u16be(), 0x0102);
  EXPECT_EQ(r.u16le(), 0x0403);
  EXPECT_EQ(r.u32be(), 0x05060708u);
  EXPECT_EQ(r.u32le(), 0x0c0b0a09u);
  EXPECT_EQ(r.u8(), 0xff);
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(r.bad());
}

TEST(ByteReader, HighBitsAreNotSignExtended) {
  ByteReader r("\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"sv);
  EXPECT_EQ(r.u32be(), 0xfffefdfcu);
  EXPECT_EQ(r.u32le(), 0xf8f9fafbu);
}

TEST(ByteReader, ShortReadIsBadConsumesNothingAndStaysBad) {
  ByteReader r("\x01\x02\x03"sv);
  EXPECT_EQ(r.u32be(), 0u);
  EXPECT_TRUE(r.bad());
  EXPECT_EQ(r.remaining(), 3u);
  // Bytes are left, but a bad reader reads nothing more.
  EXPECT_EQ(r.u8(), 0);
  EXPECT_TRUE(r.take(1).empty());
  EXPECT_EQ(r.remaining(), 3u);
}

TEST(ByteReader, TakeAndRest) {
  ByteReader r("abc\0def"sv);
  EXPECT_EQ(r.take(3), "abc");
  EXPECT_EQ(r.take(0), "");
  EXPECT_EQ(r.rest(), "\0def"sv);
  EXPECT_TRUE(r.take(5).empty());
  EXPECT_TRUE(r.bad());
}

TEST(ByteReader, FailMarksBad) {
  ByteReader r("abc"sv);
  r.fail();
  EXPECT_TRUE(r.bad());
  EXPECT_TRUE(r.take(1).empty());
}

TEST(ByteReader, ReadsWhatTheAppendersWrite) {
  std::string out;
  append_u16be(out, 0xbeef);
  append_u32be(out, 0xdeadc0deu);
  append_u16le(out, 0x1234);
  append_u32le(out, 0x89abcdefu);
  EXPECT_EQ(out, "\xbe\xef\xde\xad\xc0\xde\x34\x12\xef\xcd\xab\x89"sv);
  ByteReader r(out);
  EXPECT_EQ(r.u16be(), 0xbeef);
  EXPECT_EQ(r.u32be(), 0xdeadc0deu);
  EXPECT_EQ(r.u16le(), 0x1234);
  EXPECT_EQ(r.u32le(), 0x89abcdefu);
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(r.bad());
}

}  // namespace
}  // namespace envkit
