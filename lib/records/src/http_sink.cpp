// HTTP sink: records POSTed as JSON, N to a request (an array) or one (an object, with an
// Idempotency-Key header), requests sent concurrently; the status decides each record's fate.
#include <envkit/http.hpp>
#include "records_internal.hpp"

namespace envkit {
namespace {

class HttpSink : public Sink {
 public:
  HttpSink(Url url, std::string target, HttpClient client, size_t batch, size_t concurrency)
      : url_(std::move(url)), target_(std::move(target)), client_(std::move(client)), batch_(batch),
        concurrency_(concurrency) {}

  std::string name() const override { return url_.redacted(); }

  Result<std::vector<Delivery>> write(std::span<const Record> records) override {
    std::vector<HttpRequest> requests;
    std::vector<std::pair<size_t, size_t>> spans;  // first record, count
    for (size_t i = 0; i < records.size(); i += batch_) {
      size_t n = std::min(batch_, records.size() - i);
      HttpRequest req;
      req.method = "POST";
      req.url = target_;
      req.headers = {{"Content-Type", "application/json"}};
      if (batch_ == 1) {
        req.body = records[i].json;
        req.headers.emplace_back("Idempotency-Key", records[i].id);
      } else {
        req.body = "[";
        for (size_t k = 0; k < n; ++k) req.body += (k ? "," : "") + records[i + k].json;
        req.body += "]";
      }
      requests.push_back(std::move(req));
      spans.emplace_back(i, n);
    }
    auto responses = client_.perform_all(requests, concurrency_);
    if (!responses) return responses.error();
    std::vector<Delivery> out(records.size());
    size_t transport_failures = 0;
    for (size_t r = 0; r < requests.size(); ++r) {
      const auto& resp = (*responses)[r];
      Delivery d;
      if (!resp) {
        d = {Outcome::failed, resp.error().message};
        ++transport_failures;
      } else if (resp->status >= 200 && resp->status < 300) {
        d = {Outcome::durable, {}};
      } else if (resp->status == 408 || resp->status == 429 || resp->status >= 500) {
        d = {Outcome::failed, "HTTP " + std::to_string(resp->status)};
      } else {
        d = {Outcome::rejected, "HTTP " + std::to_string(resp->status) + ": " +
                                            resp->body.substr(0, 200)};
      }
      for (size_t k = 0; k < spans[r].second; ++k) out[spans[r].first + k] = d;
    }
    // Nothing answered at all: the receiver is down, which the caller handles as a whole.
    if (transport_failures == requests.size()) return Error{Exit::unavailable, out.front().error};
    return out;
  }

 private:
  Url url_;
  std::string target_;
  HttpClient client_;
  size_t batch_, concurrency_;
};

}  // namespace

Result<std::unique_ptr<Sink>> open_http_sink(Url url, const SinkOptions& options) {
  auto batch = int_param(url, "batch", 100, 1, 1000000);
  if (!batch) return batch.error();
  auto concurrency = int_param(url, "concurrency", 4, 1, 1000000);
  if (!concurrency) return concurrency.error();
  // The request goes to the URL as written minus envkit's own parameters.
  Url target = url;
  std::erase_if(target.query, [](const auto& kv) { return kv.first == "batch" || kv.first == "concurrency"; });
  auto client = HttpClient::create(options.connection);
  if (!client) return client.error();
  return std::unique_ptr<Sink>(new HttpSink(std::move(url), target.text(), std::move(*client),
                                            static_cast<size_t>(*batch), static_cast<size_t>(*concurrency)));
}

}  // namespace envkit
