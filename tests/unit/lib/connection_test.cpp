// Unit tests for tls_options_from_url (envkit/connection.hpp): the one parser of ?tls=... .
#include <envkit/connection.hpp>

#include <gtest/gtest.h>

#include "loopback.hpp"

namespace envkit {
namespace {

using test::url_of;

TEST(TlsOptionsFromUrl, ParametersOverrideTheBase) {
  TlsOptions base;
  base.ca_file = "/base/ca.pem";
  auto t = tls_options_from_url(url_of("redis://h/0?tls=true&tls-insecure=yes&tls-server-name=db.example"), base);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_TRUE(t->enabled);
  EXPECT_FALSE(t->verify);
  EXPECT_EQ(t->ca_file, "/base/ca.pem");
  EXPECT_EQ(t->server_name, "db.example");
  t = tls_options_from_url(url_of("mysql://h/?tls-ca=/x.pem"), TlsOptions{});
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->enabled);  // a CA asks for TLS
  EXPECT_EQ(t->ca_file, "/x.pem");
  base.enabled = true;
  t = tls_options_from_url(url_of("amqp://h/?tls=false"), base);
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->enabled);
}

TEST(TlsOptionsFromUrl, SchemesImplyTls) {
  for (const char* u : {"https://h/", "tls://h:443", "rediss://h:6380", "amqps://h/"}) {
    auto t = tls_options_from_url(url_of(u), TlsOptions{});
    ASSERT_TRUE(t.ok()) << u;
    EXPECT_TRUE(t->enabled) << u;
  }
  auto t = tls_options_from_url(url_of("http://h/"), TlsOptions{});
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->enabled);
}

TEST(TlsOptionsFromUrl, BadValuesAreUsageErrorsWithoutThePassword) {
  auto t = tls_options_from_url(url_of("redis://u:hunter2@h/0?tls=maybe"), TlsOptions{});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Exit::usage);
  EXPECT_NE(t.error().message.find("tls=maybe"), std::string::npos);
  EXPECT_EQ(t.error().message.find("hunter2"), std::string::npos);
  t = tls_options_from_url(url_of("amqp://h/?tls-cert=/c.pem"), TlsOptions{});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Exit::usage);
}

}  // namespace
}  // namespace envkit
