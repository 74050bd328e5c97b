// The AMQP 0-9-1 source: a consumer with a prefetch window and manual acknowledgements.
//
// Settling: ack -> basic.ack; retry -> basic.nack with requeue; dead -> basic.ack, because
// the pipeline settles dead only once the record is in its dead letters: a nack without
// requeue would also hand it to the queue's dead-letter exchange, if it has one, and the
// record would be dead-lettered twice.
//
// Deliveries: a quorum queue counts returns itself, in the x-delivery-count header (absent
// the first time): deliveries = x-delivery-count + 1, exact. A classic queue only sets the
// redelivered flag: deliveries = 2 then means "at least twice", since nothing in AMQP says
// how often. A header of our own would not help: requeueing returns the message unchanged,
// so the broker never increments anything we put there (only republishing could, at the
// cost of the message's place in the queue and a confirm round trip per retry).
//
// Handles are delivery tags shifted by everything handed out on earlier connections, so a
// settlement that arrives after a reconnect (its delivery already requeued by the broker)
// is recognised and dropped instead of acknowledging another message with the same tag.
#include <random>
#include <unordered_set>

#include <envkit/amqp.hpp>
#include <envkit/log.hpp>

#include "records_internal.hpp"

namespace envkit {

namespace {

class AmqpSource final : public Source {
 public:
  AmqpSource(AmqpSettings settings, ConnectionOptions options)
      : settings_(std::move(settings)), options_(std::move(options)) {
    std::random_device random;
    instance_ = (uint64_t{random()} << 32) ^ random();
  }

  // Opens the connection and starts consuming. The queue must exist: a source consumes
  // what someone else declared (a 404 is Exit::config, naming the queue).
  Status connect() {
    drop();
    auto conn = AmqpConnection::connect(settings_, options_);
    if (!conn) return conn.error();
    if (auto st = conn->consume(settings_.queue, settings_.prefetch); !st) return st;
    conn_.emplace(std::move(*conn));
    return {};
  }

  Result<SourceBatch> next(size_t max, std::chrono::milliseconds wait) override {
    if (!conn_ || !conn_->usable()) {
      if (conn_) log_info(settings_.endpoint + ": reconnecting: " + conn_->failure());
      if (auto st = connect(); !st) return st.error();
    }
    SourceBatch batch;
    while (batch.records.size() < max) {
      // Wait only for the first message; after it, take what has already arrived.
      auto m = conn_->next(batch.records.empty() ? wait : std::chrono::milliseconds(0));
      if (!m) {
        // The unacknowledged deliveries go back to the queue with the connection.
        drop();
        return m.error().context("consuming from " + settings_.endpoint);
      }
      if (!*m) break;
      add(batch, std::move(**m));
    }
    return batch;
  }

  Status settle(std::span<const Settlement> settlements) override {
    for (const auto& s : settlements) {
      if (s.handle <= base_) {
        // Handed out on a connection that is gone: the broker requeued it then.
        log_debug(settings_.endpoint + ": settlement of a delivery from a lost connection");
        continue;
      }
      uint64_t tag = s.handle - base_;
      // An unknown tag would make the broker close the channel (406), requeueing
      // everything out: refuse it here instead.
      if (!conn_ || outstanding_.erase(tag) == 0) {
        return Error{Exit::software, settings_.endpoint + ": delivery " + std::to_string(s.handle) +
                                         " settled twice or never handed out"};
      }
      Status st = s.verdict == Verdict::retry ? conn_->nack(tag, /*requeue=*/true)
                                              : conn_->ack(tag);
      if (!st) {
        drop();
        return st.error().context("settling deliveries from " + settings_.endpoint);
      }
    }
    return {};
  }

  std::string name() const override { return settings_.endpoint; }

 private:
  void add(SourceBatch& batch, AmqpMessage m) {
    Received r;
    r.handle = base_ + m.delivery_tag;
    issued_ = std::max(issued_, r.handle);
    outstanding_.insert(m.delivery_tag);
    if (auto count = m.int_header("x-delivery-count"); count && *count >= 0) {
      r.deliveries = static_cast<uint32_t>(std::min<int64_t>(*count, UINT32_MAX - 1) + 1);
    } else {
      r.deliveries = m.redelivered ? 2 : 1;
    }
    // The message-id is the record's id (envkit's AMQP sink sets it). Without one there is
    // no stable identity: a unique id keeps distinct messages apart in sinks with unique
    // keys, but a redelivered duplicate is then not recognised.
    r.record.id = !m.message_id.empty()
                      ? std::move(m.message_id)
                      : "amqp-" + std::to_string(instance_) + "-" + std::to_string(r.handle);
    r.record.json = std::move(m.body);
    batch.records.push_back(std::move(r));
  }

  // Forgets the connection and what was out on it (the broker requeues that by itself).
  void drop() {
    conn_.reset();
    outstanding_.clear();
    base_ = issued_;
  }

  AmqpSettings settings_;
  ConnectionOptions options_;
  std::optional<AmqpConnection> conn_;
  std::unordered_set<uint64_t> outstanding_;  // delivery tags out on this connection
  uint64_t base_ = 0;    // handles up to here belong to earlier connections
  uint64_t issued_ = 0;  // the highest handle handed out
  uint64_t instance_ = 0;
};

}  // namespace

Result<std::unique_ptr<Source>> open_amqp_source(const Url& url, const SourceOptions& options) {
  auto settings = amqp_settings(url, options.connection);
  if (!settings) return settings.error();
  if (settings->queue.empty()) {
    return Error{Exit::usage, "an AMQP source needs ?queue= in " + settings->endpoint};
  }
  auto source = std::make_unique<AmqpSource>(std::move(*settings), options.connection);
  if (auto st = source->connect(); !st) return st.error();
  return std::unique_ptr<Source>(std::move(source));
}

}  // namespace envkit
