// Measures RapidJSON, simdjson and nlohmann/json side by side on envkit-shaped JSON Lines.
//
// Two workloads are generated from a seed (weather readings as sensor-push writes them, and
// database rows as db-backup dumps them), then each library is timed on three jobs:
//   parse      one line into a DOM, then touch every value (sum numbers, count string bytes)
//   serialise  the same records from in-memory structs to JSON Lines text
//   round trip parse each line and write it out again (the queue-relay / restore path)
// Each case runs --runs times, interleaved with the others so drift hits all of them alike,
// timed by process CPU time (and wall time); the table shows medians and the ratio against
// RapidJSON as envkit uses it. Every result is first checked against the corpus checksum, so
// a library that skipped work or wrote something else cannot look fast.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <simdjson.h>
#include <time.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace od = simdjson::ondemand;

#define ENVKIT_STRINGIFY_(x) #x
#define ENVKIT_STRINGIFY(x) ENVKIT_STRINGIFY_(x)
constexpr const char* kOnDemandKernel = ENVKIT_STRINGIFY(SIMDJSON_BUILTIN_IMPLEMENTATION);

// ---------------------------------------------------------------------------------------------
// Deterministic generation. SplitMix64 rather than <random> distributions, whose output is
// implementation-defined: the corpus must be byte-identical on every machine for a given seed.

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [lo, hi] (the tiny modulo bias does not matter for test data).
  int64_t range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(int percent) { return range(0, 99) < percent; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(range(0, static_cast<int64_t>(v.size()) - 1))];
  }

 private:
  uint64_t state_;
};

/// Rounds to `decimals` places, the way sensors and Open-Meteo report values.
double round_to(double x, int decimals) {
  double scale = std::pow(10.0, decimals);
  return std::round(x * scale) / scale;
}

struct City {
  std::string name;
  std::string country;
  double lat;
  double lon;
  double elevation;
  std::string timezone;
  int utc_offset_hours;
};

const std::vector<City>& cities() {
  static const std::vector<City> list = {
      {"Bogotá", "CO", 4.711, -74.0721, 2582.0, "America/Bogota", -5},
      {"Medellín", "CO", 6.2442, -75.5812, 1495.0, "America/Bogota", -5},
      {"Cali", "CO", 3.4516, -76.532, 1018.0, "America/Bogota", -5},
      {"Barranquilla", "CO", 10.9685, -74.7813, 18.0, "America/Bogota", -5},
      {"Cartagena de Indias", "CO", 10.3997, -75.5144, 2.0, "America/Bogota", -5},
      {"Cúcuta", "CO", 7.8939, -72.5078, 320.0, "America/Bogota", -5},
      {"Popayán", "CO", 2.4448, -76.6147, 1737.0, "America/Bogota", -5},
      {"Ibagué", "CO", 4.4389, -75.2322, 1285.0, "America/Bogota", -5},
      {"Quibdó", "CO", 5.6947, -76.6611, 43.0, "America/Bogota", -5},
      {"Montería", "CO", 8.7479, -75.8814, 18.0, "America/Bogota", -5},
      {"São Paulo", "BR", -23.5505, -46.6333, 760.0, "America/Sao_Paulo", -3},
      {"Zürich", "CH", 47.3769, 8.5417, 408.0, "Europe/Zurich", 1},
      {"Kraków", "PL", 50.0647, 19.945, 219.0, "Europe/Warsaw", 1},
      {"Reykjavík", "IS", 64.1466, -21.9426, 61.0, "Atlantic/Reykjavik", 0},
      {"Ōsaka", "JP", 34.6937, 135.5023, 12.0, "Asia/Tokyo", 9},
      {"Québec", "CA", 46.8139, -71.208, 98.0, "America/Toronto", -5},
  };
  return list;
}

/// One Open-Meteo "current" reading as sensor-push records it.
struct WeatherReading {
  std::string id;
  const City* city = nullptr;
  std::string observed_at;
  int interval = 900;
  double temperature_2m = 0;
  int relative_humidity_2m = 0;
  double apparent_temperature = 0;
  int is_day = 0;
  double precipitation = 0;
  double rain = 0;
  int weather_code = 0;
  int cloud_cover = 0;
  double pressure_msl = 0;
  double surface_pressure = 0;
  double wind_speed_10m = 0;
  int wind_direction_10m = 0;
  double wind_gusts_10m = 0;
};

/// Open-Meteo's "current_units": the same for every reading.
const std::vector<std::pair<std::string, std::string>>& weather_units() {
  static const std::vector<std::pair<std::string, std::string>> units = {
      {"temperature_2m", "°C"},    {"relative_humidity_2m", "%"}, {"apparent_temperature", "°C"},
      {"precipitation", "mm"},     {"pressure_msl", "hPa"},       {"wind_speed_10m", "km/h"},
      {"wind_direction_10m", "°"}, {"wind_gusts_10m", "km/h"},
  };
  return units;
}

std::string local_iso8601(int64_t utc_seconds, int offset_hours) {
  time_t local = static_cast<time_t>(utc_seconds + int64_t{offset_hours} * 3600);
  struct tm tm {};
  gmtime_r(&local, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:00", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                offset_hours < 0 ? '-' : '+', std::abs(offset_hours));
  return buf;
}

std::vector<WeatherReading> make_weather(size_t n, uint64_t seed) {
  SplitMix64 rng(seed);
  const int64_t start = 1795340700;  // 2026-11-22T16:45:00Z
  static const std::vector<int> codes = {0, 1, 2, 3, 45, 51, 61, 63, 80, 95};
  std::vector<WeatherReading> out(n);
  for (size_t i = 0; i < n; ++i) {
    WeatherReading& r = out[i];
    const size_t ncity = cities().size();
    r.city = &cities()[i % ncity];
    char id[32];
    std::snprintf(id, sizeof id, "wx-%08zu-%04x", i, static_cast<unsigned>(rng.next() & 0xffff));
    r.id = id;
    r.observed_at =
        local_iso8601(start + static_cast<int64_t>(i / ncity) * 900, r.city->utc_offset_hours);
    double base = 28.0 - r.city->elevation / 150.0;
    r.temperature_2m = round_to(base + rng.unit() * 10.0 - 5.0, 1);
    r.relative_humidity_2m = static_cast<int>(rng.range(35, 100));
    r.apparent_temperature = round_to(r.temperature_2m - rng.unit() * 3.0, 1);
    r.is_day = static_cast<int>(rng.range(0, 1));
    r.precipitation = rng.chance(70) ? 0.0 : round_to(rng.unit() * 12.0, 1);
    r.rain = r.precipitation;
    r.weather_code = rng.pick(codes);
    r.cloud_cover = static_cast<int>(rng.range(0, 100));
    r.pressure_msl = round_to(1005.0 + rng.unit() * 25.0, 1);
    r.surface_pressure = round_to(r.pressure_msl - r.city->elevation / 8.3, 1);
    r.wind_speed_10m = round_to(rng.unit() * 30.0, 1);
    r.wind_direction_10m = static_cast<int>(rng.range(0, 359));
    r.wind_gusts_10m = round_to(r.wind_speed_10m * (1.2 + rng.unit()), 1);
  }
  return out;
}

/// Attributes of a row kept in a JSON column (nested JSON in the dump).
struct RowAttributes {
  std::vector<std::string> tags;
  std::vector<std::pair<std::string, std::string>> props;
  std::vector<double> dims;
  bool gift = false;
  std::optional<int64_t> parent;
};

/// One row of a MySQL table as db-backup dumps it: DECIMALs as strings (no precision lost),
/// BLOBs as base64, NULLs as null, free text that contains anything a user can type.
struct DbRow {
  int64_t id = 0;
  std::string customer;
  std::string email;
  std::optional<std::string> note;
  std::string price;
  std::string balance;
  std::optional<std::string> discount;
  std::string blob;
  RowAttributes attrs;
  std::string created_at;
  std::optional<std::string> deleted_at;
  bool active = true;
  double score = 0;
  int64_t version = 0;
};

std::string base64(const std::vector<unsigned char>& bytes) {
  static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    out += table[v >> 18];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += table[v & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t v = uint32_t{bytes[i]} << 16;
    out += table[v >> 18];
    out += table[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8);
    out += table[v >> 18];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

/// Text that makes escapers work: quotes, backslashes, newlines, control characters (NUL
/// included), emoji (4-byte UTF-8, ZWJ sequences), accents, U+2028, HTML.
std::string nasty_text(SplitMix64& rng, int max_fragments) {
  static const std::vector<std::string> fragments = {
      "order for",
      " ",
      "O'Brien",
      "\"Bob\"",
      "said \"hi\"",
      "C:\\Users\\ana\\",
      "back\\slash",
      "line one\nline two",
      "\r\n",
      "\t",
      "tab\tseparated",
      "🎉",
      "☕ café",
      "👩‍💻 dev",
      "ñandú",
      "Ærøskøbing",
      "naïve façade",
      "\x01\x02\x1f",
      std::string("nul\0byte", 8),
      "\x7f",
      "\u2028",
      "</script>",
      "{\"json\":\"in a string\"}",
      "100%",
      "'; DROP TABLE orders; --",
      "emoji 😀😃😄",
      "日本語テキスト",
  };
  std::string s;
  int n = static_cast<int>(rng.range(1, max_fragments));
  for (int i = 0; i < n; ++i) s += rng.pick(fragments);
  return s;
}

std::string long_decimal(SplitMix64& rng, int int_digits, int frac_digits, bool maybe_negative) {
  std::string s;
  if (maybe_negative && rng.chance(30)) s += '-';
  s += static_cast<char>('1' + rng.range(0, 8));
  for (int i = 1; i < int_digits; ++i) s += static_cast<char>('0' + rng.range(0, 9));
  s += '.';
  for (int i = 0; i < frac_digits; ++i) s += static_cast<char>('0' + rng.range(0, 9));
  return s;
}

std::vector<DbRow> make_rows(size_t n, uint64_t seed) {
  SplitMix64 rng(seed ^ 0x5eed0f0dbULL);
  static const std::vector<std::string> names = {
      "Ana María Pérez",       "José Ñúñez",    "Zoë O'Connor",
      "Björn Ågren",           "Łukasz Wróbel", "李小龙",
      "Chloé \"Coco\" Dupont", "Renée Müller",  "Søren Kierkegaard"};
  static const std::vector<std::string> tags = {"vip",    "gift",       "b2b", "late", "fragile",
                                                "refund", "promo:2026", "ñ",   "日本"};
  static const std::vector<std::string> prop_keys = {"color",  "size",      "channel", "warehouse",
                                                     "coupon", "note\nkey", "ключ"};
  const int64_t start = 1795340700;
  std::vector<DbRow> out(n);
  for (size_t i = 0; i < n; ++i) {
    DbRow& r = out[i];
    r.id = static_cast<int64_t>(i) + 1;
    r.customer = rng.pick(names);
    r.email = "user" + std::to_string(rng.range(1, 999999)) + "@example.com";
    if (rng.chance(75)) r.note = nasty_text(rng, 8);
    r.price = long_decimal(rng, static_cast<int>(rng.range(1, 6)), 4, false);
    r.balance = long_decimal(rng, static_cast<int>(rng.range(12, 24)),
                             static_cast<int>(rng.range(6, 18)), true);
    if (rng.chance(40)) r.discount = long_decimal(rng, 1, 2, false);
    std::vector<unsigned char> bytes(static_cast<size_t>(rng.range(16, 300)));
    for (auto& b : bytes) b = static_cast<unsigned char>(rng.next());
    r.blob = base64(bytes);
    int ntags = static_cast<int>(rng.range(0, 4));
    for (int t = 0; t < ntags; ++t) r.attrs.tags.push_back(rng.pick(tags));
    // Distinct keys, as MySQL's JSON type stores them (nlohmann would fold duplicates).
    int nprops = static_cast<int>(rng.range(0, 3));
    for (int p = 0; p < nprops; ++p) {
      const std::string& k = rng.pick(prop_keys);
      bool taken = std::any_of(r.attrs.props.begin(), r.attrs.props.end(),
                               [&](const auto& kv) { return kv.first == k; });
      if (!taken) r.attrs.props.emplace_back(k, nasty_text(rng, 2));
    }
    int ndims = static_cast<int>(rng.range(0, 3));
    for (int d = 0; d < ndims; ++d) r.attrs.dims.push_back(round_to(rng.unit() * 100.0, 2));
    r.attrs.gift = rng.chance(10);
    if (rng.chance(20)) r.attrs.parent = rng.range(1, static_cast<int64_t>(i) + 1);
    r.created_at = local_iso8601(start - rng.range(0, 86400 * 365), 0);
    if (rng.chance(10)) r.deleted_at = local_iso8601(start - rng.range(0, 86400), 0);
    r.active = !r.deleted_at;
    // Full 17-digit doubles: the shortest-round-trip printers earn their keep.
    r.score = rng.unit();
    r.version = rng.range(1, int64_t{1} << 62);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Serialising records. RapidJSON's Writer and the reference writer below share one token
// interface, so the same emit() code drives both; nlohmann builds its value type instead.

/// A minimal hand-written JSON writer: the reference for what serialising costs without a
/// library, and what a simdjson-based envkit would have to carry (simdjson 3.0.1 cannot build
/// or print values of its own). Appends to the caller's string.
class HandWriter {
 public:
  explicit HandWriter(std::string& out) : out_(out) {}

  void begin_object() {
    separate();
    out_ += '{';
    need_comma_ = false;
  }
  void end_object() {
    out_ += '}';
    need_comma_ = true;
  }
  void begin_array() {
    separate();
    out_ += '[';
    need_comma_ = false;
  }
  void end_array() {
    out_ += ']';
    need_comma_ = true;
  }
  void key(std::string_view k) {
    separate();
    quoted(k);
    out_ += ':';
    need_comma_ = false;
  }
  void string(std::string_view s) {
    separate();
    quoted(s);
  }
  void number(int64_t n) {
    separate();
    char buf[24];
    auto res = std::to_chars(buf, buf + sizeof buf, n);
    out_.append(buf, res.ptr);
  }
  void number(uint64_t n) {
    separate();
    char buf[24];
    auto res = std::to_chars(buf, buf + sizeof buf, n);
    out_.append(buf, res.ptr);
  }
  void number(int n) { number(static_cast<int64_t>(n)); }
  void number(double d) {
    separate();
    if (!std::isfinite(d)) {
      out_ += "null";
      return;
    }
    char buf[32];
    auto res = std::to_chars(buf, buf + sizeof buf, d);
    out_.append(buf, res.ptr);
    // Keep a double a double on the way back in, as RapidJSON and nlohmann do ("13.0").
    if (std::find_if(buf, res.ptr, [](char c) { return c == '.' || c == 'e'; }) == res.ptr) {
      out_ += ".0";
    }
  }
  void boolean(bool b) {
    separate();
    out_ += b ? "true" : "false";
  }
  void null() {
    separate();
    out_ += "null";
  }

 private:
  void separate() {
    if (need_comma_) out_ += ',';
    need_comma_ = true;
  }
  void quoted(std::string_view s) {
    out_ += '"';
    size_t run = 0;  // start of the pending run of bytes that need no escaping
    for (size_t i = 0; i < s.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out_.append(s.data() + run, i - run);
      run = i + 1;
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\r':
          out_ += "\\r";
          break;
        case '\t':
          out_ += "\\t";
          break;
        case '\b':
          out_ += "\\b";
          break;
        case '\f':
          out_ += "\\f";
          break;
        default: {
          static const char hex[] = "0123456789abcdef";
          char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
          out_.append(esc, 6);
        }
      }
    }
    out_.append(s.data() + run, s.size() - run);
    out_ += '"';
  }

  std::string& out_;
  bool need_comma_ = false;
};

/// RapidJSON's Writer behind the same interface, as envkit::JsonWriter uses it.
class RapidWriter {
 public:
  explicit RapidWriter(rapidjson::Writer<rapidjson::StringBuffer>& w) : w_(w) {}
  void begin_object() { w_.StartObject(); }
  void end_object() { w_.EndObject(); }
  void begin_array() { w_.StartArray(); }
  void end_array() { w_.EndArray(); }
  void key(std::string_view k) {
    w_.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()), true);
  }
  void string(std::string_view s) {
    w_.String(s.data(), static_cast<rapidjson::SizeType>(s.size()), true);
  }
  void number(int64_t n) { w_.Int64(n); }
  void number(uint64_t n) { w_.Uint64(n); }
  void number(int n) { w_.Int(n); }
  void number(double d) {
    if (std::isfinite(d)) {
      w_.Double(d);
    } else {
      w_.Null();
    }
  }
  void boolean(bool b) { w_.Bool(b); }
  void null() { w_.Null(); }

 private:
  rapidjson::Writer<rapidjson::StringBuffer>& w_;
};

// One key and its value per line reads like the record being written.
// clang-format off
template <class W>
void emit(W& w, const WeatherReading& r) {
  w.begin_object();
  w.key("id"); w.string(r.id);
  w.key("source"); w.string("open-meteo");
  w.key("city"); w.string(r.city->name);
  w.key("country"); w.string(r.city->country);
  w.key("lat"); w.number(r.city->lat);
  w.key("lon"); w.number(r.city->lon);
  w.key("elevation"); w.number(r.city->elevation);
  w.key("timezone"); w.string(r.city->timezone);
  w.key("observed_at"); w.string(r.observed_at);
  w.key("interval"); w.number(r.interval);
  w.key("temperature_2m"); w.number(r.temperature_2m);
  w.key("relative_humidity_2m"); w.number(r.relative_humidity_2m);
  w.key("apparent_temperature"); w.number(r.apparent_temperature);
  w.key("is_day"); w.number(r.is_day);
  w.key("precipitation"); w.number(r.precipitation);
  w.key("rain"); w.number(r.rain);
  w.key("weather_code"); w.number(r.weather_code);
  w.key("cloud_cover"); w.number(r.cloud_cover);
  w.key("pressure_msl"); w.number(r.pressure_msl);
  w.key("surface_pressure"); w.number(r.surface_pressure);
  w.key("wind_speed_10m"); w.number(r.wind_speed_10m);
  w.key("wind_direction_10m"); w.number(r.wind_direction_10m);
  w.key("wind_gusts_10m"); w.number(r.wind_gusts_10m);
  w.key("units");
  w.begin_object();
  for (const auto& [k, v] : weather_units()) {
    w.key(k); w.string(v);
  }
  w.end_object();
  w.end_object();
}

template <class W>
void emit_optional(W& w, const std::optional<std::string>& s) {
  if (s) w.string(*s); else w.null();
}

template <class W>
void emit(W& w, const DbRow& r) {
  w.begin_object();
  w.key("_table"); w.string("orders");
  w.key("id"); w.number(r.id);
  w.key("customer"); w.string(r.customer);
  w.key("email"); w.string(r.email);
  w.key("note"); emit_optional(w, r.note);
  w.key("price"); w.string(r.price);
  w.key("balance"); w.string(r.balance);
  w.key("discount"); emit_optional(w, r.discount);
  w.key("blob"); w.string(r.blob);
  w.key("attrs");
  w.begin_object();
  w.key("tags");
  w.begin_array();
  for (const auto& t : r.attrs.tags) w.string(t);
  w.end_array();
  w.key("props");
  w.begin_object();
  for (const auto& [k, v] : r.attrs.props) {
    w.key(k); w.string(v);
  }
  w.end_object();
  w.key("dims");
  w.begin_array();
  for (double d : r.attrs.dims) w.number(d);
  w.end_array();
  w.key("gift"); w.boolean(r.attrs.gift);
  w.key("parent");
  if (r.attrs.parent) w.number(*r.attrs.parent); else w.null();
  w.end_object();
  w.key("created_at"); w.string(r.created_at);
  w.key("deleted_at"); emit_optional(w, r.deleted_at);
  w.key("active"); w.boolean(r.active);
  w.key("score"); w.number(r.score);
  w.key("version"); w.number(r.version);
  w.end_object();
}

// clang-format on

// nlohmann: build the library's value type with operator[], as its documentation teaches, then
// dump(). Json is nlohmann::json (keys sorted, std::map) or nlohmann::ordered_json (insertion
// order kept, which a relay wants so that records keep their shape).
template <class Json>
Json to_nlohmann(const WeatherReading& r) {
  Json j;
  j["id"] = r.id;
  j["source"] = "open-meteo";
  j["city"] = r.city->name;
  j["country"] = r.city->country;
  j["lat"] = r.city->lat;
  j["lon"] = r.city->lon;
  j["elevation"] = r.city->elevation;
  j["timezone"] = r.city->timezone;
  j["observed_at"] = r.observed_at;
  j["interval"] = r.interval;
  j["temperature_2m"] = r.temperature_2m;
  j["relative_humidity_2m"] = r.relative_humidity_2m;
  j["apparent_temperature"] = r.apparent_temperature;
  j["is_day"] = r.is_day;
  j["precipitation"] = r.precipitation;
  j["rain"] = r.rain;
  j["weather_code"] = r.weather_code;
  j["cloud_cover"] = r.cloud_cover;
  j["pressure_msl"] = r.pressure_msl;
  j["surface_pressure"] = r.surface_pressure;
  j["wind_speed_10m"] = r.wind_speed_10m;
  j["wind_direction_10m"] = r.wind_direction_10m;
  j["wind_gusts_10m"] = r.wind_gusts_10m;
  Json& units = j["units"];
  for (const auto& [k, v] : weather_units()) units[k] = v;
  return j;
}

template <class Json>
Json optional_to_nlohmann(const std::optional<std::string>& s) {
  return s ? Json(*s) : Json(nullptr);
}

template <class Json>
Json to_nlohmann(const DbRow& r) {
  Json j;
  j["_table"] = "orders";
  j["id"] = r.id;
  j["customer"] = r.customer;
  j["email"] = r.email;
  j["note"] = optional_to_nlohmann<Json>(r.note);
  j["price"] = r.price;
  j["balance"] = r.balance;
  j["discount"] = optional_to_nlohmann<Json>(r.discount);
  j["blob"] = r.blob;
  Json& a = j["attrs"];
  a["tags"] = Json::array();
  for (const auto& t : r.attrs.tags) a["tags"].push_back(t);
  a["props"] = Json::object();
  for (const auto& [k, v] : r.attrs.props) a["props"][k] = v;
  a["dims"] = Json::array();
  for (double d : r.attrs.dims) a["dims"].push_back(d);
  a["gift"] = r.attrs.gift;
  a["parent"] = r.attrs.parent ? Json(*r.attrs.parent) : Json(nullptr);
  j["created_at"] = r.created_at;
  j["deleted_at"] = optional_to_nlohmann<Json>(r.deleted_at);
  j["active"] = r.active;
  j["score"] = r.score;
  j["version"] = r.version;
  return j;
}

// ---------------------------------------------------------------------------------------------
// Touching every value. The checksum is order-independent (bit patterns of the numbers are
// added, not the numbers), so key-sorting nlohmann::json output still verifies.

struct Checksum {
  double number_sum = 0;  // the "touch": what a consumer computing aggregates would do
  uint64_t number_bits = 0;
  uint64_t string_bytes = 0;  // keys and string values, unescaped
  uint64_t values = 0;
  uint64_t trues = 0;

  void number(double d) {
    number_sum += d;
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    number_bits += bits;
    ++values;
  }
  void string(size_t n) {
    string_bytes += n;
    ++values;
  }
  void key(size_t n) { string_bytes += n; }
  void boolean(bool b) {
    trues += b ? 1 : 0;
    ++values;
  }
  void null() { ++values; }

  bool same_as(const Checksum& o) const {
    return number_bits == o.number_bits && string_bytes == o.string_bytes && values == o.values &&
           trues == o.trues;
  }
};

void walk(const rapidjson::Value& v, Checksum& c) {
  switch (v.GetType()) {
    case rapidjson::kObjectType:
      for (const auto& m : v.GetObject()) {
        c.key(m.name.GetStringLength());
        walk(m.value, c);
      }
      break;
    case rapidjson::kArrayType:
      for (const auto& e : v.GetArray()) walk(e, c);
      break;
    case rapidjson::kStringType:
      c.string(v.GetStringLength());
      break;
    case rapidjson::kNumberType:
      if (v.IsInt64()) {
        c.number(static_cast<double>(v.GetInt64()));
      } else if (v.IsUint64()) {
        c.number(static_cast<double>(v.GetUint64()));
      } else {
        c.number(v.GetDouble());
      }
      break;
    case rapidjson::kTrueType:
      c.boolean(true);
      break;
    case rapidjson::kFalseType:
      c.boolean(false);
      break;
    case rapidjson::kNullType:
      c.null();
      break;
  }
}

void walk(simdjson::dom::element e, Checksum& c) {
  using T = simdjson::dom::element_type;
  switch (e.type()) {
    case T::OBJECT: {
      // Held in a local: a range-for over value_unsafe() of a temporary result dangles.
      simdjson::dom::object obj = e.get_object().value_unsafe();
      for (auto field : obj) {
        c.key(field.key.size());
        walk(field.value, c);
      }
      break;
    }
    case T::ARRAY: {
      simdjson::dom::array arr = e.get_array().value_unsafe();
      for (simdjson::dom::element x : arr) walk(x, c);
      break;
    }
    case T::STRING:
      c.string(e.get_string().value_unsafe().size());
      break;
    case T::INT64:
      c.number(static_cast<double>(e.get_int64().value_unsafe()));
      break;
    case T::UINT64:
      c.number(static_cast<double>(e.get_uint64().value_unsafe()));
      break;
    case T::DOUBLE:
      c.number(e.get_double().value_unsafe());
      break;
    case T::BOOL:
      c.boolean(e.get_bool().value_unsafe());
      break;
    case T::NULL_VALUE:
      c.null();
      break;
  }
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "envkit-bench-json: error: %s\n", what.c_str());
  std::exit(1);
}

/// The value of a simdjson result, or the error and exit: parse errors end the benchmark.
template <class T, class R>
T must(R&& result, const char* what) {
  T v;
  if (auto err = std::forward<R>(result).get(v)) {
    fail(std::string(what) + ": " + simdjson::error_message(err));
  }
  return v;
}

double od_number(od::value& v) {
  od::number n = must<od::number>(v.get_number(), "number");
  if (n.is_int64()) return static_cast<double>(n.get_int64());
  if (n.is_uint64()) return static_cast<double>(n.get_uint64());
  return n.get_double();
}

void walk(od::value v, Checksum& c);

void walk(od::object obj, Checksum& c) {
  for (auto field_result : obj) {
    od::field field = must<od::field>(std::move(field_result), "field");
    std::string_view k = must<std::string_view>(field.unescaped_key(), "key");
    c.key(k.size());
    walk(field.value(), c);
  }
}

void walk(od::value v, Checksum& c) {
  switch (must<od::json_type>(v.type(), "type")) {
    case od::json_type::object:
      walk(must<od::object>(v.get_object(), "object"), c);
      break;
    case od::json_type::array:
      for (auto element : must<od::array>(v.get_array(), "array")) {
        walk(must<od::value>(std::move(element), "element"), c);
      }
      break;
    case od::json_type::string:
      c.string(must<std::string_view>(v.get_string(), "string").size());
      break;
    case od::json_type::number:
      c.number(od_number(v));
      break;
    case od::json_type::boolean:
      c.boolean(must<bool>(v.get_bool(), "bool"));
      break;
    case od::json_type::null:
      if (!v.is_null()) fail("expected null");
      c.null();
      break;
  }
}

/// Walks an On-Demand value and writes it straight back out with the hand-written writer:
/// the only way to re-serialise from simdjson 3.0.1's On-Demand API.
void copy(od::value v, HandWriter& w);

void copy(od::object obj, HandWriter& w) {
  w.begin_object();
  for (auto field_result : obj) {
    od::field field = must<od::field>(std::move(field_result), "field");
    w.key(must<std::string_view>(field.unescaped_key(), "key"));
    copy(field.value(), w);
  }
  w.end_object();
}

void copy(od::value v, HandWriter& w) {
  switch (must<od::json_type>(v.type(), "type")) {
    case od::json_type::object:
      copy(must<od::object>(v.get_object(), "object"), w);
      break;
    case od::json_type::array:
      w.begin_array();
      for (auto element : must<od::array>(v.get_array(), "array")) {
        copy(must<od::value>(std::move(element), "element"), w);
      }
      w.end_array();
      break;
    case od::json_type::string:
      w.string(must<std::string_view>(v.get_string(), "string"));
      break;
    case od::json_type::number: {
      od::number n = must<od::number>(v.get_number(), "number");
      if (n.is_int64()) {
        w.number(n.get_int64());
      } else if (n.is_uint64()) {
        w.number(n.get_uint64());
      } else {
        w.number(n.get_double());
      }
      break;
    }
    case od::json_type::boolean:
      w.boolean(must<bool>(v.get_bool(), "bool"));
      break;
    case od::json_type::null:
      if (!v.is_null()) fail("expected null");
      w.null();
      break;
  }
}

template <class Json>
void walk_nlohmann(const Json& j, Checksum& c) {
  using V = nlohmann::detail::value_t;
  switch (j.type()) {
    case V::object:
      for (auto it = j.begin(); it != j.end(); ++it) {
        c.key(it.key().size());
        walk_nlohmann(it.value(), c);
      }
      break;
    case V::array:
      for (const auto& e : j) walk_nlohmann(e, c);
      break;
    case V::string:
      c.string(j.template get_ref<const typename Json::string_t&>().size());
      break;
    case V::number_integer:
      c.number(static_cast<double>(j.template get<int64_t>()));
      break;
    case V::number_unsigned:
      c.number(static_cast<double>(j.template get<uint64_t>()));
      break;
    case V::number_float:
      c.number(j.template get<double>());
      break;
    case V::boolean:
      c.boolean(j.template get<bool>());
      break;
    case V::null:
      c.null();
      break;
    case V::binary:
    case V::discarded:
      fail("unexpected nlohmann value type");
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// The corpus: one workload as JSON Lines text in a padded buffer (simdjson reads up to 64
// bytes past a document; the other libraries are given exact lengths and ignore the padding).

struct Corpus {
  std::string name;
  simdjson::padded_string text;
  std::vector<std::string_view> lines;  // without the '\n'
  Checksum expected;
};

template <class Record>
Corpus make_corpus(std::string name, const std::vector<Record>& records) {
  std::string text;
  for (const auto& r : records) {
    HandWriter w(text);
    emit(w, r);
    text += '\n';
  }
  Corpus c{std::move(name), simdjson::padded_string(text), {}, {}};
  std::string_view all(c.text.data(), c.text.size());
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\n', start);
    if (end == std::string_view::npos) end = all.size();
    c.lines.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  return c;
}

/// Parses JSON Lines text with RapidJSON (outside any timing) to verify what a case wrote.
Checksum checksum_of(std::string_view text) {
  Checksum c;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data() + start, end - start);
    if (doc.HasParseError()) fail("output does not parse at byte " + std::to_string(start));
    walk(doc, c);
    start = end + 1;
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Cases. Each returns what it computed so the harness can check it did all the work.

struct Outcome {
  Checksum sum;             // parse cases: what was touched
  size_t output_bytes = 0;  // serialise and round-trip cases: what was written
};

/// Where serialised lines go: a 1 MiB block handed on whenever it fills, as a command writing
/// JSON Lines to a file or pipe would, rather than one string the size of the whole output
/// (whose page faults would be timed too). Handing on means counting, plus keeping a copy on
/// the untimed verification run.
class LineSink {
 public:
  explicit LineSink(std::string* keep) : keep_(keep) { block_.reserve(kBlock + 64 * 1024); }
  std::string& block() { return block_; }
  void end_line() {
    block_ += '\n';
    if (block_.size() >= kBlock) hand_on();
  }
  Outcome finish() {
    hand_on();
    Outcome o;
    o.output_bytes = bytes_;
    return o;
  }

 private:
  static constexpr size_t kBlock = 1 << 20;
  void hand_on() {
    bytes_ += block_.size();
    if (keep_) keep_->append(block_);
    block_.clear();
  }
  std::string* keep_;
  std::string block_;
  size_t bytes_ = 0;
};

constexpr auto kRapidFlags = rapidjson::kParseFullPrecisionFlag;  // what envkit::parse_json uses

Outcome parse_rapidjson(const Corpus& c) {
  Outcome o;
  for (std::string_view line : c.lines) {
    rapidjson::Document doc;
    doc.Parse<kRapidFlags>(line.data(), line.size());
    if (doc.HasParseError()) fail("rapidjson: parse error");
    walk(doc, o.sum);
  }
  return o;
}

/// RapidJSON with its allocators reused across lines: the headroom envkit could take
/// without changing library.
class PooledRapidDocument {
 public:
  PooledRapidDocument()
      : values_(value_buf_, sizeof value_buf_), stack_(stack_buf_, sizeof stack_buf_) {}
  /// A Document whose parse stack also lives in a pool: no malloc per line at all.
  using Document = rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>,
                                              rapidjson::MemoryPoolAllocator<>>;

  template <class F>
  void parse(std::string_view line, F&& use) {
    {
      Document doc(&values_, 1024, &stack_);
      doc.Parse<kRapidFlags>(line.data(), line.size());
      if (doc.HasParseError()) fail("rapidjson: parse error");
      use(doc);
    }
    values_.Clear();
    stack_.Clear();
  }

 private:
  char value_buf_[64 * 1024];
  char stack_buf_[16 * 1024];
  rapidjson::MemoryPoolAllocator<> values_;
  rapidjson::MemoryPoolAllocator<> stack_;
};

Outcome parse_rapidjson_pooled(const Corpus& c) {
  Outcome o;
  auto pool = std::make_unique<PooledRapidDocument>();
  for (std::string_view line : c.lines) {
    pool->parse(line, [&](const PooledRapidDocument::Document& doc) { walk(doc, o.sum); });
  }
  return o;
}

/// Bytes readable after `line` inside the padded corpus: simdjson's padding requirement.
size_t capacity_after(const Corpus& c, std::string_view line) {
  return static_cast<size_t>(c.text.data() + c.text.size() + simdjson::SIMDJSON_PADDING -
                             line.data());
}

Outcome parse_simdjson_dom(const Corpus& c) {
  Outcome o;
  simdjson::dom::parser parser;
  for (std::string_view line : c.lines) {
    simdjson::dom::element doc;
    // realloc_if_needed=false: the corpus is padded, so no copy per line.
    if (auto err = parser.parse(line.data(), line.size(), false).get(doc)) {
      fail(std::string("simdjson dom: ") + simdjson::error_message(err));
    }
    walk(doc, o.sum);
  }
  return o;
}

Outcome parse_simdjson_dom_many(const Corpus& c) {
  Outcome o;
  simdjson::dom::parser parser;
  simdjson::dom::document_stream stream;
  if (auto err = parser.parse_many(c.text.data(), c.text.size(), simdjson::dom::DEFAULT_BATCH_SIZE)
                     .get(stream)) {
    fail(std::string("simdjson parse_many: ") + simdjson::error_message(err));
  }
  for (auto doc : stream) {
    simdjson::dom::element e;
    if (auto err = doc.get(e)) {
      fail(std::string("simdjson parse_many: ") + simdjson::error_message(err));
    }
    walk(e, o.sum);
  }
  return o;
}

Outcome parse_simdjson_ondemand(const Corpus& c) {
  Outcome o;
  od::parser parser;
  for (std::string_view line : c.lines) {
    od::document doc;
    if (auto err = parser
                       .iterate(simdjson::padded_string_view(line.data(), line.size(),
                                                             capacity_after(c, line)))
                       .get(doc)) {
      fail(std::string("simdjson on-demand: ") + simdjson::error_message(err));
    }
    walk(must<od::object>(doc.get_object(), "object"), o.sum);
  }
  return o;
}

Outcome parse_simdjson_iterate_many(const Corpus& c) {
  Outcome o;
  od::parser parser;
  od::document_stream stream;
  if (auto err =
          parser.iterate_many(c.text.data(), c.text.size(), od::DEFAULT_BATCH_SIZE).get(stream)) {
    fail(std::string("simdjson iterate_many: ") + simdjson::error_message(err));
  }
  for (auto doc_result : stream) {
    od::document_reference doc = must<od::document_reference>(std::move(doc_result), "document");
    walk(must<od::object>(doc.get_object(), "object"), o.sum);
  }
  return o;
}

template <class Json>
Outcome parse_nlohmann(const Corpus& c) {
  Outcome o;
  for (std::string_view line : c.lines) {
    Json j = Json::parse(line.data(), line.data() + line.size());
    walk_nlohmann(j, o.sum);
  }
  return o;
}

template <class Record>
Outcome serialise_rapidjson(const std::vector<Record>& records, std::string* keep) {
  LineSink sink(keep);
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  for (const auto& r : records) {
    buffer.Clear();
    writer.Reset(buffer);
    RapidWriter w(writer);
    emit(w, r);
    sink.block().append(buffer.GetString(), buffer.GetSize());
    sink.end_line();
  }
  return sink.finish();
}

template <class Record>
Outcome serialise_hand(const std::vector<Record>& records, std::string* keep) {
  LineSink sink(keep);
  for (const auto& r : records) {
    HandWriter w(sink.block());
    emit(w, r);
    sink.end_line();
  }
  return sink.finish();
}

template <class Json, class Record>
Outcome serialise_nlohmann(const std::vector<Record>& records, std::string* keep) {
  LineSink sink(keep);
  for (const auto& r : records) {
    sink.block() += to_nlohmann<Json>(r).dump();
    sink.end_line();
  }
  return sink.finish();
}

Outcome roundtrip_rapidjson(const Corpus& c, std::string* keep) {
  LineSink sink(keep);
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  for (std::string_view line : c.lines) {
    rapidjson::Document doc;
    doc.Parse<kRapidFlags>(line.data(), line.size());
    if (doc.HasParseError()) fail("rapidjson: parse error");
    buffer.Clear();
    writer.Reset(buffer);
    doc.Accept(writer);
    sink.block().append(buffer.GetString(), buffer.GetSize());
    sink.end_line();
  }
  return sink.finish();
}

Outcome roundtrip_rapidjson_pooled(const Corpus& c, std::string* keep) {
  LineSink sink(keep);
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  auto pool = std::make_unique<PooledRapidDocument>();
  for (std::string_view line : c.lines) {
    pool->parse(line, [&](const PooledRapidDocument::Document& doc) {
      buffer.Clear();
      writer.Reset(buffer);
      doc.Accept(writer);
    });
    sink.block().append(buffer.GetString(), buffer.GetSize());
    sink.end_line();
  }
  return sink.finish();
}

Outcome roundtrip_simdjson_dom(const Corpus& c, std::string* keep) {
  LineSink sink(keep);
  simdjson::dom::parser parser;
  for (std::string_view line : c.lines) {
    simdjson::dom::element doc;
    if (auto err = parser.parse(line.data(), line.size(), false).get(doc)) {
      fail(std::string("simdjson dom: ") + simdjson::error_message(err));
    }
    sink.block() += simdjson::to_string(doc);  // simdjson's DOM printer (public API)
    sink.end_line();
  }
  return sink.finish();
}

Outcome roundtrip_simdjson_ondemand(const Corpus& c, std::string* keep) {
  LineSink sink(keep);
  od::parser parser;
  for (std::string_view line : c.lines) {
    od::document doc;
    if (auto err = parser
                       .iterate(simdjson::padded_string_view(line.data(), line.size(),
                                                             capacity_after(c, line)))
                       .get(doc)) {
      fail(std::string("simdjson on-demand: ") + simdjson::error_message(err));
    }
    HandWriter w(sink.block());
    copy(must<od::object>(doc.get_object(), "object"), w);
    sink.end_line();
  }
  return sink.finish();
}

template <class Json>
Outcome roundtrip_nlohmann(const Corpus& c, std::string* keep) {
  LineSink sink(keep);
  for (std::string_view line : c.lines) {
    sink.block() += Json::parse(line.data(), line.data() + line.size()).dump();
    sink.end_line();
  }
  return sink.finish();
}

// ---------------------------------------------------------------------------------------------
// Harness.

using Runner = std::function<Outcome(std::string* keep)>;

struct Case {
  std::string workload;
  std::string operation;  // parse, serialise, round trip
  std::string library;
  Runner run;  // empty: the library cannot do this (printed as n/a)
  std::string note;
  bool baseline = false;  // the RapidJSON row the ratios are taken against
  size_t bytes = 0;       // input bytes (parse, round trip) or output bytes (serialise)
  std::vector<double> cpu_seconds;
  std::vector<double> wall_seconds;
  bool verified = true;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string human_rate(double per_second) {
  char buf[32];
  if (per_second >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f M", per_second / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f k", per_second / 1e3);
  }
  return buf;
}

struct Options {
  size_t lines = 200000;
  int runs = 5;
  uint64_t seed = 20261122;
  std::string workload = "all";
  std::string dump_dir;
};

void usage(FILE* to) {
  std::fprintf(
      to,
      "Usage: envkit-bench-json [--lines N] [--runs N] [--seed N] [--workload weather|rows|all]\n"
      "                         [--dump DIR]\n"
      "Times RapidJSON, simdjson and nlohmann/json on generated JSON Lines: parse (touch\n"
      "every value), serialise from structs, and round trip. Prints a Markdown table of\n"
      "medians with ratios against RapidJSON.\n"
      "  --lines N     lines per workload (default 200000)\n"
      "  --runs N      timed runs per case; the median is reported (default 5)\n"
      "  --seed N      seed of the generated data (default 20261122)\n"
      "  --workload W  weather, rows or all (default all)\n"
      "  --dump DIR    also write the corpora to DIR/<workload>.jsonl\n");
}

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "envkit-bench-json: %s\nTry 'envkit-bench-json --help'\n", what.c_str());
  std::exit(64);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(std::string(a) + " needs a value");
      return argv[++i];
    };
    auto number = [&]() -> uint64_t {
      std::string v = value();
      uint64_t n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || n == 0) {
        usage_error(std::string(a) + " needs a positive number, not '" + v + "'");
      }
      return n;
    };
    if (a == "--help") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--lines") {
      o.lines = number();
    } else if (a == "--runs") {
      o.runs = static_cast<int>(std::min<uint64_t>(number(), 1000));
    } else if (a == "--seed") {
      o.seed = number();
    } else if (a == "--workload") {
      o.workload = value();
    } else if (a == "--dump") {
      o.dump_dir = value();
    } else {
      usage_error("unknown option '" + std::string(a) + "'");
    }
  }
  if (o.workload != "all" && o.workload != "weather" && o.workload != "rows") {
    usage_error("--workload must be weather, rows or all, not '" + o.workload + "'");
  }
  return o;
}

template <class Record>
void add_cases(std::vector<Case>& cases, const Corpus& c, const std::vector<Record>& records) {
  const Corpus* cp = &c;
  const auto* rp = &records;
  auto add = [&](std::string op, std::string lib, Runner fn, std::string note = {},
                 bool baseline = false) {
    Case k;
    k.workload = c.name;
    k.operation = std::move(op);
    k.library = std::move(lib);
    k.run = std::move(fn);
    k.note = std::move(note);
    k.baseline = baseline;
    k.bytes = c.text.size();
    cases.push_back(std::move(k));
  };
  using nlohmann::json;
  using nlohmann::ordered_json;
  add(
      "parse", "RapidJSON, Document per line", [=](std::string*) { return parse_rapidjson(*cp); },
      "as envkit::parse_json", true);
  add("parse", "RapidJSON, reused pool allocator",
      [=](std::string*) { return parse_rapidjson_pooled(*cp); });
  add("parse", "simdjson DOM, parse() per line",
      [=](std::string*) { return parse_simdjson_dom(*cp); });
  add(
      "parse", "simdjson DOM, parse_many",
      [=](std::string*) { return parse_simdjson_dom_many(*cp); }, "stage 1 on a 2nd thread");
  add(
      "parse", "simdjson On-Demand, iterate() per line",
      [=](std::string*) { return parse_simdjson_ondemand(*cp); }, "no DOM: walks the text");
  add(
      "parse", "simdjson On-Demand, iterate_many",
      [=](std::string*) { return parse_simdjson_iterate_many(*cp); },
      "no DOM; stage 1 on a 2nd thread");
  add("parse", "nlohmann::json", [=](std::string*) { return parse_nlohmann<json>(*cp); });
  add("parse", "nlohmann::ordered_json",
      [=](std::string*) { return parse_nlohmann<ordered_json>(*cp); });

  add(
      "serialise", "RapidJSON Writer", [=](std::string* k) { return serialise_rapidjson(*rp, k); },
      "as envkit::JsonWriter", true);
  add("serialise", "simdjson 3.0.1", nullptr, "no writer or value builder in 3.0.1");
  add("serialise", "hand-written writer (reference)",
      [=](std::string* k) { return serialise_hand(*rp, k); });
  add(
      "serialise", "nlohmann::json, build + dump()",
      [=](std::string* k) { return serialise_nlohmann<json>(*rp, k); }, "keys come out sorted");
  add("serialise", "nlohmann::ordered_json, build + dump()",
      [=](std::string* k) { return serialise_nlohmann<ordered_json>(*rp, k); });

  add(
      "round trip", "RapidJSON, Document + Writer",
      [=](std::string* k) { return roundtrip_rapidjson(*cp, k); }, "as envkit", true);
  add("round trip", "RapidJSON, pooled + Writer",
      [=](std::string* k) { return roundtrip_rapidjson_pooled(*cp, k); });
  add("round trip", "simdjson DOM + to_string()",
      [=](std::string* k) { return roundtrip_simdjson_dom(*cp, k); });
  add("round trip", "simdjson On-Demand + hand-written writer",
      [=](std::string* k) { return roundtrip_simdjson_ondemand(*cp, k); });
  add(
      "round trip", "nlohmann::json parse + dump()",
      [=](std::string* k) { return roundtrip_nlohmann<json>(*cp, k); }, "keys come out sorted");
  add("round trip", "nlohmann::ordered_json parse + dump()",
      [=](std::string* k) { return roundtrip_nlohmann<ordered_json>(*cp, k); });
}

void print_table(const std::vector<Case>& cases, const std::string& workload, const Corpus& c) {
  std::printf("\n### %s: %zu lines, %.1f MB, %.0f bytes/line\n\n", workload.c_str(), c.lines.size(),
              static_cast<double>(c.text.size()) / 1e6,
              static_cast<double>(c.text.size()) / static_cast<double>(c.lines.size()));
  std::printf("| operation | library | MB/s | lines/s | vs RapidJSON | wall MB/s | note |\n");
  std::printf("|---|---|---:|---:|---:|---:|---|\n");
  double base = 0;
  for (const Case& k : cases) {
    if (k.workload != workload) continue;
    if (k.baseline) base = median(k.cpu_seconds);
    if (!k.run) {
      std::printf("| %s | %s | n/a | n/a | n/a | n/a | %s |\n", k.operation.c_str(),
                  k.library.c_str(), k.note.c_str());
      continue;
    }
    double cpu = median(k.cpu_seconds);
    double wall = median(k.wall_seconds);
    double mb = static_cast<double>(k.bytes) / 1e6;
    std::string note = k.note;
    if (!k.verified) note += (note.empty() ? "" : "; ") + std::string("**CHECKSUM MISMATCH**");
    std::printf("| %s | %s | %.0f | %s | %.2f× | %.0f | %s |\n", k.operation.c_str(),
                k.library.c_str(), mb / cpu,
                human_rate(static_cast<double>(c.lines.size()) / cpu).c_str(), base / cpu,
                mb / wall, note.c_str());
  }
}

double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

volatile double g_observed = 0;

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse_options(argc, argv);

  std::vector<WeatherReading> weather;
  std::vector<DbRow> rows;
  std::vector<std::unique_ptr<Corpus>> corpora;
  std::vector<Case> cases;
  if (opt.workload != "rows") {
    weather = make_weather(opt.lines, opt.seed);
    corpora.push_back(std::make_unique<Corpus>(make_corpus("weather", weather)));
    add_cases(cases, *corpora.back(), weather);
  }
  if (opt.workload != "weather") {
    rows = make_rows(opt.lines, opt.seed);
    corpora.push_back(std::make_unique<Corpus>(make_corpus("rows", rows)));
    add_cases(cases, *corpora.back(), rows);
  }
  for (auto& c : corpora) {
    c->expected = checksum_of({c->text.data(), c->text.size()});
    if (!opt.dump_dir.empty()) {
      std::ofstream f(opt.dump_dir + "/" + c->name + ".jsonl", std::ios::binary);
      f.write(c->text.data(), static_cast<std::streamsize>(c->text.size()));
      if (!f) fail("cannot write " + opt.dump_dir + "/" + c->name + ".jsonl");
    }
  }

  std::printf("## envkit-bench-json: median of %d runs, seed %" PRIu64 "\n\n", opt.runs, opt.seed);
  // The kernel the DOM parser picked at run time, and the one On-Demand was compiled for in
  // this file (its stage 2 is inline code: "fallback" unless built with -march).
  std::printf(
      "RapidJSON %d.%d.%d, simdjson %d.%d.%d (DOM kernel: %s; On-Demand compiled for: %s), "
      "nlohmann/json %d.%d.%d\n",
      RAPIDJSON_MAJOR_VERSION, RAPIDJSON_MINOR_VERSION, RAPIDJSON_PATCH_VERSION,
      simdjson::SIMDJSON_VERSION_MAJOR, simdjson::SIMDJSON_VERSION_MINOR,
      simdjson::SIMDJSON_VERSION_REVISION, simdjson::get_active_implementation()->name().c_str(),
      kOnDemandKernel, NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
      NLOHMANN_JSON_VERSION_PATCH);
  std::fflush(stdout);

  // An untimed first pass warms caches and allocators and checks every case's result
  // against the corpus: a library that skipped work, or wrote something else, is flagged.
  for (Case& k : cases) {
    if (!k.run) continue;
    const Corpus* c = nullptr;
    for (auto& p : corpora) {
      if (p->name == k.workload) c = p.get();
    }
    std::string written;
    Outcome out = k.run(&written);
    Checksum got = k.operation == "parse" ? out.sum : checksum_of(written);
    if (k.operation == "serialise") k.bytes = out.output_bytes;
    k.verified = got.same_as(c->expected);
    if (!k.verified) {
      std::fprintf(stderr,
                   "envkit-bench-json: warning: %s / %s / %s: result differs from the corpus\n",
                   k.workload.c_str(), k.operation.c_str(), k.library.c_str());
    }
  }
  std::fprintf(stderr, "envkit-bench-json: verification pass done\n");

  // Timed runs are interleaved (run 1 of every case, then run 2, ...) so that a noisy
  // neighbour or thermal drift spreads over every library instead of landing on one. Process
  // CPU time is what the table reports: it does not count time this process spent waiting
  // for a core, and it charges the multi-threaded cases for all their threads.
  for (int run = 0; run < opt.runs; ++run) {
    for (Case& k : cases) {
      if (!k.run) continue;
      double cpu0 = cpu_now();
      auto wall0 = std::chrono::steady_clock::now();
      Outcome out = k.run(nullptr);
      auto wall1 = std::chrono::steady_clock::now();
      double cpu1 = cpu_now();
      k.cpu_seconds.push_back(cpu1 - cpu0);
      k.wall_seconds.push_back(std::chrono::duration<double>(wall1 - wall0).count());
      if (out.sum.values == 0 && out.output_bytes == 0) fail(k.library + " did nothing");
      g_observed = out.sum.number_sum;  // the sums are used, so no compiler may skip them
    }
    std::fprintf(stderr, "envkit-bench-json: run %d of %d done\n", run + 1, opt.runs);
  }

  bool all_verified = true;
  for (const Case& k : cases) all_verified = all_verified && k.verified;
  for (auto& c : corpora) print_table(cases, c->name, *c);
  std::printf(
      "\nMB/s and lines/s per second of process CPU time; wall MB/s per second of elapsed time.\n"
      "Ratios are speed relative to the RapidJSON row marked \"as envkit\" (higher is faster).\n"
      "MB/s counts input bytes for parse and round trip, output bytes for serialise (10^6 bytes).\n"
      "Every result was %s against the corpus checksum (numbers, string bytes, value counts).\n",
      all_verified ? "verified" : "NOT all verified");
  return all_verified ? 0 : 1;
}
