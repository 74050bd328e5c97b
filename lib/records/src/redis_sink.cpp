// Redis sink: each record under a key made from a template, as a string, hash, list entry
// or stream entry, with an optional TTL; one pipeline a batch.
#include <climits>

#include <envkit/redis.hpp>
#include "records_internal.hpp"

namespace envkit {
namespace {

enum class RedisType { string, hash, list, stream };

class RedisSink : public Sink {
 public:
  RedisSink(Url url, SinkOptions options, std::string key, RedisType type, long ttl, long maxlen)
      : url_(std::move(url)), options_(std::move(options)), type_(type), ttl_(ttl), maxlen_(maxlen) {
    // {id} is Record::id, never the JSON member `id` (they may differ: a queue message's id,
    // a digest): split the template there once, and fill only the other {member}s per record.
    for (size_t from = 0;;) {
      size_t at = key.find("{id}", from);
      key_parts_.push_back(key.substr(from, at == std::string::npos ? std::string::npos : at - from));
      if (at == std::string::npos) break;
      from = at + 4;
    }
    bool members = false;
    for (const auto& part : key_parts_) members = members || part.find('{') != std::string::npos;
    // Strings and lists store the record as it is: unless the key names a member, no record
    // has to be parsed at all.
    needs_parse_ = type_ == RedisType::hash || type_ == RedisType::stream || members;
  }

  std::string name() const override { return url_.redacted(); }

  Result<std::vector<Delivery>> write(std::span<const Record> batch) override {
    std::vector<Delivery> out(batch.size());
    std::vector<std::vector<std::string>> commands;
    std::vector<std::pair<size_t, size_t>> owner;  // record index, number of commands it owns
    JsonDocument doc;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (needs_parse_) {
        doc.SetNull();
        doc.GetAllocator().Clear();  // one Document for the batch: drop the last record's values
        doc.Parse<rapidjson::kParseFullPrecisionFlag>(batch[i].json.data(), batch[i].json.size());
        if (doc.HasParseError() || !doc.IsObject()) {
          out[i] = {Outcome::rejected, "not a JSON object"};
          continue;
        }
      }
      auto key = make_key(batch[i], doc);
      if (!key) {
        out[i] = {Outcome::rejected, key.error().message};
        continue;
      }
      size_t before = commands.size();
      add_commands(*key, batch[i].json, doc, commands);
      owner.emplace_back(i, commands.size() - before);
    }
    if (commands.empty()) return out;
    if (!conn_) {
      auto c = RedisConnection::connect(url_, options_.connection);
      if (!c) return c.error();
      conn_ = std::make_unique<RedisConnection>(std::move(*c));
    }
    auto replies = conn_->pipeline(commands);
    if (!replies) {
      conn_.reset();  // reconnect on the next batch
      return replies.error();
    }
    size_t r = 0;
    for (const auto& [i, n] : owner) {
      out[i] = {Outcome::durable, {}};
      for (size_t k = 0; k < n; ++k, ++r) {
        const RedisReply& reply = (*replies)[r];
        if (reply.type == RedisReply::Type::error) out[i] = {Outcome::rejected, reply.str};
      }
    }
    return out;
  }

 private:
  // The key for one record: the template's pieces between {id}s, filled from the parsed
  // record when they name members, joined by the record's id.
  Result<std::string> make_key(const Record& record, const JsonValue& doc) const {
    if (key_parts_.size() > 1 && record.id.empty()) {
      return Error{Exit::data, "the record has no id for the key template"};
    }
    std::string key;
    for (size_t p = 0; p < key_parts_.size(); ++p) {
      if (p > 0) key += record.id;
      if (key_parts_[p].find('{') == std::string::npos) {
        key += key_parts_[p];
        continue;
      }
      auto part = expand_template(key_parts_[p], doc);
      if (!part) return part.error();
      key += *part;
    }
    return key;
  }

  void add_commands(const std::string& key, const std::string& json, const JsonValue& doc,
                    std::vector<std::vector<std::string>>& commands) {
    auto fields = [&](std::vector<std::string>& cmd) {
      for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
        cmd.emplace_back(m->name.GetString(), m->name.GetStringLength());
        cmd.push_back(m->value.IsString() ? std::string(m->value.GetString(), m->value.GetStringLength())
                                          : to_json(m->value));
      }
    };
    switch (type_) {
      case RedisType::string:
        if (ttl_ > 0) commands.push_back({"SET", key, json, "EX", std::to_string(ttl_)});
        else commands.push_back({"SET", key, json});
        return;
      case RedisType::hash: {
        std::vector<std::string> cmd{"HSET", key};
        fields(cmd);
        commands.push_back(std::move(cmd));
        break;
      }
      case RedisType::list:
        commands.push_back({"RPUSH", key, json});
        if (maxlen_ > 0) commands.push_back({"LTRIM", key, std::to_string(-maxlen_), "-1"});
        break;
      case RedisType::stream: {
        std::vector<std::string> cmd{"XADD", key};
        if (maxlen_ > 0) {
          cmd.insert(cmd.end(), {"MAXLEN", "~", std::to_string(maxlen_)});
        }
        cmd.push_back("*");
        fields(cmd);
        commands.push_back(std::move(cmd));
        break;
      }
    }
    if (ttl_ > 0) commands.push_back({"EXPIRE", key, std::to_string(ttl_)});
  }

  Url url_;
  SinkOptions options_;
  std::vector<std::string> key_parts_;  // the key template split at each {id}
  RedisType type_;
  long ttl_, maxlen_;
  bool needs_parse_ = true;
  std::unique_ptr<RedisConnection> conn_;
};

}  // namespace

Result<std::unique_ptr<Sink>> open_redis_sink(Url url, const SinkOptions& options) {
  auto key = url.param("key");
  if (!key || key->empty()) {
    return Error{Exit::usage, url.redacted() + ": name the key: ?key=TEMPLATE (e.g. weather:{city})"};
  }
  std::string t = url.param("type").value_or("string");
  RedisType type;
  if (t == "string") type = RedisType::string;
  else if (t == "hash") type = RedisType::hash;
  else if (t == "list") type = RedisType::list;
  else if (t == "stream") type = RedisType::stream;
  else return Error{Exit::usage, url.redacted() + ": type must be string, hash, list or stream"};
  auto ttl = int_param(url, "ttl", 0, 0, LONG_MAX);
  if (!ttl) return ttl.error();
  auto maxlen = int_param(url, "maxlen", 0, 0, LONG_MAX);
  if (!maxlen) return maxlen.error();
  std::string k = *key;
  return std::unique_ptr<Sink>(new RedisSink(std::move(url), options, k, type, *ttl, *maxlen));
}

}  // namespace envkit
