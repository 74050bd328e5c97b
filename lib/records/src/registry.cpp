// The connector registry: the one table of schemes, and open_source()/open_sink() over it.
#include <envkit/registry.hpp>

#include <functional>
#include <map>

#include <envkit/amqp.hpp>
#include <envkit/kafka.hpp>
#include <envkit/log.hpp>

#include "records_internal.hpp"

namespace envkit {
namespace {

// Opens the real sink on the first write, so that a broker that is down at start-up is
// spooled for like any other outage; a failed open is tried again on the next write.
class LazySink : public Sink {
 public:
  using Opener = std::function<Result<std::unique_ptr<Sink>>()>;
  LazySink(std::string name, Opener open) : name_(std::move(name)), open_(std::move(open)) {}

  std::string name() const override { return name_; }
  Result<std::vector<Delivery>> write(std::span<const Record> batch) override {
    if (!inner_) {
      auto sink = open_();
      if (!sink) return sink.error();
      inner_ = std::move(*sink);
    }
    return inner_->write(batch);
  }

 private:
  std::string name_;
  Opener open_;
  std::unique_ptr<Sink> inner_;
};

Result<std::unique_ptr<Sink>> lazy_amqp_sink(const Url& url, const SinkOptions& options) {
  if (auto settings = amqp_settings(url, options.connection); !settings) return settings.error();
  ConnectionOptions c = options.connection;
  return std::unique_ptr<Sink>(new LazySink(url.redacted(), [url, c] { return open_amqp_sink(url, c); }));
}

Result<std::unique_ptr<Sink>> lazy_kafka_sink(const Url& url, const SinkOptions& options) {
  if (auto settings = kafka_settings(url, options.connection); !settings) return settings.error();
  ConnectionOptions c = options.connection;
  return std::unique_ptr<Sink>(new LazySink(url.redacted(), [url, c] { return open_kafka_sink(url, c); }));
}

Result<std::unique_ptr<Sink>> stream_sink(const Url& url, const SinkOptions&) { return open_stream_sink(url); }
Result<std::unique_ptr<Source>> stream_source(const Url& url, const SourceOptions&) { return open_stream_source(url); }
Result<std::unique_ptr<Source>> redis_source(const Url& url, const SourceOptions& o) { return open_redis_source(url, o); }
Result<std::unique_ptr<Sink>> mysql_sink(const Url& url, const SinkOptions& o) { return open_mysql_sink(url, o); }
Result<std::unique_ptr<Sink>> redis_sink(const Url& url, const SinkOptions& o) { return open_redis_sink(url, o); }
Result<std::unique_ptr<Sink>> http_sink(const Url& url, const SinkOptions& o) { return open_http_sink(url, o); }
Result<std::unique_ptr<Source>> http_source(const Url& url, const SourceOptions& o) { return open_http_source(url, o); }

// The table. Parameter texts are what man pages and --help show for each scheme.
const Connector kConnectors[] = {
    {"-", stream_source, stream_sink,
     "- (stdin): JSON Lines to the end; id: the id member, else sha256: of the line; a line that is "
     "not an object is handed on for a sink or --require to reject; a retry comes again 1 s later",
     "- (stdout): JSON Lines, one record a line"},
    {"file", stream_source, stream_sink,
     "file:PATH[?offset-file=OFF]: as -; OFF keeps how many lines are settled, and a later run starts there",
     "file:PATH: JSON Lines, appended and fsynced a batch"},
    {"mysql", nullptr, mysql_sink, "",
     "mysql://user@host/db?table=T[&create=true][&positions=P]: one LOAD DATA LOCAL a batch, in one transaction,\n"
     "    idempotent on the table's unique key (INSERT when the server has local_infile off, and one record at a time\n"
     "    to name a bad value);\n"
     "    a Kafka record's offset goes into table P (envkit_positions, created if missing) in the same transaction, and\n"
     "    a record at or below its partition's stored offset is not written again (with --workers 1)"},
    {"redis", redis_source, redis_sink,
     // Two forms; the line break keeps --help readable.
     "redis://host/0?stream=S&group=G[&consumer=NAME][&claim-idle=MS][&create=true][&field=F]: consumer group;\n"
     "    XACK after the sinks, a retry stays pending; first this consumer's own pending entries, then\n"
     "    XAUTOCLAIM of entries idle over claim-idle (30000); create=true: the group, from the stream's start;\n"
     "    record: the fields as members (as the sink writes them) or field F's text; id: id member, else entry id\n"
     "  redis://host/0?list=L[&processing=P][&consumer=NAME]: reliable queue, oldest first; BLMOVE into P\n"
     "    (L:processing, or L:processing:NAME), LREM on ack, a retry back to L's tail; P first after a crash",
     "redis://host/0?key=TEMPLATE[&type=string|hash|list|stream][&ttl=SECONDS][&maxlen=N]: "
     "{id} in TEMPLATE is the record's id, {NAME} its member NAME\n"
     "    [&aggregate=SPEC[,SPEC]]... (count:BY, sum|min|max|mean:FIELD:BY) [&aggregate-prefix=agg:]\n"
     "    [&dedupe-ttl=SECONDS]: hashes PREFIX+SPEC (group -> value), updated with the record and its\n"
     "    marker PREFIX+seen:ID (TTL: dedupe-ttl, default ttl) in one Lua script a batch: a redelivery counts once"},
    {"http", http_source, http_sink,
     "http://HOST:PORT/PATH[?queue=N][&answer-within=MS][&workers=N][&max-body=BYTES]: HTTP ingest; "
     "POST a JSON object, JSON Lines or a JSON array of records to PATH; answered 202 only once every sink holds every record, "
     "400 when a record is bad (dead-lettered), 503 with Retry-After when the relay is full (queue: "
     "10000 records waiting) or a record was not kept; the body has one JSON line per record "
     "{id, result: accepted|rejected|retry, reason}",
     "http(s)://host/path[?batch=N]: POST, N records a request as a JSON array (1: an object)"},
    {"amqp", open_amqp_source, lazy_amqp_sink,
     "amqp(s)://user@host/vhost?queue=Q[&prefetch=N]: an existing queue, manual acks after the "
     "sinks (retry: nack and requeue; dead: ack once dead-lettered); deliveries from "
     "x-delivery-count on quorum queues, else the redelivered flag (2: at least twice); "
     "id: the message-id, else the `id` member, else sha256: of the body",
     "amqp(s)://user@host/vhost?queue=Q | ?exchange=X&routing-key=K: publisher confirms"},
    {"kafka", open_kafka_source, lazy_kafka_sink,
     "kafka://b1,b2/topic?group=G: commits per partition up to the lowest unsettled offset; "
     "retry: handed out again from memory, the commit held below it; deliveries counted by "
     "this process; id: the message key, else the `id` member, else TOPIC-PARTITION@OFFSET",
     "kafka://b1,b2/topic[?key=FIELD]: acks=all, idempotent producer"},
};

// Schemes that share a row: the TLS variant speaks the same protocol.
std::string_view base_scheme(std::string_view scheme) {
  if (scheme == "https") return "http";
  if (scheme == "amqps") return "amqp";
  return scheme;
}

}  // namespace

std::span<const Connector> connectors() { return kConnectors; }

const Connector* find_connector(std::string_view scheme) {
  scheme = base_scheme(scheme);
  for (const auto& c : kConnectors) {
    if (c.scheme == scheme) return &c;
  }
  return nullptr;
}

Result<std::unique_ptr<Source>> open_source(std::string_view url_text, const SourceOptions& options) {
  auto url = parse_url(url_text);
  if (!url) return url.error();
  const Connector* c = find_connector(url->scheme);
  if (c == nullptr || c->open_source == nullptr) {
    return Error{Exit::usage, url->redacted() + ": cannot read records from a " + url->scheme + " URL"};
  }
  if (!url->is_stdio() && !url->is_file()) {
    if (auto st = resolve_password(*url, {options.password_file, options.url_from_argv}); !st) return st.error();
  }
  return c->open_source(*url, options);
}

std::function<Result<std::optional<std::vector<LogPosition>>>(std::string_view, std::string_view)>
sinks_stored_positions(std::vector<std::string> urls, SinkOptions options) {
  using Positions = std::optional<std::vector<LogPosition>>;
  return [urls = std::move(urls), options = std::move(options)](std::string_view group,
                                                                 std::string_view topic) -> Result<Positions> {
    std::optional<std::map<int32_t, LogPosition>> lowest;
    for (const auto& url : urls) {
      auto sink = open_sink(url, options);
      if (!sink) return sink.error();
      auto held = (*sink)->stored_positions(group, topic);
      if (!held) {
        log_warning((*sink)->name() + ": reading its source positions: " + held.error().message +
                    " (starting from the group's commit)");
        return Positions();
      }
      if (!*held) return Positions();
      std::map<int32_t, LogPosition> these;
      for (const auto& p : **held) these[p.partition] = p;
      if (!lowest) {
        lowest = std::move(these);
        continue;
      }
      // A partition only one sink has a position for starts from the commit.
      std::erase_if(*lowest, [&](const auto& kv) { return !these.contains(kv.first); });
      for (auto& [partition, p] : *lowest) p.offset = std::min(p.offset, these[partition].offset);
    }
    if (!lowest) return Positions();
    std::vector<LogPosition> out;
    for (auto& [partition, p] : *lowest) out.push_back(std::move(p));
    return Positions(std::move(out));
  };
}

Result<std::unique_ptr<Sink>> open_sink(std::string_view url_text, const SinkOptions& options) {
  auto url = parse_url(url_text);
  if (!url) return url.error();
  const Connector* c = find_connector(url->scheme);
  if (c == nullptr || c->open_sink == nullptr) {
    return Error{Exit::usage, url->redacted() + ": cannot write records to a " + url->scheme + ":// URL"};
  }
  if (!url->is_stdio() && !url->is_file()) {
    if (auto st = resolve_password(*url, {options.password_file, options.url_from_argv}); !st) return st.error();
  }
  return c->open_sink(*url, options);
}

}  // namespace envkit
