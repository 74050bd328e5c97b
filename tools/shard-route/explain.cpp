// explain: keys in, "KEY NAMESPACE SHARD [WHY]" out, at the speed of reading the input.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <envkit/exit_status.hpp>

#include "shard-route/run.hpp"

namespace shard_route {

using envkit::Failure;
using envkit::fail;

namespace {

// Output in 1 MiB blocks: one write per block, not per key.
class OutBuffer {
 public:
  explicit OutBuffer(std::FILE* out) : out_(out) { buf_.reserve(kBlock + 4096); }
  std::string& text() { return buf_; }
  envkit::Status maybe_flush() { return buf_.size() >= kBlock ? flush() : envkit::Status{}; }
  envkit::Status flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size()) {
      return fail(Failure::local_io, std::string("writing the output: ") + std::strerror(errno));
    }
    buf_.clear();
    return {};
  }

 private:
  static constexpr size_t kBlock = 1 << 20;
  std::FILE* out_;
  std::string buf_;
};

}  // namespace

envkit::Result<uint64_t> explain_keys(const ShardMap& map, const Namespace* ns,
                                      const std::string& ns_name,
                                      const std::vector<std::string>& keys, int in_fd,
                                      std::FILE* out, bool why) {
  OutBuffer buffer(out);
  std::string& o = buffer.text();
  uint64_t count = 0;
  // What follows a key on its line, per shard (the last: no shard), built once.
  std::vector<std::string> tails;
  for (const auto& shard : map.shards()) tails.push_back("\t" + ns_name + "\t" + shard.name + "\n");
  tails.push_back("\t" + ns_name + "\t-\n");
  auto one = [&](std::string_view key) -> envkit::Status {
    o.append(key);
    if (why) {
      Placement p = map.explain(ns, key);
      o.push_back('\t');
      o.append(ns_name);
      o.push_back('\t');
      o.append(p.shard >= 0 ? map.shards()[static_cast<size_t>(p.shard)].name : "-");
      o.push_back('\t');
      o.append(p.why);
      o.push_back('\n');
    } else {
      int s = map.route(ns, key);
      o.append(tails[s >= 0 ? static_cast<size_t>(s) : tails.size() - 1]);
    }
    ++count;
    return buffer.maybe_flush();
  };
  if (!keys.empty()) {
    for (const auto& k : keys) {
      if (auto st = one(k); !st) return st.error();
    }
  } else {
    // Lines of stdin; a trailing CR is dropped (keys from Windows files), a last line without
    // a newline still counts.
    std::string in(1 << 20, '\0');
    size_t have = 0;
    for (;;) {
      if (have == in.size()) in.resize(in.size() * 2);  // a line longer than the buffer
      ssize_t n = ::read(in_fd, in.data() + have, in.size() - have);
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail(Failure::local_io, std::string("reading keys: ") + std::strerror(errno));
      }
      size_t end = have + static_cast<size_t>(n);
      size_t start = 0;
      while (start < end) {
        const char* nl = static_cast<const char*>(std::memchr(in.data() + start, '\n', end - start));
        if (!nl) break;
        size_t len = static_cast<size_t>(nl - (in.data() + start));
        if (len > 0 && in[start + len - 1] == '\r') --len;
        if (auto st = one(std::string_view(in.data() + start, len)); !st) return st.error();
        start = static_cast<size_t>(nl - in.data()) + 1;
      }
      if (n == 0) {
        if (start < end) {
          size_t len = end - start;
          if (in[start + len - 1] == '\r') --len;
          if (auto st = one(std::string_view(in.data() + start, len)); !st) return st.error();
        }
        break;
      }
      std::memmove(in.data(), in.data() + start, end - start);
      have = end - start;
    }
  }
  if (auto st = buffer.flush(); !st) return st.error();
  if (std::fflush(out) != 0) {
    return fail(Failure::local_io, std::string("writing the output: ") + std::strerror(errno));
  }
  return count;
}

}  // namespace shard_route
