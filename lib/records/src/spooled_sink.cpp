// SpooledSink: replay before new records, spool on failure, count every record's fate.
#include <envkit/spooled_sink.hpp>

#include <algorithm>

#include <envkit/log.hpp>

namespace envkit {

using namespace std::chrono;

namespace {

// Waiting does not mend these: refused credentials, a missing table, topic or exchange, a
// URL the sink cannot use. The records are kept (or counted lost) and the run stops.
bool needs_an_operator(const Error& e) {
  return e.code == Exit::config || e.code == Exit::usage || e.code == Exit::software;
}

}  // namespace

SpooledSink::SpooledSink(std::unique_ptr<Sink> sink, std::shared_ptr<SharedSpool> spool, size_t batch)
    : sink_(std::move(sink)), spool_(std::move(spool)), batch_(std::max<size_t>(1, batch)) {}

uint64_t SpooledSink::spool_pending() const {
  if (!spool_) return 0;
  std::lock_guard lock(spool_->mutex);
  return spool_->spool.pending_records();
}

void SpooledSink::failed(const std::string& why) {
  if (last_failure_.empty()) log_warning(sink_->name() + ": " + why + (spool_ ? "; spooling" : ""));
  last_failure_ = why;
  backoff_ = std::clamp(backoff_ * 2, milliseconds(500), milliseconds(10000));
  next_attempt_ = steady_clock::now() + backoff_;
}

void SpooledSink::recovered() {
  if (!last_failure_.empty()) log_info(sink_->name() + ": back");
  last_failure_.clear();
  backoff_ = milliseconds(0);
}

bool SpooledSink::backing_off() const {
  // Without a spool every record deserves its own attempt: skipping one would lose it.
  return spool_ && !last_failure_.empty() && steady_clock::now() < next_attempt_;
}

Status SpooledSink::keep(std::span<const Record> records, const std::string& why) {
  if (records.empty()) return {};
  if (!spool_) {
    counters_.lost += records.size();
    log_error(sink_->name() + ": " + std::to_string(records.size()) +
              " records not delivered and no --spool to keep them: " + why);
    return {};
  }
  std::lock_guard lock(spool_->mutex);
  if (auto st = spool_->spool.append(records); !st) {
    counters_.lost += records.size();
    log_error(sink_->name() + ": " + std::to_string(records.size()) + " records lost: " + st.error().message);
    return st;
  }
  counters_.spooled += records.size();
  return {};
}

Status SpooledSink::write_now(std::span<const Record> records) {
  for (size_t at = 0; at < records.size(); at += batch_) {
    auto chunk = records.subspan(at, std::min(batch_, records.size() - at));
    auto result = sink_->write(chunk);
    if (!result) {
      failed(result.error().message);
      if (auto st = keep(records.subspan(at), result.error().message); !st) return st;
      if (needs_an_operator(result.error())) return result.error();
      return {};
    }
    std::vector<Record> again;
    std::string why;
    for (size_t i = 0; i < chunk.size(); ++i) {
      const Delivery& d = (*result)[i];
      if (d.outcome == Outcome::durable) {
        ++counters_.delivered;
      } else if (d.outcome == Outcome::rejected) {
        ++counters_.rejected;
        log_error(sink_->name() + ": rejected record " + chunk[i].id + ": " + d.error);
      } else {
        again.push_back(chunk[i]);
        why = d.error;
      }
    }
    if (!again.empty()) {
      failed(why);
      if (auto st = keep(again, why); !st) return st;
      return keep(records.subspan(at + chunk.size()), why);
    }
    recovered();
  }
  return {};
}

Status SpooledSink::drain() {
  if (!spool_ || backing_off()) return {};
  // One drainer at a time, holding the spool from peek to consume: two workers peeking the
  // same oldest batch would both consume it, and the second consume would drop records
  // never delivered. A worker that finds another draining leaves it to that one.
  std::unique_lock lock(spool_->mutex, std::try_to_lock);
  if (!lock.owns_lock()) return {};
  while (!spool_->spool.empty()) {
    auto peeked = spool_->spool.peek(batch_);
    if (!peeked) return peeked.error();
    const std::vector<Record>& oldest = *peeked;
    auto result = sink_->write(oldest);
    if (!result) {
      failed(result.error().message);
      if (needs_an_operator(result.error())) return result.error();
      return {};
    }
    // Consume up to the first record to retry; later ones come again and the sink's unique
    // key absorbs them (at-least-once, in order).
    size_t done = 0;
    for (; done < oldest.size(); ++done) {
      const Delivery& d = (*result)[done];
      if (d.outcome == Outcome::failed) break;
      if (d.outcome == Outcome::durable) {
        ++counters_.delivered;
        ++counters_.replayed;
      } else {
        ++counters_.rejected;
        log_error(sink_->name() + ": rejected spooled record " + oldest[done].id + ": " + d.error);
      }
    }
    if (auto st = spool_->spool.consume(done); !st) return st;
    if (done < oldest.size()) {
      failed((*result)[done].error);
      return {};
    }
    recovered();
  }
  return {};
}

Status SpooledSink::deliver(std::span<const Record> records) {
  if (auto st = drain(); !st) {
    // These records must not vanish with the error: kept behind the others if the spool
    // works (the sink needs an operator), counted lost if the spool itself failed.
    if (needs_an_operator(st.error())) {
      if (auto kept = keep(records, st.error().message); !kept) return kept;
    } else {
      counters_.lost += records.size();
    }
    return st;
  }
  if (backing_off() || spool_pending() > 0) return keep(records, last_failure_);
  return write_now(records);
}

}  // namespace envkit
