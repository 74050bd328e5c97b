// Loopback helpers for connector tests: a port that refuses, one that accepts and hangs, the
// URL of a test server and timeouts short enough for a down or hung server to fail fast.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>

#include <envkit/connection.hpp>
#include <envkit/url.hpp>

namespace envkit::test {

/// A loopback socket bound to a free port. listen() makes the kernel accept connections
/// that nobody ever answers: a server (or a proxy without a backend) that hangs.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listening) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        (listening && ::listen(fd_, 16) != 0)) {
      ADD_FAILURE() << "cannot set up a loopback socket";
    }
    port_ = ntohs(addr.sin_port);
  }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;
  ~LoopbackSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

/// A loopback port nothing listens on (bound, then released): connecting is refused.
inline uint16_t closed_port() {
  LoopbackSocket s(false);
  return s.port();
}

/// `text` parsed as a URL; a bad one fails the test (with the parser's reason).
inline Url url_of(const std::string& text) {
  auto url = parse_url(text);
  EXPECT_TRUE(url.ok()) << text << ": " << (url.ok() ? "" : url.error().message);
  return url.ok() ? *url : Url{};
}

/// Connection options with short timeouts (300 ms each unless told).
inline ConnectionOptions short_timeouts(std::chrono::milliseconds connect = std::chrono::milliseconds(300),
                                        std::chrono::milliseconds io = std::chrono::milliseconds(300)) {
  ConnectionOptions o;
  o.connect_timeout = connect;
  o.io_timeout = io;
  return o;
}

}  // namespace envkit::test
