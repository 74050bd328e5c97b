// Running aggregates a Redis sink keeps beside the records: the --to URL's aggregate=SPEC
// parameters parsed, and each record's inputs to them (its group and number) read.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <envkit/json.hpp>
#include <envkit/result.hpp>

namespace envkit {

/// One aggregate: count of records by a member, or sum, min, max or mean of a numeric
/// member by a member.
struct AggregateSpec {
  enum class Kind { count, sum, min, max, mean };
  Kind kind = Kind::count;
  std::string value;  ///< the numeric member (empty for count)
  std::string by;     ///< the member whose value names the group

  /// The spec as written: "count:municipality", "mean:temperature:municipality".
  std::string text() const;
  /// The hash that holds it under `prefix`: PREFIX + text() ("agg:count:municipality"); a
  /// mean also keeps that key + ":sum" and + ":n" beside it.
  std::string key(std::string_view prefix) const { return std::string(prefix) + text(); }
};

/// Parses a comma-separated list of specs: count:BY, sum:FIELD:BY, min:FIELD:BY,
/// max:FIELD:BY, mean:FIELD:BY. Errors (Exit::usage) name the bad spec; a spec given twice
/// is an error too (it would be counted twice).
Result<std::vector<AggregateSpec>> parse_aggregates(std::string_view text);

/// What one record adds to one aggregate: the group's name and, except for count, the number
/// as the shortest text that reads back as the same double.
struct AggregateInput {
  std::string group;
  std::string number;
};

/// The record's inputs to every spec, in order. The group member must be a string, number or
/// boolean (a string as it is, others as JSON text); the value member a JSON number or a
/// string that is one whole finite number (as a Redis stream carries it). Errors (Exit::data)
/// say which member and why, for the record's rejection.
Result<std::vector<AggregateInput>> aggregate_inputs(const std::vector<AggregateSpec>& specs,
                                                     const JsonValue& record);

}  // namespace envkit
