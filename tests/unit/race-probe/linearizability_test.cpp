// race-probe's register checker on histories with known verdicts: hand-made ones, Porcupine's
// register examples and Jepsen etcd logs, simulated registers, and its time budget.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "race-probe/check.hpp"
#include "race-probe/history.hpp"

namespace race_probe {

// So that a failed expectation prints the verdict, not its bytes (found by ADL).
[[maybe_unused]] static void PrintTo(Linearizable l, std::ostream* os) {
  *os << (l == Linearizable::yes ? "yes" : l == Linearizable::no ? "no" : "unknown");
}

namespace {

constexpr int64_t kOpen = -1;  // no completion: the outcome is unknown

// One register operation on key "x" by `client`, [invoke, complete] (complete kOpen: unknown).
Operation op_on_x(std::string client, std::string f, int64_t invoke, int64_t complete) {
  Operation op;
  op.client = std::move(client);
  op.f = std::move(f);
  op.id = "x";
  op.invoke = op.intended = invoke;
  op.complete = complete == kOpen ? invoke : complete;
  op.outcome = complete == kOpen ? Outcome::unknown : Outcome::ok;
  return op;
}

Operation write(std::string client, int64_t value, int64_t invoke, int64_t complete) {
  Operation op = op_on_x(std::move(client), "write", invoke, complete);
  op.value = value;
  return op;
}

Operation read(std::string client, std::optional<int64_t> value, int64_t invoke, int64_t complete) {
  Operation op = op_on_x(std::move(client), "read", invoke, complete);
  op.value = value;
  return op;
}

Operation cas(std::string client, int64_t from, int64_t to, int64_t invoke, int64_t complete) {
  Operation op = op_on_x(std::move(client), "cas", invoke, complete);
  op.from = from;
  op.to = to;
  return op;
}

// A compare-and-set the store answered with `status` (409: the register did not hold `from`).
Operation refused_cas(std::string client, int64_t from, int64_t to, int64_t invoke,
                      int64_t complete, int status = 409) {
  Operation op = cas(std::move(client), from, to, invoke, complete);
  op.outcome = Outcome::fail;
  op.status = status;
  return op;
}

RegisterVerdict::Key check(const std::vector<Operation>& ops) {
  auto v = check_registers(ops, std::chrono::steady_clock::now() + std::chrono::seconds(10));
  return v.keys.at("x");
}

Linearizable verdict(const std::vector<Operation>& ops) { return check(ops).verdict; }

TEST(LinearizabilityKnownAnswers, SequentialWriteThenReadOfIt) {
  EXPECT_EQ(verdict({write("a", 1, 0, 10), read("b", 1, 20, 30)}), Linearizable::yes);
  EXPECT_EQ(verdict({read("b", std::nullopt, 0, 10), write("a", 1, 20, 30)}), Linearizable::yes);
}

TEST(LinearizabilityKnownAnswers, ReadOfTheAbsentKeyAfterACompletedWrite) {
  auto k = check({write("a", 1, 0, 10), read("b", std::nullopt, 20, 30)});
  EXPECT_EQ(k.verdict, Linearizable::no);
  EXPECT_EQ(k.window,
            (std::vector<std::string>{"a#0 write 1 [0, 10] ok", "b#0 read -> nil [20, 30] ok"}));
  // A read of a value nobody wrote.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), read("b", 2, 20, 30)}), Linearizable::no);
}

TEST(LinearizabilityKnownAnswers, ReadsConcurrentWithAWriteSeeEitherValue) {
  EXPECT_EQ(verdict({write("a", 1, 0, 100), read("b", std::nullopt, 10, 20), read("c", 1, 30, 40)}),
            Linearizable::yes);
  EXPECT_EQ(verdict({write("a", 1, 0, 100), read("b", 1, 10, 20), read("c", 1, 30, 40)}),
            Linearizable::yes);
  EXPECT_EQ(verdict({write("a", 1, 0, 100), read("b", std::nullopt, 10, 90), read("c", 1, 20, 30)}),
            Linearizable::yes);
}

TEST(LinearizabilityKnownAnswers, ReadsOutOfOrderAroundAWrite) {
  // Once a read saw the new value, a later read cannot see the old one.
  EXPECT_EQ(verdict({write("a", 1, 0, 100), read("b", 1, 10, 20), read("c", std::nullopt, 30, 40)}),
            Linearizable::no);
  // 1 was overwritten by 2 (write 1 completed before write 2 began): after 2, never 1 again.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), write("a", 2, 20, 100), read("b", 2, 30, 40),
                     read("c", 1, 50, 60)}),
            Linearizable::no);
  EXPECT_EQ(verdict({write("a", 1, 0, 10), write("a", 2, 20, 100), read("b", 1, 30, 40),
                     read("c", 2, 50, 60)}),
            Linearizable::yes);
}

TEST(LinearizabilityKnownAnswers, CompareAndSetChains) {
  EXPECT_EQ(verdict({write("a", 0, 0, 10), cas("a", 0, 1, 20, 30), cas("b", 1, 2, 40, 50),
                     read("c", 2, 60, 70)}),
            Linearizable::yes);
  // Two concurrent cas from 0 cannot both swap.
  EXPECT_EQ(verdict({write("a", 0, 0, 10), cas("a", 0, 1, 20, 50), cas("b", 0, 2, 30, 60)}),
            Linearizable::no);
  // One of them may, and the other then swaps from its value: either order explains it.
  EXPECT_EQ(verdict({write("a", 0, 0, 10), cas("a", 0, 1, 20, 50), cas("b", 1, 2, 30, 60),
                     read("c", 2, 70, 80)}),
            Linearizable::yes);
  EXPECT_EQ(verdict({write("a", 0, 0, 10), cas("b", 1, 2, 20, 50), cas("a", 0, 1, 30, 60),
                     read("c", 2, 70, 80)}),
            Linearizable::yes);
  // An acknowledged cas from a value the register never held.
  EXPECT_EQ(verdict({write("a", 0, 0, 10), cas("a", 5, 1, 20, 30)}), Linearizable::no);
  // A cas of an absent key cannot swap.
  EXPECT_EQ(verdict({cas("a", 0, 1, 0, 10)}), Linearizable::no);
}

TEST(LinearizabilityKnownAnswers, UnknownWriteMayTakeEffectAnyTimeAfterItsInvocation) {
  EXPECT_EQ(verdict({write("a", 1, 0, 10), write("b", 2, 20, kOpen), read("c", 2, 100, 110)}),
            Linearizable::yes);
  // ... or never.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), write("b", 2, 20, kOpen), read("c", 1, 100, 110)}),
            Linearizable::yes);
  // But not before it was sent.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), read("c", 2, 20, 30), write("b", 2, 40, kOpen)}),
            Linearizable::no);
  // An unknown read tells nothing, whatever it says.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), read("c", 7, 20, kOpen)}), Linearizable::yes);
}

TEST(LinearizabilityKnownAnswers, UnknownCasThatCannotApplyNeedNeverHaveHappened) {
  // The register holds 1; a cas from 5 can never swap, so it did not: no violation.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), cas("b", 5, 6, 20, kOpen), read("c", 1, 30, 40)}),
            Linearizable::yes);
  EXPECT_EQ(verdict({cas("b", 5, 6, 0, kOpen)}), Linearizable::yes);
  EXPECT_EQ(verdict({cas("b", 5, 6, 0, kOpen), cas("c", 7, 8, 5, kOpen), write("a", 1, 10, 20)}),
            Linearizable::yes);
  // One that can apply may have swapped, or not.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), cas("b", 1, 2, 20, kOpen), read("c", 2, 30, 40)}),
            Linearizable::yes);
  EXPECT_EQ(verdict({write("a", 1, 0, 10), cas("b", 1, 2, 20, kOpen), read("c", 1, 30, 40)}),
            Linearizable::yes);
  // And the definite operations still have to make sense around it.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), cas("b", 5, 6, 20, kOpen), read("c", 6, 30, 40)}),
            Linearizable::no);
}

TEST(LinearizabilityKnownAnswers, RefusedCasSaysTheRegisterDidNotHoldFrom) {
  // The register held 1 throughout, yet the store refused a cas from 1.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), refused_cas("b", 1, 2, 20, 30)}), Linearizable::no);
  // Refused while a concurrent write changed the value, or on the absent key: fine.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), write("c", 3, 15, 40), refused_cas("b", 1, 2, 20, 30)}),
            Linearizable::yes);
  EXPECT_EQ(verdict({refused_cas("b", 1, 2, 0, 10)}), Linearizable::yes);
  EXPECT_EQ(verdict({write("a", 1, 0, 10), refused_cas("b", 5, 6, 20, 30)}), Linearizable::yes);
  // A refused cas leaves the register as it was.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), refused_cas("b", 5, 6, 20, 30), read("c", 1, 40, 50)}),
            Linearizable::yes);
  EXPECT_EQ(verdict({write("a", 1, 0, 10), refused_cas("b", 5, 6, 20, 30), read("c", 6, 40, 50)}),
            Linearizable::no);
  // Refused for another reason (a bad request), it says nothing about the register.
  EXPECT_EQ(verdict({write("a", 1, 0, 10), refused_cas("b", 1, 2, 20, 30, 400)}),
            Linearizable::yes);
}

TEST(LinearizabilityKnownAnswers, WindowNamesWhatTheRegisterShouldHaveHeld) {
  // The refused cas completed after the write, but did not change the register: the write
  // is what the read should have seen.
  auto k = check(
      {write("a", 1, 0, 10), refused_cas("b", 5, 6, 20, 30), read("c", std::nullopt, 40, 50)});
  EXPECT_EQ(k.verdict, Linearizable::no);
  EXPECT_EQ(k.window,
            (std::vector<std::string>{"a#0 write 1 [0, 10] ok", "c#0 read -> nil [40, 50] ok"}));
  // An unknown write may take effect at any time, so it is in the window.
  k = check({write("a", 1, 0, 10), write("b", 2, 20, kOpen), read("c", 3, 40, 50)});
  EXPECT_EQ(k.verdict, Linearizable::no);
  EXPECT_EQ(k.window,
            (std::vector<std::string>{"a#0 write 1 [0, 10] ok", "b#0 write 2 [20, ?] unknown",
                                      "c#0 read -> 3 [40, 50] ok"}));
  // The refused cas itself can be the culprit.
  k = check({write("a", 1, 0, 10), refused_cas("b", 1, 2, 20, 30)});
  EXPECT_EQ(k.window,
            (std::vector<std::string>{"a#0 write 1 [0, 10] ok", "b#0 cas 1->2 [20, 30] fail"}));
}

// Porcupine's TestRegisterModel (porcupine_test.go), from MIT 6.824's 2017 quiz 2: its
// register starts at 0, here a write of 0 completed before everything.
TEST(LinearizabilityKnownAnswers, PorcupineRegisterModelExamples) {
  EXPECT_EQ(verdict({write("init", 0, -20, -10), write("0", 100, 0, 100), read("1", 100, 25, 75),
                     read("2", 0, 30, 60)}),
            Linearizable::yes);
  EXPECT_EQ(verdict({write("init", 0, -20, -10), write("0", 200, 0, 100), read("1", 200, 10, 30),
                     read("2", 0, 40, 90)}),
            Linearizable::no);
}

TEST(LinearizabilityKnownAnswers, KeysAreCheckedApart) {
  auto y = write("a", 1, 0, 10);
  y.id = "y";
  auto v = check_registers(
      {write("a", 1, 0, 10), y, read("b", 1, 20, 30), refused_cas("c", 9, 2, 40, 50)},
      std::chrono::steady_clock::now() + std::chrono::seconds(10));
  EXPECT_EQ(v.keys.at("x").verdict, Linearizable::yes);
  EXPECT_EQ(v.keys.at("x").operations, 3u);
  EXPECT_EQ(v.keys.at("y").verdict, Linearizable::yes);
  EXPECT_EQ(v.operations.fail, 1u);
  EXPECT_TRUE(v.valid());
}

// A register history of `clients` clients over `keys` keys, each operation taking effect at
// one instant between its invocation and its completion: linearizable by construction. Some
// writes and cas end unknown (taken effect or not); a cas from a value the key no longer
// holds is refused with 409. With `stale_reads`, some reads answer what the key held two
// changes ago, as a cache that missed an invalidation would.
std::vector<Operation> simulated_history(size_t count, int keys, int clients, bool stale_reads) {
  // The engine's raw output is fixed by the standard: the same history on every platform.
  std::mt19937_64 rng(20240611);
  auto chance = [&rng](unsigned in) { return rng() % in == 0; };
  struct Running {
    Operation op;
    bool applied = false, lost = false;
  };
  std::vector<std::optional<Running>> running(static_cast<size_t>(clients));
  std::vector<uint64_t> seqs(static_cast<size_t>(clients), 0);
  std::map<std::string, std::vector<int64_t>> values;  // per key, every value it held, in order
  std::vector<Operation> ops;
  size_t started = 0;
  int64_t next_value = 0;
  for (int64_t t = 1; ops.size() < count; ++t) {
    auto c = static_cast<size_t>(rng() % static_cast<uint64_t>(clients));
    auto& slot = running[c];
    if (!slot) {
      if (started == count) continue;
      ++started;
      Running r;
      r.op.client = "c" + std::to_string(c);
      r.op.seq = seqs[c]++;
      r.op.id = "k" + std::to_string(rng() % static_cast<uint64_t>(keys));
      r.op.invoke = r.op.intended = t;
      const auto& held = values[r.op.id];
      unsigned dice = static_cast<unsigned>(rng() % 8);
      if (dice < 4) {
        r.op.f = "read";
      } else if (dice < 6 || held.empty()) {
        r.op.f = "write";
        r.op.value = ++next_value;
      } else {
        r.op.f = "cas";
        r.op.from = chance(4) ? next_value - static_cast<int64_t>(rng() % 5) : held.back();
        r.op.to = ++next_value;
      }
      // One in 50 writes or cas never arrives, and the client never hears of it.
      r.lost = r.op.f != "read" && chance(50);
      slot = std::move(r);
    } else if (!slot->applied) {
      auto& op = slot->op;
      auto& held = values[op.id];
      slot->applied = true;
      if (slot->lost) continue;
      if (op.f == "read") {
        if (!held.empty()) op.value = held.back();
        if (stale_reads && held.size() > 2 && chance(10)) op.value = held[held.size() - 3];
        op.outcome = Outcome::ok;
      } else if (op.f == "write") {
        held.push_back(*op.value);
        op.outcome = Outcome::ok;
      } else if (!held.empty() && held.back() == op.from) {
        held.push_back(op.to);
        op.outcome = Outcome::ok;
      } else {
        op.outcome = Outcome::fail;
        op.status = 409;
      }
    } else {
      Operation op = std::move(slot->op);
      bool lost = slot->lost;
      slot.reset();
      op.complete = t;
      // One in 50 answers is lost on the way back (a timeout): taken effect, outcome unknown.
      if (lost || (op.f != "read" && chance(50))) {
        op.outcome = Outcome::unknown;
        op.status = 0;
      }
      ops.push_back(std::move(op));
    }
  }
  return ops;
}

TEST(LinearizabilitySimulated, CorrectRegisterIsLinearizableAndStaleReadsAreNot) {
  auto ops = simulated_history(10000, 10, 6, false);
  auto start = std::chrono::steady_clock::now();
  auto v = check_registers(ops, start + std::chrono::seconds(20));
  auto took = std::chrono::steady_clock::now() - start;
  RecordProperty(
      "check_registers_ms",
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  ASSERT_EQ(v.keys.size(), 10u);
  EXPECT_GT(v.operations.fail, 0u);
  EXPECT_GT(v.operations.unknown, 0u);
  for (const auto& [key, k] : v.keys) EXPECT_EQ(k.verdict, Linearizable::yes) << key;
  // The same simulation with a stale cache in front of the register.
  auto stale = check_registers(simulated_history(10000, 10, 6, true),
                               std::chrono::steady_clock::now() + std::chrono::seconds(20));
  EXPECT_FALSE(stale.valid());
  EXPECT_FALSE(stale.unknown());
  for (const auto& [key, k] : stale.keys) {
    EXPECT_NE(k.verdict, Linearizable::unknown) << key;
    if (k.verdict == Linearizable::no) {
      EXPECT_FALSE(k.window.empty()) << key;
    }
  }
}

TEST(LinearizabilityBudget, OutOfTimeIsUnknownNeverYes) {
  // Concurrent writes of distinct values, then a read of a value none wrote: not
  // linearizable, but the search has to try every order of the writes to find that out.
  auto hard = [](int writes) {
    std::vector<Operation> ops;
    for (int i = 0; i < writes; ++i) ops.push_back(write("w" + std::to_string(i), i, 0, 1000));
    ops.push_back(read("r", 999999, 2000, 2010));
    return ops;
  };
  EXPECT_EQ(verdict(hard(8)), Linearizable::no);  // the known answer, given the time
  auto v =
      check_registers(hard(28), std::chrono::steady_clock::now() + std::chrono::milliseconds(1));
  EXPECT_EQ(v.keys.at("x").verdict, Linearizable::unknown);
  EXPECT_TRUE(v.keys.at("x").window.empty());
  EXPECT_FALSE(v.valid());
  EXPECT_TRUE(v.unknown());
}

// Jepsen etcd cas-register histories from Porcupine's test suite, converted by
// data/jepsen_to_history.py (see data/README.md), with the verdicts porcupine_test.go expects.
struct JepsenLog {
  const char* name;
  bool linearizable;
};

void PrintTo(const JepsenLog& log, std::ostream* os) { *os << log.name; }

class EtcdLog : public ::testing::TestWithParam<JepsenLog> {};

TEST_P(EtcdLog, SameVerdictAsPorcupine) {
  History history;
  auto path = std::string(ENVKIT_SOURCE_DIR "/tests/unit/race-probe/data/jepsen/") +
              GetParam().name + ".jsonl";
  auto read = read_history(path, history);
  ASSERT_TRUE(read) << read.error().message;
  ASSERT_FALSE(history.operations.empty());
  auto v = check_registers(history.operations,
                           std::chrono::steady_clock::now() + std::chrono::seconds(20));
  ASSERT_EQ(v.keys.size(), 1u);
  EXPECT_EQ(v.keys.begin()->second.verdict,
            GetParam().linearizable ? Linearizable::yes : Linearizable::no);
}

// Porcupine's TestEtcdJepsenNNN verdicts; the six linearizable ones from etcd_018 on were
// false violations before unknown cas could be left unapplied.
INSTANTIATE_TEST_SUITE_P(
    LinearizabilityJepsen, EtcdLog,
    ::testing::Values(
        JepsenLog{"etcd_000", false}, JepsenLog{"etcd_001", false}, JepsenLog{"etcd_002", true},
        JepsenLog{"etcd_003", false}, JepsenLog{"etcd_004", false}, JepsenLog{"etcd_005", true},
        JepsenLog{"etcd_006", false}, JepsenLog{"etcd_007", true}, JepsenLog{"etcd_008", false},
        JepsenLog{"etcd_009", false}, JepsenLog{"etcd_010", false}, JepsenLog{"etcd_011", false},
        JepsenLog{"etcd_018", true}, JepsenLog{"etcd_025", true}, JepsenLog{"etcd_050", false},
        JepsenLog{"etcd_056", true}, JepsenLog{"etcd_067", true}, JepsenLog{"etcd_075", true},
        JepsenLog{"etcd_087", true}, JepsenLog{"etcd_094", false}, JepsenLog{"etcd_099", false},
        JepsenLog{"etcd_100", true}, JepsenLog{"etcd_101", true}, JepsenLog{"etcd_102", true}),
    [](const ::testing::TestParamInfo<JepsenLog>& log) { return std::string(log.param.name); });

}  // namespace
}  // namespace race_probe
