// A scripted HTTP/1.1 server on 127.0.0.1 for unit tests of HTTP clients: each path answers
// in one of the ways a client must cope with, and the server counts what it saw.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "loopback.hpp"

namespace envkit::test {

// A scripted HTTP/1.1 server, one thread per connection; it counts connections and requests.
//   /len       201 "[]" with Content-Length, kept alive
//   /chunked   a chunked body in three writes, with an extension and a trailer, kept alive
//   /close     Connection: close, then closes
//   /eof       HTTP/1.0 with no length: the body ends with the connection
//   /continue  100 Continue, then 200 "done"
//   /idle      200, then closes the idle connection 50 ms later
//   /echo      the request's head and body as the body
//   /big       a Content-Length of 10 MB (never sent)
//   /garbage   not HTTP     /drop  closes without answering     /silent  answers nothing for 3 s
//   /flaky     201 "[]", but every 3rd request of the server's with Connection: close, and
//              every 7th closed unanswered (counted in `dropped`)
class ScriptedHttpServer {
 public:
  ScriptedHttpServer() : socket_(true) {
    acceptor_ = std::thread([this] {
      for (int i = 0; i < 10000 && !stop_; ++i) {
        pollfd p{socket_.fd(), POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        int fd = ::accept4(socket_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        ++connections;
        std::lock_guard lock(mutex_);
        handlers_.emplace_back([this, fd] {
          serve(fd);
          ::close(fd);
          ++closed;
        });
      }
    });
  }
  ~ScriptedHttpServer() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : handlers_) t.join();
  }
  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(socket_.port()) + std::string(path);
  }

  std::atomic<int> connections{0}, requests{0}, closed{0}, dropped{0};

 private:
  // Reads until `pred(in)` or the client closes; false on close, stop or 3 s of silence.
  template <class Pred>
  bool read_until(int fd, std::string& in, Pred pred) {
    char buf[4096];
    for (int i = 0; i < 10000 && !pred(in); ++i) {
      if (stop_) return false;
      pollfd p{fd, POLLIN, 0};
      int ready = ::poll(&p, 1, 20);
      if (ready == 0) {
        if (i > 150) return false;
        continue;
      }
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
      i = 0;
    }
    return pred(in);
  }

  static void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  void serve(int fd) {
    std::string in;
    for (int served = 0; served < 1000; ++served) {
      if (!read_until(fd, in, [](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; })) return;
      size_t end = in.find("\r\n\r\n");
      std::string head = in.substr(0, end);
      size_t length = 0;
      if (auto at = head.find("Content-Length: "); at != std::string::npos) length = std::stoul(head.substr(at + 16));
      if (!read_until(fd, in, [&](const std::string& s) { return s.size() >= end + 4 + length; })) return;
      std::string body = in.substr(end + 4, length);
      in.erase(0, end + 4 + length);
      int nth = ++requests;
      std::string path = head.substr(head.find(' ') + 1);
      path = path.substr(0, path.find_first_of(" ?"));
      if (path == "/len") {
        send_all(fd, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]");
      } else if (path == "/flaky") {
        if (nth % 7 == 0) {
          ++dropped;
          return;
        }
        if (nth % 3 == 0) {
          send_all(fd, "HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 2\r\n\r\n[]");
          return;
        }
        send_all(fd, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n[]");
      } else if (path == "/chunked") {
        send_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=x\r\nhel");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        send_all(fd, "lo\r\n6\r\n world\r\n");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        send_all(fd, "0\r\nX-Trailer: 1\r\n\r\n");
      } else if (path == "/close") {
        send_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        return;
      } else if (path == "/eof") {
        send_all(fd, "HTTP/1.0 200 OK\r\n\r\nuntil the end");
        return;
      } else if (path == "/continue") {
        send_all(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone");
      } else if (path == "/idle") {
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nidle");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return;
      } else if (path == "/echo") {
        std::string text = head + "\r\n\r\n" + body;
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(text.size()) + "\r\n\r\n" + text);
      } else if (path == "/big") {
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\nxx");
      } else if (path == "/garbage") {
        send_all(fd, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
        return;
      } else if (path == "/drop") {
        return;
      } else if (path == "/silent") {
        for (int i = 0; i < 150 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return;
      } else {
        send_all(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
      }
    }
  }

  LoopbackSocket socket_;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<std::thread> handlers_;
};

}  // namespace envkit::test
