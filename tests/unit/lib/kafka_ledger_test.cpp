// Unit tests for envkit/kafka_ledger.hpp: the commit never passes an unsettled record.
#include <envkit/kafka_ledger.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace envkit {
namespace {

using Offsets = std::vector<KafkaOffset>;

// Hands out `offsets` of `partition` and returns their handles, in order.
std::vector<uint64_t> hand_out(KafkaOffsetLedger& ledger, int32_t partition,
                               std::vector<int64_t> offsets) {
  std::vector<uint64_t> handles;
  for (int64_t o : offsets) {
    uint64_t h = 0;
    auto e = ledger.handed_out(partition, o, &h);
    EXPECT_NE(h, 0u);
    EXPECT_EQ(e.offset, o);
    handles.push_back(h);
  }
  return handles;
}

void settle(KafkaOffsetLedger& ledger, uint64_t handle, Verdict v) {
  ASSERT_TRUE(ledger.settle(handle, v).has_value()) << "handle " << handle;
}

TEST(KafkaOffsetLedger, NothingSettledNothingToCommit) {
  KafkaOffsetLedger ledger;
  EXPECT_TRUE(ledger.committable().empty());
  hand_out(ledger, 0, {0, 1, 2});
  EXPECT_TRUE(ledger.committable().empty());
  EXPECT_EQ(ledger.open(), 3u);
  EXPECT_EQ(ledger.out(), 3u);
}

TEST(KafkaOffsetLedger, InOrderAcksCommitPastTheLast) {
  KafkaOffsetLedger ledger;
  auto h = hand_out(ledger, 0, {0, 1, 2});
  settle(ledger, h[0], Verdict::ack);
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 1}}));
  settle(ledger, h[1], Verdict::ack);
  settle(ledger, h[2], Verdict::ack);
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 3}}));
  EXPECT_EQ(ledger.open(), 0u);
}

TEST(KafkaOffsetLedger, OutOfOrderAcksNeverPassTheLowestUnsettled) {
  KafkaOffsetLedger ledger;
  auto h = hand_out(ledger, 0, {1, 2, 3});
  settle(ledger, h[1], Verdict::ack);  // 2
  settle(ledger, h[2], Verdict::ack);  // 3
  // 1 is still out: the group must read from 1 again after a crash.
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 1}}));
  settle(ledger, h[0], Verdict::ack);
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 4}}));
}

TEST(KafkaOffsetLedger, DeadSettlesLikeAck) {
  KafkaOffsetLedger ledger;
  auto h = hand_out(ledger, 0, {5, 6});
  settle(ledger, h[0], Verdict::dead);
  settle(ledger, h[1], Verdict::ack);
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 7}}));
}

TEST(KafkaOffsetLedger, GapsInOffsetsAreNotWaitedFor) {
  // Compacted topics and transaction markers leave offsets nobody will ever hand out.
  KafkaOffsetLedger ledger;
  auto h = hand_out(ledger, 0, {10, 13, 20});
  settle(ledger, h[0], Verdict::ack);
  settle(ledger, h[1], Verdict::ack);
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 14}}));
  settle(ledger, h[2], Verdict::ack);
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 21}}));
}

TEST(KafkaOffsetLedger, RetryHoldsTheCommitUntilTheRedeliveryIsSettled) {
  KafkaOffsetLedger ledger;
  auto h = hand_out(ledger, 0, {0, 1, 2});
  settle(ledger, h[0], Verdict::ack);
  settle(ledger, h[1], Verdict::retry);
  settle(ledger, h[2], Verdict::ack);
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 1}}));
  EXPECT_EQ(ledger.open(), 1u);
  EXPECT_EQ(ledger.out(), 0u);

  uint64_t again = 0;
  auto e = ledger.handed_out_again(0, 1, &again);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->deliveries, 2u);
  EXPECT_NE(again, h[1]);
  // A handle is good for one settlement: the retried one is gone.
  EXPECT_FALSE(ledger.settle(h[1], Verdict::ack).has_value());
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 1}}));

  settle(ledger, again, Verdict::retry);
  ASSERT_TRUE(ledger.handed_out_again(0, 1, &again).has_value());
  auto third = ledger.settle(again, Verdict::ack);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->deliveries, 3u);
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 3}}));
}

TEST(KafkaOffsetLedger, HandingOutAgainNeedsARetryWaiting) {
  KafkaOffsetLedger ledger;
  auto h = hand_out(ledger, 0, {0});
  uint64_t again = 0;
  EXPECT_FALSE(ledger.handed_out_again(0, 0, &again).has_value()) << "still out";
  EXPECT_FALSE(ledger.handed_out_again(0, 7, &again).has_value()) << "never handed out";
  EXPECT_FALSE(ledger.handed_out_again(3, 0, &again).has_value()) << "unknown partition";
  settle(ledger, h[0], Verdict::ack);
  EXPECT_FALSE(ledger.handed_out_again(0, 0, &again).has_value()) << "settled";
}

TEST(KafkaOffsetLedger, CommittedPositionsAreNotOfferedAgain) {
  KafkaOffsetLedger ledger;
  auto h = hand_out(ledger, 0, {0, 1});
  settle(ledger, h[0], Verdict::ack);
  auto c = ledger.committable();
  ASSERT_EQ(c, (Offsets{{0, 1}}));
  ledger.committed(c);
  EXPECT_TRUE(ledger.committable().empty());
  settle(ledger, h[1], Verdict::ack);
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 2}}));
}

TEST(KafkaOffsetLedger, ReReadOffsetsNeverMoveTheCommitBack) {
  KafkaOffsetLedger ledger;
  auto h = hand_out(ledger, 0, {0, 1, 2});
  for (auto x : h) settle(ledger, x, Verdict::ack);
  ledger.committed(ledger.committable());  // 3
  // Kafka sends 1 again (a seek back): settling it must not commit 2.
  auto again = hand_out(ledger, 0, {1});
  EXPECT_TRUE(ledger.committable().empty());
  settle(ledger, again[0], Verdict::ack);
  EXPECT_TRUE(ledger.committable().empty());
}

TEST(KafkaOffsetLedger, AnOpenOffsetSentAgainGetsANewHandle) {
  KafkaOffsetLedger ledger;
  auto first = hand_out(ledger, 0, {4});
  auto second = hand_out(ledger, 0, {4});
  EXPECT_NE(first[0], second[0]);
  EXPECT_FALSE(ledger.settle(first[0], Verdict::ack).has_value());
  EXPECT_EQ(ledger.out(), 1u);
  settle(ledger, second[0], Verdict::ack);
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 5}}));
}

TEST(KafkaOffsetLedger, PartitionsAreIndependent) {
  KafkaOffsetLedger ledger;
  auto p0 = hand_out(ledger, 0, {0, 1});
  auto p1 = hand_out(ledger, 1, {0, 1});
  settle(ledger, p0[1], Verdict::ack);  // out of order on 0
  settle(ledger, p1[0], Verdict::ack);
  settle(ledger, p1[1], Verdict::ack);
  EXPECT_EQ(ledger.committable(), (Offsets{{0, 0}, {1, 2}}));
}

TEST(KafkaOffsetLedger, RevokeReturnsTheSafeOffsetAndForgetsThePartition) {
  KafkaOffsetLedger ledger;
  auto p0 = hand_out(ledger, 0, {0, 1, 2});
  auto p1 = hand_out(ledger, 1, {7});
  settle(ledger, p0[0], Verdict::ack);
  settle(ledger, p0[2], Verdict::ack);
  settle(ledger, p0[1], Verdict::retry);

  auto safe = ledger.revoke(0);
  ASSERT_TRUE(safe.has_value());
  EXPECT_EQ(*safe, (KafkaOffset{0, 1})) << "the retried record stays below the commit";
  EXPECT_EQ(ledger.open(), 1u);
  // Its handles and its retry are forgotten: the next owner reads from the commit.
  uint64_t again = 0;
  EXPECT_FALSE(ledger.handed_out_again(0, 1, &again).has_value());
  EXPECT_TRUE(ledger.committable().empty());
  EXPECT_FALSE(ledger.revoke(0).has_value());

  // The other partition is untouched.
  settle(ledger, p1[0], Verdict::ack);
  EXPECT_EQ(ledger.committable(), (Offsets{{1, 8}}));
}

TEST(KafkaOffsetLedger, LateSettlementsOfARevokedPartitionAreUnknown) {
  KafkaOffsetLedger ledger;
  auto h = hand_out(ledger, 2, {0, 1});
  EXPECT_FALSE(ledger.revoke(2).has_value()) << "nothing settled: nothing to commit";
  EXPECT_FALSE(ledger.settle(h[0], Verdict::ack).has_value());
  EXPECT_EQ(ledger.out(), 0u);
  EXPECT_TRUE(ledger.committable().empty());
}

TEST(KafkaOffsetLedger, RevokeCommitsNothingAlreadyCommitted) {
  KafkaOffsetLedger ledger;
  auto h = hand_out(ledger, 0, {0});
  settle(ledger, h[0], Verdict::ack);
  ledger.committed(ledger.committable());
  EXPECT_FALSE(ledger.revoke(0).has_value());
}

TEST(KafkaOffsetLedger, DeliveriesCountOnWhenARevokedPartitionComesBack) {
  KafkaOffsetLedger ledger;
  auto h = hand_out(ledger, 0, {0, 1});
  settle(ledger, h[0], Verdict::ack);
  ledger.revoke(0);
  // Reassigned here: Kafka sends 1 again from the commit.
  uint64_t handle = 0;
  EXPECT_EQ(ledger.handed_out(0, 1, &handle).deliveries, 2u);
  EXPECT_EQ(ledger.handed_out(0, 2, &handle).deliveries, 1u);
}

TEST(KafkaOffsetLedger, RememberedDeliveriesAreBounded) {
  KafkaOffsetLedger ledger;
  const int64_t n = KafkaOffsetLedger::kRememberedRedeliveries + 10;
  for (int64_t o = 0; o < n; ++o) {
    uint64_t h = 0;
    ledger.handed_out(0, o, &h);
  }
  ledger.revoke(0);
  uint64_t h = 0;
  EXPECT_EQ(ledger.handed_out(0, 0, &h).deliveries, 1u) << "the oldest was forgotten";
  EXPECT_EQ(ledger.handed_out(0, n - 1, &h).deliveries, 2u);
}

}  // namespace
}  // namespace envkit
