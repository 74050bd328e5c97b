// Record-by-record comparison of two streams of one object's records (diff, verify --against):
// by key when the object has one, as a multiset of whole records when it has none.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "db-backup/backend.hpp"

namespace db_backup {

/// Holds the "before" side of a comparison in memory (key -> canonical record), then takes
/// the "after" side record by record. Memory: the before side's records.
class RecordIndex {
 public:
  /// `key`: the fields that identify a record; empty to compare whole records.
  explicit RecordIndex(std::vector<std::string> key) : key_(std::move(key)) {}

  /// Adds a record of the before side (JSON object text). Exit::data for invalid JSON or a
  /// key seen twice.
  Status add(std::string_view record);
  /// Matches a record of the after side: reports "added" or "changed" differences.
  Status match(std::string_view record, const std::string& object,
               const std::function<void(const Difference&)>& report);
  /// Reports every before record that no after record matched as "removed".
  void report_unmatched(const std::string& object,
                        const std::function<void(const Difference&)>& report);

 private:
  Result<std::pair<std::string, std::string>> key_and_record(std::string_view record) const;

  std::vector<std::string> key_;
  std::unordered_map<std::string, std::string> by_key_;  // key -> canonical record
  std::unordered_map<std::string, uint64_t> multiset_;   // canonical record -> count
};

/// A difference as one JSON Lines record:
/// {"object":..,"change":..,"key":{..},"before":..,"after":..}.
std::string difference_json(const Difference& d);

}  // namespace db_backup
