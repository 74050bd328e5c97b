// What sinks share: integer URL parameters and {member} key templates.
#include <envkit/sinks.hpp>

#include <cerrno>
#include <climits>
#include <cstdlib>

#include "records_internal.hpp"

namespace envkit {

Result<long> int_param(const Url& url, const char* name, long fallback, long min, long max) {
  auto v = url.param(name);
  if (!v) return fallback;
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0 || n < min || n > max) {
    std::string range = max == LONG_MAX ? " of " + std::to_string(min) + " or more"
                                        : " from " + std::to_string(min) + " to " + std::to_string(max);
    return Error{Exit::usage, url.redacted() + ": " + name + " must be a whole number" + range};
  }
  return n;
}

Result<std::string> expand_template(std::string_view tmpl, const JsonValue& record) {
  std::string out;
  out.reserve(tmpl.size() + 32);
  size_t i = 0;
  while (i < tmpl.size()) {
    size_t open = tmpl.find('{', i);
    if (open == std::string_view::npos) {
      out.append(tmpl.substr(i));
      break;
    }
    size_t close = tmpl.find('}', open);
    if (close == std::string_view::npos) {
      return Error{Exit::usage, "template '" + std::string(tmpl) + "': '{' without '}'"};
    }
    out.append(tmpl.substr(i, open - i));
    std::string_view member = tmpl.substr(open + 1, close - open - 1);
    const JsonValue* v = find_member(record, member);
    if (v == nullptr || v->IsNull()) {
      return Error{Exit::data, "the record has no '" + std::string(member) + "' for the key template"};
    }
    if (v->IsString()) out.append(v->GetString(), v->GetStringLength());
    else out.append(to_json(*v));
    i = close + 1;
  }
  return out;
}

}  // namespace envkit
