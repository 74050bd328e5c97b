// The connector registry: one table from URL scheme to the source and the sink that speak it,
// with the query parameters each takes. open_source() and open_sink() look schemes up here
// and nowhere else; a new connector is one row (docs/architecture.md, "Adding a connector").
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/sink.hpp>
#include <envkit/sinks.hpp>
#include <envkit/source.hpp>
#include <envkit/url.hpp>

namespace envkit {

/// Everything a source needs besides its URL.
struct SourceOptions {
  ConnectionOptions connection;
  std::optional<std::string> password_file;
  bool url_from_argv = true;  ///< warn when the URL holds a password
  /// This process's name in a consumer group (Redis stream consumer, Kafka client.id);
  /// empty: "<hostname>-<pid>".
  std::string consumer;
  /// For a source with positions (Kafka): the positions the sinks already hold a consumer
  /// group's topic up to (Sink::stored_positions; nullopt when a sink keeps none). A
  /// partition whose stored position is ahead of the group's commit resumes after it.
  std::function<Result<std::optional<std::vector<LogPosition>>>(std::string_view group, std::string_view topic)>
      stored_positions;
};

/// One row of the registry.
struct Connector {
  std::string_view scheme;  ///< "redis", "amqp", ...; "-" is stdin/stdout, "file" a file
  /// Opens a source for a URL of this scheme; nullptr when records cannot be read from it.
  Result<std::unique_ptr<Source>> (*open_source)(const Url& url, const SourceOptions& options) = nullptr;
  /// Opens a sink; nullptr when records cannot be written to it.
  Result<std::unique_ptr<Sink>> (*open_sink)(const Url& url, const SinkOptions& options) = nullptr;
  std::string_view source_parameters;  ///< the URL's form and query parameters as a source
  std::string_view sink_parameters;    ///< the same as a sink
};

/// Every row, in the order the man pages list them.
std::span<const Connector> connectors();

/// The row for `scheme` ("https" shares "http"'s, "amqps" "amqp"'s), or nullptr.
const Connector* find_connector(std::string_view scheme);

/// Opens the source for `url_text`. Errors: Exit::usage for an unknown scheme, a scheme that
/// is not a source, or a parameter that makes no sense; the source's own errors otherwise.
Result<std::unique_ptr<Source>> open_source(std::string_view url_text, const SourceOptions& options);

/// Opens the sink for `url_text`. Connecting is left to the first write, so a sink that is
/// down at start-up can be spooled for instead of failing the run. Errors: Exit::usage for
/// a URL or parameter that makes no sense for the scheme.
Result<std::unique_ptr<Sink>> open_sink(std::string_view url_text, const SinkOptions& options);

/// SourceOptions::stored_positions for the sinks at `urls`: per partition the lowest position
/// they all hold, when every one of them keeps positions; nullopt when one keeps none (the
/// others may then lack records below a position) or cannot be asked now (logged: the source
/// starts from its commit, and sinks still skip what they hold).
std::function<Result<std::optional<std::vector<LogPosition>>>(std::string_view, std::string_view)>
sinks_stored_positions(std::vector<std::string> urls, SinkOptions options);

}  // namespace envkit
