// SpooledSink: replay before new records, spool on failure, answer every record's fate.
#include <envkit/spooled_sink.hpp>

#include <algorithm>

#include <envkit/log.hpp>

namespace envkit {

using namespace std::chrono;

namespace {

// Waiting does not mend these: refused credentials, a missing table, topic or exchange, a
// URL the sink cannot use. The records are kept (or answered failed) and the run stops.
bool needs_an_operator(const Error& e) {
  return e.code == Exit::config || e.code == Exit::usage || e.code == Exit::software;
}

}  // namespace

SinkCounters& SinkCounters::operator+=(const SinkCounters& o) {
  delivered += o.delivered;
  replayed += o.replayed;
  spooled += o.spooled;
  rejected += o.rejected;
  failed += o.failed;
  return *this;
}

SinkCounters SinkCounters::operator-(const SinkCounters& o) const {
  return {delivered - o.delivered, replayed - o.replayed, spooled - o.spooled, rejected - o.rejected,
          failed - o.failed};
}

SpooledSink::SpooledSink(std::unique_ptr<Sink> sink, std::shared_ptr<SharedSpool> spool, size_t batch)
    : sink_(std::move(sink)), spool_(std::move(spool)), batch_(std::max<size_t>(1, batch)) {}

uint64_t SpooledSink::spool_pending() const {
  if (!spool_) return 0;
  std::lock_guard lock(spool_->mutex);
  return spool_->spool.pending_records();
}

void SpooledSink::stop_with(const Error& e) {
  if (!fatal_) fatal_ = e.context(sink_->name());
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
  // Without a spool every record deserves its own attempt: skipping one would fail it.
  return spool_ && !last_failure_.empty() && steady_clock::now() < next_attempt_;
}

void SpooledSink::keep(std::span<const Record> records, const std::string& why, std::span<Delivery> out) {
  if (records.empty()) return;
  auto answer = [&](Outcome o, const std::string& reason) {
    for (auto& d : out) d = {o, o == Outcome::spooled ? std::string() : reason};
  };
  if (!spool_) {
    counters_.failed += records.size();
    log_error(sink_->name() + ": " + std::to_string(records.size()) +
              " records not delivered and no --spool to keep them: " + why);
    answer(Outcome::failed, why);
    sink_->answered_without(records, Outcome::failed);
    return;
  }
  std::lock_guard lock(spool_->mutex);
  if (auto st = spool_->spool.append(records); !st) {
    counters_.failed += records.size();
    log_error(sink_->name() + ": " + std::to_string(records.size()) + " records not kept: " + st.error().message);
    answer(Outcome::failed, st.error().message);
    sink_->answered_without(records, Outcome::failed);
    stop_with(st.error());
    return;
  }
  counters_.spooled += records.size();
  sink_->answered_without(records, Outcome::spooled);
  answer(Outcome::spooled, {});
}

void SpooledSink::write_now(std::span<const Record> records, std::span<Delivery> out) {
  for (size_t at = 0; at < records.size(); at += batch_) {
    size_t n = std::min(batch_, records.size() - at);
    auto chunk = records.subspan(at, n);
    auto result = sink_->write(chunk);
    if (!result) {
      failed(result.error().message);
      keep(records.subspan(at), result.error().message, out.subspan(at));
      if (needs_an_operator(result.error())) stop_with(result.error());
      return;
    }
    std::vector<Record> again;
    std::vector<size_t> again_at;
    std::string why;
    for (size_t i = 0; i < n; ++i) {
      const Delivery& d = (*result)[i];
      if (d.outcome == Outcome::durable) {
        ++counters_.delivered;
        out[at + i] = {Outcome::durable, {}};
      } else if (d.outcome == Outcome::rejected) {
        ++counters_.rejected;
        log_error(sink_->name() + ": rejected record " + chunk[i].id + ": " + d.error);
        out[at + i] = d;
      } else {
        again.push_back(chunk[i]);
        again_at.push_back(at + i);
        why = d.error;
      }
    }
    if (!again.empty()) {
      failed(why);
      std::vector<Delivery> kept(again.size());
      keep(again, why, kept);
      for (size_t k = 0; k < again.size(); ++k) out[again_at[k]] = std::move(kept[k]);
      keep(records.subspan(at + n), why, out.subspan(at + n));
      return;
    }
    recovered();
  }
}

void SpooledSink::drain(When when) {
  if (!spool_ || fatal_ || (when == When::when_due && backing_off())) return;
  // One drainer at a time, holding the spool from peek to consume: two workers peeking the
  // same oldest batch would both consume it, and the second consume would drop records
  // never delivered. A worker that finds another draining leaves it to that one.
  std::unique_lock lock(spool_->mutex, std::try_to_lock);
  if (!lock.owns_lock()) return;
  while (!spool_->spool.empty()) {
    auto peeked = spool_->spool.peek(batch_);
    if (!peeked) return stop_with(peeked.error());
    const std::vector<Record>& oldest = *peeked;
    auto result = sink_->write(oldest);
    if (!result) {
      failed(result.error().message);
      if (needs_an_operator(result.error())) stop_with(result.error());
      return;
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
    if (auto st = spool_->spool.consume(done); !st) return stop_with(st.error());
    if (done < oldest.size()) {
      failed((*result)[done].error);
      return;
    }
    recovered();
  }
}

std::vector<Delivery> SpooledSink::deliver(std::span<const Record> records) {
  std::vector<Delivery> out(records.size());
  drain();
  if (fatal_) {
    // The run stops; these records must not vanish with it: kept behind the others when
    // the spool works (the sink needs an operator), answered failed when it does not.
    if (needs_an_operator(*fatal_)) keep(records, fatal_->message, out);
    else {
      counters_.failed += records.size();
      for (auto& d : out) d = {Outcome::failed, fatal_->message};
    }
    return out;
  }
  if (backing_off() || spool_pending() > 0) {
    keep(records, last_failure_.empty() ? "records wait in the spool ahead of these" : last_failure_, out);
    return out;
  }
  write_now(records, out);
  return out;
}

}  // namespace envkit
