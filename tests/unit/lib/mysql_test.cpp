// Unit tests for envkit/mysql.hpp (loopback only), and Live* tests against a real server.
#include <envkit/mysql.hpp>
#include "live.hpp"
#include "loopback.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace envkit {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

using test::closed_port;
using test::LoopbackSocket;
using test::short_timeouts;

Url mysql_url(uint16_t port, std::string password = "hunter2") {
  Url u;
  u.scheme = "mysql";
  u.user = "app";
  u.password = std::move(password);
  u.hosts.push_back(HostPort{"127.0.0.1", port, false});
  u.path = "shop";
  return u;
}

TEST(Mysql, QuoteIdentifierDoublesBackticks) {
  EXPECT_EQ(quote_identifier("readings"), "`readings`");
  EXPECT_EQ(quote_identifier("we`ird``name"), "`we``ird````name`");
  EXPECT_EQ(quote_identifier(""), "``");
  EXPECT_EQ(quote_identifier("ciudad ñ 🌧"), "`ciudad ñ 🌧`");
  EXPECT_EQ(quote_identifier("a'b\"c"), "`a'b\"c`");
}

TEST(Mysql, LoadDataFieldEscapesWhatTheFormatUses) {
  std::string out = "x\t";
  append_load_data_field(out, std::string_view("a\tb\nc\\d\0e\rf \\N", 14));
  EXPECT_EQ(out, std::string_view("x\ta\\tb\\nc\\\\d\\0e\\rf \\\\N"));
  out.clear();
  append_load_data_field(out, "café 😀 'quoted' \"d\"");
  EXPECT_EQ(out, "café 😀 'quoted' \"d\"");
  EXPECT_EQ(kLoadDataNull, "\\N");
}

// Every byte the format escapes, at every place in texts longer than the 16-byte blocks the
// escaper reads at once, against a byte-by-byte reference.
TEST(Mysql, LoadDataFieldEscapesAtEveryPlace) {
  auto reference = [](std::string_view text) {
    std::string out;
    for (char c : text) {
      switch (c) {
        case '\\': out += "\\\\"; break;
        case '\t': out += "\\t"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\0': out += "\\0"; break;
        default: out += c;
      }
    }
    return out;
  };
  for (char special : {'\\', '\t', '\n', '\r', '\0'}) {
    for (size_t len : {15, 16, 17, 31, 32, 33, 47}) {
      for (size_t at = 0; at < len; ++at) {
        std::string text(len, '\xc3');
        for (size_t i = 0; i < len; ++i) text[i] = static_cast<char>('a' + i % 26);
        text[at] = special;
        text[len - 1 - at / 2] = special;  // a second one, sometimes in the same block
        std::string out = "prefix";
        append_load_data_field(out, text);
        ASSERT_EQ(out, "prefix" + reference(text)) << "len " << len << " at " << at;
      }
    }
  }
  std::string bytes;
  for (int i = 0; i < 256 * 3; ++i) bytes += static_cast<char>(i * 7 % 256);
  std::string out;
  append_load_data_field(out, bytes);
  EXPECT_EQ(out, reference(bytes));
}

TEST(Mysql, ErrorNumbersAreClassifiedByTheFailureTable) {
  EXPECT_EQ(mysql_failure(2002), Failure::connection_refused);  // no local socket
  EXPECT_EQ(mysql_failure(2003), Failure::connection_refused);  // cannot connect over TCP
  EXPECT_EQ(mysql_failure(2005), Failure::name_not_found);      // unknown host
  EXPECT_EQ(mysql_failure(2013), Failure::connection_lost);     // lost during query
  EXPECT_EQ(mysql_failure(1927), Failure::connection_lost);     // connection killed
  EXPECT_EQ(mysql_failure(1045), Failure::auth_refused);        // access denied
  EXPECT_EQ(mysql_failure(1044), Failure::permission_denied);   // no grant on the database
  EXPECT_EQ(mysql_failure(1049), Failure::not_found);           // unknown database
  EXPECT_EQ(mysql_failure(1146), Failure::not_found);           // no such table
  EXPECT_EQ(mysql_failure(1213), Failure::server_busy);         // deadlock
  EXPECT_EQ(mysql_failure(1205), Failure::server_busy);         // lock wait timeout
  EXPECT_EQ(mysql_failure(1064), Failure::bad_data);            // SQL syntax
  EXPECT_EQ(mysql_failure(1062), Failure::bad_data);            // duplicate key
  EXPECT_EQ(mysql_failure(2014), Failure::internal);            // commands out of sync
  EXPECT_EQ(exit_for(mysql_failure(1045)), Exit::config);
}

TEST(Mysql, ClosedPortIsUnavailableFastAndNamesRedactedUrl) {
  Url url = mysql_url(closed_port());
  auto start = Clock::now();
  auto conn = MysqlConnection::connect(url, short_timeouts());
  auto took = Clock::now() - start;
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::unavailable);
  EXPECT_NE(conn.error().message.find(url.redacted()), std::string::npos) << conn.error().message;
  EXPECT_NE(conn.error().message.find("app:***@"), std::string::npos) << conn.error().message;
  EXPECT_EQ(conn.error().message.find("hunter2"), std::string::npos) << conn.error().message;
  EXPECT_LT(took, milliseconds(1000));
}

TEST(Mysql, ServerThatNeverAnswersTimesOutWithinBound) {
  LoopbackSocket silent(true);
  auto start = Clock::now();
  auto conn = MysqlConnection::connect(mysql_url(silent.port()), short_timeouts());
  auto took = Clock::now() - start;
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::unavailable) << conn.error().message;
  EXPECT_EQ(conn.error().message.find("hunter2"), std::string::npos);
  // The client library counts whole seconds: 300 ms becomes 1 s, never more.
  EXPECT_LT(took, milliseconds(2000));
}

TEST(Mysql, TlsServerNameIsRefusedRatherThanIgnored) {
  ConnectionOptions o = short_timeouts();
  o.tls.enabled = true;
  o.tls.server_name = "db.example";
  auto conn = MysqlConnection::connect(mysql_url(closed_port()), o);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::config);
  EXPECT_NE(conn.error().message.find("--tls-server-name"), std::string::npos);
}

TEST(Mysql, BadTlsParameterIsUsageError) {
  Url url = mysql_url(closed_port());
  url.query.emplace_back("tls", "maybe");
  auto conn = MysqlConnection::connect(url, short_timeouts());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::usage);
  EXPECT_NE(conn.error().message.find("tls=maybe"), std::string::npos);
}

// ---- Live tests: against the server in ENVKIT_TEST_MYSQL_URL (password from MYSQL_PWD). ----

std::optional<Url> live_url() { return test::live_url("ENVKIT_TEST_MYSQL_URL", "MYSQL_PWD"); }

#define REQUIRE_LIVE_MYSQL(url)                                                       \
  auto url##_opt = live_url();                                                        \
  if (!url##_opt) GTEST_SKIP() << "set ENVKIT_TEST_MYSQL_URL (and MYSQL_PWD) to run"; \
  Url url = *url##_opt

// The database the live tests work in, quoted: the URL's, or envkit_test when it names none.
Result<std::string> test_database(MysqlConnection& conn, const Url& url) {
  if (!url.path.empty()) return quote_identifier(url.path);
  if (auto st = conn.execute("CREATE DATABASE IF NOT EXISTS envkit_test"); !st) return st.error();
  return quote_identifier("envkit_test");
}

// A table name no other test run uses at the same time, qualified and quoted.
Result<std::string> scratch_table(MysqlConnection& conn, const Url& url, std::string_view what) {
  auto db = test_database(conn, url);
  if (!db) return db.error();
  return *db + "." +
         quote_identifier("envkit_test_" + std::string(what) + "_" + std::to_string(::getpid()));
}

TEST(LiveMysql, ConnectsAndReportsServer) {
  REQUIRE_LIVE_MYSQL(url);
  auto conn_r = MysqlConnection::connect(url, ConnectionOptions{});
  ASSERT_TRUE(conn_r.ok()) << conn_r.error().message;
  MysqlConnection& conn = *conn_r;
  EXPECT_FALSE(conn.server_version().empty());
  EXPECT_GT(conn.thread_id(), 0u);
  auto r = conn.query("SELECT @@character_set_client, 1 + 1");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(*r->next_row());
  EXPECT_EQ(r->value(0), "utf8mb4");
  EXPECT_EQ(r->value(1), "2");
  EXPECT_FALSE(*r->next_row());
}

TEST(LiveMysql, BinaryEmojiAndNullRoundTripThroughStreamedSelect) {
  REQUIRE_LIVE_MYSQL(url);
  auto conn_r = MysqlConnection::connect(url, ConnectionOptions{});
  ASSERT_TRUE(conn_r.ok()) << conn_r.error().message;
  MysqlConnection& conn = *conn_r;
  auto scratch = scratch_table(conn, url, "roundtrip");
  ASSERT_TRUE(scratch.ok()) << scratch.error().message;
  const std::string& table = *scratch;
  ASSERT_TRUE(conn.execute("DROP TABLE IF EXISTS " + table));
  auto created = conn.execute("CREATE TABLE " + table +
                              " (id INT PRIMARY KEY, txt TEXT CHARACTER SET utf8mb4, bin BLOB,"
                              " n INT NULL)");
  ASSERT_TRUE(created.ok()) << created.error().message;

  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  const std::string text = "Bogotá 🌧 it's \"wet\" \\ back\\slash\nnew line \x1a end";
  auto inserted = conn.execute_affected(
      "INSERT INTO " + table + " VALUES (1, " + conn.quote_string(text) + ", " +
      conn.quote_string(all_bytes) + ", NULL), (2, '', '', 7), (3, NULL, NULL, NULL)");
  ASSERT_TRUE(inserted.ok()) << inserted.error().message;
  EXPECT_EQ(*inserted, 3u);

  {
    auto r = conn.query("SELECT id, txt, bin, n FROM " + table + " ORDER BY id", Fetch::streamed);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->column_count(), 4u);
    EXPECT_EQ(r->fields()[1].name, "txt");
    EXPECT_FALSE(r->fields()[1].binary);
    EXPECT_TRUE(r->fields()[2].binary);
    EXPECT_EQ(r->fields()[3].type, MYSQL_TYPE_LONG);

    ASSERT_TRUE(*r->next_row());
    EXPECT_EQ(r->value(1), text);
    EXPECT_EQ(r->value(2), all_bytes);
    EXPECT_TRUE(r->is_null(3));
    EXPECT_EQ(r->value(3), std::nullopt);

    ASSERT_TRUE(*r->next_row());
    EXPECT_EQ(r->value(1), "");  // empty, which is not NULL
    EXPECT_FALSE(r->is_null(1));
    EXPECT_EQ(r->value(3), "7");

    ASSERT_TRUE(*r->next_row());
    EXPECT_TRUE(r->is_null(1));
    EXPECT_TRUE(r->is_null(2));

    auto end = r->next_row();
    ASSERT_TRUE(end.ok()) << end.error().message;
    EXPECT_FALSE(*end);
    EXPECT_EQ(r->rows_read(), 3u);
  }  // the streamed result must be gone before the connection runs anything else
  EXPECT_TRUE(conn.execute("DROP TABLE " + table));
}

TEST(LiveMysql, ServerErrorCarriesServerMessage) {
  REQUIRE_LIVE_MYSQL(url);
  auto conn_r = MysqlConnection::connect(url, ConnectionOptions{});
  ASSERT_TRUE(conn_r.ok()) << conn_r.error().message;
  MysqlConnection& conn = *conn_r;
  auto table = scratch_table(conn, url, "never_created");
  ASSERT_TRUE(table.ok()) << table.error().message;
  auto r = conn.query("SELECT * FROM " + *table);
  ASSERT_FALSE(r.ok());
  // A missing table is the failure table's not_found: an operator must create it (78).
  EXPECT_EQ(r.error().code, Exit::config);
  EXPECT_NE(r.error().message.find("doesn't exist"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("1146"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(url.redacted()), std::string::npos) << r.error().message;
  // The session is still usable after a statement error.
  EXPECT_TRUE(conn.execute("SELECT 1"));
  auto bad = conn.execute("SELEKT 1");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("1064"), std::string::npos);
}

TEST(LiveMysql, ConnectionKilledMidStreamIsAnErrorNotAShortResult) {
  REQUIRE_LIVE_MYSQL(url);
  auto victim_r = MysqlConnection::connect(url, ConnectionOptions{});
  ASSERT_TRUE(victim_r.ok()) << victim_r.error().message;
  MysqlConnection& victim = *victim_r;
  auto killer_r = MysqlConnection::connect(url, ConnectionOptions{});
  ASSERT_TRUE(killer_r.ok()) << killer_r.error().message;
  MysqlConnection& killer = *killer_r;
  auto db = test_database(victim, url);
  ASSERT_TRUE(db.ok()) << db.error().message;
  // Far more than socket buffers hold, so the server is still sending when it is killed.
  auto r = victim.query("SELECT seq, REPEAT('x', 200) FROM " + *db + ".seq_1_to_5000000",
                        Fetch::streamed);
  ASSERT_TRUE(r.ok()) << r.error().message;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(*r->next_row());
  ASSERT_TRUE(killer.execute("KILL CONNECTION " + std::to_string(victim.thread_id())));

  auto deadline = Clock::now() + std::chrono::seconds(30);
  Result<bool> more = true;
  for (long i = 0; i < 5'000'000 && Clock::now() < deadline; ++i) {
    more = r->next_row();
    if (!more.ok() || !*more) break;
  }
  ASSERT_FALSE(more.ok()) << "the stream ended cleanly after " << r->rows_read() << " rows";
  EXPECT_EQ(more.error().code, Exit::unavailable) << more.error().message;
  EXPECT_LT(r->rows_read(), 5'000'000u);
  EXPECT_NE(more.error().message.find("reading rows failed"), std::string::npos);
}

TEST(LiveMysql, WrongPasswordIsConfigErrorWithoutThePassword) {
  REQUIRE_LIVE_MYSQL(url);
  url.password = "envkit-wrong-password";
  auto conn = MysqlConnection::connect(url, short_timeouts());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::config) << conn.error().message;
  EXPECT_NE(conn.error().message.find("Access denied"), std::string::npos) << conn.error().message;
  EXPECT_EQ(conn.error().message.find("envkit-wrong-password"), std::string::npos);
}

TEST(LiveMysql, UnknownDatabaseIsConfigError) {
  REQUIRE_LIVE_MYSQL(url);
  url.path = "envkit_no_such_database";
  auto conn = MysqlConnection::connect(url, short_timeouts());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::config) << conn.error().message;
}

TEST(LiveMysql, TimeZoneParameterSetsSessionZone) {
  REQUIRE_LIVE_MYSQL(url);
  // An offset works without the server's time-zone tables being loaded.
  url.query.emplace_back("time-zone", "-05:00");
  auto conn_r = MysqlConnection::connect(url, ConnectionOptions{});
  ASSERT_TRUE(conn_r.ok()) << conn_r.error().message;
  MysqlConnection& conn = *conn_r;
  auto r = conn.query("SELECT @@session.time_zone");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(*r->next_row());
  EXPECT_EQ(r->value(0), "-05:00");
}

TEST(LiveMysql, UnknownTimeZoneIsConfigError) {
  REQUIRE_LIVE_MYSQL(url);
  url.query.emplace_back("time-zone", "Nowhere/Atlantis");
  auto conn = MysqlConnection::connect(url, short_timeouts());
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.error().code, Exit::config) << conn.error().message;
  EXPECT_NE(conn.error().message.find("time zone"), std::string::npos) << conn.error().message;
}

TEST(LiveMysql, SlowQueryHitsReadTimeoutAsTemporaryFailure) {
  REQUIRE_LIVE_MYSQL(url);
  ConnectionOptions o;
  o.io_timeout = milliseconds(1000);
  auto conn_r = MysqlConnection::connect(url, o);
  ASSERT_TRUE(conn_r.ok()) << conn_r.error().message;
  MysqlConnection& conn = *conn_r;
  auto start = Clock::now();
  auto r = conn.query("SELECT SLEEP(5)");
  auto took = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Exit::temp_fail) << r.error().message;
  EXPECT_LT(took, milliseconds(4500));
}

TEST(LiveMysql, TlsAskedOfServerWithoutTlsFailsClearly) {
  REQUIRE_LIVE_MYSQL(url);
  auto plain_r = MysqlConnection::connect(url, ConnectionOptions{});
  ASSERT_TRUE(plain_r.ok()) << plain_r.error().message;
  MysqlConnection& plain = *plain_r;
  auto have = plain.query("SELECT @@have_ssl");
  ASSERT_TRUE(have.ok()) << have.error().message;
  ASSERT_TRUE(*have->next_row());
  bool server_has_tls = have->value(0) == "YES";

  url.query.emplace_back("tls", "true");
  url.query.emplace_back("tls-insecure", "true");
  auto conn = MysqlConnection::connect(url, short_timeouts());
  if (server_has_tls) {
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    auto cipher = conn->query("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
    ASSERT_TRUE(cipher.ok());
    ASSERT_TRUE(*cipher->next_row());
    EXPECT_NE(cipher->value(1), "");
  } else {
    ASSERT_FALSE(conn.ok());
    EXPECT_EQ(conn.error().code, Exit::config) << conn.error().message;
  }
}

TEST(LiveMysql, ThreadsOpenTheirOwnConnections) {
  REQUIRE_LIVE_MYSQL(url);
  constexpr int kThreads = 4;
  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto conn = MysqlConnection::connect(url, {});
      if (!conn) {
        failures[t] = conn.error().message;
        return;
      }
      for (int i = 0; i < 20; ++i) {
        auto r = conn->query("SELECT " + std::to_string(i), Fetch::streamed);
        auto row = r ? r->next_row() : Result<bool>(r.error());
        if (!row.ok() || !*row || r->value(0) != std::to_string(i)) {
          failures[t] = "wrong answer in thread " + std::to_string(t);
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& f : failures) EXPECT_EQ(f, "");
}

// The bytes come from memory whatever file the statement names, and the library's own file
// reader is never reached: a LOAD DATA LOCAL sent any other way gets no file.
TEST(LiveMysql, LoadLocalSendsTheGivenBytesAndNeverAFile) {
  REQUIRE_LIVE_MYSQL(url);
  auto conn_r = MysqlConnection::connect(url, ConnectionOptions{});
  ASSERT_TRUE(conn_r.ok()) << conn_r.error().message;
  MysqlConnection& conn = *conn_r;
  auto table = scratch_table(conn, url, "load_local");
  ASSERT_TRUE(table.ok()) << table.error().message;
  ASSERT_TRUE(conn.execute("DROP TABLE IF EXISTS " + *table));
  ASSERT_TRUE(
      conn.execute("CREATE TABLE " + *table + " (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)"));
  auto count = [&] {
    auto r =
        conn.query("SELECT COUNT(*), COALESCE(GROUP_CONCAT(name ORDER BY id), '') FROM " + *table);
    if (!r || !*r->next_row()) return std::string("query failed");
    return std::string(*r->value(0)) + " " + std::string(*r->value(1));
  };

  auto load =
      conn.load_local("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE " + *table + " (id, name)",
                      "1\tone\n2\ttwo\n");
  ASSERT_TRUE(load.ok()) << load.error().message;
  EXPECT_FALSE(load->refused);
  EXPECT_EQ(load->rows, 2u);
  EXPECT_EQ(load->warnings, 0u);
  EXPECT_EQ(count(), "2 one,two");

  // LOCAL loads warn where INSERT would fail: a duplicate skipped, a NULL made ''.
  load = conn.load_local("LOAD DATA LOCAL INFILE 'x' IGNORE INTO TABLE " + *table + " (id, name)",
                         "2\tdup\n3\t\\N\n");
  ASSERT_TRUE(load.ok()) << load.error().message;
  EXPECT_EQ(load->rows, 1u);
  EXPECT_EQ(load->warnings, 2u);
  auto warnings = conn.warnings();
  ASSERT_TRUE(warnings.ok()) << warnings.error().message;
  ASSERT_EQ(warnings->size(), 2u);
  EXPECT_EQ((*warnings)[0].code, 1062u) << (*warnings)[0].message;  // ER_DUP_ENTRY
  EXPECT_EQ((*warnings)[1].code, 1263u) << (*warnings)[1].message;  // NULL into NOT NULL
  EXPECT_EQ((*warnings)[1].level, "Warning");
  EXPECT_EQ(count(), "3 one,two,");

  auto asked =
      conn.execute("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE " + *table + " (id, name)");
  ASSERT_FALSE(asked.ok());
  EXPECT_NE(asked.error().message.find("none is offered"), std::string::npos)
      << asked.error().message;
  EXPECT_EQ(count(), "3 one,two,");
  EXPECT_TRUE(conn.execute("DROP TABLE " + *table));
}

}  // namespace
}  // namespace envkit

namespace envkit {
namespace {

TEST(InsertBuilder, StatementsAreBoundedByRowsAndBytesAndCarryTheTail) {
  InsertBuilder insert("t`x", {"id", "v"}, " ON DUPLICATE KEY UPDATE `id` = `id`", 3, 50);
  EXPECT_TRUE(insert.empty());
  insert.next_row() += "(1, 'a')";
  EXPECT_FALSE(insert.full());
  insert.next_row() += "(2, 'b')";
  EXPECT_EQ(insert.rows(), 2u);
  EXPECT_TRUE(insert.full()) << "past 50 bytes";
  EXPECT_EQ(insert.take(),
            "INSERT INTO `t``x` (`id`, `v`) VALUES (1, 'a'), (2, 'b') ON DUPLICATE KEY UPDATE "
            "`id` = `id`");
  EXPECT_TRUE(insert.empty());
  EXPECT_EQ(insert.take(), "") << "an empty builder has no statement to send";

  InsertBuilder by_rows("t", {"id"}, {}, 2);
  for (int i = 0; i < 2; ++i) by_rows.next_row() += "(" + std::to_string(i) + ")";
  EXPECT_TRUE(by_rows.full());
  EXPECT_EQ(by_rows.take(), "INSERT INTO `t` (`id`) VALUES (0), (1)");
  by_rows.next_row() += "(2)";
  EXPECT_FALSE(by_rows.full());
  EXPECT_EQ(by_rows.take(), "INSERT INTO `t` (`id`) VALUES (2)");
}

}  // namespace
}  // namespace envkit
