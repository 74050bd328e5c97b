// explain: keys in, "KEY NAMESPACE SHARD [WHY]" out, at the speed of reading the input.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <memory>
#include <string>

#include <envkit/exit_status.hpp>
#include <envkit/jsonl.hpp>

#include "shard-route/run.hpp"

namespace shard_route {

using envkit::Failure;
using envkit::fail;

namespace {

// The output, in blocks of about 1 MiB. While one block is being written, by a thread of its
// own, the next is filled: the kernel's copy of the output overlaps the routing (about as
// much work as routing itself: the output is twice the input).
class BlockOutput {
 public:
  // Writes to out's descriptor, after what out holds already.
  explicit BlockOutput(std::FILE* out) : out_(out) {
    std::fflush(out_);
    start();
  }
  BlockOutput(const BlockOutput&) = delete;
  BlockOutput& operator=(const BlockOutput&) = delete;
  ~BlockOutput() {
    if (pending_.valid()) pending_.wait();
  }

  // Room for `n` more bytes at at(); hands the block over first when it is full.
  envkit::Status reserve(size_t n) {
    if (static_cast<size_t>(limit_ - p_) >= n) return {};
    if (p_ != block().data.get()) {
      if (auto st = hand_over(); !st) return st;
    }
    if (block().size < n) {  // a key longer than a block
      block() = Block(n);
      start();
    }
    return {};
  }
  // The next byte to write, and the end of the room reserved: a caller may fill the room
  // itself and move at() on.
  char*& at() { return p_; }
  const char* limit() const { return limit_; }
  envkit::Status append(std::string_view s) {
    if (auto st = reserve(s.size()); !st) return st;
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
    return {};
  }
  // Writes what is left and waits for every write.
  envkit::Status finish() {
    if (auto st = hand_over(); !st) return st;
    if (auto st = wait(); !st) return st;
    if (std::fflush(out_) != 0) return write_error(errno);
    return {};
  }

 private:
  // 10M keys to a new file, 12 runs each: 127-168 ms with 1 MiB writes, 128-173 ms with
  // 2 MiB, 138-376 ms with 4 MiB (a third of those runs 0.17-0.38 s, nearly all system time).
  static constexpr size_t kBlock = 1 << 20;
  // Not zeroed: a page is first touched when output is written to it.
  struct Block {
    explicit Block(size_t n) : data(std::make_unique_for_overwrite<char[]>(n)), size(n) {}
    std::unique_ptr<char[]> data;
    size_t size;
  };
  std::FILE* out_;
  Block blocks_[2] = {Block(kBlock), Block(kBlock)};
  int current_ = 0;
  char* p_ = nullptr;
  char* limit_ = nullptr;
  std::future<envkit::Status> pending_;

  Block& block() { return blocks_[current_]; }
  void start() {
    p_ = block().data.get();
    limit_ = p_ + block().size;
  }
  static envkit::Status write_error(int err) {
    return fail(Failure::local_io, std::string("writing the output: ") + std::strerror(err));
  }
  envkit::Status wait() {
    if (!pending_.valid()) return {};
    return pending_.get();
  }
  envkit::Status hand_over() {
    if (auto st = wait(); !st) return st;
    size_t n = static_cast<size_t>(p_ - block().data.get());
    if (n == 0) return {};
    const char* data = block().data.get();
    pending_ = std::async(std::launch::async, [fd = ::fileno(out_), data, n]() -> envkit::Status {
      for (size_t done = 0; done < n;) {
        ssize_t w = ::write(fd, data + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return write_error(errno);
        done += static_cast<size_t>(w);
      }
      return {};
    });
    current_ ^= 1;
    start();
    return {};
  }
};

}  // namespace

envkit::Result<uint64_t> explain_keys(const ShardMap& map, const Namespace* ns,
                                      const std::string& ns_name,
                                      const std::vector<std::string>& keys, int in_fd,
                                      std::FILE* out, bool why) {
  BlockOutput output(out);
  uint64_t count = 0;
  // What follows a key on its line, per shard (the last: no shard), built once.
  std::vector<std::string> tails;
  for (const auto& shard : map.shards()) tails.push_back("\t" + ns_name + "\t" + shard.name + "\n");
  tails.push_back("\t" + ns_name + "\t-\n");
  auto tail_of = [&](int shard) -> size_t { return shard >= 0 ? static_cast<size_t>(shard) : tails.size() - 1; };

  // Keys given as arguments, and -v: a line at a time.
  auto one = [&](std::string_view key) -> envkit::Status {
    ++count;
    std::string line(key);
    if (why) {
      Placement p = map.explain(ns, key);
      line += '\t' + ns_name + '\t' + (p.shard >= 0 ? map.shards()[static_cast<size_t>(p.shard)].name : "-") +
              '\t' + p.why + '\n';
    } else {
      line += tails[tail_of(map.route(ns, key))];
    }
    return output.append(line);
  };
  if (!keys.empty()) {
    for (const auto& k : keys) {
      if (auto st = one(k); !st) return st.error();
    }
    if (auto st = output.finish(); !st) return st.error();
    return count;
  }

  // Keys on stdin, a line each; a trailing CR is dropped (keys from Windows files), a last
  // line without a newline still counts. Without -v, every key of a large input goes
  // through the loop below: the first-letter table inline, key and tail copied as whole
  // words of kWord bytes (tails zero-padded to it) where they fit, the output pointer local.
  constexpr size_t kWord = 32;
  size_t room = kWord;  // the most one line writes beyond max(key, kWord)
  std::vector<char> padded(tails.size() * kWord, '\0');
  std::vector<size_t> sizes;
  for (size_t i = 0; i < tails.size(); ++i) {
    sizes.push_back(tails[i].size());
    room = std::max(room, tails[i].size());
    if (tails[i].size() <= kWord) std::memcpy(&padded[i * kWord], tails[i].data(), tails[i].size());
  }
  const bool first_letter = ns && ns->strategy == Strategy::first_letter;
  envkit::LineReader lines(in_fd, false, "stdin");
  for (;;) {
    auto block = lines.next_lines();
    if (!block) return block.error().context("reading keys");
    if (!*block) break;
    if (why) {
      envkit::LineSplitter split(**block);
      for (std::string_view key; split.next(key);) {
        if (auto st = one(key); !st) return st.error();
      }
      continue;
    }
    // Everything the loop touches is a local, so that the compiler keeps it in a register
    // across the stores into the output (a char store may alias any memory).
    const char* const readable_end = (*block)->data() + (*block)->size();
    const char* const pad = padded.data();
    const size_t* const tail_size = sizes.data();
    const size_t no_shard = tails.size() - 1;
    char* p = output.at();
    const char* limit = output.limit();
    uint64_t lines_here = 0;
    envkit::Status st;
    // Out of the loop's way: a full block, handed to the writer. Returns the new position
    // (nullptr after an error) and sets `limit`.
    auto make_room = [&output, &st](char* at, size_t n, const char*& end) __attribute__((noinline)) -> char* {
      if (!st) return nullptr;
      output.at() = at;
      st = output.reserve(n);
      end = output.limit();
      return st ? output.at() : nullptr;
    };
    envkit::LineSplitter split(**block);
    for (std::string_view key; split.next(key);) {
      const size_t need = std::max(key.size(), kWord) + room;
      if (static_cast<size_t>(limit - p) < need) [[unlikely]] {
        const char* new_limit = limit;
        char* at = make_room(p, need, new_limit);
        if (!at) break;
        p = at;
        limit = new_limit;
      }
      int s = first_letter ? first_char_route(*ns, key) : -2;
      if (s == -2) [[unlikely]] s = map.route(ns, key);
      const size_t t = s >= 0 ? static_cast<size_t>(s) : no_shard;
      if (key.size() <= kWord && key.data() + kWord <= readable_end) [[likely]] {
        std::memcpy(p, key.data(), kWord);
      } else {
        std::memcpy(p, key.data(), key.size());
      }
      p += key.size();
      if (tail_size[t] <= kWord) [[likely]] {
        std::memcpy(p, pad + t * kWord, kWord);
      } else {
        std::memcpy(p, tails[t].data(), tail_size[t]);
      }
      p += tail_size[t];
      ++lines_here;
    }
    count += lines_here;
    output.at() = p;
    if (!st) return st.error();
  }
  if (auto st = output.finish(); !st) return st.error();
  return count;
}

}  // namespace shard_route
