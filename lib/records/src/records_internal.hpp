// The per-scheme sink and source constructors behind open_sink() and open_source(); not
// public API.
#pragma once

#include <memory>

#include <envkit/registry.hpp>
#include <envkit/sinks.hpp>

namespace envkit {

/// Query parameter `name` as a whole number in [min, max], `fallback` when absent. Errors
/// (Exit::usage) name the URL and the range.
Result<long> int_param(const Url& url, const char* name, long fallback, long min, long max);

Result<std::unique_ptr<Sink>> open_mysql_sink(Url url, const SinkOptions& options);
Result<std::unique_ptr<Sink>> open_redis_sink(Url url, const SinkOptions& options);
Result<std::unique_ptr<Sink>> open_http_sink(Url url, const SinkOptions& options);
Result<std::unique_ptr<Sink>> open_stream_sink(const Url& url);

/// Connects and starts consuming ?queue= (which must exist). Errors: as
/// AmqpConnection::connect and ::consume (Exit::config for a missing queue).
Result<std::unique_ptr<Source>> open_amqp_source(const Url& url, const SourceOptions& options);
/// Joins ?group= and subscribes to the topic. Errors: as KafkaConsumer::connect.
Result<std::unique_ptr<Source>> open_kafka_source(const Url& url, const SourceOptions& options);

}  // namespace envkit
