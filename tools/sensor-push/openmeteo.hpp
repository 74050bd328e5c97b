// The Open-Meteo forecast API as a source of current readings, many cities per call.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sensor-push/cities.hpp"
#include <envkit/http.hpp>
#include "sensor-push/reading.hpp"

namespace sensor_push {

struct OpenMeteoOptions {
  std::string api_url = "https://api.open-meteo.com/v1/forecast";
  size_t batch_size = 50;   ///< cities per call (the API returns a list for many)
  size_t concurrency = 4;   ///< calls in flight at once
  int max_retries = 4;      ///< per call, on 429, 5xx and timeouts
  std::chrono::milliseconds backoff_base{500};
  std::chrono::milliseconds backoff_max{std::chrono::seconds(30)};
  double calls_per_minute = 500;  ///< stays below the free tier's 600
  std::chrono::milliseconds call_timeout{std::chrono::seconds(15)};
};

/// The forecast URL asking the current variables for `cities`, with times in UTC.
std::string forecast_url(std::string_view api_url, std::span<const City> cities);

/// Parses a forecast response for `cities` (an object for one, a list for several), one
/// reading per city in order. Errors (Exit::data) say what is wrong with the body.
envkit::Result<std::vector<Reading>> parse_forecast(std::string_view body,
                                                    std::span<const City> cities);

/// What one fetch of all cities gave: readings, and one message per city that failed.
struct FetchResult {
  std::vector<Reading> readings;
  std::vector<std::string> errors;  ///< "Bogotá: HTTP 500 after 5 attempts"
  uint64_t calls = 0;               ///< HTTP requests made, retries included
  uint64_t retries = 0;
  /// For failed cities: Exit::unavailable when the API could not be reached or kept failing,
  /// Exit::data when it answered with something unusable (if both, unavailable).
  envkit::Exit failure = envkit::Exit::ok;
};

/// Paces calls to a rate: a token bucket of one minute's allowance.
class CallLimiter {
 public:
  explicit CallLimiter(double calls_per_minute);
  /// Waits (interruptibly) until `n` calls may start; false if a stop was requested.
  bool acquire(size_t n);

 private:
  double per_second_;
  double tokens_;
  std::chrono::steady_clock::time_point last_;
};

class OpenMeteoSource {
 public:
  OpenMeteoSource(envkit::HttpClient client, OpenMeteoOptions options, uint64_t jitter_seed);

  /// Fetches the current weather of every city. Calls that get 429, 5xx or time out are
  /// retried with exponential backoff and jitter (Retry-After honoured); a call the API
  /// rejects (400, an error body, bad JSON) is split into single cities so one bad city
  /// does not sink the others.
  FetchResult fetch(const std::vector<City>& cities);

 private:
  struct Call {
    std::vector<City> cities;
    int attempts = 0;
    std::chrono::steady_clock::time_point not_before{};
  };
  std::chrono::milliseconds backoff(int attempt, std::optional<std::string_view> retry_after);

  envkit::HttpClient client_;
  OpenMeteoOptions options_;
  CallLimiter limiter_;
  uint64_t jitter_state_;
};

}  // namespace sensor_push
