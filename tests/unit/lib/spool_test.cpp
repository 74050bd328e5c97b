// Unit tests for envkit/spool.hpp: order, durable consume, the cap, torn and damaged segments,
// the lock, crashes at random points, and append throughput.
#include <envkit/spool.hpp>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace envkit {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMagicSize = 8;       // segment header, see spool.hpp
constexpr uint64_t kFrameOverhead = 16;  // frame header and the id's length

/// Record `i` of an endless, predictable stream: about 300 bytes, like a sensor reading.
Record make_record(uint64_t i) {
  std::string n = std::to_string(i);
  std::string pad(250 - n.size(), static_cast<char>('a' + i % 26));
  return Record{"rec-" + n, "{\"i\":" + n + ",\"city\":\"Bogota\",\"pad\":\"" + pad + "\"}"};
}

std::vector<Record> make_records(uint64_t from, uint64_t count) {
  std::vector<Record> out;
  for (uint64_t i = from; i < from + count; ++i) out.push_back(make_record(i));
  return out;
}

/// The index of a record made by make_record(), or -1.
int64_t index_of(const Record& r) {
  if (r.id.rfind("rec-", 0) != 0) return -1;
  return std::strtoll(r.id.c_str() + 4, nullptr, 10);
}

uint64_t framed_size(const Record& r) { return kFrameOverhead + r.id.size() + r.json.size(); }

/// Checks what a reopened spool holds against what the writer was told: a contiguous run of
/// the stream, intact, starting no earlier than the last acknowledged consume (a consumed
/// record never comes back) and no later than the last consume begun, and reaching at least
/// the last acknowledged append (an appended record is never lost).
::testing::AssertionResult holds_acknowledged(const std::vector<Record>& got,
                                              uint64_t consumed_done, uint64_t consume_begun,
                                              uint64_t appended_done) {
  if (got.empty()) {
    if (consume_begun >= appended_done) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "spool is empty, but records " << consume_begun << ".."
                                         << appended_done << " were acknowledged";
  }
  int64_t first = index_of(got.front());
  if (first < 0 || static_cast<uint64_t>(first) < consumed_done ||
      static_cast<uint64_t>(first) > consume_begun) {
    return ::testing::AssertionFailure()
           << "first record is " << got.front().id << ", expected one from rec-" << consumed_done
           << " to rec-" << consume_begun;
  }
  for (size_t k = 0; k < got.size(); ++k) {
    Record want = make_record(static_cast<uint64_t>(first) + k);
    if (got[k].id != want.id || got[k].json != want.json) {
      return ::testing::AssertionFailure()
             << "record " << k << " is " << got[k].id << ", expected " << want.id << " (intact)";
    }
  }
  uint64_t end = static_cast<uint64_t>(first) + got.size();
  if (end < appended_done) {
    return ::testing::AssertionFailure()
           << "spool ends before rec-" << end << ", but records up to rec-" << appended_done - 1
           << " were acknowledged";
  }
  return ::testing::AssertionSuccess();
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = ::testing::TempDir();
    if (base.empty() || base.back() != '/') base += '/';
    std::string tmpl = base + "envkit-spool-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << "mkdtemp " << tmpl;
    root_ = tmpl;
    dir_ = root_ + "/spool";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  /// Small segments, so that a few records already span several of them.
  static SpoolOptions small() {
    SpoolOptions o;
    o.segment_bytes = 4096;
    return o;
  }

  /// The spool in dir_; a failure to open ends the test (GoogleTest reports the exception).
  Spool open_ok(SpoolOptions o) {
    auto s = Spool::open(dir_, o);
    if (!s) throw std::runtime_error("Spool::open: " + s.error().message);
    return std::move(s).value();
  }

  static std::vector<Record> all(Spool& s) {
    auto got = s.peek(SIZE_MAX);
    EXPECT_TRUE(got.ok()) << got.error().message;
    return got ? *got : std::vector<Record>{};
  }

  std::vector<std::string> segments() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().extension() == ".spool") out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static void flip_byte(const std::string& path, uint64_t offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c ^ 0x10));
  }

  static std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

  /// `bytes` with the byte at `offset` flipped as flip_byte() does.
  static std::string slurp_of(std::string bytes, uint64_t offset) {
    bytes[offset] = static_cast<char>(bytes[offset] ^ 0x10);
    return bytes;
  }

  static mode_t mode_of(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }

  std::string root_;
  std::string dir_;
};

TEST_F(SpoolTest, RoundTripInOrderAcrossSegments) {
  {
    Spool s = open_ok(small());
    EXPECT_TRUE(s.empty());
    for (uint64_t b = 0; b < 20; ++b) ASSERT_TRUE(s.append(make_records(b * 7, 7)).ok());
    EXPECT_EQ(s.pending_records(), 140u);
    uint64_t bytes = 0;
    for (const auto& r : make_records(0, 140)) bytes += framed_size(r);
    EXPECT_EQ(s.pending_bytes(), bytes);
    EXPECT_TRUE(holds_acknowledged(all(s), 0, 0, 140));
  }
  EXPECT_GT(segments().size(), 3u) << "the test should span several segments";
  EXPECT_EQ(mode_of(dir_), 0700u);
  for (const auto& seg : segments()) EXPECT_EQ(mode_of(seg), 0600u) << seg;

  Spool s = open_ok(small());
  EXPECT_EQ(s.pending_records(), 140u);
  auto got = all(s);
  ASSERT_EQ(got.size(), 140u);
  EXPECT_TRUE(holds_acknowledged(got, 0, 0, 140));
}

TEST_F(SpoolTest, PeekRepeatsUntilConsumed) {
  Spool s = open_ok(small());
  ASSERT_TRUE(s.append(make_records(0, 30)).ok());
  auto a = s.peek(5);
  auto b = s.peek(5);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), 5u);
  EXPECT_EQ((*a)[4].id, (*b)[4].id);
  ASSERT_TRUE(s.consume(3).ok());
  auto c = s.peek(5);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->front().id, "rec-3");
  EXPECT_EQ(s.pending_records(), 27u);
  // Consuming past what the last peek returned walks the frames on disk instead.
  ASSERT_TRUE(s.consume(20).ok());
  EXPECT_TRUE(holds_acknowledged(all(s), 23, 23, 30));
}

TEST_F(SpoolTest, ConsumeIsDurableAcrossReopen) {
  {
    Spool s = open_ok(small());
    for (uint64_t b = 0; b < 10; ++b) ASSERT_TRUE(s.append(make_records(b * 5, 5)).ok());
    size_t before = segments().size();
    ASSERT_TRUE(s.consume(23).ok());  // no peek first: crosses segments by reading headers
    EXPECT_LT(segments().size(), before) << "fully consumed segments are removed";
    auto got = s.peek(4);
    ASSERT_TRUE(got.ok());
    ASSERT_TRUE(s.consume(got->size()).ok());
  }
  Spool s = open_ok(small());
  EXPECT_EQ(s.pending_records(), 23u);
  EXPECT_TRUE(holds_acknowledged(all(s), 27, 27, 50));
}

TEST_F(SpoolTest, AppendsAfterPartialConsumeComeAfter) {
  {
    Spool s = open_ok(small());
    ASSERT_TRUE(s.append(make_records(0, 10)).ok());
    ASSERT_TRUE(s.peek(4).ok());
    ASSERT_TRUE(s.consume(4).ok());
    ASSERT_TRUE(s.append(make_records(10, 25)).ok());
    EXPECT_TRUE(holds_acknowledged(all(s), 4, 4, 35));
  }
  Spool s = open_ok(small());
  ASSERT_TRUE(s.append(make_records(35, 5)).ok());
  auto got = all(s);
  EXPECT_EQ(got.size(), 36u);
  EXPECT_TRUE(holds_acknowledged(got, 4, 4, 40));
}

TEST_F(SpoolTest, DrainingRemovesEverySegment) {
  {
    Spool s = open_ok(small());
    ASSERT_TRUE(s.append(make_records(0, 40)).ok());
    ASSERT_TRUE(s.consume(40).ok());
    EXPECT_TRUE(s.empty());
    EXPECT_EQ(s.disk_bytes(), 0u);
    EXPECT_EQ(s.pending_bytes(), 0u);
    EXPECT_TRUE(segments().empty());
    ASSERT_TRUE(s.append(make_records(40, 2)).ok());
  }
  Spool s = open_ok(small());
  EXPECT_TRUE(holds_acknowledged(all(s), 40, 40, 42));
}

TEST_F(SpoolTest, FullSpoolRefusesTheWholeBatchAndAcceptsAgainAfterConsume) {
  SpoolOptions o = small();
  o.max_bytes = 16 * 1024;
  Spool s = open_ok(o);
  uint64_t next = 0;
  Status st;
  while ((st = s.append(make_records(next, 4))).ok()) next += 4;
  EXPECT_EQ(st.error().code, Exit::io);
  EXPECT_NE(st.error().message.find("spool " + dir_ + " is full ("), std::string::npos)
      << st.error().message;
  EXPECT_NE(st.error().message.find("of 16.0 KiB used"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("4 records not accepted"), std::string::npos);
  EXPECT_LE(s.disk_bytes(), o.max_bytes);
  EXPECT_EQ(s.pending_records(), next);
  EXPECT_TRUE(holds_acknowledged(all(s), 0, 0, next));

  // Consuming the oldest segment frees its bytes on disk, and the batch fits again.
  ASSERT_TRUE(s.consume(12).ok());
  ASSERT_TRUE(s.append(make_records(next, 4)).ok());
  EXPECT_TRUE(holds_acknowledged(all(s), 12, 12, next + 4));

  auto huge = s.append(make_records(1000, 60));
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, Exit::io);
  EXPECT_NE(huge.error().message.find("cannot hold a batch"), std::string::npos)
      << huge.error().message;
}

TEST_F(SpoolTest, TornTailCutMidFrameIsQuarantinedOnOpen) {
  {
    Spool s = open_ok(small());
    ASSERT_TRUE(s.append(make_records(0, 9)).ok());
  }
  std::string last = segments().back();
  uint64_t size = fs::file_size(last);
  fs::resize_file(last, size - 100);  // the last record loses its end, as in a crash mid-write
  uint64_t cut_at = size - framed_size(make_record(8));
  std::string cut = slurp(last).substr(cut_at);

  {
    ::testing::internal::CaptureStderr();
    Spool s = open_ok(small());
    std::string warning = ::testing::internal::GetCapturedStderr();
    ASSERT_EQ(s.quarantined().size(), 1u);
    const SpoolQuarantine& q = s.quarantined().front();
    EXPECT_TRUE(q.torn);
    EXPECT_FALSE(s.found_damage()) << "an interrupted write is not damage";
    EXPECT_EQ(q.segment, last);
    EXPECT_EQ(q.offset, cut_at);
    EXPECT_EQ(q.bytes, cut.size());
    EXPECT_EQ(q.path, dir_ + "/quarantine/" + fs::path(last).filename().string() + "@" +
                          std::to_string(cut_at) + ".torn");
    EXPECT_EQ(slurp(q.path), cut) << "the cut bytes are kept, not dropped";
    EXPECT_NE(warning.find(q.path), std::string::npos) << warning;
    EXPECT_NE(warning.find("an interrupted write"), std::string::npos) << warning;
    EXPECT_EQ(fs::file_size(last), cut_at);
    EXPECT_TRUE(holds_acknowledged(all(s), 0, 0, 8));
    // Appends continue right after the last whole record.
    ASSERT_TRUE(s.append(make_records(8, 3)).ok());
  }
  Spool s = open_ok(small());
  EXPECT_TRUE(s.quarantined().empty()) << "a quarantine happens once";
  EXPECT_TRUE(holds_acknowledged(all(s), 0, 0, 11));
}

TEST_F(SpoolTest, GarbageAfterTheLastRecordIsQuarantinedAsDamage) {
  {
    Spool s = open_ok(small());
    ASSERT_TRUE(s.append(make_records(0, 5)).ok());
  }
  std::string last = segments().back();
  uint64_t size = fs::file_size(last);
  std::string garbage;
  std::mt19937 rng(7);
  for (int i = 0; i < 777; ++i) garbage += static_cast<char>(rng());
  { std::ofstream(last, std::ios::app | std::ios::binary) << garbage; }
  ::testing::internal::CaptureStderr();
  Spool s = open_ok(small());
  std::string error = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(s.quarantined().size(), 1u);
  const SpoolQuarantine& q = s.quarantined().front();
  EXPECT_FALSE(q.torn) << "random bytes are not what an interrupted write leaves";
  EXPECT_TRUE(s.found_damage());
  EXPECT_EQ(q.offset, size);
  EXPECT_EQ(q.bytes, 777u);
  EXPECT_EQ(slurp(q.path), garbage);
  EXPECT_NE(error.find(q.path), std::string::npos) << error;
  EXPECT_NE(error.find("damage at offset " + std::to_string(size)), std::string::npos) << error;
  EXPECT_EQ(fs::file_size(last), size);
  EXPECT_TRUE(holds_acknowledged(all(s), 0, 0, 5));
}

TEST_F(SpoolTest, EmptyOrZeroFilledLastSegmentIsDropped) {
  {
    Spool s = open_ok(small());
    ASSERT_TRUE(s.append(make_records(0, 3)).ok());
  }
  // A crash right after a roll: the new segment exists but holds nothing, or only zeros.
  std::string last = segments().back();
  std::string next = last;
  next.replace(next.size() - 7, 1, "8");
  { std::ofstream(next, std::ios::binary) << std::string(4000, '\0'); }
  ::testing::internal::CaptureStderr();
  {
    Spool s = open_ok(small());
    EXPECT_TRUE(holds_acknowledged(all(s), 0, 0, 3));
    ASSERT_TRUE(s.append(make_records(3, 2)).ok());
  }
  ::testing::internal::GetCapturedStderr();
  { std::ofstream(dir_ + "/00000000000000000020.spool", std::ios::binary); }  // empty
  ::testing::internal::CaptureStderr();
  {
    Spool s = open_ok(small());
    EXPECT_TRUE(holds_acknowledged(all(s), 0, 0, 5));
  }
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(segments().size(), 1u);
}

TEST_F(SpoolTest, AFlippedByteQuarantinesOneRecordAndTheRestAreReplayed) {
  std::vector<Record> recs = make_records(0, 6);
  {
    Spool s = open_ok({});
    ASSERT_TRUE(s.append(recs).ok());
  }
  ASSERT_EQ(segments().size(), 1u);
  std::string seg = segments().front();
  uint64_t third = kMagicSize + framed_size(recs[0]) + framed_size(recs[1]);
  std::string original = slurp(seg);

  for (uint64_t where : {third + 40, third + 1}) {  // the third record's JSON; its length
    SCOPED_TRACE(where);
    { std::ofstream(seg, std::ios::binary | std::ios::trunc) << original; }
    fs::remove_all(dir_ + "/quarantine");
    flip_byte(seg, where);
    ::testing::internal::CaptureStderr();
    {
      Spool s = open_ok({});
      std::string error = ::testing::internal::GetCapturedStderr();
      ASSERT_EQ(s.quarantined().size(), 1u);
      const SpoolQuarantine& q = s.quarantined().front();
      EXPECT_FALSE(q.torn);
      EXPECT_EQ(q.offset, third);
      EXPECT_EQ(q.recovered, 3u) << "records 3, 4 and 5 follow the damage whole";
      EXPECT_EQ(q.reason, where == third + 1 ? "frame header checksum mismatch" : "record checksum mismatch");
      EXPECT_NE(error.find(q.path), std::string::npos) << error;
      EXPECT_EQ(slurp(q.path), slurp_of(original, where).substr(third)) << "kept as it was found";
      std::vector<std::string> ids;
      for (const auto& r : all(s)) ids.push_back(r.id);
      EXPECT_EQ(ids, (std::vector<std::string>{"rec-0", "rec-1", "rec-3", "rec-4", "rec-5"}))
          << "only the damaged record is missing from the replay";
      EXPECT_EQ(s.pending_records(), 5u);
    }
    Spool again = open_ok({});
    EXPECT_TRUE(again.quarantined().empty());
    EXPECT_EQ(again.pending_records(), 5u);
  }
}

TEST_F(SpoolTest, DamageInAnEarlierSegmentIsQuarantinedNotSkipped) {
  {
    Spool s = open_ok(small());
    for (uint64_t b = 0; b < 10; ++b) ASSERT_TRUE(s.append(make_records(b * 5, 5)).ok());
  }
  auto segs = segments();
  ASSERT_GT(segs.size(), 2u);
  uint64_t before = 0;
  {
    Spool s = open_ok(small());
    before = s.pending_records();
  }
  // Its last record: in the last segment this could pass for a torn write, here it cannot.
  flip_byte(segs[1], fs::file_size(segs[1]) - 3);
  ::testing::internal::CaptureStderr();
  Spool s = open_ok(small());
  ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(s.quarantined().size(), 1u);
  EXPECT_FALSE(s.quarantined().front().torn);
  EXPECT_EQ(s.quarantined().front().segment, segs[1]);
  EXPECT_EQ(s.pending_records(), before - 1);
}

TEST_F(SpoolTest, AnEarlierSegmentCutShortIsDamageNotATornWrite) {
  {
    Spool s = open_ok(small());
    for (uint64_t b = 0; b < 10; ++b) ASSERT_TRUE(s.append(make_records(b * 5, 5)).ok());
  }
  auto segs = segments();
  ASSERT_GT(segs.size(), 2u);
  fs::resize_file(segs[0], fs::file_size(segs[0]) - 10);
  ::testing::internal::CaptureStderr();
  Spool s = open_ok(small());
  std::string error = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(s.quarantined().size(), 1u);
  EXPECT_FALSE(s.quarantined().front().torn) << "only the newest segment is ever written to";
  EXPECT_TRUE(s.found_damage());
  EXPECT_NE(error.find(s.quarantined().front().path), std::string::npos) << error;
  auto got = all(s);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front().id, "rec-0");
}

TEST_F(SpoolTest, DamageAfterOpenIsQuarantinedByPeek) {
  Spool s = open_ok({});
  std::vector<Record> recs = make_records(0, 4);
  ASSERT_TRUE(s.append(recs).ok());
  flip_byte(segments().front(), kMagicSize + framed_size(recs[0]) + 30);
  ::testing::internal::CaptureStderr();
  auto got = s.peek(10);
  std::string error = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(got.ok()) << got.error().message;
  std::vector<std::string> ids;
  for (const auto& r : *got) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"rec-0", "rec-2", "rec-3"}));
  ASSERT_EQ(s.quarantined().size(), 1u);
  EXPECT_TRUE(s.found_damage());
  EXPECT_NE(error.find(s.quarantined().front().path), std::string::npos) << error;
  ASSERT_TRUE(s.consume(got->size()).ok());
  EXPECT_TRUE(s.empty());
  ASSERT_TRUE(s.append(make_records(4, 1)).ok());
  auto next = s.peek(10);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->size(), 1u);
  EXPECT_EQ(next->front().id, "rec-4");
}

TEST_F(SpoolTest, DamageBeforeTheAcknowledgedPositionRequeuesOnlyPendingRecords) {
  std::vector<Record> recs = make_records(0, 6);
  {
    Spool s = open_ok({});
    ASSERT_TRUE(s.append(recs).ok());
    ASSERT_TRUE(s.peek(3).ok());
    ASSERT_TRUE(s.consume(3).ok());
  }
  flip_byte(segments().front(), kMagicSize + framed_size(recs[0]) + 30);  // consumed rec-1
  ::testing::internal::CaptureStderr();
  Spool s = open_ok({});
  ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(s.quarantined().size(), 1u);
  EXPECT_EQ(s.quarantined().front().recovered, 3u);
  std::vector<std::string> ids;
  for (const auto& r : all(s)) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"rec-3", "rec-4", "rec-5"})) << "consumed ones stay consumed";
}

TEST_F(SpoolTest, DamagedAckFileIsAnError) {
  {
    Spool s = open_ok({});
    ASSERT_TRUE(s.append(make_records(0, 4)).ok());
    ASSERT_TRUE(s.consume(1).ok());
  }
  { std::ofstream(dir_ + "/ack") << "envkit spool ack v1\n1 9\n"; }  // not a record boundary
  auto s = Spool::open(dir_, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Exit::data);
  EXPECT_NE(s.error().message.find("is not the start of a record"), std::string::npos)
      << s.error().message;

  { std::ofstream(dir_ + "/ack") << "hello"; }
  s = Spool::open(dir_, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Exit::data);
}

TEST_F(SpoolTest, ASecondOpenerIsRefused) {
  {
    Spool first = open_ok({});
    auto second = Spool::open(dir_, {});
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().code, Exit::temp_fail);
    EXPECT_NE(second.error().message.find("spool " + dir_ + " is in use: " + dir_ +
                                          "/lock is locked by another process (pid " +
                                          std::to_string(::getpid()) + ")"),
              std::string::npos)
        << second.error().message;

    // Another process is refused too, and gets the lock once the holder is gone.
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      auto s = Spool::open(dir_, {});
      ::_exit(s.ok() ? 0 : to_int(s.error().code));
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_EQ(WEXITSTATUS(status), to_int(Exit::temp_fail));
  }
  EXPECT_TRUE(Spool::open(dir_, {}).ok());
}

TEST_F(SpoolTest, AFailedWriteIsRolledBack) {
  // In a child, because the file size limit applies to every file the process writes.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // so that writing past the limit is EFBIG, not death
    auto s = Spool::open(dir_, {});
    if (!s || !s->append(make_records(0, 10))) ::_exit(2);
    std::string seg = segments().front();
    uint64_t before = fs::file_size(seg);
    rlimit old{};
    ::getrlimit(RLIMIT_FSIZE, &old);
    rlimit low = old;
    low.rlim_cur = before + 1000;  // part of the next batch fits, the rest does not
    if (::setrlimit(RLIMIT_FSIZE, &low) != 0) ::_exit(3);
    auto st = s->append(make_records(10, 10));
    if (st || st.error().code != Exit::io) ::_exit(4);
    if (st.error().message.find(seg + ": write: File too large") == std::string::npos) ::_exit(5);
    if (fs::file_size(seg) != before || s->pending_records() != 10) ::_exit(6);
    if (::setrlimit(RLIMIT_FSIZE, &old) != 0) ::_exit(7);
    if (!s->append(make_records(10, 10))) ::_exit(8);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the step that failed, see the child";
  Spool s = open_ok({});
  EXPECT_TRUE(holds_acknowledged(all(s), 0, 0, 20));
  EXPECT_EQ(s.pending_records(), 20u);
}

TEST_F(SpoolTest, ConsumingMoreThanPendingIsRefused) {
  Spool s = open_ok({});
  ASSERT_TRUE(s.append(make_records(0, 3)).ok());
  auto st = s.consume(4);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::software);
  EXPECT_EQ(s.pending_records(), 3u);
  EXPECT_TRUE(s.append({}).ok());
  EXPECT_TRUE(s.consume(0).ok());
}

TEST_F(SpoolTest, BadOptionsAreUsageErrors) {
  SpoolOptions o;
  o.max_bytes = 0;
  auto s = Spool::open(dir_, o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Exit::usage);
}

// The loss check must be able to fail, or the crash test below proves nothing.
TEST(SpoolLossCheck, NoticesMissingReturnedOrDamagedRecords) {
  std::vector<Record> ok = make_records(10, 20);
  EXPECT_TRUE(holds_acknowledged(ok, 10, 10, 30));
  EXPECT_TRUE(holds_acknowledged(ok, 8, 12, 25));

  std::vector<Record> skipped = ok;
  skipped.erase(skipped.begin() + 7);
  EXPECT_FALSE(holds_acknowledged(skipped, 10, 10, 29));

  std::vector<Record> lost_tail(ok.begin(), ok.end() - 1);
  EXPECT_FALSE(holds_acknowledged(lost_tail, 10, 10, 30));

  EXPECT_FALSE(holds_acknowledged(ok, 11, 11, 30)) << "a consumed record came back";

  std::vector<Record> damaged = ok;
  damaged[3].json[5] ^= 1;
  EXPECT_FALSE(holds_acknowledged(damaged, 10, 10, 30));

  EXPECT_FALSE(holds_acknowledged({}, 30, 30, 31));
}

/// What the writer child reports on its pipe, once each step has returned.
struct Note {
  char kind;       // 'A' appended up to `index`, 'B' consume to `index` begun, 'C' done
  uint64_t index;  // one past the last record concerned
};

/// The child: appends batches of random size from `next`, now and then peeks and consumes
/// (checking what it gets), and reports each step after it returned. Never returns.
[[noreturn]] void crash_writer(const std::string& dir, uint64_t first, uint64_t next, unsigned seed,
                               int fd) {
  std::mt19937 rng(seed);
  SpoolOptions o;
  o.segment_bytes = 8 * 1024;
  auto s = Spool::open(dir, o);
  if (!s) ::_exit(10);
  auto note = [&](char kind, uint64_t index) {
    Note n{kind, index};
    if (::write(fd, &n, sizeof n) != static_cast<ssize_t>(sizeof n)) ::_exit(11);
  };
  for (int round = 0; round < 400; ++round) {
    uint64_t count = 1 + rng() % 40;
    if (!s->append(make_records(next, count))) ::_exit(12);
    next += count;
    note('A', next);
    if (rng() % 3 == 0) {
      auto got = s->peek(1 + rng() % 60);
      if (!got) ::_exit(13);
      for (size_t k = 0; k < got->size(); ++k) {
        if ((*got)[k].id != make_record(first + k).id) ::_exit(14);
      }
      note('B', first + got->size());
      if (!s->consume(got->size())) ::_exit(15);
      first += got->size();
      note('C', first);
    }
  }
  ::_exit(0);
}

TEST_F(SpoolTest, ARandomCrashLosesNothingAcknowledged) {
  unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  SpoolOptions o;
  o.segment_bytes = 8 * 1024;
  uint64_t first = 0;
  uint64_t next = 0;
  int killed = 0;
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(fds[0]);
      crash_writer(dir_, first, next, seed + static_cast<unsigned>(round), fds[1]);
    }
    ::close(fds[1]);

    uint64_t appended = next, consume_begun = first, consumed = first;
    auto take = [&](const Note& n) {
      if (n.kind == 'A') appended = n.index;
      if (n.kind == 'B') consume_begun = n.index;
      if (n.kind == 'C') consumed = n.index;
    };
    // Let the child run for a random while, reading its notes, then kill it mid-step.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(rng() % 60000);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, 1) > 0) {
        Note n{};
        if (::read(fds[0], &n, sizeof n) != static_cast<ssize_t>(sizeof n)) break;
        take(n);
      }
    }
    ::kill(child, SIGKILL);
    Note n{};
    while (::read(fds[0], &n, sizeof n) == static_cast<ssize_t>(sizeof n)) take(n);
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    if (WIFEXITED(status)) {
      ASSERT_EQ(WEXITSTATUS(status), 0) << "the writer failed";
    } else {
      ++killed;
    }

    ::testing::internal::CaptureStderr();  // torn-write warnings are expected here
    auto s = Spool::open(dir_, o);
    ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(s.ok()) << s.error().message;
    auto got = all(*s);
    ASSERT_TRUE(holds_acknowledged(got, consumed, consume_begun, appended));
    ASSERT_EQ(s->pending_records(), got.size());
    // Whatever survived counts as spooled: the next writer continues after it.
    first = got.empty() ? consume_begun : static_cast<uint64_t>(index_of(got.front()));
    next = got.empty() ? std::max(consume_begun, appended) : first + got.size();
  }
  EXPECT_GT(killed, 0) << "no round killed the writer; the test proved little";
  EXPECT_GT(next, 0u);
}

TEST_F(SpoolTest, AppendThroughputWithAnFsyncPerBatch) {
  Spool s = open_ok({});
  constexpr int kBatches = 20;
  constexpr uint64_t kBatch = 1000;
  std::vector<std::vector<Record>> batches;
  for (int b = 0; b < kBatches; ++b) batches.push_back(make_records(b * kBatch, kBatch));
  auto start = std::chrono::steady_clock::now();
  for (const auto& batch : batches) ASSERT_TRUE(s.append(batch).ok());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double rate = kBatches * kBatch / secs;
  double mib = static_cast<double>(s.disk_bytes()) / (1 << 20) / secs;
  std::printf("[ spool    ] append: %.0f records/s, %.1f MiB/s (%d batches of %llu, fsync each)\n",
              rate, mib, kBatches, static_cast<unsigned long long>(kBatch));
  RecordProperty("append_records_per_second", static_cast<int>(rate));

  start = std::chrono::steady_clock::now();
  while (!s.empty()) {
    auto got = s.peek(kBatch);
    ASSERT_TRUE(got.ok());
    ASSERT_TRUE(s.consume(got->size()).ok());
  }
  secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ spool    ] replay: %.0f records/s (peek and consume %llu at a time)\n",
              kBatches * kBatch / secs, static_cast<unsigned long long>(kBatch));
}

}  // namespace
}  // namespace envkit
