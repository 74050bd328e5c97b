// Stop flag for SIGINT/SIGTERM. The handler stores the signal and writes one byte to a
// self-pipe that is never drained, so every sleeper polling it wakes at once.
#include <envkit/signals.hpp>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <mutex>

namespace envkit {
namespace {

std::atomic<int> g_signal{0};
int g_pipe[2] = {-1, -1};
std::once_flag g_once;

void make_pipe() {
  if (::pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) g_pipe[0] = g_pipe[1] = -1;
}

extern "C" void on_stop_signal(int sig) {
  int expected = 0;
  g_signal.compare_exchange_strong(expected, sig);
  if (g_pipe[1] >= 0) {
    char b = 1;
    [[maybe_unused]] ssize_t n = ::write(g_pipe[1], &b, 1);
  }
}

}  // namespace

void install_stop_handlers() {
  std::call_once(g_once, make_pipe);
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

bool stop_requested() { return g_signal.load(std::memory_order_relaxed) != 0; }

int stop_signal() {
  int s = g_signal.load();
  return s > 0 ? s : 0;
}

void request_stop() {
  std::call_once(g_once, make_pipe);
  on_stop_signal(-1);
}

bool sleep_unless_stopped(std::chrono::nanoseconds d) {
  using namespace std::chrono;
  std::call_once(g_once, make_pipe);
  auto deadline = steady_clock::now() + d;
  while (!stop_requested()) {
    // Rounded up, so the sleep never ends early and the loop never spins on a 0 ms poll.
    auto left = ceil<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0) return true;
    if (g_pipe[0] < 0) {  // no pipe: fall back to short naps
      ::usleep(static_cast<useconds_t>(std::min<long>(left.count(), 50) * 1000));
      continue;
    }
    pollfd p{g_pipe[0], POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 1000 * 1000)));
  }
  return false;
}

}  // namespace envkit
