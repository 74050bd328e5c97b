// Cities to read the weather for: built-in lists, a YAML or CSV file, or --city NAME:LAT:LON.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <envkit/result.hpp>

namespace sensor_push {

struct City {
  std::string name;       ///< as written, accents kept ("Bogotá")
  double latitude = 0;    ///< degrees, -90..90
  double longitude = 0;   ///< degrees, -180..180
  double elevation = 0;   ///< metres; the simulator uses it for temperature and pressure
};

/// A built-in list by name: "colombia" (the iot-weather default) or "guatemala"
/// (weather-tweets municipalities around Guatemala City, Chinautla among them).
envkit::Result<std::vector<City>> builtin_cities(std::string_view list);

/// Names of the built-in lists, for --help and errors.
std::string builtin_city_lists();

/// Parses "NAME:LAT:LON" or "NAME:LAT:LON:ELEVATION" (--city), or a bare NAME from the
/// built-in lists ("Chinautla"). Names may hold spaces and accents but no ':'.
envkit::Result<City> parse_city_spec(std::string_view spec);

/// Loads a cities file: YAML (a list of {name, latitude, longitude, elevation?}; lat/lon also
/// accepted) when it ends in .yaml/.yml, else CSV with a header line naming the columns
/// name,latitude,longitude[,elevation]. Errors name the file and line (Exit::data), or
/// Exit::no_input when the file cannot be read.
envkit::Result<std::vector<City>> load_cities_file(const std::string& path);

/// Checks ranges and duplicate names (names must be unique: a reading is keyed by city and
/// time). `where` prefixes errors.
envkit::Status validate_city(const City& city, const std::string& where);

}  // namespace sensor_push
