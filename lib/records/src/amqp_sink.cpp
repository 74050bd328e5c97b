// The AMQP sink: publishes each batch with publisher confirms over one AmqpConnection.
#include <optional>

#include <envkit/amqp.hpp>
#include <envkit/log.hpp>
#include "records_internal.hpp"

namespace envkit {

namespace {

class AmqpSink final : public Sink {
 public:
  AmqpSink(AmqpSettings settings, ConnectionOptions options)
      : settings_(std::move(settings)), options_(std::move(options)) {
    route_.exchange = settings_.exchange;
    route_.routing_key = settings_.routing_key;
  }

  Status connect() {
    conn_.reset();
    auto conn = AmqpConnection::connect(settings_, options_);
    if (!conn) return conn.error();
    if (!settings_.queue.empty()) {
      if (auto st = conn->declare_queue(settings_.queue, true, settings_.queue_arguments); !st) {
        return st.error();
      }
    }
    conn_.emplace(std::move(*conn));
    return {};
  }

  Result<std::vector<Delivery>> write(std::span<const Record> batch) override {
    if (batch.empty()) return std::vector<Delivery>{};
    // A connection that died while idle (broker restarted, heartbeats missed) is found out
    // before anything is sent, so replacing it costs nothing and loses nothing.
    if (conn_ && !conn_->alive()) {
      log_info(settings_.endpoint + ": reconnecting: " + conn_->failure());
      conn_.reset();
    }
    if (!conn_) {
      if (auto st = connect(); !st) return st.error();
    }
    auto result = conn_->publish(batch, route_);
    if (!conn_->usable()) conn_.reset();  // the next write reconnects
    return result;
  }

  std::string name() const override { return settings_.endpoint; }

 private:
  AmqpSettings settings_;
  ConnectionOptions options_;
  AmqpRoute route_;
  std::optional<AmqpConnection> conn_;
};

}  // namespace

Result<std::unique_ptr<Sink>> open_amqp_sink(const Url& url, const ConnectionOptions& options) {
  auto settings = amqp_settings(url, options);
  if (!settings) return settings.error();
  if (settings->queue.empty() && settings->exchange.empty()) {
    return Error{Exit::usage, "an AMQP sink needs ?queue= or ?exchange= in " + settings->endpoint};
  }
  auto sink = std::make_unique<AmqpSink>(std::move(*settings), options);
  if (auto st = sink->connect(); !st) return st.error();
  return std::unique_ptr<Sink>(std::move(sink));
}

}  // namespace envkit
