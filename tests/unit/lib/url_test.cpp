// Unit tests for envkit/url.hpp: every scheme, IPv6, percent-decoding, secrets, malformed input.
#include <envkit/url.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace envkit {
namespace {

Url parse_ok(std::string_view text) {
  auto url = parse_url(text);
  EXPECT_TRUE(url.ok()) << text << ": " << (url.ok() ? "" : url.error().message);
  return url.ok() ? *url : Url{};
}

std::string parse_error(std::string_view text) {
  auto url = parse_url(text);
  EXPECT_FALSE(url.ok()) << text << " parsed but should not";
  if (url.ok()) return {};
  EXPECT_EQ(url.error().code, Exit::usage);
  return url.error().message;
}

TEST(Url, MysqlWithUserDatabaseAndTable) {
  Url u = parse_ok("mysql://user@host:3307/db?table=readings");
  EXPECT_EQ(u.scheme, "mysql");
  EXPECT_EQ(u.user, "user");
  EXPECT_FALSE(u.password.has_value());
  ASSERT_EQ(u.hosts.size(), 1u);
  EXPECT_EQ(u.hosts[0].host, "host");
  EXPECT_EQ(u.hosts[0].port, 3307);
  EXPECT_EQ(u.path, "db");
  EXPECT_EQ(u.param("table"), "readings");
  EXPECT_EQ(u.param("missing"), std::nullopt);
}

TEST(Url, DefaultPortsPerScheme) {
  EXPECT_EQ(parse_ok("mysql://h/db").port_or_default(), 3306);
  EXPECT_EQ(parse_ok("redis://h").port_or_default(), 6379);
  EXPECT_EQ(parse_ok("mongodb://h/shop").port_or_default(), 27017);
  EXPECT_EQ(parse_ok("amqp://h").port_or_default(), 5672);
  EXPECT_EQ(parse_ok("kafka://h/t").port_or_default(), 9092);
  EXPECT_EQ(parse_ok("http://h/").port_or_default(), 80);
  EXPECT_EQ(parse_ok("https://h/").port_or_default(), 443);
}

TEST(Url, SchemeIsCaseInsensitive) { EXPECT_EQ(parse_ok("MySQL://h/db").scheme, "mysql"); }

TEST(Url, SeveralHostsForReplicaSetsAndBrokers) {
  Url m = parse_ok("mongodb://h1,h2:27018,h3/shop?replicaSet=rsA");
  ASSERT_EQ(m.hosts.size(), 3u);
  EXPECT_EQ(m.hosts[1].host, "h2");
  EXPECT_EQ(m.port_or_default(1), 27018);
  EXPECT_EQ(m.port_or_default(2), 27017);
  EXPECT_EQ(m.param("replicaSet"), "rsA");
  Url k = parse_ok("kafka://b1:9092,b2:9092/tweets?group=consumers");
  EXPECT_EQ(k.hosts.size(), 2u);
  EXPECT_EQ(k.path, "tweets");
}

TEST(Url, Ipv6Literals) {
  Url u = parse_ok("redis://[::1]:6380/2");
  ASSERT_EQ(u.hosts.size(), 1u);
  EXPECT_EQ(u.hosts[0].host, "::1");
  EXPECT_TRUE(u.hosts[0].ipv6);
  EXPECT_EQ(u.hosts[0].port, 6380);
  EXPECT_EQ(u.path, "2");
  Url z = parse_ok("http://[fe80::1%25eth0]/");
  EXPECT_EQ(z.hosts[0].host, "fe80::1%eth0");
  Url list = parse_ok("kafka://[::1]:9092,[::2]:9093/t");
  ASSERT_EQ(list.hosts.size(), 2u);
  EXPECT_EQ(list.hosts[1].host, "::2");
}

TEST(Url, PercentDecodingEverywhere) {
  Url u = parse_ok("amqp://us%40er:p%3Ass@h/%2f?queue=tw%20eets&x=a%2Bb");
  EXPECT_EQ(u.user, "us@er");
  EXPECT_EQ(u.password, "p:ss");
  EXPECT_EQ(u.path, "/");
  EXPECT_EQ(u.param("queue"), "tw eets");
  EXPECT_EQ(u.param("x"), "a+b");
}

TEST(Url, UnescapedAtInPasswordUsesLastAt) {
  Url u = parse_ok("mysql://root:p@ss@db.example:3306/x");
  EXPECT_EQ(u.user, "root");
  EXPECT_EQ(u.password, "p@ss");
  EXPECT_EQ(u.hosts[0].host, "db.example");
}

TEST(Url, QueryRepeatsKeepOrderAndLastWins) {
  Url u = parse_ok("http://h/p?a=1&b&a=2&&");
  EXPECT_EQ(u.params("a"), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(u.param("a"), "2");
  EXPECT_EQ(u.param("b"), "");
}

TEST(Url, FileAndStdio) {
  Url rel = parse_ok("file:backups/readings.jsonl");
  EXPECT_TRUE(rel.is_file());
  EXPECT_EQ(rel.path, "backups/readings.jsonl");
  EXPECT_EQ(parse_ok("file:///var/x%20y").path, "/var/x y");
  EXPECT_EQ(parse_ok("file://localhost/tmp/a").path, "/tmp/a");
  EXPECT_TRUE(parse_ok("-").is_stdio());
  EXPECT_NE(parse_error("file://otherhost/x").find("local files"), std::string::npos);
}

TEST(Url, RedactedHidesPasswordAndSecretParams) {
  Url u = parse_ok("mysql://root:s3cret@h:3306/db?table=t&password=hunter2");
  std::string r = u.redacted();
  EXPECT_EQ(r, "mysql://root:***@h:3306/db?table=t&password=***");
  EXPECT_EQ(r.find("s3cret"), std::string::npos);
  EXPECT_EQ(r.find("hunter2"), std::string::npos);
}

TEST(Url, RedactedMasksEveryParameterNamedLikeASecret) {
  Url u = parse_ok("kafka://b:9092/t?X.sasl.password=p1&X.ssl.key.password=p2&api_key=k&Token=t&group=g");
  EXPECT_EQ(u.redacted(),
            "kafka://b:9092/t?X.sasl.password=***&X.ssl.key.password=***&api_key=***&Token=***&group=g");
}

TEST(Url, TextKeepsThePasswordForClientLibraries) {
  Url u = parse_ok("http://us%40er:p%40ss:w@h:8080/p?token=t&a=b");
  EXPECT_EQ(u.text(), "http://us%40er:p%40ss%3Aw@h:8080/p?token=t&a=b");
  Url back = parse_ok(u.text());
  EXPECT_EQ(back.password, "p@ss:w");
  EXPECT_EQ(back.user, "us@er");
}

TEST(Url, RedactedParsesBackToTheSameUrl) {
  for (std::string_view text :
       {"amqp://u%3Ax@h/%2f?queue=a%26b", "kafka://[::1]:1,b:2/t?x=1,2", "file:a%20b/c",
        "redis://h/0?key=weather:{city}", "http://h:8080/tasks?q=%C3%B1",
       "file://////double/slash", "file:/abs"}) {
    Url u = parse_ok(text);
    Url back = parse_ok(u.redacted());
    EXPECT_EQ(back.user, u.user) << text;
    EXPECT_EQ(back.path, u.path) << text;
    EXPECT_EQ(back.query, u.query) << text;
    EXPECT_EQ(back.hosts.size(), u.hosts.size()) << text;
  }
}

TEST(Url, AbsoluteFilePathsPrintCanonically) {
  EXPECT_EQ(parse_ok("file:/var/backups").redacted(), "file:///var/backups");
  EXPECT_EQ(parse_ok("file:rel/x").redacted(), "file:rel/x");
}

TEST(Url, KeepsUtf8Readable) {
  EXPECT_EQ(parse_ok("http://h/Bogot%C3%A1").redacted(), "http://h/Bogotá");
}

TEST(Url, MalformedUrlsGiveClearErrors) {
  EXPECT_NE(parse_error("").find("empty"), std::string::npos);
  EXPECT_NE(parse_error("localhost:3306").find("unknown scheme"), std::string::npos);
  EXPECT_NE(parse_error("nohost").find("no scheme"), std::string::npos);
  EXPECT_NE(parse_error("gopher://h").find("unknown scheme 'gopher'"), std::string::npos);
  EXPECT_NE(parse_error("mysql:h/db").find("mysql://"), std::string::npos);
  EXPECT_NE(parse_error("mysql:///db").find("no host"), std::string::npos);
  EXPECT_NE(parse_error("mysql://h:0/db").find("out of range"), std::string::npos);
  EXPECT_NE(parse_error("mysql://h:65536/db").find("out of range"), std::string::npos);
  EXPECT_NE(parse_error("mysql://h:99999999999/db").find("out of range"), std::string::npos);
  EXPECT_NE(parse_error("mysql://h:33a/db").find("not a number"), std::string::npos);
  EXPECT_NE(parse_error("mysql://h:/db").find("empty port"), std::string::npos);
  EXPECT_NE(parse_error("redis://[::1/0").find("unclosed"), std::string::npos);
  EXPECT_NE(parse_error("redis://[]:1").find("empty IPv6"), std::string::npos);
  EXPECT_NE(parse_error("redis://[abc]").find("not an IPv6"), std::string::npos);
  EXPECT_NE(parse_error("redis://::1:6379").find("brackets"), std::string::npos);
  EXPECT_NE(parse_error("redis://[::1]x").find("unexpected text"), std::string::npos);
  EXPECT_NE(parse_error("http://h/%zz").find("percent-escape"), std::string::npos);
  EXPECT_NE(parse_error("http://h/%4").find("percent-escape"), std::string::npos);
  EXPECT_NE(parse_error("http://h/a%00b").find("NUL"), std::string::npos);
  EXPECT_NE(parse_error("http://h\n/").find("control character"), std::string::npos);
  EXPECT_NE(parse_error("http://a,,b/").find("empty host"), std::string::npos);
  EXPECT_NE(parse_error("tcp://h").find("needs a port"), std::string::npos);
  EXPECT_NE(parse_error("http://h/?=x").find("empty name"), std::string::npos);
  EXPECT_NE(parse_error(std::string(70000, 'a')).find("64 KiB"), std::string::npos);
}

TEST(Url, ErrorsNeverContainThePassword) {
  EXPECT_EQ(parse_error("mysql://u:topsecret%zz@h/db").find("topsecret"), std::string::npos);
  EXPECT_EQ(parse_error("mysql://u:topsecret@h:bad/db").find("topsecret"), std::string::npos);
}

TEST(Url, PasswordEnvVarPerEcosystem) {
  EXPECT_EQ(password_env_var("mysql"), "MYSQL_PWD");
  EXPECT_EQ(password_env_var("redis"), "REDISCLI_AUTH");
  EXPECT_EQ(password_env_var("amqp"), "ENVKIT_AMQP_PASSWORD");
  EXPECT_EQ(password_env_var("mongodb"), "ENVKIT_MONGODB_PASSWORD");
}

class ResolvePassword : public ::testing::Test {
 protected:
  void SetUp() override { TearDown(); }
  void TearDown() override {
    unsetenv("MYSQL_PWD");
    unsetenv("MYSQL_PWD_FILE");
    unsetenv("ENVKIT_AMQP_PASSWORD_FILE");
  }
  // A directory per test: ctest runs these tests as processes at once, and two of them
  // writing one path read each other's passwords.
  std::string write_file(const std::string& name, const std::string& text) {
    auto dir = std::filesystem::path(::testing::TempDir()) /
               ("resolve_password-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::create_directories(dir);
    auto file = (dir / name).string();
    std::ofstream(file) << text;
    return file;
  }
};

TEST_F(ResolvePassword, UrlPasswordWins) {
  setenv("MYSQL_PWD", "from-env", 1);
  Url u = parse_ok("mysql://u:from-url@h/db");
  ASSERT_TRUE(resolve_password(u, {std::nullopt, false}).ok());
  EXPECT_EQ(u.password, "from-url");
}

TEST_F(ResolvePassword, FileBeforeEnvironment) {
  setenv("MYSQL_PWD", "from-env", 1);
  auto file = write_file("pw", "from-file\r\nsecond line\n");
  Url u = parse_ok("mysql://u@h/db");
  ASSERT_TRUE(resolve_password(u, {file, true}).ok());
  EXPECT_EQ(u.password, "from-file");
}

TEST_F(ResolvePassword, EachSchemesFileVariableBeforeItsVariable) {
  setenv("MYSQL_PWD", "from-env", 1);
  setenv("MYSQL_PWD_FILE", write_file("mysql", "mysql-secret\n").c_str(), 1);
  setenv("ENVKIT_AMQP_PASSWORD_FILE", write_file("amqp", "amqp-secret\r\n").c_str(), 1);
  Url m = parse_ok("mysql://u@h/db");
  Url a = parse_ok("amqp://u@h/%2f?queue=q");
  ASSERT_TRUE(resolve_password(m, {}).ok());
  ASSERT_TRUE(resolve_password(a, {}).ok());
  EXPECT_EQ(m.password, "mysql-secret");
  EXPECT_EQ(a.password, "amqp-secret");
}

TEST_F(ResolvePassword, PasswordFileBeatsTheFileVariable) {
  setenv("MYSQL_PWD_FILE", write_file("mysql", "from-variable\n").c_str(), 1);
  Url u = parse_ok("mysql://u@h/db");
  ASSERT_TRUE(resolve_password(u, {write_file("flag", "from-flag\n"), true}).ok());
  EXPECT_EQ(u.password, "from-flag");
}

TEST_F(ResolvePassword, UnreadableFileVariableIsAnErrorNamingIt) {
  setenv("MYSQL_PWD", "from-env", 1);
  setenv("MYSQL_PWD_FILE", "/nonexistent/pw", 1);
  Url u = parse_ok("mysql://u@h/db");
  auto st = resolve_password(u, {});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::no_input);
  EXPECT_NE(st.error().message.find("MYSQL_PWD_FILE"), std::string::npos);
}

TEST_F(ResolvePassword, EnvironmentWhenNothingElse) {
  setenv("MYSQL_PWD", "from-env", 1);
  Url u = parse_ok("mysql://u@h/db");
  ASSERT_TRUE(resolve_password(u, {}).ok());
  EXPECT_EQ(u.password, "from-env");
}

TEST_F(ResolvePassword, NoPasswordAnywhereLeavesNone) {
  Url u = parse_ok("mysql://u@h/db");
  ASSERT_TRUE(resolve_password(u, {}).ok());
  EXPECT_FALSE(u.password.has_value());
}

TEST_F(ResolvePassword, UnreadableFileIsAnError) {
  Url u = parse_ok("mysql://u@h/db");
  auto st = resolve_password(u, {std::string("/nonexistent/pw"), true});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::no_input);
  EXPECT_NE(st.error().message.find("/nonexistent/pw"), std::string::npos);
}

}  // namespace
}  // namespace envkit
