// RecordIndex: keyed and multiset comparison of record streams.
#include "db-backup/record_index.hpp"

#include <envkit/json.hpp>

namespace db_backup {

Result<std::pair<std::string, std::string>> RecordIndex::key_and_record(
    std::string_view record) const {
  auto doc = envkit::parse_json(record);
  if (!doc) return doc.error();
  if (!doc->IsObject()) return Error{Exit::data, "a record is not a JSON object"};
  std::string canonical = canonical_json(*doc);
  if (key_.empty()) return std::make_pair(canonical, canonical);
  envkit::JsonValue k(rapidjson::kObjectType);
  auto& alloc = doc->GetAllocator();
  for (const auto& name : key_) {
    const auto* v = envkit::find_member(*doc, name);
    envkit::JsonValue copy;
    if (v) copy.CopyFrom(*v, alloc);
    k.AddMember(
        envkit::JsonValue(name.c_str(), static_cast<rapidjson::SizeType>(name.size()), alloc), copy,
        alloc);
  }
  return std::make_pair(canonical_json(k), canonical);
}

Status RecordIndex::add(std::string_view record) {
  auto kr = key_and_record(record);
  if (!kr) return kr.error();
  if (key_.empty()) {
    multiset_[kr->first]++;
    return {};
  }
  if (!by_key_.emplace(std::move(kr->first), std::move(kr->second)).second) {
    return Error{Exit::data, "two records with one key"};
  }
  return {};
}

Status RecordIndex::match(std::string_view record, const std::string& object,
                          const std::function<void(const Difference&)>& report) {
  auto kr = key_and_record(record);
  if (!kr) return kr.error();
  if (key_.empty()) {
    auto it = multiset_.find(kr->first);
    if (it == multiset_.end()) {
      report({object, "added", kr->first, "", kr->second});
    } else if (--it->second == 0) {
      multiset_.erase(it);
    }
    return {};
  }
  auto it = by_key_.find(kr->first);
  if (it == by_key_.end()) {
    report({object, "added", kr->first, "", kr->second});
    return {};
  }
  if (it->second != kr->second) report({object, "changed", kr->first, it->second, kr->second});
  by_key_.erase(it);
  return {};
}

void RecordIndex::report_unmatched(const std::string& object,
                                   const std::function<void(const Difference&)>& report) {
  for (const auto& [key, rec] : by_key_) report({object, "removed", key, rec, ""});
  for (const auto& [rec, count] : multiset_)
    for (uint64_t i = 0; i < count; ++i) report({object, "removed", rec, rec, ""});
  by_key_.clear();
  multiset_.clear();
}

std::string difference_json(const Difference& d) {
  envkit::JsonWriter w;
  w.begin_object();
  w.key("object").string(d.object);
  w.key("change").string(d.change);
  w.key("key").raw(d.key);
  if (!d.before.empty()) w.key("before").raw(d.before);
  if (!d.after.empty()) w.key("after").raw(d.after);
  w.end_object();
  return w.take();
}

}  // namespace db_backup
