// Readings to JSON records: ids, units, WMO words and field mappings.
#include "sensor-push/reading.hpp"

#include <algorithm>

#include <envkit/json.hpp>

namespace sensor_push {

using envkit::Error;
using envkit::Exit;
using envkit::Result;

namespace {

std::optional<size_t> variable_index(std::string_view name) {
  for (size_t i = 0; i < kVariables.size(); ++i) {
    if (kVariables[i].name == name) return i;
  }
  return std::nullopt;
}

std::optional<RecordShape::FieldRef> resolve(std::string_view name) {
  using K = RecordShape::FieldRef::Kind;
  static constexpr std::pair<std::string_view, K> kFixed[] = {
      {"id", K::id},         {"city", K::city},         {"latitude", K::latitude},
      {"longitude", K::longitude}, {"elevation", K::elevation}, {"observed_at", K::observed_at},
      {"source", K::source}, {"weather", K::weather}};
  for (const auto& [n, k] : kFixed) {
    if (n == name) return RecordShape::FieldRef{k, 0};
  }
  if (auto i = variable_index(name)) return RecordShape::FieldRef{K::variable, *i};
  return std::nullopt;
}

// Writes one reading field; integers stay integers so codes never print as 3.0.
void write_field(envkit::JsonWriter& w, const Reading& r, const RecordShape::FieldRef& f,
                 const std::string& id, const std::string& time) {
  using K = RecordShape::FieldRef::Kind;
  switch (f.kind) {
    case K::id: w.string(id); return;
    case K::city: w.string(r.city); return;
    case K::latitude: w.number(r.latitude); return;
    case K::longitude: w.number(r.longitude); return;
    case K::elevation: w.number(r.elevation); return;
    case K::observed_at: w.string(time); return;
    case K::source: w.string(r.source); return;
    case K::weather: {
      static const size_t code_index = *variable_index("weather_code");
      const auto& code = r.values[code_index];
      if (code) w.string(weather_text(static_cast<int>(*code)));
      else w.null();
      return;
    }
    case K::variable: {
      const auto& v = r.values[f.variable];
      if (!v) w.null();
      else if (kVariables[f.variable].sql_type.find("INT") != std::string_view::npos) w.number(static_cast<int64_t>(*v));
      else w.number(*v);
      return;
    }
  }
}

// The units object when a source gives the usual units: the same text for every record.
const std::string& default_units_json() {
  static const std::string text = [] {
    envkit::JsonWriter w;
    w.begin_object();
    for (const auto& v : kVariables) w.key(v.name).string(v.unit);
    w.end_object();
    return w.take();
  }();
  return text;
}

}  // namespace

std::string Reading::id() const { return city + "@" + envkit::format_utc(observed_at, millis); }

std::string_view weather_text(int code) {
  switch (code) {
    case 0: return "Clear sky";
    case 1: return "Mainly clear";
    case 2: return "Partly cloudy";
    case 3: return "Overcast";
    case 45: return "Fog";
    case 48: return "Depositing rime fog";
    case 51: return "Drizzle: light";
    case 53: return "Drizzle: moderate";
    case 55: return "Drizzle: dense";
    case 56: return "Freezing drizzle: light";
    case 57: return "Freezing drizzle: dense";
    case 61: return "Rain: slight";
    case 63: return "Rain: moderate";
    case 65: return "Rain: heavy";
    case 66: return "Freezing rain: light";
    case 67: return "Freezing rain: heavy";
    case 71: return "Snow fall: slight";
    case 73: return "Snow fall: moderate";
    case 75: return "Snow fall: heavy";
    case 77: return "Snow grains";
    case 80: return "Rain showers: slight";
    case 81: return "Rain showers: moderate";
    case 82: return "Rain showers: violent";
    case 85: return "Snow showers: slight";
    case 86: return "Snow showers: heavy";
    case 95: return "Thunderstorm";
    case 96: return "Thunderstorm with slight hail";
    case 99: return "Thunderstorm with heavy hail";
    default: return "Unknown";
  }
}

std::vector<std::string> RecordShape::input_fields() {
  std::vector<std::string> out{"id", "city", "latitude", "longitude", "elevation",
                               "observed_at", "source", "weather"};
  for (const auto& v : kVariables) out.emplace_back(v.name);
  return out;
}

Result<RecordShape> RecordShape::from_fields(const std::vector<std::string>& mappings) {
  RecordShape shape;
  shape.compiled_.clear();
  for (const auto& m : mappings) {
    size_t eq = m.find('=');
    std::string out = m.substr(0, eq);
    std::string in = eq == std::string::npos ? out : m.substr(eq + 1);
    if (out.empty()) return Error{Exit::usage, "--field '" + m + "': expected OUT=IN"};
    if (!resolve(in)) {
      std::string list;
      for (const auto& k : input_fields()) list += (list.empty() ? "" : ", ") + k;
      return Error{Exit::usage, "--field '" + m + "': unknown reading field '" + in + "' (one of " + list + ")"};
    }
    for (const auto& [o, i] : shape.fields_) {
      if (o == out) return Error{Exit::usage, "--field '" + m + "': output field '" + out + "' given twice"};
    }
    shape.fields_.emplace_back(out, in);
  }
  shape.compile();
  return shape;
}

Result<RecordShape> RecordShape::from_template(std::string_view name) {
  if (name == "weather-tweets") {
    // The id keeps two identical reports two records (queue-relay's ingest names a record
    // without one by a hash of its bytes); observed_at is what --timestamp-field times.
    return from_fields({"id=id", "municipality=city", "temperature=temperature_2m",
                        "humidity=relative_humidity_2m", "weather=weather", "observed_at=observed_at"});
  }
  if (name == "default") return RecordShape();
  return Error{Exit::usage, "unknown template '" + std::string(name) + "' (known: default, weather-tweets)"};
}

void RecordShape::compile() {
  compiled_.clear();
  if (fields_.empty()) {
    for (const char* f : {"id", "city", "latitude", "longitude", "elevation", "observed_at", "source"}) {
      compiled_.emplace_back(f, *resolve(f));
    }
    for (const auto& v : kVariables) compiled_.emplace_back(std::string(v.name), *resolve(v.name));
  } else {
    for (const auto& [out, in] : fields_) compiled_.emplace_back(out, *resolve(in));
  }
}

envkit::Record RecordShape::to_record(const Reading& r) const {
  // One writer per thread, reused: its buffer stays allocated between records.
  thread_local envkit::JsonWriter w;
  std::string time = envkit::format_utc(r.observed_at, r.millis);
  std::string id = r.city + "@" + time;
  w.begin_object();
  for (const auto& [key, field] : compiled_) {
    w.key(key);
    write_field(w, r, field, id, time);
  }
  if (fields_.empty()) {
    w.key("units");
    bool usual = true;
    for (size_t i = 0; i < kVariables.size(); ++i) usual = usual && (r.units[i].empty() || r.units[i] == kVariables[i].unit);
    if (usual) {
      w.raw(default_units_json());
    } else {
      w.begin_object();
      for (size_t i = 0; i < kVariables.size(); ++i) {
        w.key(kVariables[i].name).string(r.units[i].empty() ? kVariables[i].unit : r.units[i]);
      }
      w.end_object();
    }
  }
  w.end_object();
  return envkit::Record{std::move(id), w.take()};
}

}  // namespace sensor_push
