// The spool: records kept in checksummed, fsynced segment files until a sink has them.
#include <envkit/spool.hpp>

#include <envkit/exit_status.hpp>
#include <envkit/posix.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

#include <envkit/durable_file.hpp>
#include <envkit/log.hpp>

namespace envkit {
namespace {

// Starts every segment, so that a stray file named like a segment, or a segment written by
// a future incompatible format, is refused instead of misread.
constexpr std::string_view kMagic = "EKSPOOL1";
constexpr uint64_t kMagicSize = kMagic.size();
constexpr uint64_t kHeaderSize = 12;  // u32 length, u32 payload crc, u32 header crc
constexpr uint64_t kIdLengthSize = 4;
constexpr size_t kSeqDigits = 20;
constexpr std::string_view kSuffix = ".spool";
constexpr std::string_view kAckName = "ack";
constexpr std::string_view kAckTag = "envkit spool ack v1";
constexpr std::string_view kAckTempPrefix = ".ack.tmp.";
constexpr std::string_view kQuarantineDir = "quarantine";
// Reading a megabyte at a time keeps peek() and the scan on open at a few syscalls per
// batch without holding a whole 16 MiB segment in memory.
constexpr size_t kReadChunk = 1 << 20;

// ---- CRC-32C (Castagnoli), slicing by 8: fast enough to verify a 1 GiB spool on open in
// well under a second, with no dependency beyond the standard library.

using CrcTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr CrcTables make_crc_tables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}

constexpr CrcTables kCrc = make_crc_tables();

uint32_t crc32c(const char* data, size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  uint32_t crc = 0xFFFFFFFFu;
  if constexpr (std::endian::native == std::endian::little) {
    while (n >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      w ^= crc;
      crc = kCrc[7][w & 0xff] ^ kCrc[6][(w >> 8) & 0xff] ^ kCrc[5][(w >> 16) & 0xff] ^
            kCrc[4][(w >> 24) & 0xff] ^ kCrc[3][(w >> 32) & 0xff] ^ kCrc[2][(w >> 40) & 0xff] ^
            kCrc[1][(w >> 48) & 0xff] ^ kCrc[0][w >> 56];
      p += 8;
      n -= 8;
    }
  }
  while (n-- > 0) crc = kCrc[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

// ---- Little-endian integers, whatever the host, so a spool can move between machines.

void put_u32(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
               static_cast<char>(v >> 24)};
  out.append(b, 4);
}

uint32_t get_u32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 | uint32_t{u[3]} << 24;
}

// ---- System calls as values.

// System calls as values: envkit/posix.hpp (system_error, pwrite_all, pread_full,
// fdatasync_retrying).

/// "1.0 GiB": sizes in messages meant for people.
std::string human_bytes(uint64_t n) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (n < 1024) return std::to_string(n) + " B";
  double v = static_cast<double>(n) / 1024;
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

// ---- Frames.

/// A view of one segment file that reads ahead a megabyte at a time into `buf`.
struct SegmentView {
  int fd;
  uint64_t size;  // bytes of the file that may be read
  const std::string& path;
  std::string& buf;
  uint64_t& buf_start;

  /// The bytes [offset, offset + len), which the caller knows lie within `size`.
  Result<const char*> bytes(uint64_t offset, uint64_t len) {
    if (offset >= buf_start && offset + len <= buf_start + buf.size()) {
      return buf.data() + (offset - buf_start);
    }
    size_t want = static_cast<size_t>(std::min(std::max<uint64_t>(len, kReadChunk), size - offset));
    buf.resize(want);
    buf_start = offset;
    ssize_t got = pread_full(fd, buf.data(), want, offset);
    if (got < 0) {
      buf.clear();
      return system_error(path, "read", static_cast<int>(-got));
    }
    buf.resize(static_cast<size_t>(got));
    if (static_cast<uint64_t>(got) < len) {
      return Error{Exit::io, path + ": read at offset " + std::to_string(offset) +
                                 ": the file is shorter than expected; was it changed "
                                 "by another program?"};
    }
    return buf.data();
  }
};

/// What is at one offset of a segment.
struct Frame {
  enum class State { ok, incomplete, bad_header, bad_payload } state = State::ok;
  uint64_t size = 0;  // header and payload, when state is ok
  const char* payload = nullptr;
  uint32_t payload_size = 0;
};

const char* describe(Frame::State s) {
  switch (s) {
    case Frame::State::ok:
      return "ok";
    case Frame::State::incomplete:
      return "incomplete frame";
    case Frame::State::bad_header:
      return "frame header checksum mismatch";
    case Frame::State::bad_payload:
      return "record checksum mismatch";
  }
  return "?";
}

/// Checks the frame at `offset`. Only read errors are Errors; damage is a Frame::State.
Result<Frame> read_frame(SegmentView& view, uint64_t offset) {
  Frame f;
  if (view.size - offset < kHeaderSize) {
    f.state = Frame::State::incomplete;
    return f;
  }
  auto header = view.bytes(offset, kHeaderSize);
  if (!header) return header.error();
  const char* h = *header;
  uint32_t len = get_u32(h);
  uint32_t payload_crc = get_u32(h + 4);
  // The header carries its own checksum so that a damaged length is recognised as damage
  // instead of sending the reader off to a wrong offset or past the end of the file.
  if (crc32c(h, 8) != get_u32(h + 8) || len < kIdLengthSize) {
    f.state = Frame::State::bad_header;
    return f;
  }
  if (view.size - offset - kHeaderSize < len) {
    f.state = Frame::State::incomplete;
    return f;
  }
  auto payload = view.bytes(offset + kHeaderSize, len);
  if (!payload) return payload.error();
  if (crc32c(*payload, len) != payload_crc || get_u32(*payload) > len - kIdLengthSize) {
    f.state = Frame::State::bad_payload;
    return f;
  }
  f.size = kHeaderSize + len;
  f.payload = *payload;
  f.payload_size = len;
  return f;
}

Record decode(const char* payload, uint32_t size) {
  uint32_t id_len = get_u32(payload);
  const char* id = payload + kIdLengthSize;
  return Record{std::string(id, id_len), std::string(id + id_len, size - kIdLengthSize - id_len)};
}

/// The bytes a record takes in a segment.
uint64_t framed_size(const Record& r) {
  return kHeaderSize + kIdLengthSize + r.id.size() + r.json.size();
}

void store_u32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

void encode(std::string& out, const Record& r) {
  auto len = static_cast<uint32_t>(kIdLengthSize + r.id.size() + r.json.size());
  size_t at = out.size();
  out.append(kHeaderSize, '\0');  // filled in once the payload's checksum is known
  put_u32(out, static_cast<uint32_t>(r.id.size()));
  out += r.id;
  out += r.json;
  char* header = out.data() + at;
  store_u32(header, len);
  store_u32(header + 4, crc32c(header + kHeaderSize, len));
  store_u32(header + 8, crc32c(header, 8));
}

/// Whole frames after damaged bytes at `from`: the next offset where a frame verifies, the
/// frames that follow it, and so on past any further damage. A false match needs both
/// checksums to pass by chance.
Result<std::vector<std::pair<uint64_t, Record>>> frames_after(SegmentView& view, uint64_t from) {
  std::vector<std::pair<uint64_t, Record>> out;
  uint64_t at = from + 1;
  while (at < view.size && view.size - at >= kHeaderSize) {
    auto f = read_frame(view, at);
    if (!f) return f.error();
    if (f->state != Frame::State::ok) {
      ++at;
      continue;
    }
    out.emplace_back(at, decode(f->payload, f->payload_size));
    at += f->size;
  }
  return out;
}

/// True when the bytes from `from` to the end are all zero: blocks a file system allotted
/// to an interrupted write and never filled in.
Result<bool> zeros_from(SegmentView& view, uint64_t from) {
  for (uint64_t at = from; at < view.size;) {
    uint64_t n = std::min<uint64_t>(kReadChunk, view.size - at);
    auto bytes = view.bytes(at, n);
    if (!bytes) return bytes.error();
    if (!std::all_of(*bytes, *bytes + n, [](char c) { return c == 0; })) return false;
    at += n;
  }
  return true;
}

/// Damage the scan found: where, why, and the whole frames after it.
struct ScanDamage {
  uint64_t offset = 0;
  std::string reason;
  bool torn = false;  // the shape of an interrupted write at the end of the newest segment
  std::vector<std::pair<uint64_t, Record>> after;
};

/// What the scan on open found in one segment.
struct ScanResult {
  uint64_t size = 0;   // of the file
  uint64_t valid = 0;  // bytes of magic and whole, verified frames before any damage
  uint64_t records = 0;
  uint64_t mark_index = 0;  // records before `mark`
  bool mark_found = false;  // `mark` is a frame boundary within `valid`
  std::optional<ScanDamage> damage;
};

/// Verifies every frame of the segment open as `fd` and says where the first damage is.
/// In the last segment, an incomplete frame or zeros with no whole frame after them is
/// what a crash leaves (torn); anything else is damage. Changes nothing: the caller
/// quarantines. `mark` is an offset whose record index is wanted (the acknowledged position).
Result<ScanResult> scan_segment(int fd, const std::string& path, bool last, uint64_t mark) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return system_error(path, "stat", errno);
  auto size = static_cast<uint64_t>(st.st_size);
  std::string buf;
  uint64_t buf_start = 0;
  SegmentView view{fd, size, path, buf, buf_start};
  ScanResult out;
  out.size = size;

  auto damaged_at = [&](uint64_t offset, std::string why, bool incomplete) -> Status {
    ScanDamage d{offset, std::move(why), false, {}};
    if (offset > 0 || size >= kMagicSize) {
      auto after = frames_after(view, std::max(offset, kMagicSize - 1));
      if (!after) return after.error();
      d.after = std::move(*after);
    }
    if (last && d.after.empty()) {
      auto zeros = zeros_from(view, offset);
      if (!zeros) return zeros.error();
      d.torn = incomplete || *zeros;
    }
    out.damage = std::move(d);
    return {};
  };

  uint64_t offset = 0;
  if (size < kMagicSize) {
    if (auto st2 = damaged_at(0, "shorter than the segment header", true); !st2) return st2.error();
  } else {
    auto magic = view.bytes(0, kMagicSize);
    if (!magic) return magic.error();
    if (std::string_view(*magic, kMagicSize) != kMagic) {
      if (auto st2 = damaged_at(0, "not an envkit spool segment (bad magic)", false); !st2) {
        return st2.error();
      }
    } else {
      offset = kMagicSize;
    }
  }
  while (!out.damage && offset < size) {
    if (offset == mark) {
      out.mark_found = true;
      out.mark_index = out.records;
    }
    auto f = read_frame(view, offset);
    if (!f) return f.error();
    if (f->state == Frame::State::ok) {
      offset += f->size;
      ++out.records;
      continue;
    }
    if (auto st2 = damaged_at(offset, describe(f->state), f->state == Frame::State::incomplete); !st2) {
      return st2.error();
    }
  }
  if (offset == mark) {
    out.mark_found = true;
    out.mark_index = out.records;
  }
  out.valid = offset;
  return out;
}

/// Parses `ack`: the tag line, then "SEQ OFFSET".
Result<std::pair<uint64_t, uint64_t>> parse_ack(const std::string& path, std::string_view text) {
  auto bad = [&] {
    return Error{Exit::data, path + ": not a spool acknowledgement file (expected \"" +
                                 std::string(kAckTag) + "\" then \"SEQUENCE OFFSET\")"};
  };
  if (text.substr(0, kAckTag.size()) != kAckTag || text.size() <= kAckTag.size() ||
      text[kAckTag.size()] != '\n') {
    return bad();
  }
  text.remove_prefix(kAckTag.size() + 1);
  uint64_t seq = 0;
  uint64_t offset = 0;
  const char* p = text.data();
  const char* end = text.data() + text.size();
  auto r1 = std::from_chars(p, end, seq);
  if (r1.ec != std::errc() || r1.ptr == end || *r1.ptr != ' ') return bad();
  auto r2 = std::from_chars(r1.ptr + 1, end, offset);
  if (r2.ec != std::errc() || r2.ptr == end || *r2.ptr != '\n' || r2.ptr + 1 != end) return bad();
  return std::pair{seq, offset};
}

/// The sequence number of a segment file name, or 0 when `name` is not one.
uint64_t segment_seq(std::string_view name) {
  if (name.size() != kSeqDigits + kSuffix.size() || name.substr(kSeqDigits) != kSuffix) return 0;
  uint64_t seq = 0;
  auto r = std::from_chars(name.data(), name.data() + kSeqDigits, seq);
  if (r.ec != std::errc() || r.ptr != name.data() + kSeqDigits) return 0;
  return seq;
}

}  // namespace

// ---- Spool

std::string Spool::segment_path(uint64_t seq) const {
  char name[kSeqDigits + 1];
  std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(seq));
  return dir_ + "/" + name + std::string(kSuffix);
}

Result<Spool> Spool::open(const std::string& dir, SpoolOptions options) {
  if (options.max_bytes == 0 || options.segment_bytes == 0) {
    return Error{Exit::usage, "spool " + dir + ": the size limits must be greater than zero"};
  }
  if (auto st = make_directories(dir, 0700); !st) return st.error();

  Spool spool;
  spool.dir_ = dir;
  while (spool.dir_.size() > 1 && spool.dir_.back() == '/') spool.dir_.pop_back();
  spool.options_ = options;

  // One process per spool: a second Spool, in this process or another, is refused.
  auto lock = FileLock::acquire(spool.dir_ + "/lock");
  if (!lock) {
    Error e = lock.error();
    if (e.code == exit_for(Failure::lock_held)) {
      return fail(Failure::lock_held, "spool " + spool.dir_ + " is in use: " + e.message);
    }
    return e;
  }
  spool.lock_.emplace(std::move(*lock));

  if (auto st = spool.load(); !st) return st.error();
  return spool;
}

Status Spool::load() {
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return system_error(dir_, "open directory", errno);
  std::vector<uint64_t> seqs;
  std::vector<std::string> stale;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (uint64_t seq = segment_seq(name)) {
      seqs.push_back(seq);
    } else if (name.substr(0, kAckTempPrefix.size()) == kAckTempPrefix) {
      stale.emplace_back(name);  // left by a crash inside consume(): never renamed, so unused
    }
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return system_error(dir_, "read directory", err);
  std::sort(seqs.begin(), seqs.end());
  for (const auto& name : stale) ::unlink((dir_ + "/" + name).c_str());

  uint64_t ack_seq = 0;
  uint64_t ack_offset = 0;
  std::string ack_path = dir_ + "/" + std::string(kAckName);
  struct stat st {};
  if (::stat(ack_path.c_str(), &st) == 0) {
    auto text = read_file(ack_path, 4096);
    if (!text) return text.error();
    auto ack = parse_ack(ack_path, *text);
    if (!ack) return ack.error();
    std::tie(ack_seq, ack_offset) = *ack;
  } else if (errno != ENOENT) {
    return system_error(ack_path, "stat", errno);
  }

  next_seq_ = std::max(seqs.empty() ? 0 : seqs.back(), ack_seq) + 1;
  bool removed = false;
  auto remove = [&](uint64_t seq) -> Status {
    std::string path = segment_path(seq);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return system_error(path, "remove", errno);
    removed = true;
    return {};
  };

  std::vector<Record> recovered;  // whole records after damage, appended again at the end
  for (size_t i = 0; i < seqs.size(); ++i) {
    uint64_t seq = seqs[i];
    // Consumed to the end before the crash that kept consume() from removing it.
    if (seq < ack_seq) {
      if (auto r = remove(seq); !r) return r;
      continue;
    }
    bool last = i + 1 == seqs.size();
    std::string path = segment_path(seq);
    UniqueFd fd(::open(path.c_str(), (last ? O_RDWR : O_RDONLY) | O_CLOEXEC));
    if (fd.get() < 0) return system_error(path, "open", errno);
    uint64_t mark = seq == ack_seq ? std::max(ack_offset, kMagicSize) : kMagicSize;
    auto scan = scan_segment(fd.get(), path, last, mark);
    if (!scan) return scan.error();
    if (scan->damage) {
      const ScanDamage& damage = *scan->damage;
      auto q = quarantine(seq, damage.offset, scan->size, damage.reason, damage.torn);
      if (!q) return q.error();
      // Records before the acknowledged position were consumed: only later ones come again.
      for (const auto& [at, record] : damage.after) {
        if (at < mark) continue;
        recovered.push_back(record);
        ++q->recovered;
      }
      report(*q);
      quarantined_.push_back(std::move(*q));
    }
    uint64_t consumed = 0;
    if (seq == ack_seq) {
      if (scan->mark_found) {
        consumed = scan->mark_index;
      } else if (mark > scan->valid) {
        // Cut off by the quarantine just now, or (appends without fsync) lost to a crash
        // after being consumed: nothing left of this segment is pending.
        if (!scan->damage) {
          log_warning(ack_path + ": acknowledges offset " + std::to_string(mark) + " of " + path +
                      ", which ends at " + std::to_string(scan->valid) + ": treating it as consumed");
        }
        consumed = scan->records;
      } else {
        return Error{Exit::data, ack_path + ": offset " + std::to_string(ack_offset) +
                                     " is not the start of a record in " + path};
      }
    }
    if (consumed == scan->records) {
      if (auto r = remove(seq); !r) return r;
      continue;
    }
    if (segments_.empty()) {
      read_ = Position{seq, seq == ack_seq ? mark : kMagicSize, consumed};
    }
    segments_.push_back(Segment{seq, scan->valid, scan->records});
    pending_records_ += scan->records - consumed;
    disk_bytes_ += scan->valid;
    if (last) write_fd_ = std::move(fd);
  }
  if (removed && options_.fsync) {
    if (auto st2 = fsync_directory(dir_); !st2) return st2;
  }
  // Appended only after the cut: a crash in between leaves them in the quarantine file,
  // never nowhere; after the append they may be in both (at least once).
  if (!recovered.empty()) return append(recovered);
  return {};
}

Result<SpoolQuarantine> Spool::quarantine(uint64_t seq, uint64_t offset, uint64_t size,
                                          std::string reason, bool torn) {
  SpoolQuarantine q;
  q.segment = segment_path(seq);
  q.offset = offset;
  q.bytes = size - offset;
  q.reason = std::move(reason);
  q.torn = torn;
  std::string qdir = dir_ + "/" + std::string(kQuarantineDir);
  if (auto st = make_directories(qdir, 0700); !st) return st.error();
  char name[kSeqDigits + 1];
  std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(seq));
  q.path = qdir + "/" + name + std::string(kSuffix) + "@" + std::to_string(offset) +
           (torn ? ".torn" : ".damaged");

  UniqueFd fd(::open(q.segment.c_str(), O_RDWR | O_CLOEXEC));
  if (fd.get() < 0) return system_error(q.segment, "open", errno);
  std::string bytes(q.bytes, '\0');
  ssize_t got = pread_full(fd.get(), bytes.data(), bytes.size(), offset);
  if (got < 0) return system_error(q.segment, "read", static_cast<int>(-got));
  bytes.resize(static_cast<size_t>(got));
  // Durable in the quarantine before it leaves the segment: never nowhere.
  if (auto st = write_file_atomically(q.path, bytes, 0600); !st) return st.error();
  if (::ftruncate(fd.get(), static_cast<off_t>(offset)) != 0) {
    return system_error(q.segment, "cut the quarantined bytes from", errno);
  }
  if (options_.fsync) {
    if (int err = fdatasync_retrying(fd.get())) return system_error(q.segment, "fsync", err);
  }
  return q;
}

void Spool::report(const SpoolQuarantine& q) const {
  std::string what = q.torn ? "an interrupted write" : "damage";
  std::string text = q.segment + ": " + what + " at offset " + std::to_string(q.offset) + " (" + q.reason +
                     "): " + std::to_string(q.bytes) + " bytes moved to " + q.path;
  if (q.recovered > 0) {
    text += "; " + std::to_string(q.recovered) + " whole records after it spooled again";
  }
  if (q.torn) {
    log_warning(text + " (records never acknowledged)");
  } else {
    log_error(text);
  }
}

bool Spool::found_damage() const {
  return std::any_of(quarantined_.begin(), quarantined_.end(), [](const auto& q) { return !q.torn; });
}

Status Spool::quarantine_in_peek(size_t segment, Position at, const char* reason) {
  // Verified on open, so this is damage since (a disk error, another program): never torn.
  Segment& seg = segments_[segment];
  if (auto st = open_reader(seg.seq); !st) return st;
  std::string path = segment_path(seg.seq);
  std::vector<Record> again;
  {
    SegmentView view{read_fd_.get(), seg.bytes, path, read_buf_.bytes, read_buf_.start};
    auto after = frames_after(view, at.offset);
    if (!after) return after.error();
    for (auto& [offset, record] : *after) again.push_back(std::move(record));
  }
  auto q = quarantine(seg.seq, at.offset, seg.bytes, reason, false);
  if (!q) return q.error();
  read_fd_.reset();
  read_buf_ = ReadBuffer{};
  pending_records_ -= seg.records - at.index;
  disk_bytes_ -= seg.bytes - at.offset;
  seg.bytes = at.offset;
  seg.records = at.index;
  peeked_.clear();
  q->recovered = again.size();
  report(*q);
  quarantined_.push_back(std::move(*q));
  return append(again);
}

uint64_t Spool::pending_bytes() const {
  if (segments_.empty()) return 0;
  uint64_t bytes = 0;
  for (const auto& s : segments_) bytes += s.bytes - kMagicSize;
  return bytes - (read_.offset - kMagicSize);
}

Status Spool::append(std::span<const Record> batch) {
  if (is_broken_) return broken_;
  if (batch.empty()) return {};

  uint64_t size = 0;
  for (const auto& r : batch) {
    if (kIdLengthSize + r.id.size() + r.json.size() > UINT32_MAX) {
      return Error{Exit::data,
                   "spool " + dir_ + ": record " + r.id + " is too large to spool (4 GiB at most)"};
    }
    size += framed_size(r);
  }
  // Batches are never split across segments, so a crash can tear only the last segment,
  // and a torn end anywhere else is always damage.
  bool roll = segments_.empty() || segments_.back().bytes + size > options_.segment_bytes;
  uint64_t total = size + (roll ? kMagicSize : 0);
  if (disk_bytes_ + total > options_.max_bytes) {
    std::string records =
        std::to_string(batch.size()) + (batch.size() == 1 ? " record" : " records");
    if (total > options_.max_bytes) {
      return Error{Exit::io, "spool " + dir_ + " cannot hold a batch of " + human_bytes(total) +
                                 " (its limit is " + human_bytes(options_.max_bytes) +
                                 "): " + records + " not accepted"};
    }
    return Error{Exit::io, "spool " + dir_ + " is full (" + human_bytes(disk_bytes_) + " of " +
                               human_bytes(options_.max_bytes) + " used, the batch needs " +
                               human_bytes(total) + "): " + records + " not accepted"};
  }

  std::string buf;
  buf.reserve(total);
  if (roll) buf += kMagic;
  for (const auto& r : batch) encode(buf, r);

  uint64_t seq = roll ? next_seq_ : segments_.back().seq;
  std::string path = segment_path(seq);
  UniqueFd created;
  if (roll) {
    created = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (created.get() < 0) return system_error(path, "create", errno);
    // open() applies the umask; the spool holds other people's data, so exactly 0600.
    if (::fchmod(created.get(), 0600) != 0) {
      int e = errno;
      ::unlink(path.c_str());
      return system_error(path, "set mode", e);
    }
  }
  if (!roll && write_fd_.get() < 0) {
    // The newest segment on open was removed (torn or consumed): append to the one before.
    write_fd_ = UniqueFd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (write_fd_.get() < 0) return system_error(path, "open", errno);
  }
  int fd = roll ? created.get() : write_fd_.get();
  uint64_t offset = roll ? 0 : segments_.back().bytes;
  if (int e = pwrite_all(fd, buf, offset)) {
    Error error = system_error(path, "write", e);
    // Take back what part of the batch landed, so the next append does not follow garbage
    // (which the next open would rightly call damage).
    bool undone =
        roll ? ::unlink(path.c_str()) == 0 : ::ftruncate(fd, static_cast<off_t>(offset)) == 0;
    if (!undone) {
      is_broken_ = true;
      broken_ = error.context("spool " + dir_ + " unusable until reopened");
    }
    return error;
  }
  if (roll) {
    write_fd_ = std::move(created);
    if (segments_.empty()) read_ = Position{seq, kMagicSize, 0};
    segments_.push_back(Segment{seq, 0, 0});
    ++next_seq_;
  }
  segments_.back().bytes += total;
  segments_.back().records += batch.size();
  pending_records_ += batch.size();
  disk_bytes_ += total;

  if (options_.fsync) {
    // fdatasync() covers the new file size too, which is all an append changes. After a
    // failure the kernel may have dropped the pages and cleared the error, so a retry could
    // "succeed" with the data gone: refuse appends until a reopen has verified the files.
    Status synced;
    if (int e = fdatasync_retrying(fd)) {
      synced = system_error(path, "fsync", e);
    } else if (roll) {
      synced = fsync_directory(dir_);
    }
    if (!synced) {
      is_broken_ = true;
      broken_ = synced.error().context("spool " + dir_ + " unusable until reopened");
      return synced;
    }
  }
  return {};
}

Status Spool::open_reader(uint64_t seq) {
  if (read_fd_.get() >= 0 && read_fd_seq_ == seq) return {};
  read_fd_.reset();
  read_buf_ = ReadBuffer{};
  std::string path = segment_path(seq);
  read_fd_ = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (read_fd_.get() < 0) return system_error(path, "open", errno);
  read_fd_seq_ = seq;
  return {};
}

void Spool::forget_segment_fds(uint64_t seq) {
  if (read_fd_seq_ == seq) {
    read_fd_.reset();
    read_buf_ = ReadBuffer{};
  }
  if (!segments_.empty() && segments_.back().seq == seq) write_fd_.reset();
}

Result<std::vector<Record>> Spool::peek(size_t max_records) {
  std::vector<Record> out;
  std::vector<Position> ends;
  size_t want = static_cast<size_t>(std::min<uint64_t>(max_records, pending_records_));
  out.reserve(want);
  ends.reserve(want);
  for (size_t i = 0; i < segments_.size() && out.size() < want; ++i) {
    const Segment& seg = segments_[i];
    Position pos = i == 0 ? read_ : Position{seg.seq, kMagicSize, 0};
    if (auto st = open_reader(seg.seq); !st) return st.error();
    std::string path = segment_path(seg.seq);
    SegmentView view{read_fd_.get(), seg.bytes, path, read_buf_.bytes, read_buf_.start};
    while (out.size() < want && pos.offset < seg.bytes) {
      auto f = read_frame(view, pos.offset);
      if (!f) return f.error();
      if (f->state != Frame::State::ok) {
        // Each quarantine cuts the segment short, so this ends.
        if (auto st = quarantine_in_peek(i, pos, describe(f->state)); !st) return st.error();
        return peek(max_records);
      }
      out.push_back(decode(f->payload, f->payload_size));
      pos.offset += f->size;
      ++pos.index;
      ends.push_back(pos);
    }
  }
  peeked_ = std::move(ends);
  return out;
}

Result<Spool::Position> Spool::advance(size_t n) {
  // The usual case: consuming what peek() just returned costs no reading at all.
  if (n <= peeked_.size()) return peeked_[n - 1];
  Position pos = peeked_.empty() ? read_ : peeked_.back();
  uint64_t left = n - peeked_.size();
  size_t i = 0;
  while (segments_[i].seq != pos.seq) ++i;
  for (;; ++i) {
    const Segment& seg = segments_[i];
    if (seg.seq != pos.seq) pos = Position{seg.seq, kMagicSize, 0};
    uint64_t here = seg.records - pos.index;
    if (left > here) {
      left -= here;
      continue;
    }
    if (left == here) return Position{seg.seq, seg.bytes, seg.records};
    // Stop inside this segment: walk the headers to find the offset.
    if (auto st = open_reader(seg.seq); !st) return st.error();
    std::string path = segment_path(seg.seq);
    SegmentView view{read_fd_.get(), seg.bytes, path, read_buf_.bytes, read_buf_.start};
    for (; left > 0; --left) {
      auto f = read_frame(view, pos.offset);
      if (!f) return f.error();
      if (f->state != Frame::State::ok) {
        return Error{Exit::data, path + ": damaged spool segment at offset " +
                                     std::to_string(pos.offset) + ": " + describe(f->state)};
      }
      pos.offset += f->size;
      ++pos.index;
    }
    return pos;
  }
}

Status Spool::consume(size_t n) {
  if (n == 0) return {};
  if (n > pending_records_) {
    return Error{Exit::software, "spool " + dir_ + ": cannot consume " + std::to_string(n) +
                                     " records: only " + std::to_string(pending_records_) +
                                     " are pending"};
  }
  auto target = advance(n);
  if (!target) return target.error();

  // The acknowledgement is made durable before any segment goes, so that a crash at any
  // point leaves either the old position (records come again: at-least-once) or the new.
  std::string ack = std::string(kAckTag) + "\n" + std::to_string(target->seq) + " " +
                    std::to_string(target->offset) + "\n";
  if (auto st = write_file_atomically(dir_ + "/" + std::string(kAckName), ack, 0600); !st) {
    return st;
  }

  std::vector<Segment> gone;
  while (!segments_.empty() &&
         (segments_.front().seq < target->seq ||
          (segments_.front().seq == target->seq && target->index == segments_.front().records))) {
    gone.push_back(segments_.front());
    forget_segment_fds(segments_.front().seq);
    segments_.erase(segments_.begin());
  }
  pending_records_ -= n;
  if (segments_.empty()) {
    read_ = Position{};
  } else if (segments_.front().seq == target->seq) {
    read_ = *target;
  } else {
    read_ = Position{segments_.front().seq, kMagicSize, 0};
  }
  peeked_.erase(peeked_.begin(),
                peeked_.begin() + static_cast<ptrdiff_t>(std::min(n, peeked_.size())));

  // The records are consumed now, whatever follows: a segment that cannot be removed here
  // is removed by the next open, which finds it behind the acknowledged position.
  for (const auto& seg : gone) {
    disk_bytes_ -= seg.bytes;
    std::string path = segment_path(seg.seq);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      log_warning(system_error(path, "remove consumed segment", errno).message);
    }
  }
  if (!gone.empty() && options_.fsync) {
    if (auto st = fsync_directory(dir_); !st) log_warning(st.error().message);
  }
  return {};
}

}  // namespace envkit
