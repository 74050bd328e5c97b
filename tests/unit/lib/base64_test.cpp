// envkit/base64.hpp: RFC 4648's test vectors, binary round trips, malformed input.
#include <envkit/base64.hpp>

#include <gtest/gtest.h>

namespace envkit {
namespace {

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    auto back = base64_decode(encoded);
    ASSERT_TRUE(back.ok()) << encoded;
    EXPECT_EQ(*back, plain);
  }
  EXPECT_EQ(base64_encode("alice:s3cr@t"), "YWxpY2U6czNjckB0");  // HTTP Basic
}

TEST(Base64, EveryByteRoundTrips) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n <= all.size(); n += 37) {
    auto back = base64_decode(base64_encode(all.substr(0, n)));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, all.substr(0, n));
  }
}

TEST(Base64, MalformedInputIsBadData) {
  for (const char* bad : {"Zg=", "Zg=a", "Z===", "Zm9v!A==", "=Zm9"}) {
    auto r = base64_decode(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, Exit::data) << bad;
  }
}

}  // namespace
}  // namespace envkit
