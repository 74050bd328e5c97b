// Unit tests for envkit/socket.hpp against in-process loopback listeners, plain and TLS
// (certificates made in memory: valid, expired, for another name).
#include <envkit/socket.hpp>
#include "loopback.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <csignal>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace envkit {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using test::closed_port;
using test::LoopbackSocket;

/// A self-signed certificate and its key, written as PEM files in the test's temp dir.
struct TestCert {
  std::string cert_file;
  std::string key_file;
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  ~TestCert() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

std::unique_ptr<TestCert> make_cert(const std::string& tag, const std::string& dns_name,
                                    long not_before_days, long not_after_days) {
  auto out = std::make_unique<TestCert>();
  out->key = EVP_EC_gen("prime256v1");
  out->cert = X509_new();
  X509* x = out->cert;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), not_before_days * 86400);
  X509_gmtime_adj(X509_getm_notAfter(x), not_after_days * 86400);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(dns_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, out->key);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  std::string san = "DNS:" + dns_name;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, "critical,CA:TRUE");
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(x, out->key, EVP_sha256());
  std::string dir = testing::TempDir();
  out->cert_file = dir + "/socket_test_" + tag + ".crt";
  out->key_file = dir + "/socket_test_" + tag + ".key";
  FILE* f = std::fopen(out->cert_file.c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(out->key_file.c_str(), "w");
  PEM_write_PrivateKey(f, out->key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  return out;
}

/// Accepts one connection on `listener` and runs `serve` on it in a thread.
class OneShotServer {
 public:
  template <class F>
  OneShotServer(const LoopbackSocket& listener, F serve)
      : thread_([fd = listener.fd(), serve]() {
          int c = ::accept(fd, nullptr, nullptr);
          if (c < 0) return;
          serve(c);
          ::close(c);
        }) {}
  ~OneShotServer() { thread_.join(); }

 private:
  std::thread thread_;
};

/// A TLS server that handshakes with `cert` and echoes one read back.
void tls_echo(int fd, const TestCert& cert) {
  // The test's server side writes through OpenSSL's plain socket BIO: a client already gone
  // must not kill the test binary (the client side, Stream, guards itself).
  ::signal(SIGPIPE, SIG_IGN);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_use_certificate(ctx, cert.cert);
  SSL_CTX_use_PrivateKey(ctx, cert.key);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) == 1) {
    char buf[256];
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n > 0) SSL_write(ssl, buf, n);
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
}

TEST(Socket, ConnectRefusedIsUnavailable) {
  auto s = Stream::connect("127.0.0.1", closed_port(), deadline_in(milliseconds(1000)));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Exit::unavailable);
  EXPECT_EQ(s.error().message, "connection refused");
}

TEST(Socket, UnresolvableHostIsConfig) {
  auto s = Stream::connect("no-such-host.invalid", 80, deadline_in(milliseconds(2000)));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Exit::config);
}

TEST(Socket, SilentServerTimesOutAtTheDeadline) {
  LoopbackSocket listener(true);
  auto s = Stream::connect("127.0.0.1", listener.port(), deadline_in(milliseconds(1000)));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->peer(), "127.0.0.1:" + std::to_string(listener.port()));
  char buf[16];
  auto start = Clock::now();
  auto n = s->read_some(buf, sizeof buf, deadline_in(milliseconds(200)));
  auto took = Clock::now() - start;
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code, Exit::temp_fail);
  EXPECT_GE(took, milliseconds(190));
  EXPECT_LT(took, milliseconds(1000));
}

TEST(Socket, EchoRoundTripAndPeerClose) {
  LoopbackSocket listener(true);
  OneShotServer server(listener, [](int fd) {
    char buf[64];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) (void)::send(fd, buf, static_cast<size_t>(n), 0);
  });
  auto s = Stream::connect("localhost", listener.port(), deadline_in(milliseconds(1000)));
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_TRUE(s->write_all("hello", deadline_in(milliseconds(500))).ok());
  char buf[5];
  ASSERT_TRUE(s->read_exact(buf, 5, deadline_in(milliseconds(500))).ok());
  EXPECT_EQ(std::string(buf, 5), "hello");
  // The server closes after the echo: a further exact read fails and says how far it got.
  char more[4];
  auto r = s->read_exact(more, 4, deadline_in(milliseconds(500)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::unavailable);
  EXPECT_EQ(r.error().message, "connection closed after 0 of 4 bytes");
}

TEST(Socket, WriteToAClosedPeerIsAnErrorNotASignal) {
  LoopbackSocket listener(true);
  OneShotServer server(listener, [](int) {});
  auto s = Stream::connect("127.0.0.1", listener.port(), deadline_in(milliseconds(1000)));
  ASSERT_TRUE(s.ok());
  std::this_thread::sleep_for(milliseconds(100));
  std::string big(1 << 20, 'x');
  Status last;
  for (int i = 0; i < 20 && last.ok(); ++i) last = s->write_all(big, deadline_in(milliseconds(500)));
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.error().code, Exit::unavailable);
}

TEST(Socket, TlsVerifiedWithTheRightCaAndName) {
  auto cert = make_cert("valid", "localhost", -1, 30);
  LoopbackSocket listener(true);
  OneShotServer server(listener, [&](int fd) { tls_echo(fd, *cert); });
  auto s = Stream::connect("127.0.0.1", listener.port(), deadline_in(milliseconds(2000)));
  ASSERT_TRUE(s.ok());
  TlsOptions tls;
  tls.ca_file = cert->cert_file;
  tls.server_name = "localhost";
  auto info = s->start_tls(tls, "127.0.0.1", deadline_in(milliseconds(2000)));
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_TRUE(info->verified) << info->verify_error;
  EXPECT_EQ(info->verify_error, "");
  EXPECT_TRUE(s->is_tls());
  EXPECT_EQ(info->version.rfind("TLSv1.", 0), 0u) << info->version;
  EXPECT_FALSE(info->cipher.empty());
  EXPECT_EQ(info->chain_length, 1);
  ASSERT_TRUE(info->certificate.has_value());
  EXPECT_EQ(info->certificate->subject, "CN=localhost");
  EXPECT_EQ(info->certificate->issuer, "CN=localhost");
  ASSERT_EQ(info->certificate->dns_names.size(), 1u);
  EXPECT_EQ(info->certificate->dns_names[0], "localhost");
  auto days = std::chrono::duration_cast<std::chrono::hours>(info->certificate->not_after -
                                                             std::chrono::system_clock::now()).count() / 24.0;
  EXPECT_NEAR(days, 30, 1);
  ASSERT_TRUE(s->write_all("ping", deadline_in(milliseconds(1000))).ok());
  char buf[4];
  ASSERT_TRUE(s->read_exact(buf, 4, deadline_in(milliseconds(1000))).ok());
  EXPECT_EQ(std::string(buf, 4), "ping");
  char more[1];
  auto end = s->read_some(more, 1, deadline_in(milliseconds(1000)));
  ASSERT_TRUE(end.ok()) << end.error().message;
  EXPECT_EQ(*end, 0u);
}

TEST(Socket, TlsWrongNameCompletesUnverified) {
  auto cert = make_cert("othername", "other.example", -1, 30);
  LoopbackSocket listener(true);
  OneShotServer server(listener, [&](int fd) { tls_echo(fd, *cert); });
  auto s = Stream::connect("127.0.0.1", listener.port(), deadline_in(milliseconds(2000)));
  ASSERT_TRUE(s.ok());
  TlsOptions tls;
  tls.ca_file = cert->cert_file;
  auto info = s->start_tls(tls, "localhost", deadline_in(milliseconds(2000)));
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_FALSE(info->verified);
  EXPECT_EQ(info->verify_error, "hostname mismatch");
  s->shutdown_write();
}

TEST(Socket, TlsExpiredCompletesUnverifiedWithDates) {
  auto cert = make_cert("expired", "localhost", -30, -2);
  LoopbackSocket listener(true);
  OneShotServer server(listener, [&](int fd) { tls_echo(fd, *cert); });
  auto s = Stream::connect("127.0.0.1", listener.port(), deadline_in(milliseconds(2000)));
  ASSERT_TRUE(s.ok());
  TlsOptions tls;
  tls.ca_file = cert->cert_file;
  auto info = s->start_tls(tls, "localhost", deadline_in(milliseconds(2000)));
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_FALSE(info->verified);
  EXPECT_EQ(info->verify_error, "certificate has expired");
  ASSERT_TRUE(info->certificate.has_value());
  EXPECT_LT(info->certificate->not_after, std::chrono::system_clock::now());
  s->shutdown_write();
}

TEST(Socket, TlsUntrustedWithoutTheCa) {
  auto cert = make_cert("untrusted", "localhost", -1, 30);
  LoopbackSocket listener(true);
  OneShotServer server(listener, [&](int fd) { tls_echo(fd, *cert); });
  auto s = Stream::connect("127.0.0.1", listener.port(), deadline_in(milliseconds(2000)));
  ASSERT_TRUE(s.ok());
  auto info = s->start_tls(TlsOptions{}, "localhost", deadline_in(milliseconds(2000)));
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_FALSE(info->verified);
  EXPECT_EQ(info->verify_error, "self-signed certificate");
  s->shutdown_write();
}

TEST(Socket, TlsHandshakeAgainstSilentServerTimesOut) {
  LoopbackSocket listener(true);
  auto s = Stream::connect("127.0.0.1", listener.port(), deadline_in(milliseconds(1000)));
  ASSERT_TRUE(s.ok());
  auto start = Clock::now();
  auto info = s->start_tls(TlsOptions{}, "localhost", deadline_in(milliseconds(200)));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, Exit::temp_fail);
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
}

TEST(Socket, TlsHandshakeAgainstGarbageFails) {
  LoopbackSocket listener(true);
  OneShotServer server(listener, [](int fd) {
    char buf[512];
    (void)::recv(fd, buf, sizeof buf, 0);
    const char junk[] = "HTTP/1.0 400 Bad Request\r\n\r\nnot tls at all";
    (void)::send(fd, junk, sizeof junk - 1, MSG_NOSIGNAL);
  });
  auto s = Stream::connect("127.0.0.1", listener.port(), deadline_in(milliseconds(1000)));
  ASSERT_TRUE(s.ok());
  auto info = s->start_tls(TlsOptions{}, "localhost", deadline_in(milliseconds(1000)));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, Exit::config) << info.error().message;  // tls_failed: a plain-text port
  EXPECT_NE(info.error().message.find("TLS handshake"), std::string::npos);
}

TEST(Socket, TlsUnreadableCaFileIsConfig) {
  LoopbackSocket listener(true);
  auto s = Stream::connect("127.0.0.1", listener.port(), deadline_in(milliseconds(1000)));
  ASSERT_TRUE(s.ok());
  TlsOptions tls;
  tls.ca_file = "/nonexistent/ca.pem";
  auto info = s->start_tls(tls, "localhost", deadline_in(milliseconds(500)));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, Exit::config);
}

TEST(Socket, MovedFromStreamIsInert) {
  LoopbackSocket listener(true);
  auto s = Stream::connect("127.0.0.1", listener.port(), deadline_in(milliseconds(1000)));
  ASSERT_TRUE(s.ok());
  Stream a = std::move(*s);
  char buf[1];
  auto r = s->read_some(buf, 1, deadline_in(milliseconds(10)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::software);
  EXPECT_EQ(a.peer(), "127.0.0.1:" + std::to_string(listener.port()));
}

}  // namespace
}  // namespace envkit
