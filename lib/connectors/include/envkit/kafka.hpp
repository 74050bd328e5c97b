// Kafka connector on librdkafka: an idempotent acks=all producer with a delivery report per
// record, a group consumer that commits only what the caller is done with, and the Kafka sink.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/result.hpp>
#include <envkit/record.hpp>
#include <envkit/url.hpp>

struct rd_kafka_s;

namespace envkit {

/// librdkafka configuration properties, in order (a later one wins): kcat's -X key=value.
using KafkaProperties = std::vector<std::pair<std::string, std::string>>;

/// What a kafka:// URL asks for, resolved against the command-wide options.
///
/// URL: kafka://[user[:password]@]b1[:9092][,b2[:9092]...]/topic with parameters
///   group=ID          the consumer group (consumers need one)
///   key=FIELD         message key: this top-level field of the record (default: the id)
///   X.NAME=VALUE      any librdkafka property, passed through: X.linger.ms=5,
///                     X.compression.type=zstd, X.security.protocol=sasl_ssl, ...
///   tls=true|false, tls-ca=FILE, tls-cert=FILE, tls-key=FILE, tls-insecure=true
///                     override the TLS options for this endpoint
/// A user and password in the URL mean SASL/PLAIN (change the mechanism with
/// X.sasl.mechanisms). Timeouts come from ConnectionOptions unless X. properties say otherwise.
struct KafkaSettings {
  std::string bootstrap;  ///< bootstrap.servers: "b1:9092,[::1]:9092"
  std::string topic;
  std::string group;
  std::string key_field;  ///< empty: the record id is the key
  /// What envkit derives from the URL and options: bootstrap servers, TLS, SASL, timeouts.
  /// Holds the SASL password: never print it.
  KafkaProperties properties;
  /// ?X.NAME=VALUE from the URL, then the caller's extra properties: applied last.
  KafkaProperties overrides;
  ConnectionOptions options;
  std::string endpoint;  ///< the URL with passwords masked (X.*password* included)
};

/// Maps `url`, `options` and `extra` properties to KafkaSettings. Errors (Exit::usage): not a
/// kafka:// URL, no broker, bad TLS parameters.
Result<KafkaSettings> kafka_settings(const Url& url, const ConnectionOptions& options,
                                     const KafkaProperties& extra = {});

/// The full property list a producer is created with: settings.properties, then
/// acks=all, enable.idempotence=true and the delivery timeout, then settings.overrides.
KafkaProperties kafka_producer_properties(const KafkaSettings& settings);
/// The same for a consumer: group.id, no auto-commit, no automatic offset store, earliest.
KafkaProperties kafka_consumer_properties(const KafkaSettings& settings);

namespace detail {
struct KafkaHandleDestroyer {
  void operator()(rd_kafka_s* rk) const;
};
}  // namespace detail

/// A producer with acks=all and idempotence: a record is durable when every in-sync replica
/// has it, and librdkafka's own retries never duplicate or reorder within a partition.
/// Not thread-safe: one per thread.
class KafkaProducer {
 public:
  /// Creates the producer and asks the cluster for the topic's metadata, so an unreachable
  /// cluster fails here (Exit::unavailable, within the connect timeout; a refused connection
  /// at once), an unknown topic too (Exit::config), as do bad properties (Exit::config).
  static Result<KafkaProducer> connect(const KafkaSettings& settings);
  static Result<KafkaProducer> connect(const Url& url, const ConnectionOptions& options,
                                       const KafkaProperties& extra = {});

  KafkaProducer(KafkaProducer&&) noexcept;
  KafkaProducer& operator=(KafkaProducer&&) noexcept;
  /// Waits up to one second for messages still in flight, then drops them.
  ~KafkaProducer();

  /// Produces every record to `topic` (key: the id, or the key field) and waits for each
  /// one's delivery report, until no report arrived for the I/O timeout (librdkafka's own
  /// message.timeout.ms is the same). One Delivery per record, in order: durable
  /// once acknowledged by all in-sync replicas; retry for a failure that passes or a record
  /// with no report by the deadline (the cluster down, librdkafka's queue full); rejected
  /// for a record Kafka refuses for good (too large, not JSON while ?key= needs a field).
  /// Errors: the producer hit a fatal error before this call (create a new one).
  Result<std::vector<Delivery>> produce(std::span<const Record> records, std::string_view topic);

  /// Whether librdkafka raised a fatal error (idempotence broken): the producer is unusable.
  bool fatal() const;
  /// The URL with passwords masked, for messages.
  const std::string& endpoint() const;
  /// The C handle, for calls this class does not wrap. Owned by the producer.
  rd_kafka_s* handle() const;

  struct State;  // heap-allocated: librdkafka's callbacks point at it, so moves are safe

 private:
  explicit KafkaProducer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// One message a consumer received.
struct KafkaMessage {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string payload;
  int64_t timestamp_ms = -1;  ///< -1 when the broker gave none
};

/// A position in one partition of the consumer's topic. As Kafka counts committed offsets,
/// `offset` is the next message to read: everything below it is done.
struct KafkaOffset {
  int32_t partition = 0;
  int64_t offset = 0;
  bool operator==(const KafkaOffset&) const = default;
};

/// Called when the group takes partitions of the topic away from this consumer (a
/// rebalance, or the consumer closing), before they go: returns the offsets that are safe
/// to commit for them, which the consumer commits before letting go. `lost` means the
/// partitions may already belong to another member (a session timed out): nothing is
/// committed then, since an old offset could move the group's position back.
using KafkaRevokeHook =
    std::function<std::vector<KafkaOffset>(std::span<const int32_t> partitions, bool lost)>;

/// Called when the group assigns partitions of the topic to this consumer, before it reads
/// them: returns positions (the next offset to read) that someone else already holds the
/// records below (a sink that stores source positions). A partition whose returned position
/// is ahead of the group's commit starts there instead.
using KafkaStartHook = std::function<std::vector<KafkaOffset>(std::span<const int32_t> partitions)>;

/// A group consumer subscribed to the URL's topic, at-least-once: nothing is committed
/// automatically; the caller marks messages done (store) once the sink has them, and
/// commit() makes the marks durable in the group. Not thread-safe: one per thread.
class KafkaConsumer {
 public:
  /// Creates the consumer, checks the topic exists (as KafkaProducer::connect), subscribes.
  /// Errors: as KafkaProducer::connect, and Exit::usage when the URL has no ?group=.
  static Result<KafkaConsumer> connect(const KafkaSettings& settings);

  KafkaConsumer(KafkaConsumer&&) noexcept;
  KafkaConsumer& operator=(KafkaConsumer&&) noexcept;
  /// Leaves the group (what is stored but not committed is lost: it will be redelivered).
  ~KafkaConsumer();

  /// The next message, or nullopt when none arrived within `timeout`. Passing errors
  /// (a broker restarting) are logged and waited out; errors that need the operator (the
  /// topic gone, authorization) are returned.
  Result<std::optional<KafkaMessage>> next(std::chrono::milliseconds timeout);
  /// Marks `message` done: its offset + 1 is what the next commit() records for its partition.
  Status store(const KafkaMessage& message);
  /// Commits every stored offset, waiting for the group coordinator (synchronous).
  Status commit();
  /// Commits exactly these offsets of the topic (nothing else), synchronously. Errors:
  /// connection_lost (no coordinator), server_busy (a rebalance is under way or the
  /// partition is no longer ours: it will be read again by its new owner).
  Status commit(std::span<const KafkaOffset> offsets);

  /// Installs the hook run on every revocation (rebalance, close), from inside next() or
  /// the destructor, on the caller's thread. The consumer assigns and unassigns partitions
  /// itself, with the eager or the cooperative protocol, whichever the group uses.
  void on_revoke(KafkaRevokeHook hook);
  /// Installs the hook run on every assignment, inside next() on the caller's thread.
  void on_assign(KafkaStartHook hook);

  const std::string& endpoint() const;
  rd_kafka_s* handle() const;

  struct State;

 private:
  explicit KafkaConsumer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};


}  // namespace envkit
