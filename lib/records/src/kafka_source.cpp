// The Kafka source: a consumer group member whose commits follow the offset ledger, and a
// local redelivery queue for records the pipeline asks to retry.
//
// Retry, honestly: Kafka has no per-message nack. A retried record is kept here, in a
// queue that next() empties before it asks Kafka for more, and its offset stays open in
// the ledger, so the commit never passes it. The alternative, seeking the partition back
// to the retried offset, would hand out again every record after it (acked ones included)
// and fight librdkafka's prefetch and rebalances. The queue is bounded by what is out:
// only a record handed out can be retried, and retries go out again before anything new,
// so it never holds more than the pipeline's in-flight limit. If this process dies, the
// retried records come back from the last commit, like every other unsettled one.
#include <algorithm>
#include <deque>
#include <optional>
#include <unordered_map>

#include <envkit/kafka.hpp>
#include <envkit/kafka_ledger.hpp>
#include <envkit/log.hpp>

#include "records_internal.hpp"

namespace envkit {

namespace {

class KafkaSource final : public Source {
 public:
  KafkaSource(KafkaSettings settings, KafkaConsumer consumer)
      : settings_(std::move(settings)), consumer_(std::move(consumer)) {
    // Before a rebalance takes partitions away: commit what is safe, forget the rest (their
    // next owner reads them from the commit; late settlements here are then ignored).
    consumer_->on_revoke([this](std::span<const int32_t> partitions, bool lost) {
      std::vector<KafkaOffset> safe;
      for (int32_t p : partitions) {
        if (auto o = ledger_.revoke(p)) safe.push_back(*o);
      }
      std::erase_if(waiting_, [&](const KafkaMessage& m) {
        return std::find(partitions.begin(), partitions.end(), m.partition) != partitions.end();
      });
      std::erase_if(out_, [&](const auto& kv) {
        return std::find(partitions.begin(), partitions.end(), kv.second.partition) !=
               partitions.end();
      });
      log_info(settings_.endpoint + ": " + std::to_string(partitions.size()) + " partition(s) " +
               (lost ? "lost" : "revoked") + " in a rebalance");
      return safe;
    });
  }

  ~KafkaSource() override {
    // The consumer closes first (its revoke hook still needs the ledger).
    consumer_.reset();
  }

  Result<SourceBatch> next(size_t max, std::chrono::milliseconds wait) override {
    if (deferred_) {
      Error e = std::move(*deferred_);
      deferred_.reset();
      return e;
    }
    SourceBatch batch;
    // Retries first: that keeps the redelivery queue no longer than what was out.
    while (!waiting_.empty() && batch.records.size() < max) {
      KafkaMessage m = std::move(waiting_.front());
      waiting_.pop_front();
      uint64_t handle = 0;
      auto entry = ledger_.handed_out_again(m.partition, m.offset, &handle);
      if (!entry) continue;  // its partition went away meanwhile
      add(batch, std::move(m), handle, entry->deliveries);
    }
    while (batch.records.size() < max) {
      // Wait only for the first record; after it, take what has already arrived.
      auto m = consumer_->next(batch.records.empty() ? wait : std::chrono::milliseconds(0));
      if (!m) {
        // Records already in the ledger must reach the caller, or their offsets would hold
        // the commit for ever: the error waits for the next call.
        if (batch.records.empty()) return m.error();
        deferred_ = m.error();
        break;
      }
      if (!*m) break;
      uint64_t handle = 0;
      auto entry = ledger_.handed_out((*m)->partition, (*m)->offset, &handle);
      add(batch, std::move(**m), handle, entry.deliveries);
    }
    return batch;
  }

  Status settle(std::span<const Settlement> settlements) override {
    for (const auto& s : settlements) {
      auto entry = ledger_.settle(s.handle, s.verdict);
      auto it = out_.find(s.handle);
      if (!entry || it == out_.end()) {
        // Its partition was revoked: the new owner reads it again from the commit.
        log_debug(settings_.endpoint + ": settlement of a record whose partition went away");
        continue;
      }
      if (s.verdict == Verdict::retry) waiting_.push_back(std::move(it->second));
      out_.erase(it);
    }
    return {};
  }

  Status commit() override {
    auto offsets = ledger_.committable();
    if (offsets.empty()) return {};
    if (auto st = consumer_->commit(offsets); !st) return st;
    ledger_.committed(offsets);
    return {};
  }

  std::string name() const override { return settings_.endpoint; }

 private:
  void add(SourceBatch& batch, KafkaMessage m, uint64_t handle, uint32_t deliveries) {
    Received r;
    // The key is the producer's id for the record (envkit's Kafka sink keys by record id);
    // without one, the record's `id` member, else its place in the log, a stable identity.
    r.record.id = !m.key.empty()
                      ? m.key
                      : record_id_of_text(doc_, m.payload,
                                          m.topic + "-" + std::to_string(m.partition) + "@" +
                                              std::to_string(m.offset));
    r.record.json = m.payload;
    r.record.position = LogPosition{settings_.group, m.topic, m.partition, m.offset};
    r.handle = handle;
    r.deliveries = deliveries;
    batch.records.push_back(std::move(r));
    out_.emplace(handle, std::move(m));
  }

  KafkaSettings settings_;
  KafkaOffsetLedger ledger_;
  std::unordered_map<uint64_t, KafkaMessage> out_;  // handed out, by handle: kept for retry
  std::deque<KafkaMessage> waiting_;                // retried, to be handed out again
  JsonDocument doc_;                                // for ids of records without a key
  std::optional<Error> deferred_;                   // met after records were handed out
  std::optional<KafkaConsumer> consumer_;           // last: closes before the ledger goes
};

}  // namespace

Result<std::unique_ptr<Source>> open_kafka_source(const Url& url, const SourceOptions& options) {
  KafkaProperties extra;
  // The member's name in the group's tools, unless the URL sets X.client.id itself.
  if (!options.consumer.empty() && !url.param("X.client.id")) {
    extra.emplace_back("client.id", options.consumer);
  }
  auto settings = kafka_settings(url, options.connection, extra);
  if (!settings) return settings.error();
  // Positions the sinks hold beyond the group's commit (a crash between their commit and
  // ours): read once, before the first assignment, and started from on assignment.
  std::vector<KafkaOffset> start;
  if (options.stored_positions) {
    auto stored = options.stored_positions(settings->group, settings->topic);
    if (!stored) return stored.error();
    if (*stored) {
      for (const auto& p : **stored) start.push_back({p.partition, p.offset + 1});
    }
  }
  auto consumer = KafkaConsumer::connect(*settings);
  if (!consumer) return consumer.error();
  if (!start.empty()) {
    consumer->on_assign([start](std::span<const int32_t> partitions) {
      std::vector<KafkaOffset> out;
      for (const auto& o : start) {
        if (std::find(partitions.begin(), partitions.end(), o.partition) != partitions.end()) out.push_back(o);
      }
      return out;
    });
  }
  return std::unique_ptr<Source>(new KafkaSource(std::move(*settings), std::move(*consumer)));
}

}  // namespace envkit
