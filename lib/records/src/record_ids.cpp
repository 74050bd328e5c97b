// Record ids for sources whose messages carry none of their own: the `id` member, or a digest.
#include <openssl/evp.h>

#include <optional>

#include "records_internal.hpp"

namespace envkit {

std::string content_id(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  // SHA-256 cannot fail on in-memory input; 128 bits of it are ample against collisions.
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < 16 && i < size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

namespace {

// The record's own id, if it has one.
std::optional<std::string> own_id(const JsonValue& record) {
  const JsonValue* id = find_member(record, "id");
  if (id == nullptr || id->IsNull()) return std::nullopt;
  if (id->IsString()) return std::string(id->GetString(), id->GetStringLength());
  return to_json(*id);
}

std::optional<std::string> own_id_of_text(JsonDocument& doc, std::string_view text) {
  doc.SetNull();
  doc.GetAllocator().Clear();  // the last record's values go
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  return own_id(doc);
}

}  // namespace

std::string record_id(const JsonValue& record, std::string_view fallback) {
  return own_id(record).value_or(std::string(fallback));
}

std::string record_id_of_text(JsonDocument& doc, std::string_view text, std::string_view fallback) {
  return own_id_of_text(doc, text).value_or(std::string(fallback));
}

std::string record_id_or_digest(JsonDocument& doc, std::string_view text) {
  auto id = own_id_of_text(doc, text);
  return id ? std::move(*id) : content_id(text);
}

}  // namespace envkit
