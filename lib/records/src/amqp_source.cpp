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
// Handles are the source's own (Outstanding), each remembering its delivery tag and the
// connection it came on: a settlement that arrives after a reconnect (its delivery already
// requeued by the broker) is dropped instead of acknowledging another message that got the
// same tag on the new channel.
//
// Id: the message-id (envkit's AMQP sink sets it), else the body's `id` member, else
// content_id() of the body, so a redelivered duplicate gets the same id.
#include <algorithm>
#include <cstdint>
#include <vector>

#include <envkit/amqp.hpp>
#include <envkit/exit_status.hpp>
#include <envkit/log.hpp>

#include "records_internal.hpp"

namespace envkit {

namespace {

class AmqpSource final : public Source {
 public:
  AmqpSource(AmqpSettings settings, ConnectionOptions options)
      : settings_(std::move(settings)), options_(std::move(options)) {}

  // Opens the connection and starts consuming. The queue must exist: a source consumes
  // what someone else declared (a 404 is not_found, naming the queue).
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

  // Retries are nacked (requeued) one by one, first. Acks are coalesced: every acked tag
  // below the lowest tag still out on this connection goes in one basic.ack with multiple
  // set (it covers exactly the unacknowledged tags up to it, and no tag below it is out any
  // more); the rest are acked one by one. A batch of 500 is then one ack frame, not 500:
  // fewer writes here, far less work for the broker.
  Status settle(std::span<const Settlement> settlements) override {
    std::optional<Error> failed;
    auto check = [&](Status st) {
      if (!st && !failed) {
        // The rest of the batch is from the lost connection now: taken, not sent.
        drop();
        failed = st.error().context("settling deliveries from " + settings_.endpoint);
      }
    };
    std::vector<uint64_t> acks;
    acks.reserve(settlements.size());
    for (const auto& s : settlements) {
      auto out = out_.take(s.handle);
      if (!out) continue;  // reported by settled() below
      if (out->connection != connection_ || !conn_) {
        // Handed out on a connection that is gone: the broker requeued it then.
        log_debug(settings_.endpoint + ": settlement of a delivery from a lost connection");
        continue;
      }
      if (s.verdict == Verdict::retry) {
        check(conn_->nack(out->tag, /*requeue=*/true));
      } else {
        acks.push_back(out->tag);
      }
    }
    if (!acks.empty() && conn_) {
      uint64_t lowest_out = UINT64_MAX;
      out_.for_each([&](const Out& o) {
        if (o.connection == connection_) lowest_out = std::min(lowest_out, o.tag);
      });
      std::sort(acks.begin(), acks.end());
      auto below = std::lower_bound(acks.begin(), acks.end(), lowest_out);
      if (below - acks.begin() > 1) {
        check(conn_->ack(*(below - 1), /*multiple=*/true));
      } else if (below != acks.begin()) {
        check(conn_->ack(acks.front()));
      }
      for (auto it = below; it != acks.end() && conn_; ++it) check(conn_->ack(*it));
    }
    if (failed) return *failed;
    return out_.settled(settings_.endpoint);
  }

  std::string name() const override { return settings_.endpoint; }

 private:
  struct Out {
    uint64_t tag = 0;         // the delivery tag on its channel
    uint64_t connection = 0;  // which connection it came on
  };

  void add(SourceBatch& batch, AmqpMessage m) {
    Received r;
    r.handle = out_.add({m.delivery_tag, connection_});
    if (auto count = m.int_header("x-delivery-count"); count && *count >= 0) {
      r.deliveries = static_cast<uint32_t>(std::min<int64_t>(*count, UINT32_MAX - 1) + 1);
    } else {
      r.deliveries = m.redelivered ? 2 : 1;
    }
    r.record.id = !m.message_id.empty() ? std::move(m.message_id)
                                        : record_id_or_digest(doc_, m.body);
    r.record.json = std::move(m.body);
    batch.records.push_back(std::move(r));
  }

  // Forgets the connection (the broker requeues what was out on it by itself).
  void drop() {
    conn_.reset();
    ++connection_;
  }

  AmqpSettings settings_;
  ConnectionOptions options_;
  std::optional<AmqpConnection> conn_;
  uint64_t connection_ = 0;  // counts connections, so stale handles are known
  Outstanding<Out> out_;     // handed out, not yet settled
  JsonDocument doc_;         // for ids from bodies without a message-id
};

}  // namespace

Result<std::unique_ptr<Source>> open_amqp_source(const Url& url, const SourceOptions& options) {
  auto settings = amqp_settings(url, options.connection);
  if (!settings) return settings.error();
  if (settings->queue.empty()) {
    return fail(Failure::usage, "an AMQP source needs ?queue= in " + settings->endpoint);
  }
  auto source = std::make_unique<AmqpSource>(std::move(*settings), options.connection);
  if (auto st = source->connect(); !st) return st.error();
  return std::unique_ptr<Source>(std::move(source));
}

}  // namespace envkit
