// The per-scheme sink and source constructors behind the registry; not public API.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <envkit/json.hpp>
#include <envkit/registry.hpp>
#include <envkit/sinks.hpp>
#include <envkit/source.hpp>

namespace envkit {

/// Query parameter `name` as a whole number in [min, max], `fallback` when absent. Errors
/// (Exit::usage) name the URL and the range.
Result<long> int_param(const Url& url, const char* name, long fallback, long min, long max);

Result<std::unique_ptr<Sink>> open_mysql_sink(Url url, const SinkOptions& options);
Result<std::unique_ptr<Sink>> open_redis_sink(Url url, const SinkOptions& options);
Result<std::unique_ptr<Sink>> open_http_sink(Url url, const SinkOptions& options);
Result<std::unique_ptr<Sink>> open_stream_sink(const Url& url);

/// redis://...?stream=S&group=G (a consumer group) or ?list=L (a reliable queue): see the
/// registry's parameter text and redis_source.cpp.
Result<std::unique_ptr<Source>> open_redis_source(const Url& url, const SourceOptions& options);
/// http://HOST:PORT/PATH: HTTP ingest (records POSTed, answered once settled).
Result<std::unique_ptr<Source>> open_http_source(const Url& url, const SourceOptions& options);
/// "-" (stdin) or file:PATH, JSON Lines.
Result<std::unique_ptr<Source>> open_stream_source(const Url& url);

/// What a source handed out and has not yet seen settled, by the handle it gave each: the
/// handles themselves, and the check that every settlement names a record that is out.
template <class T>
class Outstanding {
 public:
  /// Keeps `value` and returns the new record's handle.
  uint64_t add(T value) {
    items_.emplace(++last_, std::move(value));
    return last_;
  }
  T* find(uint64_t handle) {
    auto it = items_.find(handle);
    return it == items_.end() ? nullptr : &it->second;
  }
  /// Removes and returns what `handle` was given for; nullopt when it is not out (never
  /// handed out, or settled already), which settled() then reports.
  std::optional<T> take(uint64_t handle) {
    auto it = items_.find(handle);
    if (it == items_.end()) {
      stray_ = handle;
      return std::nullopt;
    }
    T value = std::move(it->second);
    items_.erase(it);
    return value;
  }
  bool empty() const { return items_.empty(); }
  /// Calls f(value) for everything out, in no particular order.
  template <class F>
  void for_each(F f) const {
    for (const auto& [handle, value] : items_) f(value);
  }
  /// The end of a settle(): Exit::software when a settlement named a handle not out.
  Status settled(const std::string& source_name) {
    if (!stray_) return {};
    auto handle = *stray_;
    stray_.reset();
    return Error{Exit::software, source_name + ": settled handle " + std::to_string(handle) +
                                     ", which is not out (or was settled already)"};
  }

 private:
  uint64_t last_ = 0;
  std::unordered_map<uint64_t, T> items_;
  std::optional<uint64_t> stray_;
};

/// A stable id for a record that carries none: "sha256:" and the first 32 hex digits of the
/// SHA-256 of `text`, so the same record read twice (a redelivery, a re-run over the same
/// input) gets the same id and a sink with a unique key absorbs the duplicate.
std::string content_id(std::string_view text);
/// The record's own id: its top-level `id` member (a string as it is, another value as JSON
/// text), or `fallback` when it has none (or is not an object).
std::string record_id(const JsonValue& record, std::string_view fallback);
/// record_id() of the JSON text `text`, parsed into `doc` (reused between calls, so its
/// memory is too): `fallback` when the text is not a JSON object or has no `id`.
std::string record_id_of_text(JsonDocument& doc, std::string_view text, std::string_view fallback);
/// record_id_of_text() with content_id(text) as the fallback, worked out only when needed
/// (most records carry an id: no digest for them).
std::string record_id_or_digest(JsonDocument& doc, std::string_view text);

/// Connects and starts consuming ?queue= (which must exist). Errors: as
/// AmqpConnection::connect and ::consume (Exit::config for a missing queue).
Result<std::unique_ptr<Source>> open_amqp_source(const Url& url, const SourceOptions& options);
/// Joins ?group= and subscribes to the topic. Errors: as KafkaConsumer::connect.
Result<std::unique_ptr<Source>> open_kafka_source(const Url& url, const SourceOptions& options);

}  // namespace envkit
