// JSON parsing and serialisation on top of RapidJSON.
#include <envkit/json.hpp>

#include <rapidjson/error/en.h>

#include <cmath>

namespace envkit {

Result<JsonDocument> parse_json(std::string_view text) {
  JsonDocument doc;
  // Without kParseStopWhenDoneFlag, trailing non-space text is an error, as it should be.
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
  if (doc.HasParseError()) {
    return Error{Exit::data, std::string("invalid JSON at byte ") +
                                 std::to_string(doc.GetErrorOffset()) + ": " +
                                 rapidjson::GetParseError_En(doc.GetParseError())};
  }
  return doc;
}

std::string to_json(const JsonValue& value) {
  JsonWriter w;
  w.value(value);
  return w.take();
}

JsonWriter& JsonWriter::number(double d) {
  if (std::isfinite(d)) {
    writer_.Double(d);
  } else {
    writer_.Null();
  }
  return *this;
}

std::string JsonWriter::take() {
  std::string out(buffer_.GetString(), buffer_.GetSize());
  buffer_.Clear();
  writer_.Reset(buffer_);
  return out;
}

const JsonValue* find_member(const JsonValue& object, std::string_view key) {
  if (!object.IsObject()) return nullptr;
  auto it = object.FindMember(
      JsonValue(rapidjson::StringRef(key.data(), static_cast<rapidjson::SizeType>(key.size()))));
  return it == object.MemberEnd() ? nullptr : &it->value;
}

}  // namespace envkit
