// Wing–Gong–Lowe over a linked list of call and return entries, with a cache of
// (linearized operations, register state) so that each configuration is explored once.
#include "race-probe/linearizability.hpp"

#include <algorithm>
#include <limits>
#include <unordered_set>

namespace race_probe {

namespace {

using State = std::optional<int64_t>;

// The register's specification: can `op` take effect in `state`, and what state follows.
bool step(const State& state, const RegisterOp& op, State& next) {
  switch (op.kind) {
    case RegisterOp::read:
      next = state;
      return op.value == state;
    case RegisterOp::write:
      next = op.value;
      return true;
    case RegisterOp::cas:
      if (!state || *state != op.from) return false;
      next = op.to;
      return true;
    case RegisterOp::refused_cas:
      next = state;
      return !state || *state != op.from;
  }
  return false;
}

struct Bits {
  std::vector<uint64_t> words;
  explicit Bits(size_t n) : words((n + 63) / 64, 0) {}
  void set(size_t i) { words[i / 64] |= uint64_t{1} << (i % 64); }
  void clear(size_t i) { words[i / 64] &= ~(uint64_t{1} << (i % 64)); }
  bool operator==(const Bits& o) const { return words == o.words; }
};

// A point of the search already explored: the operations linearized so far and the state
// they leave (Lowe's memoisation cache).
struct CacheEntry {
  Bits linearized;
  State state;
  bool operator==(const CacheEntry& o) const { return state == o.state && linearized == o.linearized; }
};

struct CacheEntryHash {
  size_t operator()(const CacheEntry& c) const {
    uint64_t h = c.state ? static_cast<uint64_t>(*c.state) * 0x9E3779B97F4A7C15ull : 0x51ed27ull;
    for (uint64_t w : c.linearized.words) h = (h ^ w) * 0x100000001B3ull + (h >> 29);
    return static_cast<size_t>(h);
  }
};

struct Entry {
  bool is_call = true;
  size_t op = 0;        // index into ops
  int64_t time = 0;
  Entry* match = nullptr;  // a call's return entry
  Entry* prev = nullptr;
  Entry* next = nullptr;
};

// The search proper on ops (indexes 0..n-1 here). True: linearizable; false: not; nullopt:
// out of time.
std::optional<bool> search(const std::vector<RegisterOp>& ops,
                           std::chrono::steady_clock::time_point deadline) {
  const size_t n = ops.size();
  if (n == 0) return true;
  std::vector<Entry> entries(2 * n);
  for (size_t i = 0; i < n; ++i) {
    Entry& call = entries[2 * i];
    Entry& ret = entries[2 * i + 1];
    call = {true, i, ops[i].invoke, &ret, nullptr, nullptr};
    ret = {false, i, ops[i].complete.value_or(std::numeric_limits<int64_t>::max()), nullptr, nullptr, nullptr};
  }
  std::vector<Entry*> order;
  order.reserve(2 * n);
  for (auto& e : entries) order.push_back(&e);
  // Calls before returns at equal times: operations that touch are taken as concurrent,
  // which can only allow more orders, never report a false violation. The returns of
  // unknown operations come last of all, after every definite one.
  auto unknown = [&ops](const Entry* e) { return !e->is_call && !ops[e->op].complete; };
  std::sort(order.begin(), order.end(), [&unknown](const Entry* a, const Entry* b) {
    if (unknown(a) != unknown(b)) return unknown(b);
    if (a->time != b->time) return a->time < b->time;
    return a->is_call && !b->is_call;
  });
  Entry head;
  Entry* last = &head;
  for (Entry* e : order) {
    last->next = e;
    e->prev = last;
    last = e;
  }
  auto lift = [](Entry* call) {
    call->prev->next = call->next;
    if (call->next) call->next->prev = call->prev;
    Entry* ret = call->match;
    ret->prev->next = ret->next;
    if (ret->next) ret->next->prev = ret->prev;
  };
  auto unlift = [](Entry* call) {
    Entry* ret = call->match;
    ret->prev->next = ret;
    if (ret->next) ret->next->prev = ret;
    call->prev->next = call;
    if (call->next) call->next->prev = call;
  };
  std::unordered_set<CacheEntry, CacheEntryHash> cache;
  std::vector<std::pair<Entry*, State>> calls;
  Bits linearized(n);
  State state;
  Entry* entry = head.next;
  uint64_t steps = 0;
  while (head.next != nullptr) {
    if ((++steps & 1023) == 0 && std::chrono::steady_clock::now() > deadline) return std::nullopt;
    if (entry->is_call) {
      State next;
      if (step(state, ops[entry->op], next)) {
        Bits with = linearized;
        with.set(entry->op);
        if (cache.insert(CacheEntry{with, next}).second) {
          calls.emplace_back(entry, state);
          state = next;
          linearized = std::move(with);
          lift(entry);
          entry = head.next;
          continue;
        }
      }
      entry = entry->next;
    } else {
      // The return of an unknown operation comes after every definite one: they are all
      // linearized, and the unknown ones still pending need never have happened.
      if (!ops[entry->op].complete) return true;
      // A return reached with its call not yet linearized: undo the latest choice.
      if (calls.empty()) return false;
      auto [call, before] = calls.back();
      calls.pop_back();
      state = before;
      linearized.clear(call->op);
      unlift(call);
      entry = call->next;
    }
  }
  return true;
}

}  // namespace

LinearizabilityResult check_register(std::vector<RegisterOp> ops,
                                     std::chrono::steady_clock::time_point deadline) {
  LinearizabilityResult result;
  std::sort(ops.begin(), ops.end(), [](const RegisterOp& a, const RegisterOp& b) { return a.invoke < b.invoke; });
  auto whole = search(ops, deadline);
  if (!whole) {
    result.verdict = Linearizable::unknown;
    return result;
  }
  if (*whole) return result;
  result.verdict = Linearizable::no;
  // The shortest failing prefix by invocation, by bisection (a prefix drops only operations
  // invoked later; when bisection meets a non-monotone case it still ends on a failing one).
  size_t lo = 1, hi = ops.size();
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    auto r = search(std::vector<RegisterOp>(ops.begin(), ops.begin() + static_cast<long>(mid)), deadline);
    if (!r) break;  // out of time: keep the failing prefix found so far
    if (*r) lo = mid + 1; else hi = mid;
  }
  // The window: the prefix's last operation, those concurrent with it (an unknown one may
  // take effect at any time after its invocation), and the last write or swapping cas that
  // completed before it began (what the register should have held; reads and refused cas
  // change nothing).
  const RegisterOp& culprit = ops[hi - 1];
  std::optional<size_t> before;
  for (size_t i = 0; i + 1 < hi; ++i) {
    const auto& op = ops[i];
    int64_t end = op.complete.value_or(std::numeric_limits<int64_t>::max());
    bool changes = op.kind == RegisterOp::write || op.kind == RegisterOp::cas;
    if (end >= culprit.invoke) {
      result.window.push_back(op.index);
    } else if (changes && (!before || end > *ops[*before].complete)) {
      before = i;
    }
  }
  if (before) result.window.insert(result.window.begin(), ops[*before].index);
  result.window.push_back(culprit.index);
  return result;
}

}  // namespace race_probe
