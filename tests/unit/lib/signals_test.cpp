// Unit tests for envkit/signals.hpp: a real SIGTERM sets the stop flag and wakes sleepers.
#include <envkit/signals.hpp>

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>

namespace envkit {
namespace {

using namespace std::chrono;

// Runs `body` in a forked child so the process-wide flag does not leak into other tests;
// the child's exit status is the verdict.
int in_child(int (*body)()) {
  pid_t pid = ::fork();
  if (pid == 0) _exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

TEST(Signals, SleepRunsItsCourseWithoutASignal) {
  EXPECT_EQ(in_child([] {
              install_stop_handlers();
              auto t0 = steady_clock::now();
              bool completed = sleep_unless_stopped(milliseconds(120));
              auto took = steady_clock::now() - t0;
              return completed && !stop_requested() && took >= milliseconds(120) ? 0 : 1;
            }),
            0);
}

TEST(Signals, SigtermSetsTheFlagAndWakesASleeperAtOnce) {
  EXPECT_EQ(in_child([] {
              install_stop_handlers();
              std::thread killer([] {
                std::this_thread::sleep_for(milliseconds(50));
                ::kill(::getpid(), SIGTERM);
              });
              auto t0 = steady_clock::now();
              bool completed = sleep_unless_stopped(seconds(10));
              auto took = steady_clock::now() - t0;
              killer.join();
              if (completed) return 1;
              if (!stop_requested() || stop_signal() != SIGTERM) return 2;
              return took < seconds(2) ? 0 : 3;
            }),
            0);
}

TEST(Signals, EverySleeperWakesNotJustOne) {
  EXPECT_EQ(in_child([] {
              install_stop_handlers();
              std::atomic<int> woke{0};
              std::vector<std::thread> sleepers;
              for (int i = 0; i < 4; ++i) {
                sleepers.emplace_back([&] {
                  if (!sleep_unless_stopped(seconds(10))) ++woke;
                });
              }
              std::this_thread::sleep_for(milliseconds(50));
              ::kill(::getpid(), SIGINT);
              for (auto& t : sleepers) t.join();
              return woke == 4 && stop_signal() == SIGINT ? 0 : 1;
            }),
            0);
}

TEST(Signals, RequestStopActsLikeASignal) {
  EXPECT_EQ(in_child([] {
              request_stop();
              return stop_requested() && !sleep_unless_stopped(seconds(5)) && stop_signal() == 0
                         ? 0
                         : 1;
            }),
            0);
}

TEST(Signals, SigpipeIsIgnoredSoWritesFailInstead) {
  EXPECT_EQ(in_child([] {
              install_stop_handlers();
              int fds[2];
              if (::pipe(fds) != 0) return 2;
              ::close(fds[0]);
              ssize_t n = ::write(fds[1], "x", 1);
              return n < 0 && errno == EPIPE ? 0 : 1;
            }),
            0);
}

}  // namespace
}  // namespace envkit
