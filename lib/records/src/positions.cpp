// Source positions a sink keeps: held records and the positions to store with a batch.
#include <envkit/positions.hpp>

#include <algorithm>

namespace envkit {

PositionKeeper::Plan PositionKeeper::plan(std::span<const Record> batch,
                                          const std::map<Partition, int64_t>& stored) const {
  Plan plan;
  plan.held.assign(batch.size(), false);
  std::map<Partition, int64_t> highest;
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& p = batch[i].position;
    if (!p) continue;
    Partition key = partition_of(*p);
    auto s = stored.find(key);
    plan.held[i] = s != stored.end() && p->offset <= s->second;
    auto [h, inserted] = highest.try_emplace(key, p->offset);
    if (!inserted) h->second = std::max(h->second, p->offset);
  }
  for (auto [key, offset] : highest) {
    // A failed record below this batch's highest offset that this batch does not carry
    // again caps the position just below it.
    if (auto h = holes_.find(key); h != holes_.end()) {
      for (int64_t hole : h->second) {
        bool in_batch = std::any_of(batch.begin(), batch.end(), [&](const Record& r) {
          return r.position && r.position->offset == hole && partition_of(*r.position) == key;
        });
        if (!in_batch) {
          offset = std::min(offset, hole - 1);
          break;  // the set is ordered: the first hole not in the batch is the lowest
        }
      }
    }
    auto s = stored.find(key);
    if (s != stored.end() && offset <= s->second) continue;
    plan.store.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), offset});
  }
  return plan;
}

void PositionKeeper::written(std::span<const Record> records) {
  for (const auto& r : records) {
    if (!r.position) continue;
    auto h = holes_.find(partition_of(*r.position));
    if (h == holes_.end()) continue;
    h->second.erase(r.position->offset);
    if (h->second.empty()) holes_.erase(h);
  }
}

void PositionKeeper::failed(std::span<const Record> records) {
  for (const auto& r : records) {
    if (r.position) holes_[partition_of(*r.position)].insert(r.position->offset);
  }
}

size_t PositionKeeper::holes() const {
  size_t n = 0;
  for (const auto& [key, offsets] : holes_) n += offsets.size();
  return n;
}

}  // namespace envkit
