// SIGINT/SIGTERM as a stop flag: the handler only sets it; loops poll stop_requested().
#pragma once

#include <chrono>

namespace envkit {

/// Installs handlers for SIGINT and SIGTERM (and ignores SIGPIPE, so a closed pipe is an
/// EPIPE error instead of a silent death). Safe to call more than once.
void install_stop_handlers();

/// True once SIGINT or SIGTERM arrived (or request_stop() was called).
bool stop_requested();

/// The signal that asked for the stop, or 0.
int stop_signal();

/// Asks every loop to stop, as a signal would; for tests and fatal errors in workers.
void request_stop();

/// Sleeps up to `d`, returning early (false) if a stop is requested meanwhile.
bool sleep_unless_stopped(std::chrono::nanoseconds d);

}  // namespace envkit
