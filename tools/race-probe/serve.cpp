// The reference target's routes. Safe mode holds a lock across each read-modify-write and
// persists with fsync and an atomic rename; --unsafe drops the lock and widens the window
// between the read and the write, so lost updates really happen.
#include "race-probe/serve.hpp"

#include <filesystem>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include <envkit/durable_file.hpp>
#include <envkit/json.hpp>
#include <envkit/log.hpp>
#include <envkit/signals.hpp>
#include <envkit/url.hpp>

namespace race_probe {

using envkit::Error;
using envkit::Exit;
using envkit::HttpReply;
using envkit::HttpServerRequest;

namespace {

constexpr size_t kMaxTasksFile = size_t{1} << 30;

HttpReply error_reply(int status, std::string_view message) {
  envkit::JsonWriter w;
  w.begin_object().key("error").string(message).end_object();
  return HttpReply::json(status, w.take() + "\n");
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

}  // namespace

struct ReferenceService::State {
  ServeConfig config;
  std::mutex tasks_lock;  // held across a whole append in safe mode
  std::mutex map_lock;    // guards the maps' memory in both modes; the race is logical
  std::unordered_map<std::string, int64_t> stock;
  std::unordered_map<std::string, std::string> kv;
  // --unsafe's stale read cache: a read answers what this cache last saw of the key,
  // for up to the race window, whatever was written since.
  struct Cached {
    std::string value;
    bool present;
    std::chrono::steady_clock::time_point at;
  };
  std::unordered_map<std::string, Cached> cache;

  void race_window() const {
    if (config.unsafe && config.race_window.value.count() > 0) {
      std::this_thread::sleep_for(config.race_window.value);
    }
  }

  // After a commit, --fail-after-commit answers a fraction of writes as if they timed out.
  std::optional<HttpReply> fail_after_commit() const {
    if (config.fail_after_commit <= 0) return std::nullopt;
    thread_local std::mt19937_64 rng{std::random_device{}()};
    if (std::uniform_real_distribution<double>(0, 1)(rng) >= config.fail_after_commit) return std::nullopt;
    if (config.fail_stall.value.count() > 0) std::this_thread::sleep_for(config.fail_stall.value);
    return error_reply(504, "timed out (after committing: --fail-after-commit)");
  }

  HttpReply add_task(const HttpServerRequest& req) {
    auto doc = envkit::parse_json(req.body);
    if (!doc || !doc->IsObject()) return error_reply(400, "the body must be one JSON object");
    std::unique_lock<std::mutex> lock(tasks_lock, std::defer_lock);
    if (!config.unsafe) lock.lock();
    auto current = read_tasks();
    if (!current) return error_reply(500, current.error().message);
    race_window();
    std::string& text = *current;
    // The file is "[\n" + one object a line joined by ",\n" + "\n]\n": appending is
    // replacing the closing bracket, which the file's own parse has vouched for.
    auto close = text.rfind(']');
    bool empty = text.find('{') == std::string::npos;
    text.erase(close);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    text += empty ? "\n" : ",\n";
    text += envkit::to_json(*doc);
    text += "\n]\n";
    auto st = config.unsafe ? write_unsynced(text) : envkit::write_file_atomically(config.data, text, 0644);
    if (!st) return error_reply(500, st.error().message);
    if (lock.owns_lock()) lock.unlock();
    if (auto failed = fail_after_commit()) return *failed;
    const envkit::JsonValue* id = envkit::find_member(*doc, "id");
    envkit::JsonWriter w;
    w.begin_object().key("stored").boolean(true);
    if (id) w.key("id").value(*id);
    w.end_object();
    return HttpReply::json(201, w.take() + "\n");
  }

  // The racy server still renames (readers never see half a file), but skips fsync: the
  // environment's naive server is no more careful.
  envkit::Status write_unsynced(const std::string& text) {
    auto file = envkit::AtomicFile::create(config.data, 0644);
    if (!file) return file.error();
    if (auto st = file->write(text); !st) return st;
    return file->commit();
  }

  envkit::Result<std::string> read_tasks() const {
    auto text = envkit::read_file(config.data, kMaxTasksFile);
    if (!text) {
      if (text.error().code == Exit::no_input) return std::string("[\n]\n");
      return text.error();
    }
    if (text->find(']') == std::string::npos) {
      return Error{Exit::data, config.data + ": not a JSON array"};
    }
    return text;
  }

  HttpReply stock_route(const HttpServerRequest& req, const std::vector<std::string>& parts) {
    if (parts.size() == 1 && req.method == "GET") {
      std::lock_guard<std::mutex> guard(map_lock);
      std::map<std::string, int64_t> sorted(stock.begin(), stock.end());
      envkit::JsonWriter w;
      w.begin_object();
      for (const auto& [item, n] : sorted) w.key(item).number(n);
      w.end_object();
      return HttpReply::json(200, w.take() + "\n");
    }
    if (parts.size() < 2) return error_reply(404, "no such route");
    const std::string& item = parts[1];
    if (parts.size() == 2 && req.method == "PUT") {
      auto doc = envkit::parse_json(req.body);
      const envkit::JsonValue* n = doc ? envkit::find_member(*doc, "stock") : nullptr;
      if (!n || !n->IsInt64()) return error_reply(400, "the body must be {\"stock\":N}");
      std::lock_guard<std::mutex> guard(map_lock);
      stock[item] = n->GetInt64();
      return HttpReply::json(200, "{\"item\":\"" + item + "\",\"stock\":" + std::to_string(n->GetInt64()) + "}\n");
    }
    if (parts.size() == 2 && req.method == "GET") {
      std::lock_guard<std::mutex> guard(map_lock);
      auto it = stock.find(item);
      if (it == stock.end()) return error_reply(404, "no such item");
      return HttpReply::json(200, "{\"item\":\"" + item + "\",\"stock\":" + std::to_string(it->second) + "}\n");
    }
    if (parts.size() == 3 && parts[2] == "buy" && req.method == "POST") {
      int64_t remaining;
      if (config.unsafe) {
        int64_t seen;
        {
          std::lock_guard<std::mutex> guard(map_lock);
          auto it = stock.find(item);
          if (it == stock.end()) return error_reply(404, "no such item");
          seen = it->second;
        }
        if (seen <= 0) return error_reply(409, "sold out");
        race_window();
        std::lock_guard<std::mutex> guard(map_lock);
        remaining = stock[item] = seen - 1;  // what it read, minus one: a lost update
      } else {
        std::lock_guard<std::mutex> guard(map_lock);
        auto it = stock.find(item);
        if (it == stock.end()) return error_reply(404, "no such item");
        if (it->second <= 0) return error_reply(409, "sold out");
        remaining = --it->second;
      }
      if (auto failed = fail_after_commit()) return *failed;
      return HttpReply::json(200, "{\"item\":\"" + item + "\",\"remaining\":" + std::to_string(remaining) + "}\n");
    }
    return error_reply(405, "method not allowed here");
  }

  HttpReply kv_route(const HttpServerRequest& req, const std::vector<std::string>& parts) {
    if (parts.size() < 2) return error_reply(404, "no such route");
    const std::string& key = parts[1];
    if (parts.size() == 2 && req.method == "GET") {
      std::lock_guard<std::mutex> guard(map_lock);
      auto now = std::chrono::steady_clock::now();
      if (config.unsafe) {
        auto c = cache.find(key);
        if (c != cache.end() && now - c->second.at < std::max(config.race_window.value, std::chrono::milliseconds(50))) {
          if (!c->second.present) return error_reply(404, "no such key");
          return value_reply(c->second.value);
        }
      }
      auto it = kv.find(key);
      if (config.unsafe) cache[key] = Cached{it == kv.end() ? "" : it->second, it != kv.end(), now};
      if (it == kv.end()) return error_reply(404, "no such key");
      return value_reply(it->second);
    }
    auto doc = envkit::parse_json(req.body);
    if (!doc || !doc->IsObject()) return error_reply(400, "the body must be a JSON object");
    if (parts.size() == 2 && req.method == "PUT") {
      const envkit::JsonValue* v = envkit::find_member(*doc, "value");
      if (!v) return error_reply(400, "the body must be {\"value\":V}");
      {
        std::lock_guard<std::mutex> guard(map_lock);
        kv[key] = envkit::to_json(*v);
      }
      if (auto failed = fail_after_commit()) return *failed;
      return HttpReply::json(200, "{\"ok\":true}\n");
    }
    if (parts.size() == 3 && parts[2] == "cas" && req.method == "POST") {
      const envkit::JsonValue* from = envkit::find_member(*doc, "from");
      const envkit::JsonValue* to = envkit::find_member(*doc, "to");
      if (!from || !to) return error_reply(400, "the body must be {\"from\":A,\"to\":B}");
      {
        std::lock_guard<std::mutex> guard(map_lock);
        auto it = kv.find(key);
        if (it == kv.end() || it->second != envkit::to_json(*from)) return error_reply(409, "compare failed");
        it->second = envkit::to_json(*to);
      }
      if (auto failed = fail_after_commit()) return *failed;
      return HttpReply::json(200, "{\"ok\":true}\n");
    }
    return error_reply(405, "method not allowed here");
  }

  static HttpReply value_reply(const std::string& value) {
    return HttpReply::json(200, "{\"value\":" + value + "}\n");
  }
};

ReferenceService::ReferenceService(ServeConfig config) : state_(std::make_unique<State>()) {
  state_->config = std::move(config);
}
ReferenceService::~ReferenceService() = default;

HttpReply ReferenceService::handle(const HttpServerRequest& req) {
  auto parts = split_path(req.path);
  if (parts.empty()) return error_reply(404, "no such route");
  if (parts[0] == "health") return HttpReply::text(200, "ok\n");
  if (parts[0] == "tasks" && parts.size() == 1) {
    if (req.method == "POST") return state_->add_task(req);
    if (req.method == "GET") {
      auto text = state_->read_tasks();
      if (!text) return error_reply(500, text.error().message);
      return HttpReply::json(200, std::move(*text));
    }
    return error_reply(405, "method not allowed here");
  }
  if (parts[0] == "stock") return state_->stock_route(req, parts);
  if (parts[0] == "kv") return state_->kv_route(req, parts);
  return error_reply(404, "no such route");
}

envkit::Status check_serve(const ServeConfig& config) {
  auto url = envkit::parse_url(config.listen);
  if (!url) return url.error();
  if (url->scheme != "http") return Error{Exit::usage, "--listen: only http://HOST:PORT is served"};
  auto dir = std::filesystem::path(config.data).parent_path();
  std::error_code ec;
  if (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
    return Error{Exit::no_input, "--data: " + dir.string() + ": no such directory"};
  }
  return {};
}

envkit::Status serve(const ServeConfig& config) {
  if (auto st = check_serve(config); !st) return st;
  auto url = envkit::parse_url(config.listen);
  auto service = std::make_shared<ReferenceService>(config);
  envkit::HttpServerOptions options;
  options.workers = config.workers;
  options.max_connections = std::max<size_t>(256, config.workers * 2);
  auto server = envkit::HttpServer::start(
      *url, [service](const HttpServerRequest& req) { return service->handle(req); }, options);
  if (!server) return server.error();
  envkit::log_info("serving on http://" + server->address() + (config.unsafe ? " (unsafe)" : "") +
                   ", tasks in " + config.data);
  while (!envkit::stop_requested()) envkit::sleep_unless_stopped(std::chrono::seconds(1));
  envkit::log_info("stopping");
  server->stop();
  return {};
}

}  // namespace race_probe
