// The Kafka source's offset ledger: open offsets per partition and the safe commit position.
#include <envkit/kafka_ledger.hpp>

#include <algorithm>

namespace envkit {

std::optional<int64_t> KafkaOffsetLedger::Partition::position() const {
  // Nothing settled yet: the position is where the group already stands.
  if (!highest_settled) return std::nullopt;
  if (open.empty()) return *highest_settled + 1;
  return std::min(open.begin()->first, *highest_settled + 1);
}

uint64_t KafkaOffsetLedger::issue(int32_t partition, int64_t offset, Open& open) {
  open.handle = next_handle_++;
  ++open.deliveries;
  handles_.emplace(open.handle, KafkaOffset{partition, offset});
  return open.handle;
}

uint32_t KafkaOffsetLedger::remembered_deliveries(int32_t partition, int64_t offset) {
  auto it = remembered_.find({partition, offset});
  if (it == remembered_.end()) return 0;
  uint32_t n = it->second;
  remembered_.erase(it);  // its stale key in remembered_order_ is skipped when it comes up
  return n;
}

KafkaOffsetLedger::Entry KafkaOffsetLedger::handed_out(int32_t partition, int64_t offset,
                                                       uint64_t* handle) {
  Partition& p = partitions_[partition];
  auto [it, inserted] = p.open.try_emplace(offset);
  if (inserted) {
    it->second.deliveries = remembered_deliveries(partition, offset);
  } else if (it->second.handle != 0) {
    handles_.erase(it->second.handle);
  }
  *handle = issue(partition, offset, it->second);
  return {partition, offset, it->second.deliveries};
}

std::optional<KafkaOffsetLedger::Entry> KafkaOffsetLedger::handed_out_again(int32_t partition,
                                                                            int64_t offset,
                                                                            uint64_t* handle) {
  auto p = partitions_.find(partition);
  if (p == partitions_.end()) return std::nullopt;
  auto it = p->second.open.find(offset);
  if (it == p->second.open.end() || it->second.handle != 0) return std::nullopt;
  *handle = issue(partition, offset, it->second);
  return Entry{partition, offset, it->second.deliveries};
}

std::optional<KafkaOffsetLedger::Entry> KafkaOffsetLedger::settle(uint64_t handle,
                                                                  Verdict verdict) {
  auto h = handles_.find(handle);
  if (h == handles_.end()) return std::nullopt;
  KafkaOffset where = h->second;
  handles_.erase(h);
  Partition& p = partitions_.at(where.partition);  // a known handle's partition is held
  auto it = p.open.find(where.offset);
  Entry entry{where.partition, where.offset, it->second.deliveries};
  if (verdict == Verdict::retry) {
    it->second.handle = 0;  // still open: the commit stays below it
  } else {
    p.open.erase(it);
    p.highest_settled = std::max(p.highest_settled.value_or(where.offset), where.offset);
  }
  return entry;
}

std::vector<KafkaOffset> KafkaOffsetLedger::committable() const {
  std::vector<KafkaOffset> out;
  for (const auto& [partition, p] : partitions_) {
    auto pos = p.position();
    if (pos && (!p.committed || *pos > *p.committed)) out.push_back({partition, *pos});
  }
  return out;
}

void KafkaOffsetLedger::committed(std::span<const KafkaOffset> offsets) {
  for (const auto& o : offsets) {
    auto p = partitions_.find(o.partition);
    if (p == partitions_.end()) continue;  // revoked meanwhile
    p->second.committed = std::max(p->second.committed.value_or(o.offset), o.offset);
  }
}

std::optional<KafkaOffset> KafkaOffsetLedger::revoke(int32_t partition) {
  auto it = partitions_.find(partition);
  if (it == partitions_.end()) return std::nullopt;
  Partition& p = it->second;
  std::optional<KafkaOffset> safe;
  if (auto pos = p.position(); pos && (!p.committed || *pos > *p.committed)) {
    safe = KafkaOffset{partition, *pos};
  }
  for (const auto& [offset, open] : p.open) {
    if (open.handle != 0) handles_.erase(open.handle);
    remembered_[{partition, offset}] = open.deliveries;
    remembered_order_.emplace_back(partition, offset);
  }
  while (remembered_order_.size() > kRememberedRedeliveries) {
    remembered_.erase(remembered_order_.front());
    remembered_order_.pop_front();
  }
  partitions_.erase(it);
  return safe;
}

size_t KafkaOffsetLedger::open() const {
  size_t n = 0;
  for (const auto& [partition, p] : partitions_) n += p.open.size();
  return n;
}

}  // namespace envkit
