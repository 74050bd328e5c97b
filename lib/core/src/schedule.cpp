// Grid schedules: the tick arithmetic, the real clock, and the warning for skipped ticks.
#include <envkit/schedule.hpp>

#include <algorithm>
#include <string>

#include <envkit/log.hpp>
#include <envkit/signals.hpp>

namespace envkit {

using std::chrono::milliseconds;

ScheduleClock system_schedule_clock() {
  ScheduleClock c;
  c.now = [] {
    return std::chrono::time_point_cast<milliseconds>(std::chrono::system_clock::now());
  };
  c.sleep_until = [](SysMillis t) {
    auto left = t - std::chrono::system_clock::now();
    return left <= decltype(left)::zero() ? !stop_requested() : sleep_unless_stopped(left);
  };
  return c;
}

SysMillis grid_tick_at_or_after(SysMillis t, milliseconds period) {
  auto p = std::max<int64_t>(period.count(), 1);
  int64_t ms = t.time_since_epoch().count();
  int64_t up = (ms + p - 1) / p * p;
  return SysMillis(milliseconds(up));
}

GridSchedule::GridSchedule(milliseconds period) : GridSchedule(period, system_schedule_clock()) {}

GridSchedule::GridSchedule(milliseconds period, ScheduleClock clock)
    : period_(std::max(period, milliseconds(1))), clock_(std::move(clock)) {
  next_ = grid_tick_at_or_after(clock_.now(), period_);
}

bool GridSchedule::due() const { return clock_.now() >= next_; }

uint64_t GridSchedule::advance() {
  SysMillis now = clock_.now();
  SysMillis from = std::max(now, next_);
  // The first tick strictly after both the tick taken and now: a round that overran has
  // made the ticks it covered pointless, and running them late would only bunch rounds up.
  SysMillis after = grid_tick_at_or_after(from + milliseconds(1), period_);
  uint64_t skipped = static_cast<uint64_t>((after - next_) / period_) - 1;
  last_ = next_;
  next_ = after;
  skipped_ += skipped;
  return skipped;
}

bool GridSchedule::wait() {
  SysMillis now = clock_.now();
  if (next_ < now) {
    // The previous round ran past this tick: wait for the next one on the grid instead of
    // starting at once, which is what makes a schedule drift.
    SysMillis after = grid_tick_at_or_after(now, period_);
    uint64_t skipped = static_cast<uint64_t>((after - next_) / period_);
    skipped_ += skipped;
    next_ = after;
    log_warning("a round took longer than the period of " + std::to_string(period_.count()) +
                " ms; skipping " + std::to_string(skipped) + " tick(s)");
  }
  if (!clock_.sleep_until(next_)) return false;
  last_ = next_;
  next_ += period_;
  return true;
}

void run_on_schedule(GridSchedule& schedule, bool at_once,
                     const std::function<bool(SysMillis tick)>& round) {
  if (at_once && !stop_requested()) {
    auto now = std::chrono::time_point_cast<milliseconds>(std::chrono::system_clock::now());
    if (!round(now)) return;
  }
  while (!stop_requested() && schedule.wait()) {
    if (!round(schedule.last_tick())) return;
  }
}

}  // namespace envkit
