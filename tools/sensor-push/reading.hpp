// A weather reading and the JSON record it becomes, in the default shape or a mapped one.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/result.hpp>
#include <envkit/sink.hpp>
#include <envkit/timefmt.hpp>

namespace sensor_push {

/// The Open-Meteo `current=` variables sensor-push reads, in record order.
struct VariableInfo {
  std::string_view name;
  std::string_view unit;     ///< as Open-Meteo's current_units gives it
  std::string_view sql_type; ///< column type when sensor-push creates the MySQL table
};
inline constexpr std::array<VariableInfo, 11> kVariables{{
    {"temperature_2m", "°C", "DECIMAL(5,2)"},
    {"relative_humidity_2m", "%", "DECIMAL(5,2)"},
    {"apparent_temperature", "°C", "DECIMAL(5,2)"},
    {"precipitation", "mm", "DECIMAL(6,2)"},
    {"weather_code", "wmo code", "SMALLINT"},
    {"cloud_cover", "%", "DECIMAL(5,2)"},
    {"pressure_msl", "hPa", "DECIMAL(6,1)"},
    {"wind_speed_10m", "km/h", "DECIMAL(5,1)"},
    {"wind_direction_10m", "°", "SMALLINT"},
    {"wind_gusts_10m", "km/h", "DECIMAL(5,1)"},
    {"is_day", "", "TINYINT"},
}};

/// One reading of one city at one time. A variable the source did not give is nullopt.
struct Reading {
  std::string city;
  double latitude = 0, longitude = 0, elevation = 0;
  envkit::SysMillis observed_at{};
  std::string source;  ///< "open-meteo" or "sim"
  std::array<std::optional<double>, kVariables.size()> values{};
  std::array<std::string, kVariables.size()> units{};  ///< from the source; defaults if empty
  bool millis = false;  ///< observed_at carries milliseconds (rate mode)

  /// Identity for duplicate detection downstream: "Bogotá@2026-11-22T16:45:00Z".
  std::string id() const;
};

/// The WMO weather interpretation code as words ("Overcast", "Rain: moderate").
std::string_view weather_text(int wmo_code);

/// Shapes readings into records: the full default shape, or output fields mapped from
/// reading fields (--field OUT=IN, --template NAME).
class RecordShape {
 public:
  /// Fields a mapping may read: id, city, latitude, longitude, elevation, observed_at,
  /// source, weather (words for weather_code), and every variable name.
  static std::vector<std::string> input_fields();

  /// The default shape: id, city, coordinates, observed_at, source, every variable, units.
  RecordShape() { compile(); }

  /// Parses "OUT=IN" mappings; errors (Exit::usage) name the unknown field.
  static envkit::Result<RecordShape> from_fields(const std::vector<std::string>& mappings);
  /// A named preset: "weather-tweets" = {id, municipality, temperature, humidity, weather, observed_at}.
  static envkit::Result<RecordShape> from_template(std::string_view name);

  bool is_default() const { return fields_.empty(); }
  /// Output field names and the reading fields they come from, in order.
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }

  /// The record for `r`: its JSON text and its id.
  envkit::Record to_record(const Reading& r) const;

  /// A reading field resolved once, so making a record does no name lookups.
  struct FieldRef {
    enum class Kind { id, city, latitude, longitude, elevation, observed_at, source, weather, variable };
    Kind kind;
    size_t variable = 0;  ///< index into kVariables for Kind::variable
  };

 private:
  void compile();

  std::vector<std::pair<std::string, std::string>> fields_;  // empty: the default shape
  std::vector<std::pair<std::string, FieldRef>> compiled_;   // what to_record() writes
};

}  // namespace sensor_push
