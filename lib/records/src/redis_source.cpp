// Redis sources: a stream read through a consumer group, and a list used as a reliable queue.
//
// Stream (?stream=S&group=G): XREADGROUP hands entries out; XACK after the pipeline's ack or
// dead (the dead letter is written first); a retry leaves the entry pending. Pending entries
// come back in two ways: at start, this consumer first re-reads its own pending entries (ID
// 0), so a restart under the same consumer name finishes what the last run held; and every
// so often XAUTOCLAIM moves to this consumer any entry idle longer than claim-idle, whoever
// held it (a dead consumer, or this one after a retry). Deliveries are XPENDING's counter.
//
// List (?list=L): BLMOVE L P LEFT RIGHT takes the oldest entry (the sink RPUSHes) into the
// processing list P; LREM P on ack or dead; a retry moves the entry from P back to the tail of
// L in one script. At start, whatever P still holds (a crashed run's records) is handed out
// first. P belongs to one consumer at a time: two live consumers sharing P would each hand out
// the other's records again at start (duplicates, never losses).
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <deque>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <envkit/log.hpp>
#include <envkit/posix.hpp>
#include <envkit/redis.hpp>
#include "records_internal.hpp"

namespace envkit {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A blocking read must return before the connection's I/O timeout fires, or the wait would
// look like a dead server and break the connection.
milliseconds block_bound(milliseconds wait, const ConnectionOptions& options) {
  milliseconds margin = std::min(options.io_timeout / 2, milliseconds(1000));
  return std::clamp(wait, milliseconds(0), options.io_timeout - margin);
}

Error reply_error(const std::string& where, const RedisReply& reply) {
  // NOGROUP, WRONGTYPE, NOPERM: the stream, group or list is refused, not the server gone.
  return Error{Exit::config, where + ": " + reply.str};
}

// A Redis connection that reconnects on the call after a failure.
class Link {
 public:
  Link(Url url, ConnectionOptions options) : url_(std::move(url)), options_(std::move(options)) {}

  Result<RedisConnection*> get() {
    if (!conn_) {
      auto c = RedisConnection::connect(url_, options_);
      if (!c) return c.error();
      conn_ = std::make_unique<RedisConnection>(std::move(*c));
    }
    return conn_.get();
  }
  /// True once after the connection broke: a command's reply may have been lost after the
  /// server ran it (XREADGROUP, LMOVE), so what it handed over must be looked for again.
  bool broke_since_asked() { return std::exchange(broke_, false); }
  Result<RedisReply> command(const std::vector<std::string>& argv) {
    auto c = get();
    if (!c) return c.error();
    auto r = (*c)->command(argv);
    if (!r) lost();
    return r;
  }
  Result<std::vector<RedisReply>> pipeline(const std::vector<std::vector<std::string>>& commands) {
    auto c = get();
    if (!c) return c.error();
    auto r = (*c)->pipeline(commands);
    if (!r) lost();
    return r;
  }
  const ConnectionOptions& options() const { return options_; }

 private:
  void lost() {
    conn_.reset();
    broke_ = true;
  }

  Url url_;
  ConnectionOptions options_;
  std::unique_ptr<RedisConnection> conn_;
  bool broke_ = false;
};

// ---- stream --------------------------------------------------------------------------------

class StreamSource : public Source {
 public:
  struct Settings {
    std::string stream, group, consumer;
    std::string field;  // empty: the entry's fields are the record's members
    milliseconds claim_idle{30000};
  };

  StreamSource(std::string name, Link link, Settings s)
      : name_(std::move(name)), link_(std::move(link)), s_(std::move(s)) {}

  std::string name() const override { return name_; }

  Result<SourceBatch> next(size_t max, milliseconds wait) override {
    SourceBatch batch;
    if (max == 0) return batch;
    const std::string count = std::to_string(max);
    if (link_.broke_since_asked()) {
      // Entries XREADGROUP gave this consumer in a reply that never arrived are pending here.
      backlog_ = true;
      backlog_cursor_ = "0";
    }
    // 1. This consumer's own pending entries, left by an earlier run under the same name (the
    // ones still out are skipped by hand_out()).
    while (backlog_) {
      auto r = link_.command({"XREADGROUP", "GROUP", s_.group, s_.consumer, "COUNT", count, "STREAMS", s_.stream,
                              backlog_cursor_});
      if (!r) return r.error();
      if (r->is_error()) return reply_error(name_, *r);
      std::vector<const RedisReply*> entries = stream_entries(*r);
      if (entries.empty() || entries.back()->elements.empty()) {
        backlog_ = false;
        break;
      }
      backlog_cursor_ = entries.back()->elements[0].str;
      if (auto st = hand_out(entries, true, batch); !st) return st.error();
      if (!batch.records.empty()) return batch;
    }
    // 2. Entries idle longer than claim-idle, whoever held them.
    if (Clock::now() >= next_claim_) {
      auto r = link_.command({"XAUTOCLAIM", s_.stream, s_.group, s_.consumer, std::to_string(s_.claim_idle.count()),
                              claim_cursor_, "COUNT", count});
      if (!r) return r.error();
      if (r->is_error()) return reply_error(name_, *r);
      if (r->type != RedisReply::Type::array || r->elements.size() < 2) {
        return Error{Exit::unavailable, name_ + ": XAUTOCLAIM gave an unexpected reply"};
      }
      claim_cursor_ = r->elements[0].str;
      // A whole pass over the pending list done: the next one after a while; else go on.
      if (claim_cursor_ == "0-0") {
        next_claim_ = Clock::now() + std::clamp(s_.claim_idle / 2, milliseconds(10), milliseconds(5000));
      }
      std::vector<const RedisReply*> entries;
      for (const auto& e : r->elements[1].elements) entries.push_back(&e);
      if (auto st = hand_out(entries, true, batch); !st) return st.error();
      if (!batch.records.empty()) return batch;
    }
    // 3. New entries, waiting at most `wait` for the first.
    std::vector<std::string> cmd{"XREADGROUP", "GROUP", s_.group, s_.consumer, "COUNT", count};
    if (auto block = block_bound(wait, link_.options()); block.count() > 0) {
      cmd.insert(cmd.end(), {"BLOCK", std::to_string(block.count())});
    }
    cmd.insert(cmd.end(), {"STREAMS", s_.stream, ">"});
    auto r = link_.command(cmd);
    if (!r) return r.error();
    if (r->is_error()) return reply_error(name_, *r);
    if (auto st = hand_out(stream_entries(*r), false, batch); !st) return st.error();
    return batch;
  }

  Status settle(std::span<const Settlement> settlements) override {
    std::vector<std::string> xack{"XACK", s_.stream, s_.group};
    for (const auto& st : settlements) {
      auto id = out_.take(st.handle);
      if (!id) continue;
      out_ids_.erase(*id);
      // A retried entry stays pending under this consumer: XAUTOCLAIM hands it out again
      // once it has been idle for claim-idle (here or in another consumer).
      if (st.verdict != Verdict::retry) xack.push_back(std::move(*id));
    }
    if (xack.size() > 3) {
      auto r = link_.command(xack);
      if (!r) return r.error();
      if (r->is_error()) return reply_error(name_, *r);
    }
    return out_.settled(name_);
  }

 private:
  // The entries of an XREADGROUP reply: [[stream, [[id, fields], ...]]] or nil.
  static std::vector<const RedisReply*> stream_entries(const RedisReply& reply) {
    std::vector<const RedisReply*> out;
    if (reply.type != RedisReply::Type::array || reply.elements.empty()) return out;
    const RedisReply& per_stream = reply.elements[0];
    if (per_stream.elements.size() < 2) return out;
    for (const auto& e : per_stream.elements[1].elements) out.push_back(&e);
    return out;
  }

  // Turns entries into records. `again`: they were delivered before, so their delivery count
  // is read from XPENDING; new entries are on their first delivery.
  Status hand_out(const std::vector<const RedisReply*>& entries, bool again, SourceBatch& batch) {
    std::vector<std::string> deleted;  // pending, but gone from the stream (XDEL, MAXLEN)
    size_t first = batch.records.size();
    for (const RedisReply* e : entries) {
      if (e->type != RedisReply::Type::array || e->elements.empty()) continue;
      const std::string& id = e->elements[0].str;
      if (e->elements.size() < 2 || e->elements[1].type != RedisReply::Type::array) {
        deleted.push_back(id);
        continue;
      }
      // Claimed back while the pipeline still holds it (it was slower than claim-idle).
      if (out_ids_.count(id) != 0) continue;
      Received r;
      r.record = to_record(e->elements[1], id);
      r.handle = out_.add(id);
      batch.records.push_back(std::move(r));
      out_ids_.insert(id);
    }
    if (!deleted.empty()) {
      // Nothing left to hand out: acknowledge them so they leave the pending list.
      log_warning(name_ + ": " + std::to_string(deleted.size()) +
                  " pending entries were deleted from the stream before they were processed");
      std::vector<std::string> xack{"XACK", s_.stream, s_.group};
      xack.insert(xack.end(), deleted.begin(), deleted.end());
      auto r = link_.command(xack);
      if (!r) return r.error();
    }
    if (!again || batch.records.size() == first) return {};
    std::vector<std::vector<std::string>> queries;
    for (size_t i = first; i < batch.records.size(); ++i) {
      const std::string& id = *out_.find(batch.records[i].handle);
      queries.push_back({"XPENDING", s_.stream, s_.group, id, id, "1"});
    }
    auto replies = link_.pipeline(queries);
    if (!replies) return replies.error();
    for (size_t i = first; i < batch.records.size(); ++i) {
      const RedisReply& p = (*replies)[i - first];
      // [[id, consumer, idle ms, deliveries]]
      if (p.type == RedisReply::Type::array && !p.elements.empty() && p.elements[0].elements.size() >= 4) {
        batch.records[i].deliveries = static_cast<uint32_t>(std::clamp<long long>(p.elements[0].elements[3].integer, 1, UINT32_MAX));
      } else {
        batch.records[i].deliveries = 2;  // acknowledged meanwhile; delivered before at least once
      }
    }
    return {};
  }

  Record to_record(const RedisReply& fields, const std::string& entry_id) {
    Record rec;
    if (!s_.field.empty()) {
      for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
        if (fields.elements[i].str == s_.field) rec.json = fields.elements[i + 1].str;
      }
      rec.id = record_id_of_text(doc_, rec.json, entry_id);
      return rec;
    }
    // The fields as members: a value that is JSON text of a number, true, false, null, an
    // object or an array is that value (the Redis sink writes non-strings as JSON text);
    // anything else is a string. The id field's text is the id either way, as record_id()
    // would give it for the member.
    rec.id = entry_id;
    JsonWriter w;
    w.begin_object();
    for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
      const std::string& k = fields.elements[i].str;
      const std::string& v = fields.elements[i + 1].str;
      w.key(k);
      if (is_json_non_string(v)) {
        w.value(doc_);
        if (k == "id" && doc_.IsNull()) rec.id = entry_id;
        else if (k == "id") rec.id = v;
      } else {
        w.string(v);
        if (k == "id") rec.id = v;
      }
    }
    w.end_object();
    rec.json = w.take();
    return rec;
  }

  // Parses `v` into doc_ when it is JSON text of anything but a string.
  bool is_json_non_string(const std::string& v) {
    if (v.empty() || std::string_view("-0123456789tfn[{").find(v[0]) == std::string_view::npos) return false;
    doc_.SetNull();
    doc_.GetAllocator().Clear();
    doc_.Parse<rapidjson::kParseFullPrecisionFlag>(v.data(), v.size());
    return !doc_.HasParseError() && !doc_.IsString();
  }

  std::string name_;
  Link link_;
  Settings s_;
  JsonDocument doc_;
  bool backlog_ = true;
  std::string backlog_cursor_ = "0";
  std::string claim_cursor_ = "0-0";
  Clock::time_point next_claim_{};
  Outstanding<std::string> out_;             // entry ids handed out, not yet settled
  std::unordered_set<std::string> out_ids_;  // the same ids, to skip a re-claimed one
};

// ---- list ----------------------------------------------------------------------------------

// Moves up to ARGV[1] entries from the head of the list to the tail of the processing list.
constexpr const char* kMoveScript =
    "local out = {} for i = 1, tonumber(ARGV[1]) do "
    "local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') "
    "if not v then break end out[i] = v end return out";

// Moves one entry from the processing list back to the tail of the source list, only if it is
// still there (so a retry can neither duplicate nor lose it).
constexpr const char* kRequeueScript =
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then redis.call('RPUSH', KEYS[2], ARGV[1]) end return 1";

/// Delivery counts of retried entries, by value, so the next hand-out can say how often the
/// record went out before; bounded, since another consumer may take the entry instead.
constexpr size_t kRetryCountsMax = 10000;

class ListSource : public Source {
 public:
  ListSource(std::string name, Link link, std::string list, std::string processing)
      : name_(std::move(name)), link_(std::move(link)), list_(std::move(list)),
        processing_(std::move(processing)) {}

  std::string name() const override { return name_; }

  /// Queues for handing out whatever the processing list holds that is not out already: at
  /// start, a crashed run's records; after a broken connection, entries an LMOVE moved whose
  /// reply was lost. Values are compared as a multiset, so equal records are counted right.
  Status recover() {
    std::unordered_map<std::string, size_t> accounted;
    out_.for_each([&](const Out& o) { ++accounted[o.value]; });
    for (const auto& v : recovered_) ++accounted[v];
    size_t found = 0;
    constexpr long kPage = 1000;
    for (long from = 0;; from += kPage) {
      auto r = link_.command({"LRANGE", processing_, std::to_string(from), std::to_string(from + kPage - 1)});
      if (!r) return r.error();
      if (r->is_error()) return reply_error(name_, *r);
      for (auto& e : r->elements) {
        auto it = accounted.find(e.str);
        if (it != accounted.end() && it->second > 0) {
          --it->second;
          continue;
        }
        recovered_.push_back(std::move(e.str));
        ++found;
      }
      if (static_cast<long>(r->elements.size()) < kPage) break;
    }
    if (found > 0) {
      log_info(name_ + ": " + std::to_string(found) + " records in " + processing_ +
               " that nobody holds are handed out first");
    }
    return {};
  }

  Result<SourceBatch> next(size_t max, milliseconds wait) override {
    SourceBatch batch;
    if (link_.broke_since_asked()) {
      if (auto st = recover(); !st) return st.error();
    }
    // A crashed run's records first; the list keeps no counter, so "at least twice".
    while (!recovered_.empty() && batch.records.size() < max) {
      hand_out(std::move(recovered_.front()), 2, batch);
      recovered_.pop_front();
    }
    if (!batch.records.empty() || max == 0) return batch;
    size_t want = max;
    if (auto block = block_bound(wait, link_.options()); block.count() > 0) {
      char seconds[32];
      std::snprintf(seconds, sizeof seconds, "%.3f", static_cast<double>(block.count()) / 1000.0);
      auto r = link_.command({"BLMOVE", list_, processing_, "LEFT", "RIGHT", seconds});
      if (!r) return r.error();
      if (r->is_error()) return reply_error(name_, *r);
      if (r->is_nil()) return batch;
      take(std::move(r->str), batch);
      --want;
    }
    if (want == 0) return batch;
    // The rest in one round trip, only as many as there are.
    auto r = link_.command({"EVAL", kMoveScript, "2", list_, processing_, std::to_string(want)});
    if (!r) return r.error();
    if (r->is_error()) return reply_error(name_, *r);
    for (auto& e : r->elements) take(std::move(e.str), batch);
    return batch;
  }

  Status settle(std::span<const Settlement> settlements) override {
    std::vector<std::vector<std::string>> commands;
    for (const auto& st : settlements) {
      auto out = out_.take(st.handle);
      if (!out) continue;
      if (st.verdict == Verdict::retry) {
        if (retry_counts_.size() >= kRetryCountsMax) retry_counts_.clear();
        retry_counts_[out->value] = out->deliveries;
        commands.push_back({"EVAL", kRequeueScript, "2", processing_, list_, std::move(out->value)});
      } else {
        commands.push_back({"LREM", processing_, "1", std::move(out->value)});
      }
    }
    if (!commands.empty()) {
      auto replies = link_.pipeline(commands);
      if (!replies) return replies.error();
      for (const auto& r : *replies) {
        if (r.is_error()) return reply_error(name_, r);
      }
    }
    return out_.settled(name_);
  }

 private:
  struct Out {
    std::string value;
    uint32_t deliveries;
  };

  void take(std::string value, SourceBatch& batch) {
    uint32_t deliveries = 1;
    if (auto it = retry_counts_.find(value); it != retry_counts_.end()) {
      deliveries = it->second + 1;
      retry_counts_.erase(it);
    }
    hand_out(std::move(value), deliveries, batch);
  }

  void hand_out(std::string value, uint32_t deliveries, SourceBatch& batch) {
    Received r;
    r.deliveries = deliveries;
    r.record.id = record_id_or_digest(doc_, value);
    r.record.json = value;
    r.handle = out_.add(Out{std::move(value), deliveries});
    batch.records.push_back(std::move(r));
  }

  std::string name_;
  Link link_;
  std::string list_, processing_;
  std::deque<std::string> recovered_;
  JsonDocument doc_;
  Outstanding<Out> out_;  // handed out, not yet settled
  std::unordered_map<std::string, uint32_t> retry_counts_;
};

Result<std::unique_ptr<Source>> open_stream(const Url& url, const SourceOptions& options, std::string consumer) {
  StreamSource::Settings s;
  s.stream = *url.param("stream");
  auto group = url.param("group");
  if (!group || group->empty()) {
    return Error{Exit::usage, url.redacted() + ": a stream is read by a consumer group: add &group=NAME"};
  }
  s.group = *group;
  s.consumer = std::move(consumer);
  s.field = url.param("field").value_or("");
  auto idle = int_param(url, "claim-idle", 30000, 1, LONG_MAX);
  if (!idle) return idle.error();
  s.claim_idle = milliseconds(*idle);
  std::string create = url.param("create").value_or("false");
  if (create != "true" && create != "false") {
    return Error{Exit::usage, url.redacted() + ": create must be true or false"};
  }
  Link link(url, options.connection);
  if (create == "true") {
    // From the start of the stream: entries written before the first run are not skipped.
    auto r = link.command({"XGROUP", "CREATE", s.stream, s.group, "0", "MKSTREAM"});
    if (!r) return r.error();
    if (r->is_error() && r->str.rfind("BUSYGROUP", 0) != 0) return reply_error(url.redacted(), *r);
  } else {
    // A missing stream or group fails the open, not the first read.
    auto r = link.command({"XINFO", "GROUPS", s.stream});
    if (!r) return r.error();
    if (r->is_error()) return Error{Exit::config, url.redacted() + ": " + r->str + " (add &create=true to create it)"};
    bool found = false;
    for (const auto& g : r->elements) {
      for (size_t i = 0; i + 1 < g.elements.size(); i += 2) {
        if (g.elements[i].str == "name" && g.elements[i + 1].str == s.group) found = true;
      }
    }
    if (!found) {
      return Error{Exit::config, url.redacted() + ": the stream has no consumer group '" + s.group +
                                     "' (add &create=true to create it)"};
    }
  }
  return std::unique_ptr<Source>(new StreamSource(url.redacted(), std::move(link), std::move(s)));
}

Result<std::unique_ptr<Source>> open_list(const Url& url, const SourceOptions& options, const std::string& consumer) {
  std::string list = *url.param("list");
  // A consumer named in the URL gets a processing list of its own, so several can share L.
  std::string processing = url.param("processing").value_or(
      url.param("consumer") ? list + ":processing:" + consumer : list + ":processing");
  if (processing == list) {
    return Error{Exit::usage, url.redacted() + ": the processing list must not be the list itself"};
  }
  auto source = std::make_unique<ListSource>(url.redacted(), Link(url, options.connection), std::move(list),
                                            std::move(processing));
  // Whatever the processing list holds was handed out by a run that did not finish it.
  if (auto st = source->recover(); !st) return st.error();
  return std::unique_ptr<Source>(std::move(source));
}

}  // namespace

Result<std::unique_ptr<Source>> open_redis_source(const Url& url, const SourceOptions& options) {
  bool stream = url.param("stream").has_value(), list = url.param("list").has_value();
  if (stream == list) {
    return Error{Exit::usage, url.redacted() + ": read a stream (?stream=S&group=G) or a list (?list=L), one of them"};
  }
  if ((stream && url.param("stream")->empty()) || (list && url.param("list")->empty())) {
    return Error{Exit::usage, url.redacted() + ": the stream or list name is empty"};
  }
  std::string consumer = url.param("consumer").value_or(options.consumer);
  if (consumer.empty()) consumer = host_pid_name();
  if (stream) return open_stream(url, options, std::move(consumer));
  return open_list(url, options, consumer);
}

}  // namespace envkit
