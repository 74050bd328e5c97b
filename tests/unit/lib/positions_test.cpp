// Unit tests for envkit/positions.hpp: a stored position never passes a record the sink
// does not hold, and records at or below it are held, not written again.
#include <envkit/positions.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace envkit {
namespace {

Record at(int32_t partition, int64_t offset, std::string group = "g") {
  return Record{"", "{}", LogPosition{std::move(group), "t", partition, offset}};
}

std::vector<Record> run(int32_t partition, int64_t from, int64_t to) {
  std::vector<Record> out;
  for (int64_t o = from; o <= to; ++o) out.push_back(at(partition, o));
  return out;
}

using Stored = std::map<PositionKeeper::Partition, int64_t>;

TEST(PositionKeeper, StoresTheHighestOffsetPerPartitionAndHoldsNothingNew) {
  PositionKeeper k;
  std::vector<Record> batch = run(0, 0, 4);
  batch.push_back(at(1, 7));
  batch.push_back(Record{"x", "{}"});  // no position: written, moves nothing
  auto plan = k.plan(batch, {});
  EXPECT_EQ(plan.held, std::vector<bool>(batch.size(), false));
  ASSERT_EQ(plan.store.size(), 2u);
  EXPECT_EQ(plan.store[0].partition, 0);
  EXPECT_EQ(plan.store[0].offset, 4);
  EXPECT_EQ(plan.store[1].partition, 1);
  EXPECT_EQ(plan.store[1].offset, 7);
}

TEST(PositionKeeper, RecordsAtOrBelowTheStoredPositionAreHeldAndNothingMovesBack) {
  PositionKeeper k;
  // A crash after the sink's commit and before the source's: 0..9 come again, 0..5 stored.
  Stored stored{{{"g", "t", 0}, 5}};
  auto batch = run(0, 0, 9);
  auto plan = k.plan(batch, stored);
  for (size_t i = 0; i < batch.size(); ++i) EXPECT_EQ(plan.held[i], i <= 5) << i;
  ASSERT_EQ(plan.store.size(), 1u);
  EXPECT_EQ(plan.store[0].offset, 9);
  // Only held records: the position stays.
  EXPECT_TRUE(k.plan(run(0, 2, 4), stored).store.empty());
}

TEST(PositionKeeper, OtherGroupsAndPartitionsAreTheirOwn) {
  PositionKeeper k;
  Stored stored{{{"g", "t", 0}, 100}};
  std::vector<Record> batch{at(0, 50, "other"), at(1, 50)};
  auto plan = k.plan(batch, stored);
  EXPECT_FALSE(plan.held[0]);
  EXPECT_FALSE(plan.held[1]);
  EXPECT_EQ(plan.store.size(), 2u);
}

TEST(PositionKeeper, AFailedRecordCapsThePositionUntilItIsWritten) {
  PositionKeeper k;
  k.failed(run(0, 10, 19));  // the sink failed 10..19: the source hands them out again
  EXPECT_EQ(k.holes(), 10u);
  // 20..29 arrive first (another batch in flight): stored no higher than 9.
  auto plan = k.plan(run(0, 20, 29), {});
  ASSERT_EQ(plan.store.size(), 1u);
  EXPECT_EQ(plan.store[0].offset, 9);
  k.written(run(0, 20, 29));
  // The retried 10..19 come back: once they are written, the position may pass them.
  plan = k.plan(run(0, 10, 19), {{{"g", "t", 0}, 9}});
  ASSERT_EQ(plan.store.size(), 1u);
  EXPECT_EQ(plan.store[0].offset, 19);
  k.written(run(0, 10, 19));
  EXPECT_EQ(k.holes(), 0u);
  plan = k.plan(run(0, 30, 31), {{{"g", "t", 0}, 19}});
  EXPECT_EQ(plan.store[0].offset, 31);
}

TEST(PositionKeeper, AFailedRecordThatWasSpooledHoldsNothing) {
  PositionKeeper k;
  k.failed(run(2, 0, 4));
  k.forget(run(2, 0, 4));  // in the spool, acknowledged at the source
  EXPECT_EQ(k.holes(), 0u);
  EXPECT_EQ(k.plan(run(2, 5, 6), {}).store[0].offset, 6);
}

TEST(PositionKeeper, AHoleBelowTheStoredPositionStoresNothingNew) {
  PositionKeeper k;
  k.failed(run(0, 3, 3));
  EXPECT_TRUE(k.plan(run(0, 8, 9), {{{"g", "t", 0}, 5}}).store.empty());
}

}  // namespace
}  // namespace envkit
