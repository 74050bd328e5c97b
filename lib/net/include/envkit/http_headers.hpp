// HTTP header fields as the client (http.hpp) and the server (http_server.hpp) both carry them.
#pragma once

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace envkit {

/// Header fields in order, names as written (compare them case-insensitively).
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

/// True when two header names are the same, ignoring ASCII case.
inline bool header_name_equals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

/// A header line's name or value without the blanks around it (and a line end).
inline std::string_view trim_field(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

/// The value of the first field called `name` (case-insensitive), if any.
inline std::optional<std::string_view> find_header(const HttpHeaders& headers,
                                                   std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (header_name_equals(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

}  // namespace envkit
