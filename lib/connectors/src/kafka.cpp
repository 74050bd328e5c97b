// Kafka connector on librdkafka 2.0: settings from the URL, a bounded producer with one
// delivery report per record, a manually committing group consumer, and the Kafka sink.
#include <envkit/kafka.hpp>

#include <envkit/exit_status.hpp>

#include <librdkafka/rdkafka.h>
#include <syslog.h>

#include <algorithm>
#include <cctype>
#include <list>
#include <map>

#include <envkit/json.hpp>
#include <envkit/log.hpp>

namespace envkit {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::string ms_text(milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

milliseconds until(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? milliseconds(0) : left;
}

int to_int_ms(milliseconds ms) {
  return static_cast<int>(std::clamp<long long>(ms.count(), 0, 24LL * 3600 * 1000));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// librdkafka properties whose values are secrets: never echoed in messages or endpoints.
bool is_secret_property(std::string_view name) {
  std::string n = lower(std::string(name));
  return n.find("password") != std::string::npos || n.find("secret") != std::string::npos ||
         n.find("oauthbearer.config") != std::string::npos || n.find("pem") != std::string::npos;
}

std::optional<bool> parse_bool(const std::optional<std::string>& v) {
  if (!v) return std::nullopt;
  if (*v == "true" || *v == "1" || *v == "yes" || v->empty()) return true;
  if (*v == "false" || *v == "0" || *v == "no") return false;
  return std::nullopt;
}

constexpr std::string_view kPropertyPrefix = "X.";

struct TopicDestroyer {
  void operator()(rd_kafka_topic_t* rkt) const { rd_kafka_topic_destroy(rkt); }
};
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, TopicDestroyer>;
struct MessageDestroyer {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDestroyer>;
struct PartitionListDestroyer {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDestroyer>;
struct ConfDestroyer {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using Handle = std::unique_ptr<rd_kafka_t, detail::KafkaHandleDestroyer>;

// librdkafka logs from its own threads; envkit's logger writes each line with one write(2),
// so lines never interleave, and never on stdout, which carries data.
void on_log(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  std::string line =
      std::string("librdkafka: ") + rd_kafka_name(rk) + ": " + facility + ": " + message;
  if (level <= LOG_WARNING) {
    log_warning(line);
  } else {
    log_debug(line);
  }
}

// What the cluster said while connecting: errors arrive through rd_kafka_poll().
struct ClusterErrors {
  std::string first_transport_error;
  bool all_brokers_down = false;
  std::string fatal;
};

void note_error(ClusterErrors& errors, rd_kafka_t* rk, int err, const char* reason) {
  auto code = static_cast<rd_kafka_resp_err_t>(err);
  log_debug(std::string("librdkafka: ") + rd_kafka_name(rk) +
            ": error: " + rd_kafka_err2name(code) + ": " + reason);
  if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) errors.all_brokers_down = true;
  if ((code == RD_KAFKA_RESP_ERR__TRANSPORT || code == RD_KAFKA_RESP_ERR__RESOLVE ||
       code == RD_KAFKA_RESP_ERR__AUTHENTICATION || code == RD_KAFKA_RESP_ERR__SSL) &&
      errors.first_transport_error.empty()) {
    errors.first_transport_error = reason;
  }
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512] = {};
    rd_kafka_fatal_error(rk, buf, sizeof buf);
    errors.fatal = buf;
    log_error(std::string("librdkafka: ") + rd_kafka_name(rk) + ": fatal error: " + buf);
  }
}

// Creates a client handle whose callbacks get `opaque`: the caller's heap-allocated state,
// which outlives the handle.
Result<Handle> make_handle(rd_kafka_type_t type, const KafkaProperties& properties,
                           const std::string& endpoint, void* opaque,
                           void (*error_cb)(rd_kafka_t*, int, const char*, void*),
                           void (*dr_cb)(rd_kafka_t*, const rd_kafka_message_t*, void*),
                           void (*rebalance_cb)(rd_kafka_t*, rd_kafka_resp_err_t,
                                                rd_kafka_topic_partition_list_t*, void*) = nullptr) {
  std::unique_ptr<rd_kafka_conf_t, ConfDestroyer> conf(rd_kafka_conf_new());
  char errstr[512];
  for (const auto& [name, value] : properties) {
    if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      // librdkafka quotes the value in its message: not for a secret.
      std::string why = is_secret_property(name) ? "invalid value" : errstr;
      return fail(Failure::config, "bad Kafka property " + name + " for " + endpoint + ": " + why);
    }
  }
  rd_kafka_conf_set_log_cb(conf.get(), on_log);
  rd_kafka_conf_set_error_cb(conf.get(), error_cb);
  if (dr_cb != nullptr) rd_kafka_conf_set_dr_msg_cb(conf.get(), dr_cb);
  if (rebalance_cb != nullptr) rd_kafka_conf_set_rebalance_cb(conf.get(), rebalance_cb);
  rd_kafka_conf_set_opaque(conf.get(), opaque);
  Handle rk(rd_kafka_new(type, conf.get(), errstr, sizeof errstr));
  if (!rk) {
    return fail(Failure::config, "cannot create the Kafka client for " + endpoint + ": " + errstr);
  }
  conf.release();  // rd_kafka_new() owns it now
  return rk;
}

// Asks for the cluster's metadata until the connect deadline: the cluster must answer and
// know the topic. librdkafka connects lazily and retries for ever; this is where
// "unreachable" becomes an error. Metadata is asked for in short slices so that errors
// reported in between (a refused connection: "all brokers down") end the wait at once.
// All topics are listed rather than the one: a request naming a topic lets the broker (and
// librdkafka's mock) create it, and a typo must be an error, not a new topic.
// librdkafka reports broker transport errors as text only ("Connect to ipv4#127.0.0.1:1
// failed: Connection refused", "Failed to resolve 'h:9092': ...", "SASL authentication
// error: ...", "SSL handshake failed: ..."): the words decide the kind.
Failure transport_failure(const std::string& text, const KafkaSettings& s) {
  auto has = [&](std::string_view w) { return text.find(w) != std::string::npos; };
  if (has("SASL")) return Failure::auth_refused;
  if (has("SSL")) return Failure::tls_failed;
  if (has("Failed to resolve")) {
    auto url = parse_url("kafka://" + s.bootstrap);
    return url && !url->hosts.empty() ? failure_resolving(url->hosts[0].host)
                                      : Failure::name_not_found;
  }
  if (has("Connection refused")) return Failure::connection_refused;
  return Failure::unreachable;
}

Status check_cluster(rd_kafka_t* rk, const std::string& topic, const ClusterErrors& errors,
                     const KafkaSettings& s) {
  const std::string prefix = "cannot connect to " + s.endpoint;
  Clock::time_point deadline = Clock::now() + s.options.connect_timeout;
  std::string last;
  for (int round = 0; round < 100000; ++round) {
    int slice = to_int_ms(std::min(until(deadline), milliseconds(100)));
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &md, std::max(slice, 1));
    rd_kafka_poll(rk, 0);  // serves the error callback
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      bool found = topic.empty();
      rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR_NO_ERROR;
      for (int i = 0; i < md->topic_cnt && !found; ++i) {
        if (topic == md->topics[i].topic) {
          found = true;
          topic_err = md->topics[i].err;
        }
      }
      rd_kafka_metadata_destroy(md);
      if (!found) {
        return fail(Failure::not_found, "topic '" + topic + "' does not exist on " + s.endpoint);
      }
      if (topic_err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        return fail(Failure::permission_denied,
                    "not authorized for topic '" + topic + "' on " + s.endpoint);
      }
      if (topic_err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
      last = rd_kafka_err2str(topic_err);  // a leader being elected: ask again
    } else if (err != RD_KAFKA_RESP_ERR__TIMED_OUT && err != RD_KAFKA_RESP_ERR__TRANSPORT) {
      last = rd_kafka_err2str(err);
    }
    if (!errors.fatal.empty()) return fail(Failure::connection_lost, prefix + ": " + errors.fatal);
    if (errors.all_brokers_down && !errors.first_transport_error.empty()) {
      return fail(transport_failure(errors.first_transport_error, s),
                  prefix + ": " + errors.first_transport_error);
    }
    if (Clock::now() >= deadline) break;
  }
  std::string why = "no answer within " + ms_text(s.options.connect_timeout);
  if (!errors.first_transport_error.empty()) {
    why += " (" + errors.first_transport_error + ")";
  } else if (!last.empty()) {
    why += " (" + last + ")";
  }
  return fail(Failure::unreachable, prefix + ": " + why);
}

// The record's message key: its id, or the value of the ?key= field.
Result<std::string> key_of(const Record& r, const std::string& field) {
  if (field.empty()) return r.id;
  auto doc = parse_json(r.json);
  if (!doc)
    return fail(Failure::bad_data,
                 "the record is not JSON, so it has no key field: " + doc.error().message);
  if (!doc->IsObject()) return fail(Failure::bad_data, "the record is not a JSON object");
  auto it = doc->FindMember(rapidjson::StringRef(field.data(), field.size()));
  if (it == doc->MemberEnd() || it->value.IsNull()) {
    return fail(Failure::bad_data, "the record has no field '" + field + "' for the message key");
  }
  if (it->value.IsString()) return std::string(it->value.GetString(), it->value.GetStringLength());
  return to_json(it->value);
}

// A delivery report's error to a Delivery: what Kafka refuses for good is rejected, what
// passes (a broker down, a timeout, a leader election) is retry.
Delivery delivery_for(rd_kafka_resp_err_t err, rd_kafka_msg_status_t status) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return {Outcome::durable, ""};
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
      return {Outcome::rejected, rd_kafka_err2str(err)};
    default: {
      std::string why = rd_kafka_err2str(err);
      if (status == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED) {
        why += " (it may have been written: a retry can duplicate it)";
      }
      return {Outcome::failed, why};
    }
  }
}

}  // namespace

namespace detail {
void KafkaHandleDestroyer::operator()(rd_kafka_s* rk) const { rd_kafka_destroy(rk); }
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Settings

Result<KafkaSettings> kafka_settings(const Url& url, const ConnectionOptions& options,
                                     const KafkaProperties& extra) {
  KafkaSettings s;
  s.options = options;
  {
    // X.sasl.password=... would otherwise be printed by Url::redacted().
    Url masked = url;
    for (auto& [key, value] : masked.query) {
      if (key.compare(0, kPropertyPrefix.size(), kPropertyPrefix) == 0 && is_secret_property(key)) {
        value = "***";
      }
    }
    s.endpoint = masked.redacted();
  }
  auto bad = [&](std::string why) { return fail(Failure::usage, why + " in " + s.endpoint); };
  if (url.scheme != "kafka") return bad("not a Kafka URL (kafka://)");
  if (url.hosts.empty()) return bad("no broker");
  for (size_t i = 0; i < url.hosts.size(); ++i) {
    const HostPort& h = url.hosts[i];
    if (i > 0) s.bootstrap += ',';
    s.bootstrap += h.ipv6 ? "[" + h.host + "]" : h.host;
    s.bootstrap += ":" + std::to_string(url.port_or_default(i));
  }
  s.topic = url.path;
  if (s.topic.find('/') != std::string::npos) {
    return bad("'" + s.topic + "' is not a topic name (no '/' allowed)");
  }
  s.group = url.param("group").value_or("");
  s.key_field = url.param("key").value_or("");

  TlsOptions tls = options.tls;
  for (const char* key : {"tls", "tls-insecure"}) {
    auto v = url.param(key);
    if (v && !parse_bool(v)) return bad(std::string("bad ") + key + "=" + *v + " (true or false)");
  }
  if (auto v = parse_bool(url.param("tls"))) tls.enabled = *v;
  if (auto v = parse_bool(url.param("tls-insecure"))) tls.verify = !*v;
  if (auto v = url.param("tls-ca")) tls.ca_file = *v;
  if (auto v = url.param("tls-cert")) tls.cert_file = *v;
  if (auto v = url.param("tls-key")) tls.key_file = *v;
  if (!tls.ca_file.empty() || !tls.cert_file.empty() || !tls.key_file.empty()) tls.enabled = true;
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return bad("a client certificate needs both tls-cert and tls-key");
  }
  bool sasl = !url.user.empty();

  auto& p = s.properties;
  p.emplace_back("bootstrap.servers", s.bootstrap);
  p.emplace_back("client.id", log_settings().tool);
  // librdkafka's floor for the connection set-up timeout is one second; connect() keeps the
  // shorter bound itself.
  p.emplace_back("socket.connection.setup.timeout.ms",
                 std::to_string(std::max<long long>(1000, options.connect_timeout.count())));
  // A request unanswered for the I/O timeout fails (and is retried by librdkafka). A fetch
  // waits up to fetch.wait.max.ms (500) on the broker first, so consumers need 1.5 s at least.
  p.emplace_back("socket.timeout.ms",
                 std::to_string(std::clamp<long long>(options.io_timeout.count(), 1500, 300000)));
  // An idle connection reaped by a broker is normal: not worth a warning on every command.
  p.emplace_back("log.connection.close", "false");
  p.emplace_back("security.protocol",
                 std::string(sasl ? "sasl_" : "") + (tls.enabled ? "ssl" : "plaintext"));
  if (tls.enabled) {
    if (!tls.ca_file.empty()) p.emplace_back("ssl.ca.location", tls.ca_file);
    if (!tls.cert_file.empty()) p.emplace_back("ssl.certificate.location", tls.cert_file);
    if (!tls.key_file.empty()) p.emplace_back("ssl.key.location", tls.key_file);
    p.emplace_back("enable.ssl.certificate.verification", tls.verify ? "true" : "false");
    p.emplace_back("ssl.endpoint.identification.algorithm", tls.verify ? "https" : "none");
    // librdkafka has no setting for another expected server name: tls.server_name is unused.
  }
  if (sasl) {
    p.emplace_back("sasl.mechanisms", "PLAIN");
    p.emplace_back("sasl.username", url.user);
    p.emplace_back("sasl.password", url.password.value_or(""));
  }
  for (const auto& [key, value] : url.query) {
    if (key.size() > kPropertyPrefix.size() &&
        key.compare(0, kPropertyPrefix.size(), kPropertyPrefix) == 0) {
      s.overrides.emplace_back(key.substr(kPropertyPrefix.size()), value);
    }
  }
  for (const auto& kv : extra) s.overrides.push_back(kv);
  return s;
}

KafkaProperties kafka_producer_properties(const KafkaSettings& s) {
  KafkaProperties p = s.properties;
  p.emplace_back("acks", "all");
  p.emplace_back("enable.idempotence", "true");
  // librdkafka gives up on a message at this age (its report says so); produce() stops
  // waiting at the same time. It must exceed linger.ms, hence the floor.
  p.emplace_back("message.timeout.ms",
                 std::to_string(std::max<long long>(100, s.options.io_timeout.count())));
  p.insert(p.end(), s.overrides.begin(), s.overrides.end());
  return p;
}

KafkaProperties kafka_consumer_properties(const KafkaSettings& s) {
  KafkaProperties p = s.properties;
  p.emplace_back("group.id", s.group);
  // At-least-once: an offset is stored only when the caller says the record is safe, and
  // committed only when the caller asks.
  p.emplace_back("enable.auto.commit", "false");
  p.emplace_back("enable.auto.offset.store", "false");
  p.emplace_back("auto.offset.reset", "earliest");
  p.insert(p.end(), s.overrides.begin(), s.overrides.end());
  return p;
}

// ---------------------------------------------------------------------------------------------
// Producer

namespace {
struct Batch;
struct Slot {  // the per-message opaque: which record of which batch
  Batch* batch = nullptr;
  size_t index = 0;
};
struct Batch {
  std::vector<Delivery> deliveries;
  std::vector<Slot> slots;
  size_t outstanding = 0;
  bool abandoned = false;  // produce() returned without its reports; freed by the last one
};
}  // namespace

struct KafkaProducer::State {
  KafkaSettings settings;
  ClusterErrors errors;
  // Reports still owed to batches produce() gave up waiting for. Destroyed after the handle
  // (members go in reverse order), so no report can reach a freed batch.
  std::list<std::unique_ptr<Batch>> abandoned;
  Handle rk;
  std::map<std::string, TopicPtr, std::less<>> topics;  // destroyed before the handle

  ~State() {
    if (!rk) return;
    // Only abandoned batches can have messages in flight (produce() waits for the rest).
    // They get a second, then are dropped with the handle. No flush without them:
    // rd_kafka_flush() also waits for librdkafka's own requests and would cost the second
    // every time.
    if (!abandoned.empty()) {
      rd_kafka_flush(rk.get(), 1000);
      rd_kafka_purge(rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_poll(rk.get(), 0);
    }
    topics.clear();
    rk.reset();
  }

  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    note_error(static_cast<State*>(opaque)->errors, rk, err, reason);
  }

  // Runs inside rd_kafka_poll()/rd_kafka_flush(), on the thread that called produce().
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<State*>(opaque);
    auto* slot = static_cast<Slot*>(m->_private);
    if (slot == nullptr) return;
    Batch* batch = slot->batch;
    batch->deliveries[slot->index] = delivery_for(m->err, rd_kafka_message_status(m));
    if (--batch->outstanding == 0 && batch->abandoned) {
      self->abandoned.remove_if([batch](const auto& b) { return b.get() == batch; });
    }
  }

  Result<rd_kafka_topic_t*> topic(std::string_view name) {
    auto it = topics.find(name);
    if (it != topics.end()) return it->second.get();
    TopicPtr rkt(rd_kafka_topic_new(rk.get(), std::string(name).c_str(), nullptr));
    if (!rkt) {
      return fail(Failure::usage, "bad topic '" + std::string(name) + "' for " + settings.endpoint +
                                    ": " + rd_kafka_err2str(rd_kafka_last_error()));
    }
    rd_kafka_topic_t* raw = rkt.get();
    topics.emplace(std::string(name), std::move(rkt));
    return raw;
  }
};

KafkaProducer::KafkaProducer(std::unique_ptr<State> state) : state_(std::move(state)) {}
KafkaProducer::KafkaProducer(KafkaProducer&&) noexcept = default;
KafkaProducer& KafkaProducer::operator=(KafkaProducer&&) noexcept = default;
KafkaProducer::~KafkaProducer() = default;

bool KafkaProducer::fatal() const { return !state_->errors.fatal.empty(); }
const std::string& KafkaProducer::endpoint() const { return state_->settings.endpoint; }
rd_kafka_s* KafkaProducer::handle() const { return state_->rk.get(); }

Result<KafkaProducer> KafkaProducer::connect(const Url& url, const ConnectionOptions& options,
                                             const KafkaProperties& extra) {
  auto settings = kafka_settings(url, options, extra);
  if (!settings) return settings.error();
  return connect(*settings);
}

Result<KafkaProducer> KafkaProducer::connect(const KafkaSettings& settings) {
  auto state = std::make_unique<State>();
  state->settings = settings;
  auto rk = make_handle(RD_KAFKA_PRODUCER, kafka_producer_properties(settings), settings.endpoint,
                        state.get(), &State::on_error, &State::on_delivery);
  if (!rk) return rk.error();
  state->rk = std::move(*rk);
  if (auto st = check_cluster(state->rk.get(), settings.topic, state->errors, settings); !st) {
    return st.error();
  }
  return KafkaProducer(std::move(state));
}

Result<std::vector<Delivery>> KafkaProducer::produce(std::span<const Record> records,
                                                     std::string_view topic) {
  State& s = *state_;
  rd_kafka_t* rk = s.rk.get();
  const milliseconds timeout = s.settings.options.io_timeout;
  if (!s.errors.fatal.empty()) {
    return fail(Failure::connection_lost, "the Kafka producer for " + s.settings.endpoint +
                                        " is unusable after a fatal error: " + s.errors.fatal);
  }
  if (records.empty()) return std::vector<Delivery>{};
  auto rkt = s.topic(topic);
  if (!rkt) return rkt.error();

  auto batch = std::make_unique<Batch>();
  batch->deliveries.assign(
      records.size(), {Outcome::failed, "no delivery report within " + ms_text(timeout)});
  batch->slots.resize(records.size());
  // Like a read timeout, the deadline is for progress: it moves on whenever delivery
  // reports arrive, so a large batch to a working cluster is waited for, a stuck one is not.
  Clock::time_point deadline = Clock::now() + timeout;
  auto poll_for_progress = [&](milliseconds wait) {
    size_t before = batch->outstanding;
    rd_kafka_poll(rk, to_int_ms(wait));
    if (batch->outstanding != before) deadline = Clock::now() + timeout;
  };

  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    batch->slots[i] = {batch.get(), i};
    auto key = key_of(r, s.settings.key_field);
    if (!key) {
      batch->deliveries[i] = {Outcome::rejected, key.error().message};
      continue;
    }
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    // librdkafka's local queue is bounded (queue.buffering.max.messages/kbytes): when it is
    // full, serve delivery reports so it drains, until the deadline.
    for (;;) {
      int rc = rd_kafka_produce(*rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                const_cast<char*>(r.json.data()), r.json.size(), key->data(),
                                key->size(), &batch->slots[i]);
      err = rc == 0 ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_last_error();
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || Clock::now() >= deadline) break;
      poll_for_progress(milliseconds(10));
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++batch->outstanding;
    } else if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      // Out of time: this record and the rest keep "retry".
      for (size_t j = i; j < records.size(); ++j) {
        batch->deliveries[j].error = "librdkafka's queue stayed full for " + ms_text(timeout) +
                                     " (no delivery report came back)";
      }
      break;
    } else {
      batch->deliveries[i] = delivery_for(err, RD_KAFKA_MSG_STATUS_NOT_PERSISTED);
    }
  }

  // Wait for every report. rd_kafka_poll() returns as soon as it served some, so the slices
  // only bound how late the deadline is noticed.
  while (batch->outstanding > 0) {
    milliseconds left = until(deadline);
    if (left.count() == 0) break;
    poll_for_progress(std::min(left, milliseconds(100)));
  }
  if (batch->outstanding > 0) {
    // The deadline passed: what has not left the client yet is taken back (its reports say
    // "purged" at once); what is in flight may still land, so it stays "retry" (a duplicate,
    // never a loss). A short grace collects the purge reports.
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE);
    for (int i = 0; i < 20 && batch->outstanding > 0; ++i) rd_kafka_poll(rk, 10);
  }
  char buf[512] = {};
  if (s.errors.fatal.empty() &&
      rd_kafka_fatal_error(rk, buf, sizeof buf) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    s.errors.fatal = buf;
  }
  std::vector<Delivery> out = batch->deliveries;
  if (batch->outstanding > 0) {
    // Reports still owed point into the batch: keep it alive until they come.
    batch->abandoned = true;
    s.abandoned.push_back(std::move(batch));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Consumer

namespace {

Status commit_offsets(rd_kafka_t* rk, const KafkaSettings& settings,
                      std::span<const KafkaOffset> offsets) {
  if (offsets.empty()) return {};
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& o : offsets) {
    rd_kafka_topic_partition_list_add(list.get(), settings.topic.c_str(), o.partition)->offset =
        o.offset;
  }
  rd_kafka_resp_err_t err = rd_kafka_commit(rk, list.get(), /*async=*/0);
  for (int i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && i < list->cnt; ++i) err = list->elems[i].err;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  // A rebalance took the partitions, or is taking them: their new owner reads from the last
  // commit, which at-least-once allows. Anything else is the coordinator being unreachable.
  bool passing = err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
                 err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
                 err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || err == RD_KAFKA_RESP_ERR__STATE ||
                 err == RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST;
  return fail(passing ? Failure::server_busy : Failure::connection_lost,
              "committing offsets of '" + settings.topic + "' to " + settings.endpoint +
                  " failed: " + rd_kafka_err2str(err));
}

}  // namespace

struct KafkaConsumer::State {
  KafkaSettings settings;
  ClusterErrors errors;
  KafkaRevokeHook revoke_hook;  // before rk: the close in ~State() may still call it
  KafkaStartHook start_hook;
  Handle rk;
  bool subscribed = false;

  ~State() {
    // Leaves the group cleanly so the partitions move to another member at once (the
    // revoke hook runs first and commits what is safe).
    if (rk && subscribed) rd_kafka_consumer_close(rk.get());
  }

  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    note_error(static_cast<State*>(opaque)->errors, rk, err, reason);
  }

  // Sets the assigned partitions' start offsets to the hook's positions where those are
  // ahead of the group's commit; left unset, librdkafka starts from the commit.
  static void start_ahead(rd_kafka_t* rk, State* self, rd_kafka_topic_partition_list_t* parts) {
    std::vector<int32_t> ours;
    for (int i = 0; i < parts->cnt; ++i) {
      if (self->settings.topic == parts->elems[i].topic) ours.push_back(parts->elems[i].partition);
    }
    auto wanted = self->start_hook(ours);
    if (wanted.empty()) return;
    PartitionListPtr committed(rd_kafka_topic_partition_list_copy(parts));
    auto timeout = static_cast<int>(std::max<long long>(1000, self->settings.options.io_timeout.count()));
    if (rd_kafka_resp_err_t err = rd_kafka_committed(rk, committed.get(), timeout); err) {
      // Reading from the commit is still right, only slower: the sink holds what it skips.
      log_warning("consuming from " + self->settings.endpoint + ": reading the group's commit: " +
                  rd_kafka_err2str(err) + " (starting from it)");
      return;
    }
    for (int i = 0; i < parts->cnt; ++i) {
      auto& e = parts->elems[i];
      if (self->settings.topic != e.topic) continue;
      for (const auto& w : wanted) {
        if (w.partition != e.partition) continue;
        int64_t group_at = committed->elems[i].offset;  // negative: nothing committed
        if (w.offset > group_at) {
          log_info(self->settings.endpoint + ": partition " + std::to_string(e.partition) + " starts at " +
                   std::to_string(w.offset) + ", past the group's commit (" +
                   (group_at < 0 ? std::string("none") : std::to_string(group_at)) +
                   "): the records below are already stored");
          e.offset = w.offset;
        }
      }
    }
  }

  // Runs inside rd_kafka_consumer_poll() and rd_kafka_consumer_close(). With a rebalance
  // callback installed, assigning and unassigning is ours to do.
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* self = static_cast<State*>(opaque);
    const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
    rd_kafka_error_t* error = nullptr;
    rd_kafka_resp_err_t assign_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      if (self->start_hook) start_ahead(rk, self, parts);
      if (cooperative) {
        error = rd_kafka_incremental_assign(rk, parts);
      } else {
        assign_err = rd_kafka_assign(rk, parts);
      }
    } else {
      if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && self->revoke_hook) {
        std::vector<int32_t> revoked;
        for (int i = 0; i < parts->cnt; ++i) {
          if (self->settings.topic == parts->elems[i].topic) {
            revoked.push_back(parts->elems[i].partition);
          }
        }
        bool lost = rd_kafka_assignment_lost(rk) != 0;
        auto safe = self->revoke_hook(revoked, lost);
        if (!lost) {
          if (auto st = commit_offsets(rk, self->settings, safe); !st) {
            log_warning(st.error().message + " (on revocation: those records will be read again)");
          }
        }
      }
      if (cooperative) {
        error = rd_kafka_incremental_unassign(rk, parts);
      } else {
        assign_err = rd_kafka_assign(rk, nullptr);
      }
    }
    if (error != nullptr) {
      log_warning("consuming from " + self->settings.endpoint + ": rebalance: " +
                  rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    } else if (assign_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log_warning("consuming from " + self->settings.endpoint + ": rebalance: " +
                  rd_kafka_err2str(assign_err));
    }
  }
};

KafkaConsumer::KafkaConsumer(std::unique_ptr<State> state) : state_(std::move(state)) {}
KafkaConsumer::KafkaConsumer(KafkaConsumer&&) noexcept = default;
KafkaConsumer& KafkaConsumer::operator=(KafkaConsumer&&) noexcept = default;
KafkaConsumer::~KafkaConsumer() = default;
const std::string& KafkaConsumer::endpoint() const { return state_->settings.endpoint; }
rd_kafka_s* KafkaConsumer::handle() const { return state_->rk.get(); }

Result<KafkaConsumer> KafkaConsumer::connect(const KafkaSettings& settings) {
  if (settings.group.empty()) {
    return fail(Failure::usage, "a Kafka consumer needs ?group= in " + settings.endpoint);
  }
  if (settings.topic.empty()) {
    return fail(Failure::usage, "a Kafka consumer needs a topic in " + settings.endpoint);
  }
  auto state = std::make_unique<State>();
  state->settings = settings;
  auto rk = make_handle(RD_KAFKA_CONSUMER, kafka_consumer_properties(settings), settings.endpoint,
                        state.get(), &State::on_error, nullptr, &State::on_rebalance);
  if (!rk) return rk.error();
  state->rk = std::move(*rk);
  if (auto st = check_cluster(state->rk.get(), settings.topic, state->errors, settings); !st) {
    return st.error();
  }
  rd_kafka_poll_set_consumer(state->rk.get());
  PartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), settings.topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (auto err = rd_kafka_subscribe(state->rk.get(), topics.get()); err) {
    return fail(Failure::config, "cannot subscribe to '" + settings.topic + "' on " +
                                   settings.endpoint + ": " + rd_kafka_err2str(err));
  }
  state->subscribed = true;
  return KafkaConsumer(std::move(state));
}

Result<std::optional<KafkaMessage>> KafkaConsumer::next(milliseconds timeout) {
  State& s = *state_;
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    MessagePtr m(rd_kafka_consumer_poll(s.rk.get(), to_int_ms(until(deadline))));
    if (!m) return std::optional<KafkaMessage>{};  // the wait ran out
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      KafkaMessage out;
      out.topic = rd_kafka_topic_name(m->rkt);
      out.partition = m->partition;
      out.offset = m->offset;
      if (m->key) out.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) out.payload.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_timestamp_type_t type;
      out.timestamp_ms = rd_kafka_message_timestamp(m.get(), &type);
      return std::optional<KafkaMessage>(std::move(out));
    }
    std::string why = rd_kafka_message_errstr(m.get());
    switch (m->err) {
      case RD_KAFKA_RESP_ERR__PARTITION_EOF:
        break;
      case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
      case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
      case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
      case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        return fail(m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                            m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC
                        ? Failure::not_found
                        : Failure::permission_denied,
                    "consuming '" + s.settings.topic + "' from " + s.settings.endpoint +
                        " failed: " + why);
      default:
        // librdkafka retries by itself (a broker restarting, a rebalance): wait it out.
        log_debug("consuming from " + s.settings.endpoint + ": " + why);
        break;
    }
    if (Clock::now() >= deadline) return std::optional<KafkaMessage>{};
  }
}

Status KafkaConsumer::store(const KafkaMessage& message) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), message.topic.c_str(), message.partition)->offset =
      message.offset + 1;  // the next message to read, as Kafka counts committed offsets
  rd_kafka_resp_err_t err = rd_kafka_offsets_store(state_->rk.get(), list.get());
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = list->elems[0].err;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Typically the partition moved to another member in a rebalance: it will be read again
    // there, which at-least-once allows.
    return Error{exit_for(Failure::server_busy), "cannot mark " + message.topic + "[" +
                                      std::to_string(message.partition) + "]@" +
                                      std::to_string(message.offset) + " done on " +
                                      state_->settings.endpoint + ": " + rd_kafka_err2str(err)};
  }
  return {};
}

Status KafkaConsumer::commit(std::span<const KafkaOffset> offsets) {
  return commit_offsets(state_->rk.get(), state_->settings, offsets);
}

void KafkaConsumer::on_revoke(KafkaRevokeHook hook) { state_->revoke_hook = std::move(hook); }
void KafkaConsumer::on_assign(KafkaStartHook hook) { state_->start_hook = std::move(hook); }

Status KafkaConsumer::commit() {
  rd_kafka_resp_err_t err = rd_kafka_commit(state_->rk.get(), nullptr, /*async=*/0);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return {};
  return Error{exit_for(Failure::connection_lost), "committing offsets to " + state_->settings.endpoint +
                                      " failed: " + rd_kafka_err2str(err)};
}

}  // namespace envkit
