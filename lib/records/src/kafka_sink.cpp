// The Kafka sink: produces each batch with acks=all and an idempotent producer.
#include <optional>

#include <envkit/kafka.hpp>
#include <envkit/log.hpp>
#include "records_internal.hpp"

namespace envkit {

namespace {

class KafkaSink final : public Sink {
 public:
  explicit KafkaSink(KafkaSettings settings) : settings_(std::move(settings)) {}

  Status connect() {
    producer_.reset();
    auto producer = KafkaProducer::connect(settings_);
    if (!producer) return producer.error();
    producer_.emplace(std::move(*producer));
    return {};
  }

  Result<std::vector<Delivery>> write(std::span<const Record> batch) override {
    if (batch.empty()) return std::vector<Delivery>{};
    if (producer_ && producer_->fatal()) {
      log_warning(settings_.endpoint + ": replacing the Kafka producer after a fatal error");
      producer_.reset();
    }
    if (!producer_) {
      if (auto st = connect(); !st) return st.error();
    }
    return producer_->produce(batch, settings_.topic);
  }

  std::string name() const override { return settings_.endpoint; }

 private:
  KafkaSettings settings_;
  std::optional<KafkaProducer> producer_;
};

}  // namespace

Result<std::unique_ptr<Sink>> open_kafka_sink(const Url& url, const ConnectionOptions& options,
                                              const KafkaProperties& extra) {
  auto settings = kafka_settings(url, options, extra);
  if (!settings) return settings.error();
  if (settings->topic.empty()) {
    return Error{Exit::usage,
                 "a Kafka sink needs a topic: kafka://host:port/TOPIC, not " + settings->endpoint};
  }
  auto sink = std::make_unique<KafkaSink>(std::move(*settings));
  if (auto st = sink->connect(); !st) return st.error();
  return std::unique_ptr<Sink>(std::move(sink));
}

}  // namespace envkit
