// The per-scheme sink constructors behind open_sink(); not public API.
#pragma once

#include <memory>

#include <envkit/sinks.hpp>

namespace envkit {

/// Query parameter `name` as a whole number in [min, max], `fallback` when absent. Errors
/// (Exit::usage) name the URL and the range.
Result<long> int_param(const Url& url, const char* name, long fallback, long min, long max);

Result<std::unique_ptr<Sink>> open_mysql_sink(Url url, const SinkOptions& options);
Result<std::unique_ptr<Sink>> open_redis_sink(Url url, const SinkOptions& options);
Result<std::unique_ptr<Sink>> open_http_sink(Url url, const SinkOptions& options);
Result<std::unique_ptr<Sink>> open_stream_sink(const Url& url);

}  // namespace envkit
