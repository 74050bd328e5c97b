// Unit tests for envkit/durable_file.hpp: atomic replacement, modes, cleanup, errors, big files.
#include <envkit/durable_file.hpp>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

namespace envkit {
namespace {

namespace fs = std::filesystem;

/// Every test gets its own fresh directory, removed afterwards; nothing touches fixed paths.
class DurableFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = ::testing::TempDir();
    if (base.empty() || base.back() != '/') base += '/';
    std::string tmpl = base + "envkit-durable-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << "mkdtemp " << tmpl;
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  static void spit(const std::string& p, const std::string& content) {
    std::ofstream(p, std::ios::binary) << content;
  }
  static mode_t mode_of(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }
  /// Names in the test directory: shows leftovers such as temporary files.
  std::set<std::string> entries() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.insert(e.path().filename().string());
    return names;
  }

  std::string dir_;
};

/// Sets the umask for one test and puts the old one back.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

TEST_F(DurableFileTest, CommitWritesContentAndLeavesNoTemporaryFile) {
  auto file = AtomicFile::create(path("readings.jsonl"));
  ASSERT_TRUE(file.ok()) << file.error().message;
  ASSERT_TRUE(file->write("{\"city\":\"Bogotá\"}\n").ok());
  ASSERT_TRUE(file->write("{\"city\":\"Cali\"}\n").ok());
  ASSERT_TRUE(file->commit().ok());
  EXPECT_EQ(slurp(path("readings.jsonl")), "{\"city\":\"Bogotá\"}\n{\"city\":\"Cali\"}\n");
  EXPECT_EQ(entries(), std::set<std::string>{"readings.jsonl"});
  EXPECT_EQ(file->fd(), -1);
  EXPECT_TRUE(file->temp_path().empty());
}

TEST_F(DurableFileTest, DefaultModeIs0600) {
  ScopedUmask mask(022);
  ASSERT_TRUE(write_file_atomically(path("secret"), "x").ok());
  EXPECT_EQ(mode_of(path("secret")), 0600u);
}

TEST_F(DurableFileTest, ModeIsAppliedExactlyWhateverTheUmask) {
  ScopedUmask mask(077);  // would strip every group and other bit
  ASSERT_TRUE(write_file_atomically(path("manifest.json"), "{}", 0644).ok());
  EXPECT_EQ(mode_of(path("manifest.json")), 0644u);

  ScopedUmask none(0);  // and nothing is added that was not asked for
  ASSERT_TRUE(write_file_atomically(path("private"), "{}", 0400).ok());
  EXPECT_EQ(mode_of(path("private")), 0400u);
}

TEST_F(DurableFileTest, TemporaryFileIsHiddenBesideTheTargetAndCloseOnExec) {
  auto file = AtomicFile::create(path("out.jsonl"));
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(fs::path(file->temp_path()).parent_path(), fs::path(dir_));
  EXPECT_EQ(fs::path(file->temp_path()).filename().string().rfind(".out.jsonl.", 0), 0u)
      << file->temp_path();
  EXPECT_TRUE(fs::exists(file->temp_path()));
  int flags = ::fcntl(file->fd(), F_GETFD);
  ASSERT_GE(flags, 0);
  EXPECT_TRUE(flags & FD_CLOEXEC);
}

TEST_F(DurableFileTest, UncommittedFileLeavesOldContentAndNoTemporaryFile) {
  spit(path("tasks.json"), "old");
  std::string temp;
  {
    auto file = AtomicFile::create(path("tasks.json"));
    ASSERT_TRUE(file.ok()) << file.error().message;
    temp = file->temp_path();
    ASSERT_TRUE(file->write(std::string(200000, 'n')).ok());  // past the buffer: on disk
    EXPECT_TRUE(fs::exists(temp));
    EXPECT_EQ(entries().size(), 2u);
  }  // destroyed without commit(), as on an error path
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(slurp(path("tasks.json")), "old");
  EXPECT_EQ(entries(), std::set<std::string>{"tasks.json"});
}

TEST_F(DurableFileTest, ReadersSeeOldContentUntilCommitThenAllOfTheNew) {
  spit(path("tasks.json"), "old content");
  int old_reader = ::open(path("tasks.json").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(old_reader, 0);

  auto file = AtomicFile::create(path("tasks.json"));
  ASSERT_TRUE(file.ok()) << file.error().message;
  const std::string fresh(1 << 20, 'z');
  ASSERT_TRUE(file->write(fresh.substr(0, fresh.size() / 2)).ok());
  ASSERT_TRUE(file->flush().ok());
  // Half the new data is on disk, yet the final name still shows the whole old file.
  EXPECT_EQ(slurp(path("tasks.json")), "old content");
  ASSERT_TRUE(file->write(fresh.substr(fresh.size() / 2)).ok());
  ASSERT_TRUE(file->commit().ok());
  EXPECT_EQ(slurp(path("tasks.json")), fresh);

  // A reader that opened the old file keeps reading the old file, complete.
  char buf[64] = {};
  ssize_t n = ::pread(old_reader, buf, sizeof buf, 0);
  ::close(old_reader);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))), "old content");
}

TEST_F(DurableFileTest, CrashBeforeCommitLeavesTargetUntouched) {
  spit(path("backup.jsonl"), "complete old backup\n");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto file = AtomicFile::create(path("backup.jsonl"));
    if (!file.ok() || !file->write(std::string(300000, 'p')).ok()) ::_exit(2);
    ::_exit(0);  // dies without commit() and without running destructors
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(slurp(path("backup.jsonl")), "complete old backup\n");
  // Only a hidden temporary may be left behind, never a partial file under the final name.
  for (const auto& name : entries()) {
    if (name != "backup.jsonl") {
      EXPECT_EQ(name.rfind(".backup.jsonl.tmp.", 0), 0u) << name;
    }
  }
}

TEST_F(DurableFileTest, ManySmallWritesComeOutInOrder) {
  auto file = AtomicFile::create(path("many.jsonl"));
  ASSERT_TRUE(file.ok()) << file.error().message;
  std::string expected;
  for (int i = 0; i < 100000; ++i) {
    std::string line = "{\"seq\":" + std::to_string(i) + "}\n";
    expected += line;
    ASSERT_TRUE(file->write(line).ok());
  }
  ASSERT_TRUE(file->commit().ok());
  EXPECT_EQ(slurp(path("many.jsonl")), expected);
}

TEST_F(DurableFileTest, BufferingIsBoundedSoMemoryStaysSmall) {
  auto file = AtomicFile::create(path("stream.jsonl"));
  ASSERT_TRUE(file.ok()) << file.error().message;
  const std::string line(999, 'r');
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(file->write(line + "\n").ok());
  // A megabyte of small writes: all but the last buffer-full is already in the file.
  EXPECT_GE(fs::file_size(file->temp_path()), 1000000u - 64u * 1024u);
  ASSERT_TRUE(file->commit().ok());
  EXPECT_EQ(fs::file_size(path("stream.jsonl")), 1000000u);
}

TEST_F(DurableFileTest, WritesThroughFdInterleaveAfterFlush) {
  auto file = AtomicFile::create(path("mixed"));
  ASSERT_TRUE(file.ok()) << file.error().message;
  ASSERT_TRUE(file->write("a").ok());
  ASSERT_TRUE(file->flush().ok());
  ASSERT_EQ(::write(file->fd(), "b", 1), 1);
  ASSERT_TRUE(file->write("c").ok());
  ASSERT_TRUE(file->commit().ok());
  EXPECT_EQ(slurp(path("mixed")), "abc");
}

TEST_F(DurableFileTest, LargeWritesRoundTrip) {
  std::string big(50u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131 + i / 4099) & 0xff);

  ASSERT_TRUE(write_file_atomically(path("one-call.bin"), big).ok());
  auto whole = read_file(path("one-call.bin"), 64u << 20);
  ASSERT_TRUE(whole.ok()) << whole.error().message;
  EXPECT_TRUE(*whole == big);

  // Odd-sized pieces, some below and some above the buffer size.
  auto file = AtomicFile::create(path("pieces.bin"));
  ASSERT_TRUE(file.ok()) << file.error().message;
  size_t sizes[] = {1, 4095, 65536, 65537, 3, 1000003, 17};
  size_t at = 0;
  for (size_t k = 0; at < big.size(); ++k) {
    size_t n = std::min(sizes[k % std::size(sizes)], big.size() - at);
    ASSERT_TRUE(file->write(std::string_view(big).substr(at, n)).ok());
    at += n;
  }
  ASSERT_TRUE(file->commit().ok());
  auto pieces = read_file(path("pieces.bin"), big.size());
  ASSERT_TRUE(pieces.ok()) << pieces.error().message;
  EXPECT_TRUE(*pieces == big);
}

TEST_F(DurableFileTest, WriteFileAtomicallyReplacesExistingFile) {
  spit(path("state.json"), "{\"v\":1}");
  ::chmod(path("state.json").c_str(), 0644);
  ASSERT_TRUE(write_file_atomically(path("state.json"), "{\"v\":2}").ok());
  EXPECT_EQ(slurp(path("state.json")), "{\"v\":2}");
  EXPECT_EQ(mode_of(path("state.json")), 0600u);  // the new file's mode, not the old one's
  EXPECT_EQ(entries(), std::set<std::string>{"state.json"});
}

TEST_F(DurableFileTest, CreateInMissingDirectoryNamesPathAndReason) {
  auto file = AtomicFile::create(path("no/such/dir/out.jsonl"));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code, Exit::io);
  EXPECT_NE(file.error().message.find(path("no/such/dir/out.jsonl")), std::string::npos)
      << file.error().message;
  EXPECT_NE(file.error().message.find("No such file or directory"), std::string::npos)
      << file.error().message;
}

TEST_F(DurableFileTest, CreateUnderARegularFileFailsWithNotADirectory) {
  // Tests run as root, which ignores permission bits: a file in the way fails for anyone.
  spit(path("plain"), "x");
  Status st = write_file_atomically(path("plain/out.json"), "{}");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::io);
  EXPECT_NE(st.error().message.find(path("plain/out.json")), std::string::npos)
      << st.error().message;
  EXPECT_NE(st.error().message.find("Not a directory"), std::string::npos) << st.error().message;
  EXPECT_EQ(slurp(path("plain")), "x");
}

TEST_F(DurableFileTest, CreateRejectsPathsWithoutAFileName) {
  auto file = AtomicFile::create(dir_ + "/");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.error().message.find("not a file name"), std::string::npos);
}

TEST_F(DurableFileTest, FailedRenameRemovesTemporaryAndNamesPath) {
  fs::create_directory(path("occupied"));
  fs::create_directory(path("occupied/child"));  // rename() cannot replace a non-empty directory
  auto file = AtomicFile::create(path("occupied"));
  ASSERT_TRUE(file.ok()) << file.error().message;
  ASSERT_TRUE(file->write("data").ok());
  Status st = file->commit();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::io);
  EXPECT_NE(st.error().message.find(path("occupied") + ": rename"), std::string::npos)
      << st.error().message;
  EXPECT_EQ(entries(), std::set<std::string>{"occupied"});
  EXPECT_TRUE(fs::is_directory(path("occupied/child")));
}

TEST_F(DurableFileTest, CommitTwiceAndWriteAfterCommitAreErrors) {
  auto file = AtomicFile::create(path("once"));
  ASSERT_TRUE(file.ok()) << file.error().message;
  ASSERT_TRUE(file->write("1").ok());
  ASSERT_TRUE(file->commit().ok());
  EXPECT_FALSE(file->commit().ok());
  EXPECT_FALSE(file->write("2").ok());
  EXPECT_EQ(slurp(path("once")), "1");
}

TEST_F(DurableFileTest, MovedFileCommitsAndMoveAssignmentDiscardsTheOverwritten) {
  auto a = AtomicFile::create(path("a"));
  auto b = AtomicFile::create(path("b"));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a->write("from a").ok());
  std::string b_temp = b->temp_path();

  AtomicFile moved(std::move(*a));
  EXPECT_EQ(a->fd(), -1);
  EXPECT_TRUE(a->temp_path().empty());

  *b = std::move(moved);  // b's own pending temporary goes away
  EXPECT_FALSE(fs::exists(b_temp));
  ASSERT_TRUE(b->commit().ok());
  EXPECT_EQ(slurp(path("a")), "from a");
  EXPECT_EQ(entries(), std::set<std::string>{"a"});
}

TEST_F(DurableFileTest, FsyncDirectoryWorksAndNamesAMissingDirectory) {
  EXPECT_TRUE(fsync_directory(dir_).ok());
  Status st = fsync_directory(path("missing"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::io);
  EXPECT_NE(st.error().message.find(path("missing")), std::string::npos) << st.error().message;
}

TEST_F(DurableFileTest, MakeDirectoriesCreatesNestedDirectoriesWith0700) {
  ScopedUmask mask(022);
  ASSERT_TRUE(make_directories(path("backups/2026-11-22/readings")).ok());
  for (const char* d : {"backups", "backups/2026-11-22", "backups/2026-11-22/readings"}) {
    EXPECT_TRUE(fs::is_directory(path(d))) << d;
    EXPECT_EQ(mode_of(path(d)), 0700u) << d;
  }
  // Existing directories are fine, and keep their mode.
  ::chmod(path("backups").c_str(), 0755);
  ASSERT_TRUE(make_directories(path("backups/2026-11-22/readings/")).ok());
  ASSERT_TRUE(make_directories(path("backups//2026-11-23")).ok());
  EXPECT_EQ(mode_of(path("backups")), 0755u);
  EXPECT_EQ(mode_of(path("backups/2026-11-23")), 0700u);
}

TEST_F(DurableFileTest, MakeDirectoriesAppliesModeExactlyWhateverTheUmask) {
  ScopedUmask mask(077);
  ASSERT_TRUE(make_directories(path("shared/spool"), 0750).ok());
  EXPECT_EQ(mode_of(path("shared")), 0750u);
  EXPECT_EQ(mode_of(path("shared/spool")), 0750u);
}

TEST_F(DurableFileTest, MakeDirectoriesThroughARegularFileNamesPath) {
  spit(path("file"), "x");
  Status st = make_directories(path("file/sub/dir"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Exit::io);
  EXPECT_NE(st.error().message.find(path("file/sub/dir")), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("Not a directory"), std::string::npos) << st.error().message;

  Status same = make_directories(path("file"));
  ASSERT_FALSE(same.ok());
  EXPECT_NE(same.error().message.find("Not a directory"), std::string::npos);
}

TEST_F(DurableFileTest, ReadFileReturnsContentUpToTheLimit) {
  spit(path("pw"), "s3cret\n");
  auto exact = read_file(path("pw"), 7);
  ASSERT_TRUE(exact.ok()) << exact.error().message;
  EXPECT_EQ(*exact, "s3cret\n");

  auto over = read_file(path("pw"), 6);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, Exit::io);
  EXPECT_NE(over.error().message.find(path("pw")), std::string::npos);
  EXPECT_NE(over.error().message.find("larger than"), std::string::npos) << over.error().message;

  spit(path("empty"), "");
  auto empty = read_file(path("empty"), 0);
  ASSERT_TRUE(empty.ok()) << empty.error().message;
  EXPECT_EQ(*empty, "");
}

TEST_F(DurableFileTest, ReadFileEnforcesTheLimitOnFilesWithoutASize) {
  // A pipe has no size to check up front: the limit must hold while reading.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string data(10000, 'q');
  ASSERT_EQ(::write(fds[1], data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(fds[1]);
  std::string dev = "/proc/self/fd/" + std::to_string(fds[0]);
  auto over = read_file(dev, 4096);
  ::close(fds[0]);
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.error().message.find("larger than"), std::string::npos) << over.error().message;
}

TEST_F(DurableFileTest, ReadFileOfMissingFileIsNoInputAndNamesPath) {
  auto missing = read_file(path("nope"), 100);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Exit::no_input);
  EXPECT_NE(missing.error().message.find(path("nope")), std::string::npos);
  EXPECT_NE(missing.error().message.find("No such file or directory"), std::string::npos);

  auto directory = read_file(dir_, 100);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().code, Exit::io);
  EXPECT_NE(directory.error().message.find("Is a directory"), std::string::npos)
      << directory.error().message;
}

}  // namespace
}  // namespace envkit
