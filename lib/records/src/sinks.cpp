// open_sink(): one URL, one sink; and the {member} templates sinks share.
#include <envkit/sinks.hpp>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <functional>

#include <envkit/amqp.hpp>
#include <envkit/kafka.hpp>
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

}  // namespace

Result<long> int_param(const Url& url, const char* name, long fallback, long min, long max) {
  auto v = url.param(name);
  if (!v) return fallback;
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0 || n < min || n > max) {
    std::string range = max == LONG_MAX ? " of " + std::to_string(min) + " or more"
                                        : " from " + std::to_string(min) + " to " + std::to_string(max);
    return Error{Exit::usage, url.redacted() + ": " + name + " must be a whole number" + range};
  }
  return n;
}

Result<std::string> expand_template(std::string_view tmpl, const JsonValue& record) {
  std::string out;
  out.reserve(tmpl.size() + 32);
  size_t i = 0;
  while (i < tmpl.size()) {
    size_t open = tmpl.find('{', i);
    if (open == std::string_view::npos) {
      out.append(tmpl.substr(i));
      break;
    }
    size_t close = tmpl.find('}', open);
    if (close == std::string_view::npos) {
      return Error{Exit::usage, "template '" + std::string(tmpl) + "': '{' without '}'"};
    }
    out.append(tmpl.substr(i, open - i));
    std::string_view member = tmpl.substr(open + 1, close - open - 1);
    const JsonValue* v = find_member(record, member);
    if (v == nullptr || v->IsNull()) {
      return Error{Exit::data, "the record has no '" + std::string(member) + "' for the key template"};
    }
    if (v->IsString()) out.append(v->GetString(), v->GetStringLength());
    else out.append(to_json(*v));
    i = close + 1;
  }
  return out;
}

Result<std::unique_ptr<Sink>> open_sink(std::string_view url_text, const SinkOptions& options) {
  auto url = parse_url(url_text);
  if (!url) return url.error();
  if (url->is_stdio() || url->is_file()) return open_stream_sink(*url);
  if (auto st = resolve_password(*url, {options.password_file, options.url_from_argv}); !st) {
    return st.error();
  }
  const std::string& s = url->scheme;
  if (s == "mysql") return open_mysql_sink(std::move(*url), options);
  if (s == "redis") return open_redis_sink(std::move(*url), options);
  if (s == "http" || s == "https") return open_http_sink(std::move(*url), options);
  if (s == "amqp" || s == "amqps" || s == "kafka") {
    Url u = *url;
    ConnectionOptions c = options.connection;
    auto opener = [u, c]() { return u.scheme == "kafka" ? open_kafka_sink(u, c) : open_amqp_sink(u, c); };
    return std::unique_ptr<Sink>(new LazySink(url->redacted(), opener));
  }
  return Error{Exit::usage, url->redacted() + ": cannot write records to a " + s + ":// URL"};
}

}  // namespace envkit
