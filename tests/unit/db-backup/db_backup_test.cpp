// db-backup's server-free parts: data files (compression, checksums, corruption), the
// manifest, backup names, GFS retention with a fixed clock, record comparison, encodings.
#include <gtest/gtest.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "db-backup/backend.hpp"
#include "db-backup/backup_set.hpp"
#include "db-backup/mysql_rows.hpp"
#include "db-backup/record_index.hpp"

namespace db_backup {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "db_backup_test.XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> read_all(const std::string& dir, const FileEntry& f,
                                  Error* error = nullptr, FileCheck check = FileCheck::all) {
  std::vector<std::string> out;
  auto r = DataFileReader::open(dir, f, check);
  if (!r) {
    if (error) *error = r.error();
    return out;
  }
  for (;;) {
    auto line = r->next();
    if (!line) {
      if (error) *error = line.error();
      return out;
    }
    if (!*line) return out;
    out.emplace_back(**line);
  }
}

class DataFiles : public ::testing::TestWithParam<Compression> {};

TEST_P(DataFiles, RoundTripWithChecksumAndCounts) {
  TempDir dir;
  auto w = DataFileWriter::create(dir.path(), "t.00000" + std::string(data_file_suffix(GetParam())),
                                  GetParam());
  ASSERT_TRUE(w.ok()) << w.error().message;
  std::vector<std::string> records;
  for (int i = 0; i < 50000; ++i)
    records.push_back(R"({"id":)" + std::to_string(i) + R"(,"v":"caf\u00e9 \n"})");
  for (const auto& r : records) ASSERT_TRUE(w->write_record(r).ok());
  auto entry = w->finish();
  ASSERT_TRUE(entry.ok()) << entry.error().message;
  EXPECT_EQ(entry->rows, 50000u);
  EXPECT_EQ(entry->bytes, fs::file_size(dir.path() + "/" + entry->name));
  std::ifstream in(dir.path() + "/" + entry->name, std::ios::binary);
  std::string stored((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(entry->sha256, sha256_hex(stored));
  EXPECT_EQ((fs::status(dir.path() + "/" + entry->name).permissions() & fs::perms::all),
            fs::perms::owner_read | fs::perms::owner_write);
  Error error;
  EXPECT_EQ(read_all(dir.path(), *entry, &error), records) << error.message;
  EXPECT_TRUE(error.message.empty()) << error.message;
}

TEST_P(DataFiles, AnyFlippedByteIsCaught) {
  TempDir dir;
  auto w = DataFileWriter::create(dir.path(), "t.00000" + std::string(data_file_suffix(GetParam())),
                                  GetParam());
  ASSERT_TRUE(w.ok());
  for (int i = 0; i < 1000; ++i)
    ASSERT_TRUE(w->write_record(R"({"id":)" + std::to_string(i) + "}").ok());
  auto entry = w->finish();
  ASSERT_TRUE(entry.ok());
  std::string path = dir.path() + "/" + entry->name;
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(entry->bytes / 2));
  char c = 0;
  f.read(&c, 1);
  f.seekp(static_cast<std::streamoff>(entry->bytes / 2));
  c = static_cast<char>(c ^ 0x01);
  f.write(&c, 1);
  f.close();
  Error error;
  read_all(dir.path(), *entry, &error);
  EXPECT_EQ(error.code, Exit::data);
  EXPECT_NE(error.message.find(entry->name), std::string::npos) << error.message;
}

INSTANTIATE_TEST_SUITE_P(Compressions, DataFiles,
                         ::testing::Values(Compression::none, Compression::gzip,
                                           Compression::zstd));

TEST(DataFileReader, WrongRowCountOrMissingFileIsData) {
  TempDir dir;
  auto w = DataFileWriter::create(dir.path(), "a.00000.jsonl", Compression::none);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->write_record("{}").ok());
  auto entry = w->finish();
  ASSERT_TRUE(entry.ok());
  FileEntry lying = *entry;
  lying.rows = 2;
  Error error;
  read_all(dir.path(), lying, &error);
  EXPECT_EQ(error.code, Exit::data);
  EXPECT_NE(error.message.find("manifest says 2"), std::string::npos) << error.message;
  FileEntry escape = *entry;
  escape.name = "../etc/passwd";
  error = {};
  read_all(dir.path(), escape, &error);
  EXPECT_EQ(error.code, Exit::data);
}

TEST(DataFileReader, EachCheckLevelCatchesWhatItSays) {
  TempDir dir;
  auto w = DataFileWriter::create(dir.path(), "a.00000.jsonl", Compression::none);
  ASSERT_TRUE(w.ok());
  // Records around and across the reader's 256 KiB reads, one longer than two of them.
  std::vector<std::string> records;
  for (int i = 0; i < 3000; ++i) records.push_back(R"({"id":)" + std::to_string(i) + R"(,"pad":")" + std::string(i % 300, 'x') + "\"}");
  records.push_back(R"({"long":")" + std::string(600 << 10, 'y') + "\"}");
  records.push_back("{}");
  for (const auto& r : records) ASSERT_TRUE(w->write_record(r).ok());
  auto entry = w->finish();
  ASSERT_TRUE(entry.ok());
  auto message = [&](const FileEntry& e, FileCheck check) {
    Error error;
    auto got = read_all(dir.path(), e, &error, check);
    if (error.message.empty()) {
      EXPECT_EQ(got, records);
    }
    return error.message;
  };
  for (FileCheck check : {FileCheck::all, FileCheck::counts, FileCheck::none})
    EXPECT_EQ(message(*entry, check), "");
  FileEntry digest = *entry;
  digest.sha256[0] = digest.sha256[0] == '0' ? '1' : '0';
  EXPECT_NE(message(digest, FileCheck::all).find("SHA-256 mismatch"), std::string::npos);
  EXPECT_EQ(message(digest, FileCheck::counts), "");
  FileEntry size = *entry;
  size.bytes += 1;
  EXPECT_NE(message(size, FileCheck::all).find("size is"), std::string::npos);
  EXPECT_NE(message(size, FileCheck::counts).find("size is"), std::string::npos);
  EXPECT_EQ(message(size, FileCheck::none), "");
  FileEntry rows = *entry;
  rows.rows -= 1;
  EXPECT_NE(message(rows, FileCheck::counts).find("manifest says"), std::string::npos);
  EXPECT_EQ(message(rows, FileCheck::none), "");
}

TEST(DataFileWriter, UnfinishedFileLeavesNothing) {
  TempDir dir;
  {
    auto w = DataFileWriter::create(dir.path(), "a.00000.jsonl", Compression::zstd);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->write_record("{}").ok());
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(Manifest, RoundTrip) {
  Manifest m;
  m.tool_version = "0.1.0";
  m.backend = "mysql";
  m.source = "mysql://u:***@h/db";
  m.database = "db";
  m.compression = Compression::zstd;
  m.consistent = true;
  m.snapshot = R"({"method":"ftwrl","binlog_file":"b.000001","binlog_position":42})";
  m.warnings = {"careful"};
  ObjectEntry o;
  o.name = "we`ird name";
  o.kind = "table";
  o.rows = 3;
  o.key = {"id"};
  o.schema = "CREATE TABLE `we``ird name` (...)";
  o.metadata = R"({"columns":[]})";
  o.source_checksum = "12345";
  o.source_checksum_kind = "mysql-checksum-table";
  o.files = {{"t0.00000.jsonl.zst", std::string(64, 'a'), 10, 1},
             {"t0.00001.jsonl.zst", std::string(64, 'b'), 20, 2}};
  m.objects.push_back(o);
  auto back = Manifest::parse(m.to_json());
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->to_json(), m.to_json());
  EXPECT_EQ(back->objects[0].name, "we`ird name");
  EXPECT_EQ(back->total_rows(), 3u);
  EXPECT_EQ(back->total_bytes(), 30u);
  EXPECT_EQ(back->compression, Compression::zstd);
  EXPECT_EQ(*back->objects[0].source_checksum, "12345");
}

TEST(Manifest, RejectsWhatDoesNotAddUp) {
  EXPECT_EQ(Manifest::parse("{").error().code, Exit::data);
  EXPECT_EQ(Manifest::parse(R"({"format":"other"})").error().code, Exit::data);
  const char* bad_rows =
      R"({"format":"envkit-db-backup","format_version":1,"backend":"mysql","objects":[
    {"name":"t","kind":"table","rows":5,"files":[{"name":"t.00000.jsonl","sha256":"x","bytes":1,"rows":4}]}]})";
  auto m = Manifest::parse(bad_rows);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("do not add up"), std::string::npos);
}

TEST(BackupName, FormatsAndParses) {
  sys_seconds t = sys_days{2026y / 11 / 22} + 14h + 15min + 0s;
  EXPECT_EQ(backup_name(t), "20261122T141500Z");
  EXPECT_EQ(parse_backup_name("20261122T141500Z"), t);
  EXPECT_EQ(parse_backup_name("20261122T141500Z-2"), t);
  EXPECT_FALSE(parse_backup_name("20261122T141500"));
  EXPECT_FALSE(parse_backup_name("20261322T141500Z"));
  EXPECT_FALSE(parse_backup_name(".tmp-20261122T141500Z-99"));
  EXPECT_FALSE(parse_backup_name("20261122T141500Z-"));
}

std::vector<BackupInfo> backups_at(const std::vector<std::string>& names) {
  std::vector<BackupInfo> out;
  for (const auto& n : names) out.push_back({n, "/x/" + n, true, *parse_backup_name(n)});
  return out;
}

std::vector<std::string> kept(const std::vector<PruneDecision>& d) {
  std::vector<std::string> out;
  for (const auto& x : d)
    if (x.keep) out.push_back(x.name);
  return out;
}

// Hourly backups over 90 days (a fixed clock: the names are the times).
std::vector<std::string> hourly(int days) {
  std::vector<std::string> out;
  sys_seconds start = sys_days{2026y / 8 / 24};
  for (int h = 0; h < days * 24; ++h) out.push_back(backup_name(start + hours(h)));
  return out;
}

TEST(PruneSelection, KeepLast) {
  auto d = select_prune(backups_at({"20261120T000000Z", "20261122T000000Z", "20261121T000000Z"}),
                        {2, 0, 0, 0});
  EXPECT_EQ(kept(d), (std::vector<std::string>{"20261122T000000Z", "20261121T000000Z"}));
  EXPECT_EQ(d[2].name, "20261120T000000Z");
  EXPECT_FALSE(d[2].keep);
}

TEST(PruneSelection, GrandfatherFatherSon) {
  auto all = hourly(90);  // 2026-08-24 00:00 .. 2026-11-21 23:00
  auto d = select_prune(backups_at(all), {3, 7, 4, 3});
  auto k = kept(d);
  // last 3 hours; the last hour of each of the last 7 days; of the last 4 ISO weeks
  // (Monday..Sunday); of the last 3 months.
  std::vector<std::string> want = {
      "20261121T230000Z", "20261121T220000Z", "20261121T210000Z",                      // last
      "20261120T230000Z", "20261119T230000Z", "20261118T230000Z", "20261117T230000Z",  // daily
      "20261116T230000Z", "20261115T230000Z",  // daily (15th: Sunday: weekly too)
      "20261108T230000Z", "20261101T230000Z",  // weekly
      "20261031T230000Z", "20260930T230000Z",  // monthly
  };
  std::sort(want.begin(), want.end(), std::greater<>());
  EXPECT_EQ(k, want);
  for (const auto& x : d) {
    if (x.name == "20261121T230000Z") {
      EXPECT_EQ(x.reasons, (std::vector<std::string>{"last", "daily", "weekly", "monthly"}));
    }
  }
}

TEST(PruneSelection, NothingToKeepKeepsNothingAndEmptyIsFine) {
  EXPECT_TRUE(kept(select_prune(backups_at({"20261122T000000Z"}), {0, 0, 0, 0})).empty());
  EXPECT_TRUE(select_prune({}, {1, 1, 1, 1}).empty());
}

TEST(RecordIndex, ByKey) {
  RecordIndex index({"id"});
  ASSERT_TRUE(index.add(R"({"id":1,"v":"a"})").ok());
  ASSERT_TRUE(index.add(R"({"id":2,"v":"b"})").ok());
  ASSERT_TRUE(index.add(R"({"id":3,"v":"c"})").ok());
  EXPECT_EQ(index.add(R"({"v":"z","id":3})").error().code, Exit::data);
  std::vector<std::string> out;
  auto report = [&](const Difference& d) { out.push_back(difference_json(d)); };
  ASSERT_TRUE(
      index.match(R"({"v":"a","id":1})", "t", report).ok());  // member order does not matter
  ASSERT_TRUE(index.match(R"({"id":2,"v":"B"})", "t", report).ok());
  ASSERT_TRUE(index.match(R"({"id":4,"v":"d"})", "t", report).ok());
  index.report_unmatched("t", report);
  EXPECT_EQ(
      out,
      (std::vector<std::string>{
          R"({"object":"t","change":"changed","key":{"id":2},"before":{"id":2,"v":"b"},"after":{"id":2,"v":"B"}})",
          R"({"object":"t","change":"added","key":{"id":4},"after":{"id":4,"v":"d"}})",
          R"({"object":"t","change":"removed","key":{"id":3},"before":{"id":3,"v":"c"}})"}));
}

TEST(RecordIndex, WithoutKeyIsAMultiset) {
  RecordIndex index({});
  ASSERT_TRUE(index.add(R"({"a":1})").ok());
  ASSERT_TRUE(index.add(R"({"a":1})").ok());
  std::vector<std::string> changes;
  auto report = [&](const Difference& d) { changes.push_back(d.change); };
  ASSERT_TRUE(index.match(R"({"a":1})", "t", report).ok());
  ASSERT_TRUE(index.match(R"({"a":2})", "t", report).ok());
  index.report_unmatched("t", report);
  EXPECT_EQ(changes, (std::vector<std::string>{"added", "removed"}));
}

TEST(Encoding, Base64RoundTripAndRejects) {
  for (std::string s : {std::string(), std::string("f"), std::string("fo"), std::string("foo"),
                        std::string("\0\xff\n\r\\'\"", 7)}) {
    auto back = base64_decode(base64_encode(s));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(base64_encode(std::string("\x00\xff\x0a\x0d\x5c\x27\x22", 7)), "AP8KDVwnIg==");
  EXPECT_FALSE(base64_decode("abc").ok());
  EXPECT_FALSE(base64_decode("a=bc").ok());
  EXPECT_FALSE(base64_decode("ab!c").ok());
}

TEST(Encoding, JsonStringsEscapeEverythingThatMust) {
  std::string out;
  static const char kText[] = "q\" b\\ n\n r\r t\t nul\0 \x1f é😀";
  append_json_string(out, std::string(kText, sizeof kText - 1));
  EXPECT_EQ(out, R"("q\" b\\ n\n r\r t\t nul\u0000 \u001f é😀")");
  EXPECT_TRUE(envkit::parse_json(out).ok());
}

// What RapidJSON (the dump's full check of a JSON column) says of `text`, with its flags.
bool rapidjson_accepts(std::string_view text) {
  if (text.find_first_of("\r\n") != std::string_view::npos) return false;
  rapidjson::MemoryStream ms(text.data(), text.size());
  rapidjson::BaseReaderHandler<> ignore;
  rapidjson::Reader reader;
  if (reader
          .Parse<rapidjson::kParseFullPrecisionFlag | rapidjson::kParseStopWhenDoneFlag>(ms, ignore)
          .IsError())
    return false;
  for (size_t i = ms.Tell(); i < text.size(); ++i)
    if (text[i] != ' ' && text[i] != '\t') return false;
  return true;
}

TEST(Encoding, PlainJsonCheckAgreesWithRapidJson) {
  // Plain values: the fast check alone must accept them (else it saves nothing).
  for (std::string_view t :
       {R"({"a": 1, "b": [true, false, null], "c": {"d": "e"}})", R"([])", R"({})", " 0 ", R"("x")",
        R"(-0.5)", R"([1.25, -3, 0, "é😀 \" \\ \/ \b\f\n\r\t \u0000 \u0001 \u00e9"])",
        R"({"comment": "say \"hi\"\\n\u0001 ünïcödé 😀 tab\there"}	 )",
        "\"\xff\xfe invalid UTF-8 passes, as RapidJSON lets it\""}) {
    EXPECT_TRUE(plainly_one_json_value(t)) << t;
    EXPECT_TRUE(rapidjson_accepts(t)) << t;
  }
  // Not plain: left to RapidJSON, which accepts some and rejects others.
  for (std::string_view t : std::initializer_list<std::string_view>{
           R"(1e5)", R"([1E+400])", R"("\ud83d\ude00")", R"("\udc00")", "\"raw\x01-\"",
           std::string_view("\"nul\0\"", 6),
           "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
           "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"}) {
    EXPECT_FALSE(plainly_one_json_value(t)) << t;
  }
  // Invalid: never accepted.
  for (std::string_view t : {"",
                             " ",
                             "{",
                             "}",
                             "[1,]",
                             "[,1]",
                             R"({"a"})",
                             R"({"a":})",
                             R"({"a":1,})",
                             R"({a:1})",
                             "01",
                             "-",
                             "1.",
                             ".5",
                             "+1",
                             "tru",
                             "nul",
                             "truex",
                             "[1 2]",
                             R"("unterminated)",
                             R"("bad \x escape")",
                             R"("\u12")",
                             R"("\u12g4")",
                             "1 2",
                             "{} x",
                             "[1]]",
                             "[1}",
                             R"({"a":1]})",
                             "1\n",
                             "\"a\"\r"}) {
    EXPECT_FALSE(plainly_one_json_value(t)) << t;
    EXPECT_FALSE(rapidjson_accepts(t)) << t;
  }
  // Every cut and every one-byte change of a plain value: the fast check never accepts what
  // RapidJSON rejects.
  const std::string base =
      R"({"id": 7, "s": {"name": "Zürich", "geo": [-76.9210, 0]}, "r": [{"t": 1, "ok": true}], "c": "a\"b\\c\u0001"})";
  const std::string bytes = std::string("{}[],:\"\\ -.0123456789eEtfnu\x01\x7f\xc3");
  for (size_t i = 0; i <= base.size(); ++i) {
    std::string cut = base.substr(0, i);
    if (plainly_one_json_value(cut)) {
      EXPECT_TRUE(rapidjson_accepts(cut)) << cut;
    }
    if (i == base.size()) break;
    for (char b : bytes) {
      std::string m = base;
      m[i] = b;
      if (plainly_one_json_value(m)) {
        EXPECT_TRUE(rapidjson_accepts(m)) << m;
      }
    }
  }
}

TEST(Encoding, LoadDataStatementTakesBinaryAndBitAsHexOrRaw) {
  std::vector<Column> cols(4);
  cols[0].name = "id";
  cols[0].kind = ColumnKind::integer;
  cols[1].name = "b`l";
  cols[1].kind = ColumnKind::binary;
  cols[2].name = "j";
  cols[2].kind = ColumnKind::json;
  cols[3].name = "bt";
  cols[3].kind = ColumnKind::bit;
  EXPECT_EQ(load_data_statement("my table", cols, LoadBytes::hex),
            "LOAD DATA LOCAL INFILE 'envkit-restore' INTO TABLE `my table` CHARACTER SET utf8mb4 "
            "(`id`, @h1, `j`, @h3) SET `b``l` = UNHEX(@h1), `bt` = UNHEX(@h3)");
  EXPECT_EQ(load_data_statement("my table", cols, LoadBytes::raw),
            "LOAD DATA LOCAL INFILE 'envkit-restore' INTO TABLE `my table` CHARACTER SET binary "
            "(`id`, `b``l`, `j`, `bt`)");
}

TEST(Encoding, ColumnKinds) {
  EXPECT_EQ(column_kind("decimal", false), ColumnKind::decimal);
  EXPECT_EQ(column_kind("bigint", false), ColumnKind::integer);
  EXPECT_EQ(column_kind("varbinary", false), ColumnKind::binary);
  EXPECT_EQ(column_kind("longtext", true), ColumnKind::json);
  EXPECT_EQ(column_kind("timestamp", false), ColumnKind::timestamp);
  for (auto k : {ColumnKind::integer, ColumnKind::json, ColumnKind::bit, ColumnKind::datetime}) {
    EXPECT_EQ(parse_kind(kind_name(k)), k);
  }
}

TEST(Canonical, SortsMembersRecursively) {
  auto a = envkit::parse_json(R"({"b":{"y":1,"x":[{"d":1,"c":2}]},"a":null})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(canonical_json(*a), R"({"a":null,"b":{"x":[{"c":2,"d":1}],"y":1}})");
}

}  // namespace
}  // namespace db_backup
