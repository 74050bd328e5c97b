// HTTP ingest as a source: a POSTed record (or a batch: JSON Lines, or a JSON array of
// records) waits in its request until the pipeline settles it, and the client is answered 202
// only once every sink holds it. The request holds no thread meanwhile: the server's deferred
// handler queues the records, and the settle of the last one answers it.
#include <condition_variable>
#include <deque>
#include <mutex>

#include <envkit/http_server.hpp>
#include <envkit/log.hpp>

#include "records_internal.hpp"

namespace envkit {
namespace {

using namespace std::chrono;

// One POST: its records' verdicts, filled in by settle(). No thread waits for them: the
// settle that fills in the last one answers the request through its responder (the server
// answers 503 itself if that takes longer than answer-within).
struct Ingest {
  std::vector<std::string> ids;
  std::vector<Verdict> verdicts;
  std::vector<std::string> reasons;
  size_t open = 0;  // records not yet settled
  std::optional<HttpResponder> responder;
};

class HttpIngestSource final : public Source {
 public:
  HttpIngestSource(std::string name, std::string path, size_t max_queued)
      : name_(std::move(name)), path_(std::move(path)), max_queued_(max_queued) {}

  ~HttpIngestSource() override {
    // Whatever is still queued was never handed out: its clients are told to come back.
    std::vector<std::shared_ptr<Ingest>> answered;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      for (auto& q : queue_) settle_locked(q.handle, Verdict::retry, "the relay is stopping", answered);
      queue_.clear();
    }
    answer(answered);
    if (server_) server_->stop(seconds(5));
  }

  void serve(HttpServer server) { server_.emplace(std::move(server)); }

  // The server's deferred handler: a reply now for a request refused, else none, the
  // records queued and the responder kept with them.
  std::optional<HttpReply> handle(const HttpServerRequest& req, HttpResponder responder) {
    if (req.path != path_) return HttpReply::text(404, "no such endpoint: " + req.path + "; POST to " + path_ + "\n");
    if (req.method != "POST") {
      auto r = HttpReply::text(405, "POST records to " + path_ + "\n");
      r.headers.push_back({"Allow", "POST"});
      return r;
    }
    std::vector<std::string> lines;
    size_t first = req.body.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && req.body[first] == '[') {
      // A JSON array (sensor-push's HTTP batches): each element one record, in order.
      JsonDocument array;
      array.Parse(req.body.data(), req.body.size());
      if (array.HasParseError() || !array.IsArray()) {
        return HttpReply::text(400, "a body that starts with [ must be one JSON array of records\n");
      }
      for (const auto& v : array.GetArray()) lines.push_back(to_json(v));
    } else {
      size_t at = 0;
      while (at < req.body.size()) {
        size_t nl = req.body.find('\n', at);
        if (nl == std::string::npos) nl = req.body.size();
        std::string_view line(req.body.data() + at, nl - at);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find_first_not_of(" \t") != std::string_view::npos) lines.emplace_back(line);
        at = nl + 1;
      }
    }
    if (lines.empty()) return HttpReply::text(400, "empty body: POST a JSON object, JSON Lines or a JSON array\n");

    // Ids are worked out before the lock: parsing is the handler's own work, not the queue's.
    // One document for every line, its allocator on a buffer here: a report is well under
    // 4 KiB, so working out the ids allocates nothing per line.
    auto ingest = std::make_shared<Ingest>();
    ingest->ids.reserve(lines.size());
    char buffer[4096];
    rapidjson::MemoryPoolAllocator<> pool(buffer, sizeof buffer);
    JsonDocument doc(&pool);
    for (const auto& line : lines) ingest->ids.push_back(record_id_or_digest(doc, line));
    ingest->open = lines.size();
    ingest->verdicts.assign(lines.size(), Verdict::retry);
    ingest->reasons.resize(lines.size());
    ingest->responder = std::move(responder);
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return busy("the relay is stopping");
      if (queue_.size() + lines.size() > max_queued_) return busy("the relay is full");
      for (size_t i = 0; i < lines.size(); ++i) {
        uint64_t handle = outstanding_.add({ingest, i});
        queue_.push_back({{ingest->ids[i], std::move(lines[i])}, handle, 1, steady_clock::now()});
      }
    }
    // Notified unlocked, so the pipeline's thread does not wake only to wait for this mutex.
    queued_cv_.notify_one();
    return std::nullopt;
  }

  Result<SourceBatch> next(size_t max, milliseconds wait) override {
    SourceBatch b;
    std::unique_lock lock(mutex_);
    queued_cv_.wait_for(lock, wait, [&] { return !queue_.empty() || woken_; });
    woken_ = false;
    while (b.records.size() < max && !queue_.empty()) {
      b.records.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    return b;
  }

  void wake() override {
    {
      std::lock_guard lock(mutex_);
      woken_ = true;
    }
    queued_cv_.notify_one();
  }

  Status settle(std::span<const Settlement> settled) override {
    std::vector<std::shared_ptr<Ingest>> answered;
    {
      std::lock_guard lock(mutex_);
      for (const auto& s : settled) settle_locked(s.handle, s.verdict, s.reason, answered);
    }
    answer(answered);
    return outstanding_.settled(name_);
  }

  std::string name() const override { return name_; }

 private:
  struct Place {
    std::shared_ptr<Ingest> ingest;
    size_t index = 0;
  };

  // Records one verdict; a request whose last record this was is added to `answered`.
  void settle_locked(uint64_t handle, Verdict v, const std::string& reason,
                     std::vector<std::shared_ptr<Ingest>>& answered) {
    auto place = outstanding_.take(handle);
    if (!place) return;
    Ingest& in = *place->ingest;
    in.verdicts[place->index] = v;
    in.reasons[place->index] = reason;
    if (--in.open == 0) answered.push_back(std::move(place->ingest));
  }

  // Answers each request whose records are all settled; outside the mutex (the server's
  // own locks are taken: a reply is queued on its connection).
  static void answer(const std::vector<std::shared_ptr<Ingest>>& answered) {
    for (const auto& in : answered) {
      if (in->responder) in->responder->reply(reply(*in));
    }
  }

  static HttpReply busy(const std::string& why) {
    auto r = HttpReply::text(503, why + "; try again\n");
    r.headers.push_back({"Retry-After", "1"});
    return r;
  }

  // 202 when every record is held by every sink; 400 when a record is bad (and nothing needs
  // a retry); 503 with Retry-After when some record was not kept. A batch gets one JSON Lines
  // result per line either way.
  static HttpReply reply(const Ingest& in) {
    bool retry = false, dead = false;
    for (Verdict v : in.verdicts) {
      retry = retry || v == Verdict::retry;
      dead = dead || v == Verdict::dead;
    }
    int status = retry ? 503 : dead ? 400 : 202;
    std::string body;
    for (size_t i = 0; i < in.verdicts.size(); ++i) {
      JsonWriter w;
      w.begin_object();
      w.key("id").string(in.ids[i]);
      const char* what = in.verdicts[i] == Verdict::ack ? "accepted" : in.verdicts[i] == Verdict::dead ? "rejected" : "retry";
      w.key("result").string(what);
      if (in.verdicts[i] != Verdict::ack) w.key("reason").string(in.reasons[i]);
      w.end_object();
      body += w.take() + "\n";
    }
    HttpReply r;
    r.status = status;
    r.body = std::move(body);
    r.headers.push_back({"Content-Type", "application/x-ndjson"});
    if (retry) r.headers.push_back({"Retry-After", "1"});
    return r;
  }

  std::string name_, path_;
  size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable queued_cv_;  // the pipeline's thread, in next()
  std::deque<Received> queue_;
  Outstanding<Place> outstanding_;
  bool stopping_ = false;
  bool woken_ = false;  // wake() was called: next() returns without waiting for records
  std::optional<HttpServer> server_;
};

}  // namespace

Result<std::unique_ptr<Source>> open_http_source(const Url& url, const SourceOptions&) {
  if (url.scheme != "http") return Error{Exit::usage, url.redacted() + ": HTTP ingest listens on http:// only"};
  auto queued = int_param(url, "queue", 10000, 1, 10'000'000);
  if (!queued) return queued.error();
  auto within = int_param(url, "answer-within", 30000, 100, 3'600'000);
  if (!within) return within.error();
  auto workers = int_param(url, "workers", 64, 1, 4096);
  if (!workers) return workers.error();
  auto max_body = int_param(url, "max-body", 8 << 20, 16, 1 << 30);
  if (!max_body) return max_body.error();
  std::string path = "/" + url.path;
  auto source = std::make_unique<HttpIngestSource>(url.redacted(), path, static_cast<size_t>(*queued));
  HttpServerOptions o;
  o.workers = static_cast<size_t>(*workers);
  o.max_connections = std::max<size_t>(256, o.workers * 2);
  o.max_body_bytes = static_cast<size_t>(*max_body);
  o.reply_within = milliseconds(*within);
  HttpIngestSource* raw = source.get();
  HttpDeferredHandler handler = [raw](const HttpServerRequest& r, HttpResponder responder) {
    return raw->handle(r, std::move(responder));
  };
  auto server = HttpServer::start(url, std::move(handler), o);
  if (!server) return server.error();
  log_info(url.redacted() + ": listening on " + server->address());
  raw->serve(std::move(*server));
  return std::unique_ptr<Source>(std::move(source));
}

}  // namespace envkit
