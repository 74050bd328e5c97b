// Redis sink: each record under a key made from a template, as a string, hash, list entry
// or stream entry, with an optional TTL; one pipeline a batch. With aggregates, one Lua
// script a batch writes each record, its dedupe marker and its aggregate updates together.
#include <climits>
#include <cstdlib>

#include <envkit/aggregates.hpp>
#include <envkit/redis.hpp>
#include "records_internal.hpp"

namespace envkit {
namespace {

enum class RedisType { string, hash, list, stream };

// One batch, atomically (Redis runs a script to its end before any other command). ARGV:
// dedupe (1/0), marker TTL (0: none), A, then A pairs (kind, hash key), then per record:
// marker key, N, N commands as (argc, args...), A pairs (group, number). Returns per record
// 1 (written), 2 (its marker was there: written before, nothing done) or the error of its
// first failed command (then nothing more of it is done: no aggregate, no marker).
// Commands of a record run with pcall so that one bad record (a key of the wrong type) does
// not abort the script half-way through the batch; the aggregate hashes are checked before
// anything is written, so their updates cannot fail part-way.
constexpr const char* kAggregateScript = R"lua(
local dedupe, marker_ttl, na = ARGV[1] == '1', tonumber(ARGV[2]), tonumber(ARGV[3])
local kinds, keys = {}, {}
for a = 1, na do
  kinds[a], keys[a] = ARGV[2 + 2 * a], ARGV[3 + 2 * a]
  local check = {keys[a]}
  if kinds[a] == 'mean' then check = {keys[a], keys[a] .. ':sum', keys[a] .. ':n'} end
  for _, k in ipairs(check) do
    local t = redis.call('TYPE', k).ok
    if t ~= 'none' and t ~= 'hash' then
      return redis.error_reply('aggregate key ' .. k .. ' holds a ' .. t .. ', not a hash')
    end
  end
end
local out, i = {}, 4 + 2 * na
while i <= #ARGV do
  local marker, ncmd = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local cmds = {}
  for c = 1, ncmd do
    local argc = tonumber(ARGV[i])
    cmds[c] = {unpack(ARGV, i + 1, i + argc)}
    i = i + 1 + argc
  end
  local inputs = i
  i = i + 2 * na
  if dedupe and redis.call('EXISTS', marker) == 1 then
    out[#out + 1] = 2
  else
    local err
    for _, cmd in ipairs(cmds) do
      local r = redis.pcall(unpack(cmd))
      if type(r) == 'table' and r.err then err = r.err break end
    end
    if err then
      out[#out + 1] = err
    else
      for a = 1, na do
        local g, v, k = ARGV[inputs + 2 * a - 2], ARGV[inputs + 2 * a - 1], keys[a]
        local kind = kinds[a]
        if kind == 'count' then
          redis.call('HINCRBY', k, g, 1)
        elseif kind == 'sum' then
          redis.call('HINCRBYFLOAT', k, g, v)
        elseif kind == 'min' or kind == 'max' then
          local cur = tonumber(redis.call('HGET', k, g))
          local n = tonumber(v)
          if not cur or (kind == 'min' and n < cur) or (kind == 'max' and n > cur) then
            redis.call('HSET', k, g, v)
          end
        else
          local n = redis.call('HINCRBY', k .. ':n', g, 1)
          local sum = tonumber(redis.call('HINCRBYFLOAT', k .. ':sum', g, v))
          redis.call('HSET', k, g, string.format('%.17g', sum / n))
        end
      end
      if dedupe then
        if marker_ttl > 0 then redis.call('SET', marker, '1', 'EX', marker_ttl)
        else redis.call('SET', marker, '1') end
      end
      out[#out + 1] = 1
    end
  end
end
return out
)lua";

class RedisSink : public Sink {
 public:
  RedisSink(Url url, SinkOptions options, std::string key, RedisType type, long ttl, long maxlen,
            std::vector<AggregateSpec> aggregates, std::string prefix, long marker_ttl)
      : url_(std::move(url)),
        options_(std::move(options)),
        type_(type),
        ttl_(ttl),
        maxlen_(maxlen),
        aggregates_(std::move(aggregates)),
        prefix_(std::move(prefix)),
        marker_ttl_(marker_ttl) {
    // Test-only switch, for the Bats test that shows the kill -9 check fails without the
    // marker (redelivered records then count twice): never set it in production.
    const char* off = std::getenv("ENVKIT_TEST_REDIS_NO_DEDUPE");
    dedupe_ = off == nullptr || std::string_view(off) != "1";
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
    needs_parse_ = type_ == RedisType::hash || type_ == RedisType::stream || members || !aggregates_.empty();
  }

  std::string name() const override { return url_.redacted(); }

  Result<std::vector<Delivery>> write(std::span<const Record> batch) override {
    std::vector<Delivery> out(batch.size());
    std::vector<std::vector<std::string>> commands;
    std::vector<std::pair<size_t, size_t>> owner;  // record index, number of commands it owns
    std::vector<std::string> script_args;           // with aggregates: the script's ARGV
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
      std::vector<AggregateInput> inputs;
      if (!aggregates_.empty()) {
        auto in = aggregate_inputs(aggregates_, doc);
        if (!in) {
          out[i] = {Outcome::rejected, in.error().message};
          continue;
        }
        inputs = std::move(*in);
      }
      size_t before = commands.size();
      add_commands(*key, batch[i].json, doc, commands);
      owner.emplace_back(i, commands.size() - before);
      if (!aggregates_.empty()) add_script_args(batch[i], commands, before, inputs, script_args);
    }
    if (commands.empty()) return out;
    if (!conn_) {
      auto c = RedisConnection::connect(url_, options_.connection);
      if (!c) return c.error();
      conn_ = std::make_unique<RedisConnection>(std::move(*c));
    }
    if (!aggregates_.empty()) {
      auto st = run_script(script_args, owner, out);
      if (!st) return st.error();
      return out;
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
  // Appends one record's part of the script's ARGV (see kAggregateScript): its marker, the
  // commands add_commands() made for it (from `first` on), its inputs to the aggregates.
  void add_script_args(const Record& record, const std::vector<std::vector<std::string>>& commands,
                       size_t first, const std::vector<AggregateInput>& inputs,
                       std::vector<std::string>& args) const {
    if (args.empty()) {
      args = {"EVALSHA", "", "0", dedupe_ ? "1" : "0", std::to_string(marker_ttl_),
              std::to_string(aggregates_.size())};
      for (const auto& spec : aggregates_) {
        args.push_back(spec.text().substr(0, spec.text().find(':')));
        args.push_back(spec.key(prefix_));
      }
    }
    // A record with no id has nothing to tell its redelivery by: its content stands in.
    args.push_back(prefix_ + "seen:" + (record.id.empty() ? content_id(record.json) : record.id));
    args.push_back(std::to_string(commands.size() - first));
    for (size_t c = first; c < commands.size(); ++c) {
      args.push_back(std::to_string(commands[c].size()));
      args.insert(args.end(), commands[c].begin(), commands[c].end());
    }
    for (const auto& in : inputs) {
      args.push_back(in.group);
      args.push_back(in.number);
    }
  }

  // Runs the batch's script (loaded once a connection, again after NOSCRIPT: a restarted or
  // flushed server) and fills `out` from its per-record answers. An Error (connection lost,
  // the script refused) leaves every record of the batch failed: the markers make the retry
  // safe whether or not the server ran it.
  Status run_script(std::vector<std::string>& args, const std::vector<std::pair<size_t, size_t>>& owner,
                    std::vector<Delivery>& out) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (sha_.empty()) {
        auto loaded = conn_->command({"SCRIPT", "LOAD", kAggregateScript});
        if (!loaded) {
          conn_.reset();
          return loaded.error();
        }
        if (loaded->is_error()) return Error{Exit::unavailable, name() + ": SCRIPT LOAD: " + loaded->str};
        sha_ = loaded->str;
      }
      args[1] = sha_;
      auto reply = conn_->command(args);
      if (!reply) {
        conn_.reset();
        sha_.clear();
        return reply.error();
      }
      if (reply->is_error() && reply->str.starts_with("NOSCRIPT")) {
        sha_.clear();
        continue;
      }
      if (reply->is_error()) return Error{Exit::unavailable, name() + ": aggregate script: " + reply->str};
      if (reply->type != RedisReply::Type::array || reply->elements.size() != owner.size()) {
        return Error{Exit::software, name() + ": aggregate script answered " +
                                         std::to_string(reply->elements.size()) + " results for " +
                                         std::to_string(owner.size()) + " records"};
      }
      for (size_t r = 0; r < owner.size(); ++r) {
        const RedisReply& one = reply->elements[r];
        size_t i = owner[r].first;
        if (one.type == RedisReply::Type::integer) out[i] = {Outcome::durable, {}};
        else if (one.str.starts_with("OOM")) out[i] = {Outcome::failed, one.str};  // passes: retry
        else out[i] = {Outcome::rejected, one.str};
      }
      return {};
    }
    return Error{Exit::unavailable, name() + ": the server keeps forgetting the aggregate script"};
  }

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
  std::vector<AggregateSpec> aggregates_;
  std::string prefix_;  // of the aggregate hashes and the dedupe markers
  long marker_ttl_;
  bool dedupe_ = true;
  std::string sha_;  // of the aggregate script, loaded on conn_
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
  std::vector<AggregateSpec> aggregates;
  for (const auto& text : url.params("aggregate")) {
    auto more = parse_aggregates(text);
    if (!more) return Error{Exit::usage, url.redacted() + ": " + more.error().message};
    for (auto& spec : *more) {
      for (const auto& seen : aggregates) {
        if (seen.text() == spec.text()) {
          return Error{Exit::usage, url.redacted() + ": aggregate '" + spec.text() + "' given twice"};
        }
      }
      aggregates.push_back(std::move(spec));
    }
  }
  std::string prefix = url.param("aggregate-prefix").value_or("agg:");
  // The marker must outlive the record: a redelivery after the marker expired but while the
  // record still counts would be counted again. No TTL on the record: none on the marker.
  auto marker_ttl = int_param(url, "dedupe-ttl", *ttl, 0, LONG_MAX);
  if (!marker_ttl) return marker_ttl.error();
  if (*marker_ttl != 0 && (*ttl == 0 || *marker_ttl < *ttl)) {
    return Error{Exit::usage, url.redacted() + ": dedupe-ttl must be at least ttl (and 0, no expiry, when ttl is)"};
  }
  if (aggregates.empty() && (url.param("aggregate-prefix") || url.param("dedupe-ttl"))) {
    return Error{Exit::usage, url.redacted() + ": aggregate-prefix and dedupe-ttl go with aggregate="};
  }
  std::string k = *key;
  return std::unique_ptr<Sink>(new RedisSink(std::move(url), options, k, type, *ttl, *maxlen,
                                             std::move(aggregates), std::move(prefix), *marker_ttl));
}

}  // namespace envkit
