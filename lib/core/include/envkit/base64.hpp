// Base64 (RFC 4648, standard alphabet, with padding): binary values in records, HTTP Basic
// credentials. One implementation for every command.
#pragma once

#include <string>
#include <string_view>

#include <envkit/result.hpp>

namespace envkit {

/// `bytes` in standard base64, padded.
std::string base64_encode(std::string_view bytes);
/// The same, written at `out` (room for (bytes.size() + 2) / 3 * 4 chars); returns its end.
/// For writers that format straight into a buffer (db-backup's row encoder).
char* base64_encode_to(char* out, std::string_view bytes);
/// Decodes standard padded base64; Exit::data (bad_data) on a malformed input.
Result<std::string> base64_decode(std::string_view text);

}  // namespace envkit
