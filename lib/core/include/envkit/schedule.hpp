// Schedules for daemons: ticks on the wall clock's grid, so a command run with --every
// never drifts, skips what a long round overran (and says so), and stops on SIGTERM.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include <envkit/timefmt.hpp>

namespace envkit {

/// Where a schedule reads the time and how it sleeps: the real clock by default; tests
/// give a fake one so that a "round that took 1.3 periods" takes no time at all.
struct ScheduleClock {
  std::function<SysMillis()> now;
  /// Sleeps until `t` (wall clock); false if a stop was requested first.
  std::function<bool(SysMillis t)> sleep_until;
};

/// The system clock, sleeping with sleep_unless_stopped() (envkit/signals.hpp).
ScheduleClock system_schedule_clock();

/// Ticks every `period` on the clock's grid (multiples of the period since the Unix epoch),
/// so rounds never drift however long each takes, and hosts with the same period tick together.
class GridSchedule {
 public:
  explicit GridSchedule(std::chrono::milliseconds period);
  GridSchedule(std::chrono::milliseconds period, ScheduleClock clock);

  /// The next tick (wall clock, ms).
  SysMillis next() const { return next_; }
  /// Sleeps until the next tick; false if a stop was requested first (envkit/signals.hpp).
  /// Then advances past it; ticks a long round overran are skipped, with a warning saying how many.
  bool wait();
  /// The tick wait() (or advance()) last reached: the time a round stands for.
  SysMillis last_tick() const { return last_; }
  /// True when the next tick is due (not in the future).
  bool due() const;
  /// Takes the due tick without sleeping and moves to the first tick after both it and now,
  /// skipping those a round overran; returns how many were skipped. For callers that wait
  /// on several schedules at once (proxy-check's groups): sleep until the earliest next().
  uint64_t advance();
  std::chrono::milliseconds period() const { return period_; }
  /// Ticks skipped so far because rounds overran them.
  uint64_t skipped() const { return skipped_; }

 private:
  std::chrono::milliseconds period_;
  ScheduleClock clock_;
  SysMillis next_;
  SysMillis last_{};
  uint64_t skipped_ = 0;
};

/// The daemon loop of every command with --every: runs `round` once at start when
/// `at_once`, then at each tick of `schedule`, until a stop is requested (SIGTERM) or
/// `round` returns false. `round` gets the time it stands for (its tick, or now at start).
void run_on_schedule(GridSchedule& schedule, bool at_once,
                     const std::function<bool(SysMillis tick)>& round);

/// The first tick of `period`'s grid at or after `t`.
SysMillis grid_tick_at_or_after(SysMillis t, std::chrono::milliseconds period);

}  // namespace envkit
