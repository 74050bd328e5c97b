// GridSchedule and run_on_schedule (envkit/schedule.hpp) on a fake clock: rounds stay on
// the grid however long each takes, overrun ticks are skipped, a stop ends the loop.
#include <envkit/schedule.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace envkit {
namespace {

using std::chrono::milliseconds;

// A wall clock that moves only when told: sleeping jumps to the wake-up time, and a round
// "takes" time by advancing it. `sleeps_left` bounds the loop.
struct FakeClock {
  SysMillis now{milliseconds(1'000'000'123)};
  int sleeps_left = 1000;
  ScheduleClock clock() {
    return {[this] { return now; },
            [this](SysMillis t) {
              if (sleeps_left-- <= 0) return false;
              if (t > now) now = t;
              return true;
            }};
  }
};

TEST(GridSchedule, FirstTickIsOnTheGrid) {
  FakeClock fake;
  GridSchedule s(milliseconds(1000), fake.clock());
  EXPECT_EQ(s.next().time_since_epoch().count() % 1000, 0);
  EXPECT_GE(s.next(), fake.now);
  EXPECT_LT(s.next() - fake.now, milliseconds(1000));
}

// db-backup --every used to start the next round at now+period after an overrun, and from
// then on off the grid: rounds of 1.3 periods must be followed by the next grid tick.
TEST(GridSchedule, ARoundOfOnePointThreePeriodsIsFollowedByTheNextGridTick) {
  FakeClock fake;
  const milliseconds period(1000);
  GridSchedule s(period, fake.clock());
  std::vector<SysMillis> starts;
  fake.sleeps_left = 5;
  run_on_schedule(s, /*at_once=*/true, [&](SysMillis) {
    starts.push_back(fake.now);
    fake.now += milliseconds(1300);
    return true;
  });
  ASSERT_EQ(starts.size(), 6u);  // at once, then 5 ticks
  for (size_t i = 1; i < starts.size(); ++i) {
    EXPECT_EQ(starts[i].time_since_epoch().count() % period.count(), 0)
        << "round " << i << " off the grid at " << starts[i].time_since_epoch().count();
  }
  for (size_t i = 2; i < starts.size(); ++i) {
    EXPECT_EQ(starts[i] - starts[i - 1], 2 * period) << "round " << i;
  }
  EXPECT_EQ(s.skipped(), 6u);  // each of the 6 rounds overran exactly one tick
}

TEST(GridSchedule, ShortRoundsTickEveryPeriodAndTheRoundGetsItsTick) {
  FakeClock fake;
  const milliseconds period(250);
  GridSchedule s(period, fake.clock());
  std::vector<SysMillis> ticks;
  fake.sleeps_left = 8;
  run_on_schedule(s, /*at_once=*/false, [&](SysMillis tick) {
    EXPECT_EQ(tick, fake.now);
    ticks.push_back(tick);
    fake.now += milliseconds(10);
    return true;
  });
  ASSERT_EQ(ticks.size(), 8u);
  for (size_t i = 1; i < ticks.size(); ++i) EXPECT_EQ(ticks[i] - ticks[i - 1], period);
  EXPECT_EQ(s.skipped(), 0u);
}

TEST(GridSchedule, AdvanceSkipsWhatARoundOverranForSeveralSchedules) {
  FakeClock fake;
  GridSchedule s(milliseconds(100), fake.clock());
  fake.now = s.next();
  ASSERT_TRUE(s.due());
  fake.now += milliseconds(350);  // the round took 3.5 periods
  EXPECT_EQ(s.advance(), 3u);
  EXPECT_GT(s.next(), fake.now);
  EXPECT_EQ(s.next().time_since_epoch().count() % 100, 0);
  EXPECT_FALSE(s.due());
}

TEST(GridSchedule, AStopEndsTheLoop) {
  FakeClock fake;
  GridSchedule s(milliseconds(100), fake.clock());
  fake.sleeps_left = 0;  // the first sleep is interrupted
  int rounds = 0;
  run_on_schedule(s, true, [&](SysMillis) { return ++rounds < 100; });
  EXPECT_EQ(rounds, 1);
}

}  // namespace
}  // namespace envkit
