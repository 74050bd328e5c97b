// The backend-independent half of the seam: data files (JSON Lines, gzip/zstd, SHA-256 over
// the stored bytes), the manifest, and BackupWriter's bookkeeping.
#include "db-backup/backend.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <rapidjson/prettywriter.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>

#include <envkit/durable_file.hpp>
#include <envkit/log.hpp>
#include <envkit/signals.hpp>

namespace db_backup {

namespace {

Error io_error(const std::string& what) {
  return Error{Exit::io, what + ": " + std::strerror(errno)};
}

struct EvpFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using EvpPtr = std::unique_ptr<EVP_MD_CTX, EvpFree>;

EvpPtr new_sha256() {
  EvpPtr ctx(EVP_MD_CTX_new());
  if (ctx) EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  return ctx;
}

std::string finish_hex(EVP_MD_CTX* ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

struct ZstdCFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct ZstdDFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

constexpr size_t kIoChunk = 256 * 1024;

}  // namespace

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::gzip:
      return "gzip";
    case Compression::zstd:
      return "zstd";
    default:
      return "none";
  }
}

Result<Compression> parse_compression(std::string_view t) {
  if (t == "none" || t.empty()) return Compression::none;
  if (t == "gzip" || t == "gz") return Compression::gzip;
  if (t == "zstd" || t == "zst") return Compression::zstd;
  return Error{Exit::usage, "--compress must be none, gzip or zstd, not '" + std::string(t) + "'"};
}

std::string_view data_file_suffix(Compression c) {
  switch (c) {
    case Compression::gzip:
      return ".jsonl.gz";
    case Compression::zstd:
      return ".jsonl.zst";
    default:
      return ".jsonl";
  }
}

std::string sha256_hex(std::string_view data) {
  auto ctx = new_sha256();
  EVP_DigestUpdate(ctx.get(), data.data(), data.size());
  return finish_hex(ctx.get());
}

// ---------------------------------------------------------------------------------------
// DataFileWriter

struct DataFileWriter::Impl {
  envkit::AtomicFile file;
  std::string name;
  Compression compression;
  EvpPtr sha = new_sha256();
  uint64_t stored = 0, rows = 0, raw = 0;
  std::string in;   // uncompressed records waiting for the compressor
  std::string out;  // compressed output scratch
  z_stream z{};
  bool z_open = false;
  std::unique_ptr<ZSTD_CCtx, ZstdCFree> zc;

  Impl(envkit::AtomicFile f, std::string n, Compression c)
      : file(std::move(f)), name(std::move(n)), compression(c) {}
  ~Impl() {
    if (z_open) deflateEnd(&z);
  }

  Status emit(const char* data, size_t n) {
    if (n == 0) return {};
    EVP_DigestUpdate(sha.get(), data, n);
    stored += n;
    if (auto st = file.write(std::string_view(data, n)); !st) return st;
    // Start writeback every 8 MiB, so that the fsync at finish() finds little left to do
    // instead of a whole chunk (the dump's durability costs then overlap with its reading).
    if (stored - synced >= (8u << 20)) {
      if (auto st = file.flush(); !st) return st;
      ::sync_file_range(file.fd(), static_cast<off64_t>(synced),
                        static_cast<off64_t>(stored - synced), SYNC_FILE_RANGE_WRITE);
      synced = stored;
    }
    return {};
  }
  uint64_t synced = 0;

  // Pushes `in` through the compressor; `last` ends the stream.
  Status pump(bool last) {
    auto st = feed(in, last);
    in.clear();
    return st;
  }
  // Pushes `data` through the compressor to the file; `last` ends the stream.
  Status feed(std::string_view data, bool last) {
    if (compression == Compression::none) return emit(data.data(), data.size());
    out.resize(kIoChunk);
    if (compression == Compression::gzip) {
      // zlib does not write to its input (z_const); the cast only fits its old API.
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
      z.avail_in = static_cast<uInt>(data.size());
      int flush = last ? Z_FINISH : Z_NO_FLUSH;
      for (;;) {
        z.next_out = reinterpret_cast<Bytef*>(out.data());
        z.avail_out = static_cast<uInt>(out.size());
        int rc = deflate(&z, flush);
        if (rc == Z_STREAM_ERROR) return Error{Exit::software, name + ": gzip: stream error"};
        if (auto st = emit(out.data(), out.size() - z.avail_out); !st) return st;
        if (last ? rc == Z_STREAM_END : (z.avail_in == 0 && z.avail_out != 0)) break;
      }
      return {};
    }
    ZSTD_inBuffer ib{data.data(), data.size(), 0};
    for (;;) {
      ZSTD_outBuffer ob{out.data(), out.size(), 0};
      size_t rc = ZSTD_compressStream2(zc.get(), &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(rc)) return Error{Exit::software, name + ": zstd: " + ZSTD_getErrorName(rc)};
      if (auto st = emit(out.data(), ob.pos); !st) return st;
      if (last ? rc == 0 : ib.pos == ib.size) break;
    }
    return {};
  }
};

Result<DataFileWriter> DataFileWriter::create(const std::string& dir, std::string name,
                                              Compression c) {
  auto file = envkit::AtomicFile::create(dir + "/" + name, 0600);
  if (!file) return file.error();
  auto impl = std::make_unique<Impl>(std::move(*file), std::move(name), c);
  if (c == Compression::gzip) {
    if (deflateInit2(&impl->z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      return Error{Exit::software, "gzip: cannot initialise"};
    }
    impl->z_open = true;
  } else if (c == Compression::zstd) {
    impl->zc.reset(ZSTD_createCCtx());
    if (!impl->zc) return Error{Exit::software, "zstd: cannot initialise"};
    ZSTD_CCtx_setParameter(impl->zc.get(), ZSTD_c_compressionLevel, 3);
  }
  impl->in.reserve(kIoChunk + 4096);
  return DataFileWriter(std::move(impl));
}

DataFileWriter::DataFileWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DataFileWriter::DataFileWriter(DataFileWriter&&) noexcept = default;
DataFileWriter::~DataFileWriter() = default;

Status DataFileWriter::write_record(std::string_view json) {
  impl_->in.append(json);
  impl_->in.push_back('\n');
  impl_->rows++;
  impl_->raw += json.size() + 1;
  if (impl_->in.size() >= kIoChunk) return impl_->pump(false);
  return {};
}

Status DataFileWriter::write_lines(std::string_view lines, uint64_t rows) {
  impl_->rows += rows;
  impl_->raw += lines.size();
  if (!impl_->in.empty() || lines.size() < kIoChunk) {
    impl_->in.append(lines);
    if (impl_->in.size() >= kIoChunk) return impl_->pump(false);
    return {};
  }
  return impl_->feed(lines, false);
}

Result<FileEntry> DataFileWriter::seal() {
  if (auto st = impl_->pump(true); !st) return st.error();
  FileEntry e;
  e.name = impl_->name;
  e.sha256 = finish_hex(impl_->sha.get());
  e.bytes = impl_->stored;
  e.rows = impl_->rows;
  return e;
}

Status DataFileWriter::commit() { return impl_->file.commit(); }

Result<FileEntry> DataFileWriter::finish() {
  auto entry = seal();
  if (!entry) return entry;
  if (auto st = commit(); !st) return st.error();
  return entry;
}

uint64_t DataFileWriter::rows() const { return impl_->rows; }
uint64_t DataFileWriter::raw_bytes() const { return impl_->raw; }

// ---------------------------------------------------------------------------------------
// DataFileReader

struct DataFileReader::Impl {
  int fd = -1;
  std::string path;
  FileEntry entry;
  Compression compression = Compression::none;
  EvpPtr sha = new_sha256();
  uint64_t stored = 0, rows = 0;
  std::string raw;   // bytes read from the file, not yet decompressed
  // The text, decompressed: buf[start, end). buf's size is its room, zeroed once as it grows
  // (a string's resize would zero every read's room again).
  std::string buf;
  size_t start = 0, end = 0;
  bool file_eof = false, stream_end = false, checked = false;
  FileCheck check = FileCheck::all;
  z_stream z{};
  bool z_open = false;
  std::unique_ptr<ZSTD_DCtx, ZstdDFree> zd;

  ~Impl() {
    if (fd >= 0) ::close(fd);
    if (z_open) inflateEnd(&z);
  }

  Error corrupt(const std::string& why) const { return Error{Exit::data, entry.name + ": " + why}; }

  char* room(size_t n) {
    if (buf.size() - end < n) buf.resize(std::max(end + n, 2 * buf.size()));
    return buf.data() + end;
  }
  void put(const char* data, size_t n) {
    std::memcpy(room(n), data, n);
    end += n;
  }

  // Reads more of the file and decompresses it onto buf. False when nothing more comes.
  Result<bool> fill() {
    if (file_eof && raw.empty()) return false;
    if (!file_eof) {
      // Uncompressed text is read straight onto buf; compressed bytes onto raw.
      char tmp[kIoChunk];
      char* to = compression == Compression::none ? room(kIoChunk) : tmp;
      ssize_t n;
      do n = ::read(fd, to, kIoChunk);
      while (n < 0 && errno == EINTR);
      if (n < 0) return io_error(path);
      if (n == 0) {
        file_eof = true;
      } else {
        if (check == FileCheck::all) EVP_DigestUpdate(sha.get(), to, static_cast<size_t>(n));
        stored += static_cast<uint64_t>(n);
        if (compression == Compression::none) end += static_cast<size_t>(n);
        else raw.append(tmp, static_cast<size_t>(n));
      }
      if (compression == Compression::none) return n > 0;
    }
    if (stream_end) {
      if (!raw.empty()) return corrupt("data after the end of the compressed stream");
      return !file_eof;
    }
    std::string out(kIoChunk, '\0');
    if (compression == Compression::gzip) {
      z.next_in = reinterpret_cast<Bytef*>(raw.data());
      z.avail_in = static_cast<uInt>(raw.size());
      while (z.avail_in > 0 && !stream_end) {
        z.next_out = reinterpret_cast<Bytef*>(out.data());
        z.avail_out = static_cast<uInt>(out.size());
        int rc = inflate(&z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END)
          stream_end = true;
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
          return corrupt("gzip: corrupt data");
        put(out.data(), out.size() - z.avail_out);
        if (rc == Z_BUF_ERROR) break;
      }
      raw.erase(0, raw.size() - z.avail_in);
    } else {
      ZSTD_inBuffer ib{raw.data(), raw.size(), 0};
      while (ib.pos < ib.size && !stream_end) {
        ZSTD_outBuffer ob{out.data(), out.size(), 0};
        size_t rc = ZSTD_decompressStream(zd.get(), &ob, &ib);
        if (ZSTD_isError(rc)) return corrupt(std::string("zstd: ") + ZSTD_getErrorName(rc));
        put(out.data(), ob.pos);
        if (rc == 0) stream_end = true;
      }
      raw.erase(0, ib.pos);
    }
    if (stream_end && !raw.empty()) return corrupt("data after the end of the compressed stream");
    return true;
  }

  Status final_checks() {
    if (check == FileCheck::none) return {};
    if (compression != Compression::none && !stream_end)
      return corrupt("compressed stream is truncated");
    if (stored != entry.bytes) {
      return corrupt("size is " + std::to_string(stored) + " bytes, manifest says " +
                     std::to_string(entry.bytes));
    }
    if (check == FileCheck::all) {
      std::string got = finish_hex(sha.get());
      if (got != entry.sha256)
        return corrupt("SHA-256 mismatch (file " + got + ", manifest " + entry.sha256 + ")");
    }
    if (rows != entry.rows) {
      return corrupt(std::to_string(rows) + " records, manifest says " +
                     std::to_string(entry.rows));
    }
    return {};
  }
};

Status BackupReader::for_each_record(
    const ObjectEntry& object,
    const std::function<Status(std::string_view record, const FileEntry& file, uint64_t line)>& each) const {
  for (const FileEntry& f : object.files) {
    auto reader = open(f);
    if (!reader) return reader.error();
    for (uint64_t line = 1;; ++line) {
      auto text = reader->next();
      if (!text) return text.error();
      if (!*text) break;
      if (auto st = each(**text, f, line); !st) return st;
    }
  }
  return {};
}

Result<DataFileReader> DataFileReader::open(const std::string& dir, const FileEntry& entry,
                                            FileCheck check) {
  auto impl = std::make_unique<Impl>();
  impl->check = check;
  impl->path = dir + "/" + entry.name;
  impl->entry = entry;
  if (entry.name.find('/') != std::string::npos || entry.name.empty() || entry.name[0] == '.') {
    return Error{Exit::data, "manifest names a file outside the backup: '" + entry.name + "'"};
  }
  auto ends = [&](std::string_view s) {
    return entry.name.size() >= s.size() &&
           entry.name.compare(entry.name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends(".gz"))
    impl->compression = Compression::gzip;
  else if (ends(".zst"))
    impl->compression = Compression::zstd;
  impl->fd = ::open(impl->path.c_str(), O_RDONLY | O_CLOEXEC);
  if (impl->fd < 0) {
    if (errno == ENOENT) return Error{Exit::data, entry.name + ": missing from the backup"};
    return io_error(impl->path);
  }
  if (impl->compression == Compression::gzip) {
    if (inflateInit2(&impl->z, 15 + 16) != Z_OK)
      return Error{Exit::software, "gzip: cannot initialise"};
    impl->z_open = true;
  } else if (impl->compression == Compression::zstd) {
    impl->zd.reset(ZSTD_createDCtx());
  }
  return DataFileReader(std::move(impl));
}

DataFileReader::DataFileReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DataFileReader::DataFileReader(DataFileReader&&) noexcept = default;
DataFileReader::~DataFileReader() = default;

Result<std::optional<std::string_view>> DataFileReader::next() {
  auto& s = *impl_;
  if (s.checked) return std::optional<std::string_view>{};
  for (;;) {
    const char* from = s.buf.data() + s.start;
    if (const void* nl = std::memchr(from, '\n', s.end - s.start)) {  // buf stays until the next call
      std::string_view line(from, static_cast<size_t>(static_cast<const char*>(nl) - from));
      s.start += line.size() + 1;
      s.rows++;
      return std::optional<std::string_view>(line);
    }
    if (s.start > 0) {
      std::memmove(s.buf.data(), from, s.end - s.start);
      s.end -= s.start;
      s.start = 0;
    }
    if (s.end > (size_t{256} << 20)) return s.corrupt("a record longer than 256 MiB");
    auto more = s.fill();
    if (!more) return more.error();
    if (!*more) {
      if (s.end > 0) return s.corrupt("last record has no newline (truncated file)");
      s.checked = true;
      if (auto st = s.final_checks(); !st) return st.error();
      return std::optional<std::string_view>{};
    }
  }
}

// ---------------------------------------------------------------------------------------
// Manifest

uint64_t Manifest::total_rows() const {
  uint64_t n = 0;
  for (const auto& o : objects) n += o.rows;
  return n;
}

uint64_t Manifest::total_bytes() const {
  uint64_t n = 0;
  for (const auto& o : objects)
    for (const auto& f : o.files) n += f.bytes;
  return n;
}

const ObjectEntry* Manifest::find(std::string_view name) const {
  for (const auto& o : objects)
    if (o.name == name) return &o;
  return nullptr;
}

std::string Manifest::to_json() const {
  envkit::JsonWriter w;
  w.begin_object();
  w.key("format").string("envkit-db-backup");
  w.key("format_version").number(format_version);
  w.key("tool_version").string(tool_version);
  w.key("backend").string(backend);
  w.key("source").string(source);
  w.key("database").string(database);
  w.key("server_version").string(server_version);
  w.key("started_at").string(started_at);
  w.key("finished_at").string(finished_at);
  w.key("compression").string(compression_name(compression));
  w.key("consistent").boolean(consistent);
  w.key("snapshot").raw(snapshot.empty() ? "{}" : snapshot);
  w.key("warnings").begin_array();
  for (const auto& s : warnings) w.string(s);
  w.end_array();
  w.key("rows").number(total_rows());
  w.key("bytes").number(total_bytes());
  w.key("objects").begin_array();
  for (const auto& o : objects) {
    w.begin_object();
    w.key("name").string(o.name);
    w.key("kind").string(o.kind);
    w.key("rows").number(o.rows);
    w.key("key").begin_array();
    for (const auto& k : o.key) w.string(k);
    w.end_array();
    w.key("schema").string(o.schema);
    w.key("metadata").raw(o.metadata.empty() ? "{}" : o.metadata);
    if (o.source_checksum) {
      w.key("source_checksum").string(*o.source_checksum);
      w.key("source_checksum_kind").string(o.source_checksum_kind);
    }
    w.key("files").begin_array();
    for (const auto& f : o.files) {
      w.begin_object();
      w.key("name").string(f.name);
      w.key("sha256").string(f.sha256);
      w.key("bytes").number(f.bytes);
      w.key("rows").number(f.rows);
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }
  w.end_array();
  w.end_object();
  // Pretty enough for people: one line, but re-indent with RapidJSON's PrettyWriter.
  auto doc = envkit::parse_json(w.view());
  if (!doc) return w.take();
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> pw(sb);
  pw.SetIndent(' ', 2);
  doc->Accept(pw);
  return std::string(sb.GetString(), sb.GetSize()) + "\n";
}

namespace {

Result<std::string> get_string(const envkit::JsonValue& o, std::string_view key,
                               bool required = true) {
  const auto* v = envkit::find_member(o, key);
  if (!v) {
    if (required) return Error{Exit::data, "manifest: missing \"" + std::string(key) + "\""};
    return std::string();
  }
  if (!v->IsString())
    return Error{Exit::data, "manifest: \"" + std::string(key) + "\" is not a string"};
  return std::string(v->GetString(), v->GetStringLength());
}

Result<uint64_t> get_u64(const envkit::JsonValue& o, std::string_view key) {
  const auto* v = envkit::find_member(o, key);
  if (!v || !v->IsUint64())
    return Error{Exit::data, "manifest: \"" + std::string(key) + "\" is not a count"};
  return v->GetUint64();
}

}  // namespace

Result<Manifest> Manifest::parse(std::string_view text) {
  auto doc = envkit::parse_json(text);
  if (!doc) return Error{Exit::data, "manifest: " + doc.error().message};
  const auto& d = *doc;
  if (!d.IsObject()) return Error{Exit::data, "manifest: not a JSON object"};
  auto fmt = get_string(d, "format");
  if (!fmt) return fmt.error();
  if (*fmt != "envkit-db-backup")
    return Error{Exit::data, "manifest: not an envkit db-backup manifest"};
  Manifest m;
  auto ver = get_u64(d, "format_version");
  if (!ver) return ver.error();
  if (*ver > static_cast<uint64_t>(kFormatVersion)) {
    return Error{Exit::data, "manifest: format version " + std::to_string(*ver) +
                                 " is newer than this db-backup"};
  }
  m.format_version = static_cast<int>(*ver);
#define DB_BACKUP_STR(field, req)        \
  do {                                   \
    auto v = get_string(d, #field, req); \
    if (!v) return v.error();            \
    m.field = std::move(*v);             \
  } while (0)
  DB_BACKUP_STR(tool_version, false);
  DB_BACKUP_STR(backend, true);
  DB_BACKUP_STR(source, false);
  DB_BACKUP_STR(database, false);
  DB_BACKUP_STR(server_version, false);
  DB_BACKUP_STR(started_at, false);
  DB_BACKUP_STR(finished_at, false);
#undef DB_BACKUP_STR
  auto comp = get_string(d, "compression", false);
  if (!comp) return comp.error();
  auto c = parse_compression(*comp);
  if (!c) return Error{Exit::data, "manifest: unknown compression"};
  m.compression = *c;
  if (const auto* v = envkit::find_member(d, "consistent"); v && v->IsBool())
    m.consistent = v->GetBool();
  if (const auto* v = envkit::find_member(d, "snapshot")) m.snapshot = envkit::to_json(*v);
  if (const auto* v = envkit::find_member(d, "warnings"); v && v->IsArray()) {
    for (const auto& s : v->GetArray())
      if (s.IsString()) m.warnings.emplace_back(s.GetString(), s.GetStringLength());
  }
  const auto* objs = envkit::find_member(d, "objects");
  if (!objs || !objs->IsArray()) return Error{Exit::data, "manifest: missing \"objects\""};
  for (const auto& o : objs->GetArray()) {
    if (!o.IsObject()) return Error{Exit::data, "manifest: an object entry is not an object"};
    ObjectEntry e;
    auto name = get_string(o, "name");
    if (!name) return name.error();
    e.name = *name;
    auto kind = get_string(o, "kind");
    if (!kind) return kind.error();
    e.kind = *kind;
    auto rows = get_u64(o, "rows");
    if (!rows) return rows.error();
    e.rows = *rows;
    auto schema = get_string(o, "schema", false);
    if (!schema) return schema.error();
    e.schema = *schema;
    if (const auto* v = envkit::find_member(o, "metadata")) e.metadata = envkit::to_json(*v);
    if (const auto* v = envkit::find_member(o, "key"); v && v->IsArray()) {
      for (const auto& k : v->GetArray())
        if (k.IsString()) e.key.emplace_back(k.GetString(), k.GetStringLength());
    }
    if (const auto* v = envkit::find_member(o, "source_checksum"); v && v->IsString()) {
      e.source_checksum = std::string(v->GetString(), v->GetStringLength());
      auto kind2 = get_string(o, "source_checksum_kind", false);
      if (kind2) e.source_checksum_kind = *kind2;
    }
    const auto* files = envkit::find_member(o, "files");
    if (!files || !files->IsArray())
      return Error{Exit::data, "manifest: object '" + e.name + "' has no files"};
    uint64_t sum = 0;
    for (const auto& f : files->GetArray()) {
      FileEntry fe;
      auto fn = get_string(f, "name");
      if (!fn) return fn.error();
      fe.name = *fn;
      auto sha = get_string(f, "sha256");
      if (!sha) return sha.error();
      fe.sha256 = *sha;
      auto b = get_u64(f, "bytes");
      if (!b) return b.error();
      fe.bytes = *b;
      auto r = get_u64(f, "rows");
      if (!r) return r.error();
      fe.rows = *r;
      sum += fe.rows;
      e.files.push_back(std::move(fe));
    }
    if (sum != e.rows)
      return Error{Exit::data, "manifest: rows of '" + e.name + "' do not add up over its files"};
    m.objects.push_back(std::move(e));
  }
  return m;
}

// ---------------------------------------------------------------------------------------
// BackupWriter

namespace {

bool plain_name(const std::string& s) {
  if (s.empty() || s.size() > 64 || s[0] == '.' || s[0] == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

}  // namespace

Result<DataFileWriter> BackupWriter::open_chunk(const std::string& object, size_t chunk) {
  // Hostile names (slashes, dots, spaces, control bytes) never reach the file system: they
  // become "t" + part of their hash; the manifest keeps the real name.
  std::string base = plain_name(object) ? object : "t" + sha256_hex(object).substr(0, 16);
  char num[16];
  std::snprintf(num, sizeof num, ".%05zu", chunk);
  std::string name = base + num + std::string(data_file_suffix(compression_));
  {
    std::lock_guard lock(mu_);
    if (std::find(file_names_.begin(), file_names_.end(), name) != file_names_.end()) {
      return Error{Exit::software, "two objects map to one file name: " + name};
    }
    file_names_.push_back(name);
  }
  return DataFileWriter::create(dir_, name, compression_);
}

void BackupWriter::add_object(ObjectEntry entry) {
  std::lock_guard lock(mu_);
  manifest_.objects.push_back(std::move(entry));
}

Status BackupWriter::add_chunk(const std::string& object, size_t chunk, DataFileWriter file) {
  auto entry = file.seal();
  if (!entry) return entry.error();
  std::future<Status> oldest;
  {
    std::lock_guard lock(mu_);
    if (commits_.size() >= std::max<size_t>(options_.threads, 1)) {
      oldest = std::move(commits_.front());
      commits_.pop_front();
    }
  }
  if (oldest.valid()) {
    if (auto st = oldest.get(); !st) return st;
  }
  auto commit = std::async(std::launch::async,
                           [this, object, chunk, entry = std::move(*entry), file = std::move(file)]() mutable -> Status {
                             if (auto st = file.commit(); !st) return st;
                             add_file(object, chunk, std::move(entry));
                             return {};
                           });
  std::lock_guard lock(mu_);
  commits_.push_back(std::move(commit));
  return {};
}

Status BackupWriter::wait_for_files() {
  Status first;
  for (;;) {
    std::future<Status> next;
    {
      std::lock_guard lock(mu_);
      if (commits_.empty()) return first;
      next = std::move(commits_.front());
      commits_.pop_front();
    }
    if (auto st = next.get(); !st && first) first = st;
  }
}

Status BackupWriter::finish_objects() {
  if (auto st = wait_for_files(); !st) return st;
  std::lock_guard lock(mu_);
  for (auto& [object, chunks] : chunks_) {
    auto it = std::find_if(manifest_.objects.begin(), manifest_.objects.end(),
                           [&](const ObjectEntry& o) { return o.name == object; });
    if (it == manifest_.objects.end()) continue;  // the backend never finished the object
    std::sort(chunks.begin(), chunks.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [index, file] : chunks) {
      (void)index;
      it->rows += file.rows;
      it->files.push_back(std::move(file));
    }
  }
  chunks_.clear();
  std::sort(manifest_.objects.begin(), manifest_.objects.end(),
            [](const ObjectEntry& a, const ObjectEntry& b) { return a.name < b.name; });
  return {};
}

void BackupWriter::add_file(const std::string& object, size_t chunk, FileEntry file) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(chunks_.begin(), chunks_.end(),
                         [&](const auto& p) { return p.first == object; });
  if (it == chunks_.end()) {
    chunks_.emplace_back(object, std::vector<std::pair<size_t, FileEntry>>{});
    it = std::prev(chunks_.end());
  }
  it->second.emplace_back(chunk, std::move(file));
}

void BackupWriter::set_server_version(std::string v) {
  std::lock_guard lock(mu_);
  manifest_.server_version = std::move(v);
}

void BackupWriter::set_database(std::string db) {
  std::lock_guard lock(mu_);
  manifest_.database = std::move(db);
}

void BackupWriter::set_snapshot(bool consistent, std::string snapshot_json) {
  std::lock_guard lock(mu_);
  manifest_.consistent = consistent;
  manifest_.snapshot = std::move(snapshot_json);
}

void BackupWriter::warn(std::string message) {
  envkit::log_warning(message);
  std::lock_guard lock(mu_);
  manifest_.warnings.push_back(std::move(message));
}

bool BackupWriter::stopping() const { return envkit::stop_requested(); }

Status Backend::compare(const BackupReader&, const ObjectEntry& object,
                        const std::function<void(const Difference&)>&) {
  return Error{Exit::unavailable,
               object.name + ": comparing with the live store is not supported by this backend"};
}

// ---------------------------------------------------------------------------------------

namespace {

void canonical(const envkit::JsonValue& v, envkit::JsonWriter& w) {
  if (v.IsObject()) {
    std::vector<const envkit::JsonValue::Member*> members;
    for (const auto& m : v.GetObject()) members.push_back(&m);
    std::sort(members.begin(), members.end(), [](auto* a, auto* b) {
      return std::string_view(a->name.GetString(), a->name.GetStringLength()) <
             std::string_view(b->name.GetString(), b->name.GetStringLength());
    });
    w.begin_object();
    for (auto* m : members) {
      w.key(std::string_view(m->name.GetString(), m->name.GetStringLength()));
      canonical(m->value, w);
    }
    w.end_object();
  } else if (v.IsArray()) {
    w.begin_array();
    for (const auto& e : v.GetArray()) canonical(e, w);
    w.end_array();
  } else {
    w.value(v);
  }
}

}  // namespace


std::string canonical_json(const envkit::JsonValue& value) {
  envkit::JsonWriter w;
  canonical(value, w);
  return w.take();
}

}  // namespace db_backup
