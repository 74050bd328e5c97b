// JSON values and a streaming writer (RapidJSON underneath; chosen by bench/json).
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <string>
#include <string_view>

#include <envkit/result.hpp>

namespace envkit {

/// A parsed JSON document (owns its values) and a value inside one.
using JsonDocument = rapidjson::Document;
using JsonValue = rapidjson::Value;

/// Parses one JSON text. Numbers keep full precision; the error names the byte offset.
Result<JsonDocument> parse_json(std::string_view text);

/// Serialises a value compactly (no spaces, no newline).
std::string to_json(const JsonValue& value);

/// Writes JSON text into a string, one token at a time:
///   w.begin_object(); w.key("city").string("Bogotá"); w.end_object();
/// Strings are escaped per RFC 8259; non-ASCII UTF-8 passes through unescaped.
class JsonWriter {
 public:
  JsonWriter() : writer_(buffer_) {}
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  JsonWriter& begin_object() { writer_.StartObject(); return *this; }
  JsonWriter& end_object() { writer_.EndObject(); return *this; }
  JsonWriter& begin_array() { writer_.StartArray(); return *this; }
  JsonWriter& end_array() { writer_.EndArray(); return *this; }
  JsonWriter& key(std::string_view k) {
    writer_.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()), true);
    return *this;
  }
  JsonWriter& string(std::string_view s) {
    writer_.String(s.data(), static_cast<rapidjson::SizeType>(s.size()), true);
    return *this;
  }
  JsonWriter& number(int64_t n) { writer_.Int64(n); return *this; }
  JsonWriter& number(uint64_t n) { writer_.Uint64(n); return *this; }
  JsonWriter& number(int n) { writer_.Int(n); return *this; }
  /// Doubles print in shortest round-trip form; NaN and infinities become null.
  JsonWriter& number(double d);
  JsonWriter& boolean(bool b) { writer_.Bool(b); return *this; }
  JsonWriter& null() { writer_.Null(); return *this; }
  /// Inserts already-serialised JSON as one value (trusted: not re-validated).
  JsonWriter& raw(std::string_view json) {
    writer_.RawValue(json.data(), json.size(), rapidjson::kObjectType);
    return *this;
  }
  JsonWriter& value(const JsonValue& v) { v.Accept(writer_); return *this; }

  /// True once exactly one complete top-level value has been written.
  bool complete() { return writer_.IsComplete(); }
  std::string_view view() const { return {buffer_.GetString(), buffer_.GetSize()}; }
  /// Returns the text and resets the writer for the next value.
  std::string take();

 private:
  rapidjson::StringBuffer buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

/// Looks up a member; nullptr when `object` is not an object or has no such key.
const JsonValue* find_member(const JsonValue& object, std::string_view key);

}  // namespace envkit
