// Unit tests for sensor-push's logic: cities, records, the simulator, Open-Meteo parsing,
// and the option cross-checks.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "sensor-push/cities.hpp"
#include "sensor-push/config.hpp"
#include <envkit/json.hpp>
#include "sensor-push/openmeteo.hpp"
#include "sensor-push/reading.hpp"
#include "sensor-push/sim.hpp"

namespace sensor_push {
namespace {

using namespace std::chrono;
using envkit::Exit;

std::string write_temp(const std::string& name, const std::string& content) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "sensor_push_test";
  std::filesystem::create_directories(dir);
  auto path = (dir / name).string();
  std::ofstream(path) << content;
  return path;
}

TEST(Cities, BuiltInListsKeepAccentsAndHaveUniqueNames) {
  auto co = builtin_cities("colombia");
  ASSERT_TRUE(co.ok());
  EXPECT_GE(co->size(), 8u);
  EXPECT_EQ((*co)[0].name, "Bogotá");
  std::set<std::string> names;
  for (const auto& c : *co) EXPECT_TRUE(names.insert(c.name).second) << c.name;
  auto gt = builtin_cities("guatemala");
  ASSERT_TRUE(gt.ok());
  EXPECT_TRUE(std::any_of(gt->begin(), gt->end(), [](const City& c) { return c.name == "Chinautla"; }));
  auto bad = builtin_cities("peru");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Exit::usage);
}

TEST(Cities, CitySpecs) {
  auto c = parse_city_spec("San Andrés:12.58:-81.70:5");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->name, "San Andrés");
  EXPECT_DOUBLE_EQ(c->latitude, 12.58);
  EXPECT_DOUBLE_EQ(c->elevation, 5);
  auto known = parse_city_spec("Chinautla");
  ASSERT_TRUE(known.ok());
  EXPECT_DOUBLE_EQ(known->latitude, 14.7089);
  auto unknown = parse_city_spec("Atlantis");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("--city 'Atlantis': unknown city"), std::string::npos);
  for (const char* bad : {"Bogota", "Bogotá:4.7", "Bogotá:x:1", "Bogotá:91:0", "Bogotá:4:181", ":1:2", "a:1:2:3:4"}) {
    auto r = parse_city_spec(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, Exit::usage) << bad;
  }
}

TEST(Cities, CsvFileWithQuotesAndComments) {
  auto path = write_temp("cities.csv",
                         "# my stations\nname,latitude,longitude,elevation\n\"Bogotá, D.C.\",4.711,-74.072,2640\n"
                         "Cali,3.45,-76.53,\n");
  auto c = load_cities_file(path);
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].name, "Bogotá, D.C.");
  EXPECT_DOUBLE_EQ((*c)[1].elevation, 0);
}

TEST(Cities, YamlFile) {
  auto path = write_temp("cities.yaml", "cities:\n  - {name: Medellín, lat: 6.24, lon: -75.58, elevation: 1495}\n"
                                        "  - name: Pasto\n    latitude: 1.21\n    longitude: -77.28\n");
  auto c = load_cities_file(path);
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[1].name, "Pasto");
}

TEST(Cities, MalformedFilesNameFileAndLine) {
  struct Case { std::string name, text, expect; Exit code; };
  for (const Case& k : std::vector<Case>{
           {"a.csv", "name,latitude,longitude\nBogotá,4.7\n", "a.csv:2: expected 3 fields", Exit::data},
           {"b.csv", "name,latitude,longitude\nBogotá,north,1\n", "b.csv:2: latitude 'north' is not a number", Exit::data},
           {"c.csv", "city;lat;lon\n", "c.csv:1: the header", Exit::data},
           {"d.csv", "name,lat,lon\nA,1,2\nA,3,4\n", "'A' appears twice", Exit::data},
           {"e.yaml", "- {name: A, lat: 1}\n", "e.yaml:1: a city needs", Exit::data},
           {"f.yaml", "- [1, 2\n", "f.yaml:", Exit::data},
           {"g.yaml", "- {name: A, lat: 95, lon: 0}\n", "latitude must be within", Exit::data},
           {"h.csv", "name,lat,lon\n", "no cities", Exit::data},
       }) {
    auto c = load_cities_file(write_temp(k.name, k.text));
    ASSERT_FALSE(c.ok()) << k.name;
    EXPECT_EQ(c.error().code, k.code) << k.name;
    EXPECT_NE(c.error().message.find(k.expect), std::string::npos) << k.name << ": " << c.error().message;
  }
  auto missing = load_cities_file("/nonexistent/cities.csv");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Exit::no_input);
}

TEST(Simulator, RepeatablePerCityAndTimeAndPlausible) {
  auto co = *builtin_cities("colombia");
  const City& bogota = co[0];
  const City& barranquilla = *std::find_if(co.begin(), co.end(), [](const City& c) { return c.name == "Barranquilla"; });
  envkit::SysMillis t = sys_days{2026y / November / 22} + 17h;  // noon in Colombia
  Reading a = simulate(bogota, t, 7), b = simulate(bogota, t, 7), other_seed = simulate(bogota, t, 8);
  EXPECT_EQ(RecordShape().to_record(a).json, RecordShape().to_record(b).json);
  EXPECT_NE(RecordShape().to_record(a).json, RecordShape().to_record(other_seed).json);
  // Over a day, Bogotá (2640 m) stays cool and Barranquilla (sea level) hot.
  double sum_bog = 0, sum_baq = 0;
  for (int h = 0; h < 24; ++h) {
    auto th = envkit::SysMillis(sys_days{2026y / November / 22} + hours(h));
    sum_bog += *simulate(bogota, th, 1).values[0];
    sum_baq += *simulate(barranquilla, th, 1).values[0];
  }
  EXPECT_GT(sum_bog / 24, 8.0);
  EXPECT_LT(sum_bog / 24, 18.0);
  EXPECT_GT(sum_baq / 24, 24.0);
  EXPECT_LT(sum_baq / 24, 33.0);
  for (size_t i = 0; i < kVariables.size(); ++i) EXPECT_TRUE(a.values[i].has_value()) << kVariables[i].name;
}

TEST(Records, DefaultShapeHasIdUnitsAndUtcTime) {
  City c{"Bogotá", 4.711, -74.0721, 2640};
  Reading r = simulate(c, envkit::SysMillis(sys_days{2026y / November / 22} + 16h + 45min), 1);
  envkit::Record rec = RecordShape().to_record(r);
  EXPECT_EQ(rec.id, "Bogotá@2026-11-22T16:45:00Z");
  auto doc = envkit::parse_json(rec.json);
  ASSERT_TRUE(doc.ok());
  EXPECT_STREQ((*doc)["id"].GetString(), "Bogotá@2026-11-22T16:45:00Z");
  EXPECT_STREQ((*doc)["observed_at"].GetString(), "2026-11-22T16:45:00Z");
  EXPECT_STREQ((*doc)["units"]["temperature_2m"].GetString(), "°C");
  EXPECT_TRUE((*doc)["weather_code"].IsInt());
  EXPECT_TRUE((*doc)["temperature_2m"].IsDouble());
}

TEST(Records, WeatherTweetsTemplateAndFieldMappings) {
  City c{"Chinautla", 14.7089, -90.4996, 1220};
  Reading r = simulate(c, envkit::SysMillis(sys_days{2026y / November / 22}), 1);
  auto shape = RecordShape::from_template("weather-tweets");
  ASSERT_TRUE(shape.ok());
  auto doc = envkit::parse_json(shape->to_record(r).json);
  ASSERT_TRUE(doc.ok());
  ASSERT_EQ(doc->MemberCount(), 6u);
  EXPECT_STREQ((*doc)["municipality"].GetString(), "Chinautla");
  EXPECT_EQ(std::string((*doc)["id"].GetString()).rfind("Chinautla@", 0), 0u);
  EXPECT_TRUE((*doc)["observed_at"].IsString());
  EXPECT_EQ(std::string((*doc)["weather"].GetString()), weather_text(static_cast<int>(*r.values[4])));
  auto bad = RecordShape::from_fields({"t=temperature"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("unknown reading field 'temperature'"), std::string::npos);
  EXPECT_FALSE(RecordShape::from_fields({"a=city", "a=latitude"}).ok());
  EXPECT_FALSE(RecordShape::from_template("tweets").ok());
}

const char* kOneCity = R"({"latitude":4.7,"longitude":-74.1,"generationtime_ms":0.1,"utc_offset_seconds":0,
  "timezone":"GMT","timezone_abbreviation":"GMT","elevation":2582.0,
  "current_units":{"time":"iso8601","interval":"seconds","temperature_2m":"°C","weather_code":"wmo code"},
  "current":{"time":"2026-11-22T16:45","interval":900,"temperature_2m":13.2,"weather_code":3}})";

TEST(OpenMeteo, UrlAsksEveryVariableForAllCitiesInUtc) {
  std::vector<City> cs{{"A", 4.711, -74.0721, 0}, {"B", -4.2, 69.9, 0}};
  std::string url = forecast_url("http://127.0.0.1:1/v1/forecast", cs);
  EXPECT_NE(url.find("latitude=4.7110,-4.2000&longitude=-74.0721,69.9000"), std::string::npos) << url;
  EXPECT_NE(url.find("current=temperature_2m,relative_humidity_2m,"), std::string::npos);
  EXPECT_NE(url.find("&timezone=GMT"), std::string::npos);
}

TEST(OpenMeteo, ParsesOneCityAndAList) {
  std::vector<City> one{{"Bogotá", 4.711, -74.0721, 2640}};
  auto r = parse_forecast(kOneCity, one);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].id(), "Bogotá@2026-11-22T16:45:00Z");
  EXPECT_EQ((*r)[0].values[0], 13.2);
  EXPECT_FALSE((*r)[0].values[1].has_value());  // not asked for in this response
  EXPECT_EQ((*r)[0].elevation, 2582.0);

  std::string list = std::string("[") + kOneCity + "," + kOneCity + "]";
  std::vector<City> two{{"A", 1, 1, 0}, {"B", 2, 2, 0}};
  auto l = parse_forecast(list, two);
  ASSERT_TRUE(l.ok()) << l.error().message;
  EXPECT_EQ((*l)[1].city, "B");
}

TEST(OpenMeteo, OffsetTimesAreConvertedToUtc) {
  std::string bogota_local = kOneCity;
  bogota_local.replace(bogota_local.find("\"utc_offset_seconds\":0"), 22, "\"utc_offset_seconds\":-18000");
  bogota_local.replace(bogota_local.find("16:45"), 5, "11:45");
  std::vector<City> one{{"Bogotá", 4.711, -74.0721, 2640}};
  auto r = parse_forecast(bogota_local, one);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)[0].id(), "Bogotá@2026-11-22T16:45:00Z");
}

TEST(OpenMeteo, BadBodiesAreDataErrors) {
  std::vector<City> one{{"A", 1, 1, 0}}, two{{"A", 1, 1, 0}, {"B", 2, 2, 0}};
  struct Case { std::string body, expect; const std::vector<City>* cities; };
  for (const Case& k : std::vector<Case>{
           {R"({"error":true,"reason":"Latitude must be in range of -90 to 90°."})", "API error: Latitude", &one},
           {R"({"current":{"time":"2026-11-22T16:45")", "malformed response", &one},
           {kOneCity, "expected a list of 2", &two},
           {std::string("[") + kOneCity + "]", "expected 2 locations, got 1", &two},
           {R"({"latitude":1})", "no 'current'", &one},
           {R"({"current":{"time":"yesterday"}})", "invalid time", &one},
           {R"({"current":{"time":"2026-11-22T16:45","temperature_2m":"warm"}})", "is not a number", &one},
           {"42", "expected an object or a list", &one},
       }) {
    auto r = parse_forecast(k.body, *k.cities);
    ASSERT_FALSE(r.ok()) << k.body;
    EXPECT_EQ(r.error().code, Exit::data);
    EXPECT_NE(r.error().message.find(k.expect), std::string::npos) << k.body << ": " << r.error().message;
  }
}

TEST(OpenMeteo, CallLimiterPacesCalls) {
  CallLimiter limiter(600);  // 10 a second, a bucket of 600
  auto t0 = steady_clock::now();
  ASSERT_TRUE(limiter.acquire(600));  // the whole bucket at once
  ASSERT_TRUE(limiter.acquire(2));    // then two more: about 0.2 s
  auto took = steady_clock::now() - t0;
  EXPECT_GE(took, milliseconds(150));
  EXPECT_LT(took, milliseconds(1500));
}

envkit::Result<envkit::ParseOutcome> parse(std::vector<std::string> args, Config& c) {
  args.insert(args.begin(), "sensor-push");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out;
  return parse_options(static_cast<int>(argv.size()), argv.data(), c, out);
}

TEST(SensorPushOptions, CrossChecksNameBothFlags) {
  struct Case { std::vector<std::string> args; std::string expect; };
  for (const Case& k : std::vector<Case>{
           {{}, "no sink"},
           {{"--to", "-", "--once", "--every", "15s"}, "choose one"},
           {{"--to", "-", "--rate", "100", "--duration", "1s"}, "--rate needs --source sim"},
           {{"--to", "-", "--source", "sim", "--rate", "100"}, "--rate needs --count or --duration"},
           {{"--to", "-", "--source", "sim", "--rate", "0", "--count", "1"}, "--rate must be greater than 0"},
           {{"--to", "-", "--concurrency", "4"}, "--concurrency goes with --rate"},
           {{"--to", "-", "--source", "sim", "--once", "--count", "5", "--concurrency", "2"}, "--concurrency goes with"},
           {{"--to", "-", "--duration", "1s"}, "--duration goes with --rate or --every"},
           {{"--to", "-", "--source", "weather"}, "--source must be open-meteo or sim"},
           {{"--to", "-", "--every", "0"}, "--every must be longer than 0"},
           {{"--to", "-", "--field", "a=city", "--template", "weather-tweets"}, "exclude each other"},
           {{"--to", "-", "--spool-max", "10"}, "--spool-max"},
       }) {
    Config c;
    auto r = parse(k.args, c);
    ASSERT_FALSE(r.ok()) << k.expect;
    EXPECT_EQ(r.error().code, Exit::usage);
    EXPECT_NE(r.error().message.find(k.expect), std::string::npos) << r.error().message;
  }
  Config ok;
  auto r = parse({"--to", "-", "--source", "sim", "--rate", "1000", "--duration", "2s", "--concurrency", "2"}, ok);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(ok.duration.value, seconds(2));
}

}  // namespace
}  // namespace sensor_push
