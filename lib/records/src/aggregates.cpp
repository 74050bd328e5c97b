// Aggregate specs (count:BY, mean:FIELD:BY, ...) and a record's inputs to them.
#include <envkit/aggregates.hpp>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace envkit {
namespace {

constexpr std::pair<std::string_view, AggregateSpec::Kind> kKinds[] = {
    {"count", AggregateSpec::Kind::count}, {"sum", AggregateSpec::Kind::sum},
    {"min", AggregateSpec::Kind::min},     {"max", AggregateSpec::Kind::max},
    {"mean", AggregateSpec::Kind::mean},
};

std::vector<std::string_view> split(std::string_view text, char at) {
  std::vector<std::string_view> out;
  for (size_t from = 0;;) {
    size_t end = text.find(at, from);
    out.push_back(text.substr(from, end == std::string_view::npos ? std::string_view::npos : end - from));
    if (end == std::string_view::npos) return out;
    from = end + 1;
  }
}

Result<AggregateSpec> parse_one(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Error{Exit::usage, "aggregate '" + std::string(text) + "': " + why +
                                  " (count:BY, or sum|min|max|mean:FIELD:BY)"};
  };
  auto parts = split(text, ':');
  AggregateSpec spec;
  bool known = false;
  for (const auto& [name, kind] : kKinds) {
    if (parts[0] == name) spec.kind = kind, known = true;
  }
  if (!known) return bad("unknown kind '" + std::string(parts[0]) + "'");
  size_t want = spec.kind == AggregateSpec::Kind::count ? 2 : 3;
  if (parts.size() != want) return bad(std::to_string(want - 1) + " member name(s) expected");
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i].empty()) return bad("empty member name");
  }
  spec.by = std::string(parts.back());
  if (want == 3) spec.value = std::string(parts[1]);
  return spec;
}

std::string_view kind_name(AggregateSpec::Kind kind) {
  for (const auto& [name, k] : kKinds) {
    if (k == kind) return name;
  }
  return "?";
}

}  // namespace

std::string AggregateSpec::text() const {
  std::string out(kind_name(kind));
  if (!value.empty()) out += ":" + value;
  return out + ":" + by;
}

Result<std::vector<AggregateSpec>> parse_aggregates(std::string_view text) {
  std::vector<AggregateSpec> out;
  for (auto piece : split(text, ',')) {
    auto spec = parse_one(piece);
    if (!spec) return spec.error();
    for (const auto& seen : out) {
      if (seen.text() == spec->text()) return Error{Exit::usage, "aggregate '" + seen.text() + "' given twice"};
    }
    out.push_back(std::move(*spec));
  }
  return out;
}

Result<std::vector<AggregateInput>> aggregate_inputs(const std::vector<AggregateSpec>& specs,
                                                     const JsonValue& record) {
  std::vector<AggregateInput> out;
  out.reserve(specs.size());
  for (const auto& spec : specs) {
    AggregateInput in;
    auto g = record.FindMember(spec.by.c_str());
    if (g == record.MemberEnd()) return Error{Exit::data, "no member '" + spec.by + "' for aggregate " + spec.text()};
    if (g->value.IsString()) in.group.assign(g->value.GetString(), g->value.GetStringLength());
    else if (g->value.IsNumber() || g->value.IsBool()) in.group = to_json(g->value);
    else return Error{Exit::data, "member '" + spec.by + "' is not a string, number or boolean, for aggregate " + spec.text()};
    if (spec.kind != AggregateSpec::Kind::count) {
      auto v = record.FindMember(spec.value.c_str());
      if (v == record.MemberEnd()) return Error{Exit::data, "no member '" + spec.value + "' for aggregate " + spec.text()};
      double n = 0;
      bool ok = false;
      if (v->value.IsNumber()) {
        n = v->value.GetDouble();
        ok = true;
      } else if (v->value.IsString() && v->value.GetStringLength() > 0) {
        // A stream entry's fields are all strings: "21.5" is the number it was.
        const char* s = v->value.GetString();
        char* end = nullptr;
        errno = 0;
        n = std::strtod(s, &end);
        ok = end == s + v->value.GetStringLength() && errno == 0 && !std::isspace(static_cast<unsigned char>(*s));
      }
      if (!ok || !std::isfinite(n)) {
        return Error{Exit::data, "member '" + spec.value + "' is not a number, for aggregate " + spec.text()};
      }
      char buf[32];  // the shortest text that reads back as the same double
      auto end = std::to_chars(buf, buf + sizeof buf, n).ptr;
      in.number.assign(buf, end);
    }
    out.push_back(std::move(in));
  }
  return out;
}

}  // namespace envkit
