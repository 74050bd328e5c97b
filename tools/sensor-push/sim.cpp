// The simulator: a tropical lapse-rate climate with a daily cycle and seeded noise.
#include "sensor-push/sim.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <envkit/bytes.hpp>

namespace sensor_push {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Rounds to `decimals` places. Dividing by a power of ten yields the double nearest the
// decimal (16.4), where multiplying by 0.1 would print as 16.400000000000003.
double round_to(double v, int decimals) {
  double scale = std::pow(10.0, decimals);
  return std::round(v * scale) / scale;
}

}  // namespace

Reading simulate(const City& city, envkit::SysMillis t, uint64_t seed) {
  // Hashed by name, so the stream depends on the city's name, not its position in a list.
  uint64_t state = seed ^ envkit::fnv1a64(city.name) ^
                   static_cast<uint64_t>(t.time_since_epoch().count()) * 0x2545F4914F6CDD1Dull;
  auto uniform = [&state] { return static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53; };

  // Local solar hour from longitude; the warmest hour is about 15:00.
  double utc_hours = std::fmod(static_cast<double>(t.time_since_epoch().count()) / 3.6e6, 24.0);
  double solar_hour = std::fmod(utc_hours + city.longitude / 15.0 + 48.0, 24.0);
  double daily = std::sin((solar_hour - 9.0) / 24.0 * 2 * std::numbers::pi);

  // 6.5 °C per km of altitude from a 28 °C tropical sea level; cooler away from the equator.
  double base = 28.0 - 6.5 * city.elevation / 1000.0 - 0.35 * std::max(0.0, std::fabs(city.latitude) - 12.0);
  double temperature = base + 4.5 * daily + (uniform() - 0.5) * 1.5;
  double humidity = std::clamp(72.0 - 18.0 * daily + (uniform() - 0.5) * 16.0, 15.0, 100.0);
  double cloud = std::clamp(45.0 + (humidity - 70.0) * 1.8 + (uniform() - 0.5) * 40.0, 0.0, 100.0);
  bool rain = humidity > 80.0 && uniform() < (humidity - 78.0) / 30.0;
  double precipitation = rain ? round_to(0.1 + -std::log(1.0 - uniform() * 0.999) * 1.2, 1) : 0.0;
  int code = rain ? (precipitation > 4.0 ? 65 : precipitation > 1.5 ? 63 : 61)
                  : cloud > 85 ? 3 : cloud > 50 ? 2 : cloud > 20 ? 1 : 0;
  double wind = std::clamp(6.0 + 8.0 * uniform() + 4.0 * daily, 0.0, 60.0);
  double gusts = wind * (1.4 + 0.4 * uniform());
  double apparent = temperature + (temperature > 24 ? (humidity - 40.0) * 0.08 : 0.0) - wind * 0.05;

  Reading r;
  r.city = city.name;
  r.latitude = city.latitude;
  r.longitude = city.longitude;
  r.elevation = city.elevation;
  r.observed_at = t;
  r.source = "sim";
  r.values = {round_to(temperature, 1),
              std::round(humidity),
              round_to(apparent, 1),
              precipitation,
              static_cast<double>(code),
              std::round(cloud),
              round_to(1012.0 + (uniform() - 0.5) * 8.0, 1),
              round_to(wind, 1),
              std::floor(uniform() * 360.0),
              round_to(gusts, 1),
              solar_hour >= 6.0 && solar_hour < 18.0 ? 1.0 : 0.0};
  return r;
}

}  // namespace sensor_push
