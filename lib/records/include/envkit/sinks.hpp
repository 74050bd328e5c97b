// What sinks share: their options, the table a MySQL sink creates, {member} key templates,
// and the per-scheme openers behind the registry (envkit/registry.hpp).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/connection.hpp>
#include <envkit/json.hpp>
#include <envkit/kafka.hpp>
#include <envkit/sink.hpp>
#include <envkit/url.hpp>

namespace envkit {

/// One column of a table a MySQL sink may create and fills from a record's member.
struct Column {
  enum class Kind {
    text,       ///< a JSON string, stored as given
    number,     ///< a JSON number (or numeric string)
    timestamp,  ///< an RFC 3339 string, stored as a UTC DATETIME
    json,       ///< any JSON value, stored as its text
  };
  std::string name;      ///< column name, also the record member it is read from
  std::string sql_type;  ///< "VARCHAR(100) NOT NULL", "DECIMAL(5,2)", "DATETIME(3) NOT NULL"
  Kind kind = Kind::text;
};

/// The table a MySQL sink creates with ?create=true: its columns and its unique key, which
/// makes inserts idempotent (a re-sent record changes nothing).
struct TableSchema {
  std::vector<Column> columns;
  std::vector<std::string> unique_key;
};

/// Everything a sink needs besides its URL.
struct SinkOptions {
  ConnectionOptions connection;
  std::optional<std::string> password_file;
  bool url_from_argv = true;               ///< warn when the URL holds a password
  std::optional<TableSchema> table_schema;  ///< MySQL: the table to create
  /// Each instance of the sink gets the records of a source partition in the source's order
  /// (one pipeline worker). Source positions are kept only then (MySQL: "Source positions"
  /// in docs/architecture.md); with parallel writers a later batch could commit first.
  bool in_order = true;
};


/// The AMQP and Kafka sinks by themselves, connected now (open_sink() defers the connection
/// to the first write). Errors: as AmqpConnection::connect and KafkaProducer::connect, and
/// Exit::usage for a URL with no queue, exchange or topic.
Result<std::unique_ptr<Sink>> open_amqp_sink(const Url& url, const ConnectionOptions& options);
Result<std::unique_ptr<Sink>> open_kafka_sink(const Url& url, const ConnectionOptions& options,
                                              const KafkaProperties& extra = {});

/// Fills "{member}" placeholders of `tmpl` from the record's top-level members (strings as
/// they are, other values as JSON text). Errors (Exit::data) name a missing member.
Result<std::string> expand_template(std::string_view tmpl, const JsonValue& record);

}  // namespace envkit
