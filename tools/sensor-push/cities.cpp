// Cities: the built-in lists and the parsers for --city and --cities FILE.
#include "sensor-push/cities.hpp"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>

namespace sensor_push {

using envkit::Error;
using envkit::Exit;
using envkit::Result;
using envkit::Status;

namespace {

// Coordinates and elevations of the municipal seats (rounded to what Open-Meteo resolves).
const std::vector<City> kColombia = {
    {"Bogotá", 4.7110, -74.0721, 2640},       {"Medellín", 6.2442, -75.5812, 1495},
    {"Cali", 3.4516, -76.5320, 1018},         {"Barranquilla", 10.9685, -74.7813, 18},
    {"Cartagena", 10.3910, -75.4794, 2},      {"Cúcuta", 7.8939, -72.5078, 320},
    {"Bucaramanga", 7.1193, -73.1227, 959},   {"Pereira", 4.8133, -75.6961, 1411},
    {"Santa Marta", 11.2408, -74.1990, 6},    {"Ibagué", 4.4389, -75.2322, 1285},
    {"Manizales", 5.0703, -75.5138, 2160},    {"Pasto", 1.2136, -77.2811, 2527},
    {"Villavicencio", 4.1420, -73.6266, 467}, {"Montería", 8.7479, -75.8814, 18},
    {"Neiva", 2.9273, -75.2819, 442},         {"Armenia", 4.5339, -75.6811, 1551},
    {"Popayán", 2.4448, -76.6147, 1737},      {"Tunja", 5.5353, -73.3678, 2820},
    {"Leticia", -4.2153, -69.9406, 96},       {"San Andrés", 12.5847, -81.7006, 5},
};

const std::vector<City> kGuatemala = {
    {"Guatemala", 14.6349, -90.5069, 1500},          {"Chinautla", 14.7089, -90.4996, 1220},
    {"Mixco", 14.6333, -90.6064, 1730},              {"Villa Nueva", 14.5269, -90.5875, 1330},
    {"San Miguel Petapa", 14.5150, -90.5600, 1290},  {"Santa Catarina Pinula", 14.5689, -90.4956, 1550},
    {"San José Pinula", 14.5467, -90.4111, 1750},    {"Fraijanes", 14.4653, -90.4411, 1630},
    {"Amatitlán", 14.4875, -90.6158, 1190},          {"Villa Canales", 14.4828, -90.5333, 1215},
    {"San Pedro Ayampuc", 14.7872, -90.4519, 1020},  {"San Juan Sacatepéquez", 14.7189, -90.6442, 1845},
    {"San Raymundo", 14.7650, -90.5950, 1570},       {"Palencia", 14.6647, -90.3583, 1380},
    {"Chuarrancho", 14.8186, -90.5128, 900},         {"San Pedro Sacatepéquez", 14.6850, -90.6428, 2100},
    {"Antigua Guatemala", 14.5586, -90.7295, 1530},  {"Quetzaltenango", 14.8347, -91.5180, 2330},
    {"Ciudad Vieja", 14.5236, -90.7667, 1540},       {"Jocotenango", 14.5822, -90.7436, 1540},
    {"Sumpango", 14.6456, -90.7339, 1900},
};

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

Result<double> parse_number(std::string_view text, const std::string& what, const std::string& where) {
  std::string s = trim(text);
  char* end = nullptr;
  double v = s.empty() ? NAN : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) {
    return Error{Exit::data, where + ": " + what + " '" + s + "' is not a number"};
  }
  return v;
}

std::vector<std::string> split_csv_line(std::string_view line) {
  // Plain CSV: fields separated by commas, optionally in double quotes ("" for a quote).
  std::vector<std::string> fields;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  fields.push_back(trim(cur));
  return fields;
}

Result<std::vector<City>> load_csv(const std::string& path, std::ifstream& in) {
  std::vector<City> cities;
  std::string line;
  int lineno = 0;
  int col_name = -1, col_lat = -1, col_lon = -1, col_elev = -1;
  while (std::getline(in, line)) {
    ++lineno;
    std::string where = path + ":" + std::to_string(lineno);
    if (trim(line).empty() || trim(line)[0] == '#') continue;
    auto fields = split_csv_line(line);
    if (col_name < 0) {  // the header
      for (int i = 0; i < static_cast<int>(fields.size()); ++i) {
        const std::string& f = fields[static_cast<size_t>(i)];
        if (f == "name" || f == "city") col_name = i;
        else if (f == "latitude" || f == "lat") col_lat = i;
        else if (f == "longitude" || f == "lon") col_lon = i;
        else if (f == "elevation") col_elev = i;
      }
      if (col_name < 0 || col_lat < 0 || col_lon < 0) {
        return Error{Exit::data, where + ": the header must name the columns name,latitude,longitude[,elevation]"};
      }
      continue;
    }
    int needed = std::max({col_name, col_lat, col_lon, col_elev});
    if (static_cast<int>(fields.size()) <= needed) {
      return Error{Exit::data, where + ": expected " + std::to_string(needed + 1) + " fields, found " +
                                   std::to_string(fields.size())};
    }
    City c;
    c.name = fields[static_cast<size_t>(col_name)];
    auto lat = parse_number(fields[static_cast<size_t>(col_lat)], "latitude", where);
    if (!lat) return lat.error();
    auto lon = parse_number(fields[static_cast<size_t>(col_lon)], "longitude", where);
    if (!lon) return lon.error();
    c.latitude = *lat;
    c.longitude = *lon;
    if (col_elev >= 0 && !fields[static_cast<size_t>(col_elev)].empty()) {
      auto elev = parse_number(fields[static_cast<size_t>(col_elev)], "elevation", where);
      if (!elev) return elev.error();
      c.elevation = *elev;
    }
    if (auto st = validate_city(c, where); !st) return st.error();
    cities.push_back(std::move(c));
  }
  if (col_name < 0) return Error{Exit::data, path + ": no header line and no cities"};
  return cities;
}

Result<std::vector<City>> load_yaml(const std::string& path, std::ifstream& in) {
  YAML::Node doc;
  try {
    doc = YAML::Load(in);
  } catch (const YAML::Exception& e) {
    return Error{Exit::data, path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
  // Either a list, or a mapping with a "cities" list.
  if (doc.IsMap() && doc["cities"]) doc = doc["cities"];
  if (!doc.IsSequence()) {
    return Error{Exit::data, path + ": expected a list of cities (name, latitude, longitude)"};
  }
  std::vector<City> cities;
  for (const auto& item : doc) {
    std::string where = path + ":" + std::to_string(item.Mark().line + 1);
    if (!item.IsMap()) return Error{Exit::data, where + ": a city must be a mapping with name, latitude, longitude"};
    // On a const node a missing key yields an invalid (falsy) node; YAML::Node() would be
    // a valid null one.
    const YAML::Node& city = item;
    auto either = [&](const char* a, const char* b) { return city[a] ? city[a] : city[b]; };
    YAML::Node name = either("name", "city"), lat = either("latitude", "lat"),
               lon = either("longitude", "lon"), elev = city["elevation"];
    if (!name || !name.IsScalar() || !lat || !lat.IsScalar() || !lon || !lon.IsScalar()) {
      return Error{Exit::data, where + ": a city needs name, latitude and longitude"};
    }
    City c;
    c.name = trim(name.Scalar());
    auto la = parse_number(lat.Scalar(), "latitude", where);
    if (!la) return la.error();
    auto lo = parse_number(lon.Scalar(), "longitude", where);
    if (!lo) return lo.error();
    c.latitude = *la;
    c.longitude = *lo;
    if (elev) {
      if (!elev.IsScalar()) return Error{Exit::data, where + ": elevation must be a number"};
      auto el = parse_number(elev.Scalar(), "elevation", where);
      if (!el) return el.error();
      c.elevation = *el;
    }
    if (auto st = validate_city(c, where); !st) return st.error();
    cities.push_back(std::move(c));
  }
  return cities;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::string builtin_city_lists() { return "colombia, guatemala"; }

Result<std::vector<City>> builtin_cities(std::string_view list) {
  if (list == "colombia") return kColombia;
  if (list == "guatemala") return kGuatemala;
  return Error{Exit::usage, "unknown city list '" + std::string(list) + "' (built in: " +
                                builtin_city_lists() + ")"};
}

Status validate_city(const City& c, const std::string& where) {
  if (c.name.empty()) return Error{Exit::data, where + ": a city needs a name"};
  if (c.latitude < -90 || c.latitude > 90) {
    return Error{Exit::data, where + ": " + c.name + ": latitude must be within -90..90"};
  }
  if (c.longitude < -180 || c.longitude > 180) {
    return Error{Exit::data, where + ": " + c.name + ": longitude must be within -180..180"};
  }
  if (c.elevation < -500 || c.elevation > 9000) {
    return Error{Exit::data, where + ": " + c.name + ": elevation must be within -500..9000 m"};
  }
  return {};
}

Result<City> parse_city_spec(std::string_view spec) {
  std::string where = "--city '" + std::string(spec) + "'";
  if (spec.find(':') == std::string_view::npos) {
    // A bare name picks a city from the built-in lists.
    for (const auto* list : {&kColombia, &kGuatemala}) {
      for (const auto& c : *list) {
        if (c.name == spec) return c;
      }
    }
    return Error{Exit::usage, where + ": unknown city (not in the built-in lists " + builtin_city_lists() +
                                  "); give NAME:LAT:LON"};
  }
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t colon = spec.find(':', start);
    parts.push_back(spec.substr(start, colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  if (parts.size() != 3 && parts.size() != 4) {
    return Error{Exit::usage, where + ": expected NAME:LAT:LON or NAME:LAT:LON:ELEVATION"};
  }
  City c;
  c.name = trim(parts[0]);
  auto lat = parse_number(parts[1], "latitude", where);
  auto lon = parse_number(parts[2], "longitude", where);
  if (!lat) return Error{Exit::usage, lat.error().message};
  if (!lon) return Error{Exit::usage, lon.error().message};
  c.latitude = *lat;
  c.longitude = *lon;
  if (parts.size() == 4) {
    auto elev = parse_number(parts[3], "elevation", where);
    if (!elev) return Error{Exit::usage, elev.error().message};
    c.elevation = *elev;
  }
  if (auto st = validate_city(c, where); !st) return Error{Exit::usage, st.error().message};
  return c;
}

Result<std::vector<City>> load_cities_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error{Exit::no_input, path + ": cannot read the cities file"};
  auto cities = ends_with(path, ".yaml") || ends_with(path, ".yml") ? load_yaml(path, in)
                                                                     : load_csv(path, in);
  if (!cities) return cities;
  std::set<std::string> seen;
  for (const auto& c : *cities) {
    if (!seen.insert(c.name).second) {
      return Error{Exit::data, path + ": city '" + c.name + "' appears twice"};
    }
  }
  if (cities->empty()) return Error{Exit::data, path + ": no cities in the file"};
  return cities;
}

}  // namespace sensor_push
