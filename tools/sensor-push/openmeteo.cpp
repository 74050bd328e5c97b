// Open-Meteo: URLs, response parsing, and a fetch loop with retries, backoff and pacing.
#include "sensor-push/openmeteo.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <envkit/json.hpp>
#include <envkit/log.hpp>
#include <envkit/signals.hpp>

namespace sensor_push {

using envkit::Error;
using envkit::Exit;
using envkit::Result;
using namespace std::chrono;

namespace {

std::string coordinate(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

bool is_retryable_status(long status) { return status == 429 || status == 408 || status >= 500; }

std::string api_reason(const envkit::JsonValue& v) {
  const auto* reason = envkit::find_member(v, "reason");
  return reason != nullptr && reason->IsString() ? reason->GetString() : "no reason given";
}

Result<Reading> parse_location(const envkit::JsonValue& loc, const City& city) {
  auto bad = [&](const std::string& why) { return Error{Exit::data, why}; };
  if (!loc.IsObject()) return bad("expected an object per location");
  if (const auto* err = envkit::find_member(loc, "error"); err != nullptr && err->IsTrue()) {
    return bad("API error: " + api_reason(loc));
  }
  const auto* current = envkit::find_member(loc, "current");
  if (current == nullptr || !current->IsObject()) return bad("no 'current' object in the response");
  const auto* time = envkit::find_member(*current, "time");
  if (time == nullptr || !time->IsString()) return bad("no 'current.time' in the response");
  int offset = 0;
  if (const auto* off = envkit::find_member(loc, "utc_offset_seconds"); off != nullptr && off->IsInt()) {
    offset = off->GetInt();
  }
  auto observed = envkit::parse_time(time->GetString(), offset, false);
  if (!observed) return bad(observed.error().message);

  Reading r;
  r.city = city.name;
  r.latitude = city.latitude;
  r.longitude = city.longitude;
  r.elevation = city.elevation;
  if (const auto* el = envkit::find_member(loc, "elevation"); el != nullptr && el->IsNumber()) {
    r.elevation = el->GetDouble();
  }
  r.observed_at = *observed;
  r.source = "open-meteo";
  const auto* units = envkit::find_member(loc, "current_units");
  for (size_t i = 0; i < kVariables.size(); ++i) {
    const auto* v = envkit::find_member(*current, kVariables[i].name);
    if (v != nullptr && v->IsNumber()) r.values[i] = v->GetDouble();
    else if (v != nullptr && !v->IsNull()) return bad("'current." + std::string(kVariables[i].name) + "' is not a number");
    if (units != nullptr) {
      const auto* u = envkit::find_member(*units, kVariables[i].name);
      if (u != nullptr && u->IsString()) r.units[i] = u->GetString();
    }
  }
  return r;
}

}  // namespace

std::string forecast_url(std::string_view api_url, std::span<const City> cities) {
  std::string lat, lon;
  for (const auto& c : cities) {
    lat += (lat.empty() ? "" : ",") + coordinate(c.latitude);
    lon += (lon.empty() ? "" : ",") + coordinate(c.longitude);
  }
  std::string current;
  for (const auto& v : kVariables) current += (current.empty() ? "" : ",") + std::string(v.name);
  std::string url(api_url);
  url += url.find('?') == std::string::npos ? '?' : '&';
  url += "latitude=" + lat + "&longitude=" + lon + "&current=" + current + "&timezone=GMT";
  return url;
}

Result<std::vector<Reading>> parse_forecast(std::string_view body, std::span<const City> cities) {
  auto doc = envkit::parse_json(body);
  if (!doc) return Error{Exit::data, "malformed response: " + doc.error().message};
  std::vector<Reading> out;
  if (doc->IsObject()) {
    if (const auto* err = envkit::find_member(*doc, "error"); err != nullptr && err->IsTrue()) {
      return Error{Exit::data, "API error: " + api_reason(*doc)};
    }
    if (cities.size() != 1) {
      return Error{Exit::data, "expected a list of " + std::to_string(cities.size()) + " locations, got one"};
    }
    auto r = parse_location(*doc, cities[0]);
    if (!r) return r.error();
    out.push_back(std::move(*r));
    return out;
  }
  if (!doc->IsArray()) return Error{Exit::data, "expected an object or a list of locations"};
  if (doc->Size() != cities.size()) {
    return Error{Exit::data, "expected " + std::to_string(cities.size()) + " locations, got " +
                                 std::to_string(doc->Size())};
  }
  for (rapidjson::SizeType i = 0; i < doc->Size(); ++i) {
    auto r = parse_location((*doc)[i], cities[i]);
    if (!r) return r.error();
    out.push_back(std::move(*r));
  }
  return out;
}

CallLimiter::CallLimiter(double calls_per_minute)
    : per_second_(calls_per_minute / 60.0), tokens_(calls_per_minute), last_(steady_clock::now()) {}

bool CallLimiter::acquire(size_t n) {
  double need = static_cast<double>(n);
  double cap = per_second_ * 60.0;
  while (true) {
    auto now = steady_clock::now();
    tokens_ = std::min(cap, tokens_ + duration<double>(now - last_).count() * per_second_);
    last_ = now;
    if (tokens_ >= std::min(need, cap)) {
      tokens_ -= need;  // may go negative for a batch larger than the bucket: later calls wait
      return true;
    }
    auto wait = duration<double>((std::min(need, cap) - tokens_) / per_second_);
    if (!envkit::sleep_unless_stopped(ceil<milliseconds>(wait))) return false;
  }
}

OpenMeteoSource::OpenMeteoSource(envkit::HttpClient client, OpenMeteoOptions options, uint64_t jitter_seed)
    : client_(std::move(client)),
      options_(std::move(options)),
      limiter_(options_.calls_per_minute),
      jitter_state_(jitter_seed | 1) {}

milliseconds OpenMeteoSource::backoff(int attempt, std::optional<std::string_view> retry_after) {
  // Full jitter (AWS architecture blog): uniform in [0, min(max, base * 2^attempt)].
  double cap = std::min<double>(static_cast<double>(options_.backoff_max.count()),
                                static_cast<double>(options_.backoff_base.count()) * std::pow(2.0, attempt));
  jitter_state_ ^= jitter_state_ << 13;
  jitter_state_ ^= jitter_state_ >> 7;
  jitter_state_ ^= jitter_state_ << 17;
  auto wait = milliseconds(static_cast<int64_t>(cap * static_cast<double>(jitter_state_ % 1000) / 1000.0));
  if (retry_after) {
    // Seconds only; an HTTP-date Retry-After falls back to the computed backoff.
    char* end = nullptr;
    std::string s(*retry_after);
    long secs = std::strtol(s.c_str(), &end, 10);
    if (end != s.c_str() && secs >= 0) wait = std::max(wait, milliseconds(std::min<long>(secs, 300) * 1000));
  }
  return std::min(wait, std::max(options_.backoff_max, milliseconds(1)));
}

FetchResult OpenMeteoSource::fetch(const std::vector<City>& cities) {
  FetchResult result;
  std::vector<Call> pending;
  size_t batch = std::max<size_t>(1, options_.batch_size);
  for (size_t i = 0; i < cities.size(); i += batch) {
    Call c;
    c.cities.assign(cities.begin() + static_cast<long>(i),
                    cities.begin() + static_cast<long>(std::min(cities.size(), i + batch)));
    pending.push_back(std::move(c));
  }
  auto fail_all = [&](const Call& call, const std::string& why, Exit code = Exit::unavailable) {
    for (const auto& c : call.cities) result.errors.push_back(c.name + ": " + why);
    if (result.failure != Exit::unavailable) result.failure = code;
  };

  while (!pending.empty()) {
    if (envkit::stop_requested()) {
      for (const auto& call : pending) fail_all(call, "not fetched: stopping");
      break;
    }
    // Send every call whose backoff has passed; otherwise sleep until the first one is due.
    auto now = steady_clock::now();
    std::vector<Call> due, later;
    for (auto& call : pending) (call.not_before <= now ? due : later).push_back(std::move(call));
    pending = std::move(later);
    if (due.empty()) {
      auto next = std::min_element(pending.begin(), pending.end(), [](const Call& a, const Call& b) {
                    return a.not_before < b.not_before;
                  })->not_before;
      envkit::sleep_unless_stopped(ceil<milliseconds>(next - now));
      continue;
    }
    if (!limiter_.acquire(due.size())) {
      for (const auto& call : due) fail_all(call, "not fetched: stopping");
      continue;
    }
    std::vector<envkit::HttpRequest> requests;
    for (const auto& call : due) {
      envkit::HttpRequest req;
      req.url = forecast_url(options_.api_url, call.cities);
      req.timeout = options_.call_timeout;
      requests.push_back(std::move(req));
    }
    result.calls += requests.size();
    auto responses = client_.perform_all(requests, options_.concurrency);
    for (size_t i = 0; i < due.size(); ++i) {
      Call& call = due[i];
      ++call.attempts;
      std::string why;
      bool retry = false, split = false;
      std::optional<std::string_view> retry_after;
      if (!responses) {
        why = responses.error().message;
        retry = true;
      } else if (const auto& resp = (*responses)[i]; !resp) {
        why = resp.error().message;
        retry = resp.error().code == Exit::unavailable || resp.error().code == Exit::temp_fail;
      } else if (resp->status != 200) {
        why = "HTTP " + std::to_string(resp->status);
        if (auto doc = envkit::parse_json(resp->body); doc && doc->IsObject()) {
          if (const auto* r = envkit::find_member(*doc, "reason"); r != nullptr && r->IsString()) {
            why += ": " + std::string(r->GetString());
          }
        }
        retry = is_retryable_status(resp->status);
        split = !retry;
        if (auto ra = resp->header("Retry-After")) retry_after = ra;
      } else if (auto readings = parse_forecast(resp->body, call.cities); !readings) {
        why = readings.error().message;
        split = true;
      } else {
        for (auto& r : *readings) result.readings.push_back(std::move(r));
        continue;
      }
      if (split && call.cities.size() > 1) {
        envkit::log_warning("Open-Meteo call for " + std::to_string(call.cities.size()) +
                            " cities failed (" + why + "); asking city by city");
        for (const auto& c : call.cities) {
          Call one;
          one.cities = {c};
          pending.push_back(std::move(one));
        }
      } else if (retry && call.attempts <= options_.max_retries) {
        auto wait = backoff(call.attempts - 1, retry_after);
        envkit::log_info("Open-Meteo: " + why + "; retry " + std::to_string(call.attempts) + " of " +
                         std::to_string(options_.max_retries) + " in " + std::to_string(wait.count()) + " ms");
        ++result.retries;
        call.not_before = steady_clock::now() + wait;
        pending.push_back(std::move(call));
      } else {
        std::string attempts = call.attempts > 1 ? " after " + std::to_string(call.attempts) + " attempts" : "";
        fail_all(call, why + attempts, retry ? Exit::unavailable : Exit::data);
      }
    }
  }
  return result;
}

}  // namespace sensor_push
