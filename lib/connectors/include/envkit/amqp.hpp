// AMQP 0-9-1 connector on rabbitmq-c: a bounded RAII connection with publisher confirms and
// consuming, and the AMQP sink.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/exit_status.hpp>
#include <envkit/result.hpp>
#include <envkit/record.hpp>
#include <envkit/url.hpp>

struct amqp_connection_state_t_;

namespace envkit {

namespace detail {
struct AmqpStateDestroyer {
  void operator()(amqp_connection_state_t_* state) const;
};
class AmqpWatchdog;
struct AmqpWatchdogDeleter {
  void operator()(AmqpWatchdog* watchdog) const;
};
}  // namespace detail

/// One x-argument of a queue declaration ("x-queue-type" = "quorum", "x-max-length" = 1000),
/// or one header of a delivered message ("x-delivery-count" = 2).
using AmqpArgument = std::pair<std::string, std::variant<std::string, int64_t>>;

/// What an amqp:// or amqps:// URL asks for, resolved against the command-wide options.
///
/// URL: amqp[s]://[user[:password]@]host[:port][,host2[:port]...]/[vhost] with parameters
///   queue=NAME          the queue to publish to (default exchange) or consume from; the
///                       sink declares it durable
///   exchange=NAME       publish to this exchange instead of the default one
///   routing-key=KEY     the routing key (default: the queue name)
///   heartbeat=SECONDS   AMQP heartbeat (default 60; 0 turns it off)
///   prefetch=N          unacknowledged deliveries a consumer may hold (default 256)
///   queue-arg.X=VALUE   x-argument X for the queue declaration (integers stay integers),
///                       e.g. queue-arg.x-queue-type=quorum
///   tls=true|false, tls-ca=FILE, tls-cert=FILE, tls-key=FILE, tls-insecure=true,
///   tls-server-name=NAME   override the TLS options for this endpoint (amqps:// implies tls)
/// The vhost is the percent-decoded path: "%2f" and an empty path both mean "/". With
/// neither user nor password in the URL, RabbitMQ's guest/guest is used, as amqp-tools do.
struct AmqpSettings {
  std::vector<HostPort> hosts;  ///< tried in order until one answers; ports filled in
  std::string vhost = "/";
  std::string user;
  std::string password;  ///< never printed
  std::string queue;
  std::string exchange;     ///< "" is the default exchange
  std::string routing_key;  ///< defaults to the queue name
  std::vector<AmqpArgument> queue_arguments;
  int heartbeat_seconds = 60;
  uint16_t prefetch = 256;
  TlsOptions tls;
  std::string endpoint;  ///< the URL with the password masked, for every message
};

/// Maps `url` and `options` to AmqpSettings. Errors (Exit::usage) name the bad parameter.
Result<AmqpSettings> amqp_settings(const Url& url, const ConnectionOptions& options);

/// One message delivered to a consumer. Acknowledge it with its delivery_tag once the
/// record is safely elsewhere (AmqpConnection::ack), or hand it back (nack).
struct AmqpMessage {
  uint64_t delivery_tag = 0;
  std::string body;
  std::string message_id;
  std::string content_type;
  std::string exchange;
  std::string routing_key;
  bool redelivered = false;  ///< the broker delivered it before: a duplicate is possible
  /// The message's headers table: integers (of any AMQP width) as int64_t, strings and
  /// byte arrays as std::string; other kinds (nested tables, arrays, floats, booleans,
  /// timestamps) are left out.
  std::vector<AmqpArgument> headers;

  /// The header `name` when it holds an integer: e.g. "x-delivery-count", which quorum
  /// queues set on every redelivery (absent on the first delivery).
  std::optional<int64_t> int_header(std::string_view name) const;
};

/// Bookkeeping of publisher confirms for one batch: which delivery tag belongs to which
/// record, and what the broker said about each. Pure logic, separate so it can be tested
/// without a broker. Delivery tags are counted per channel from 1 after confirm.select.
class AmqpConfirmTracker {
 public:
  /// Starts a batch whose first published message gets delivery tag `first_tag`.
  void begin(uint64_t first_tag);
  /// Records that the next message (tag first_tag + published()) carries record `index`.
  void published(size_t index, std::string_view message_id);
  /// basic.ack / basic.nack: `multiple` covers every tag up to and including `tag`.
  /// Tags outside the batch (a previous batch's stragglers) are ignored.
  void acked(uint64_t tag, bool multiple);
  void nacked(uint64_t tag, bool multiple);
  /// basic.return: the broker could not route a message and will ack it next. Returns carry
  /// no delivery tag, so the message is found by its message-id: the earliest unresolved
  /// message with that id (returns arrive in publish order). False if none matches.
  bool returned(std::string_view message_id, std::string reason);

  size_t published_count() const { return entries_.size(); }
  size_t unresolved() const { return unresolved_; }
  uint64_t first_tag() const { return first_tag_; }

  /// What happened to each published message: durable when acked and not returned, retry
  /// otherwise (nacked, returned, or no verdict, with `unresolved_reason`).
  struct Outcome {
    size_t index = 0;  ///< the record's position in the batch
    Delivery delivery;
  };
  std::vector<Outcome> outcomes(std::string_view unresolved_reason) const;

 private:
  enum class State : uint8_t { pending, acked, nacked };
  struct Entry {
    size_t index = 0;
    std::string message_id;
    State state = State::pending;
    bool returned = false;
    std::string return_reason;
  };
  void settle(uint64_t tag, bool multiple, State state);

  uint64_t first_tag_ = 1;
  std::vector<Entry> entries_;
  size_t unresolved_ = 0;
  size_t settled_below_ = 0;  // every entry before this index is settled
  size_t return_cursor_ = 0;  // where the next basic.return's message most likely is
};

/// Where published records go: an exchange ("" for the default one) and a routing key.
struct AmqpRoute {
  std::string exchange;
  std::string routing_key;
};

/// An open AMQP connection with one channel. Not thread-safe: one per thread.
///
/// Every wait is bounded: opening the socket, the login and the first channel set-up by
/// the connect timeout, every later round trip by the I/O timeout. rabbitmq-c itself would
/// wait for ever on a socket the broker stopped reading (a broker blocked by a memory or
/// disk alarm), so publishing runs under a watchdog that shuts the socket down when no
/// message goes out within the I/O timeout.
///
/// After a connection-level failure (socket error, timeout, the broker closing the
/// connection or the channel) usable() is false and every call fails: open a new one.
class AmqpConnection {
 public:
  /// Opens the socket (TCP or TLS), logs in with the heartbeat, opens channel 1.
  /// Errors (envkit/exit_status.hpp): connection_refused, unreachable (no answer within the
  /// connect timeout), name_not_found, auth_refused, not_found (unknown vhost or no access
  /// to it), tls_failed (verification), usage (bad URL parameters).
  static Result<AmqpConnection> connect(const Url& url, const ConnectionOptions& options);
  static Result<AmqpConnection> connect(const AmqpSettings& settings,
                                        const ConnectionOptions& options);

  AmqpConnection(AmqpConnection&&) noexcept;
  AmqpConnection& operator=(AmqpConnection&&) noexcept;
  /// Closes the channel and the connection politely when it is still usable (bounded by
  /// one second), then frees everything.
  ~AmqpConnection();

  /// Declares `name` (durable or not, never exclusive or auto-deleted) with `arguments`.
  /// A queue that exists with other properties is an Exit::config error (PRECONDITION_FAILED).
  Status declare_queue(std::string_view name, bool durable,
                       const std::vector<AmqpArgument>& arguments = {});
  /// The number of ready messages in an existing queue (a passive declare).
  Result<uint32_t> queue_message_count(std::string_view name);
  /// Deletes a queue and the messages in it; returns how many messages it held.
  Result<uint32_t> delete_queue(std::string_view name);

  /// Publishes every record (body = json, message-id = id, content-type application/json,
  /// persistent, mandatory) without waiting, then collects the broker's confirms, each wait
  /// bounded by the I/O timeout. One Delivery per record, in order: durable once the broker
  /// acked it; retry when it was nacked, returned as unroutable, or not confirmed when the
  /// connection failed or the wait ran out; rejected when AMQP cannot carry it (a message-id
  /// over 255 bytes). A failure part-way leaves usable() false, with the confirmed records
  /// still durable. Errors (the Sink contract: nothing of the batch is durable): the
  /// connection was already unusable, or it (or the channel) failed before the broker
  /// settled any record, e.g. Exit::config for an exchange that does not exist (404).
  Result<std::vector<Delivery>> publish(std::span<const Record> records, const AmqpRoute& route);

  /// Starts consuming `queue` with at most `prefetch` unacknowledged deliveries (basic.qos).
  Status consume(std::string_view queue, uint16_t prefetch);
  /// The next delivery, or nullopt when none arrived within `timeout`. Errors: the
  /// connection or channel failed (a cancelled consumer included).
  Result<std::optional<AmqpMessage>> next(std::chrono::milliseconds timeout);
  /// Acknowledges a delivery once the record is safe elsewhere (at-least-once).
  Status ack(uint64_t delivery_tag, bool multiple = false);
  /// Hands a delivery back: requeued for another try, or dropped/dead-lettered.
  Status nack(uint64_t delivery_tag, bool requeue = true, bool multiple = false);

  /// Processes whatever the broker has sent without waiting: false when the connection turns
  /// out to be gone (closed by the broker, heartbeats missed while idle).
  bool alive();
  bool usable() const { return failure_.empty(); }
  /// Why the connection became unusable, and the exit status that maps to.
  const std::string& failure() const { return failure_; }
  Exit failure_code() const { return failure_code_; }
  /// The URL with the password masked, for messages.
  const std::string& endpoint() const { return endpoint_; }
  /// The C handle, for calls this class does not wrap. Owned by the connection.
  amqp_connection_state_t_* handle() const { return state_.get(); }

 private:
  struct Frame;
  AmqpConnection(std::unique_ptr<amqp_connection_state_t_, detail::AmqpStateDestroyer> state,
                 std::string endpoint, ConnectionOptions options);
  Status open_channel();
  Status enable_confirms();
  Error fail(Failure kind, std::string why);
  Error unusable() const;
  Status check_rpc(std::string_view what);
  Status set_rpc_timeout(std::chrono::milliseconds timeout);
  // Waits for one frame until `deadline`: true when one arrived, false on timeout.
  Result<bool> read_frame(std::chrono::steady_clock::time_point deadline, Frame& out);
  // Handles one frame that arrived unasked (confirms, returns, deliveries, closes).
  Status dispatch(const Frame& frame, std::chrono::steady_clock::time_point deadline);
  Result<AmqpMessage> read_content(std::chrono::steady_clock::time_point deadline);
  void close();
  void release_buffers();

  std::unique_ptr<amqp_connection_state_t_, detail::AmqpStateDestroyer> state_;
  std::unique_ptr<detail::AmqpWatchdog, detail::AmqpWatchdogDeleter> watchdog_;
  std::string endpoint_;
  ConnectionOptions options_;
  std::string failure_;
  Exit failure_code_ = Exit::unavailable;
  bool confirms_ = false;
  uint64_t next_tag_ = 1;  // the delivery tag the next publish gets under confirms
  AmqpConfirmTracker tracker_;
  std::deque<AmqpMessage> deliveries_;  // arrived while waiting for something else
  std::string consumer_tag_;
};


}  // namespace envkit
