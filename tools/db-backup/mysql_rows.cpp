// Typed JSON encoding of MySQL values (dump) and SQL literals from records (restore).
#include "db-backup/mysql_rows.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "db-backup/backend.hpp"
#include <envkit/json.hpp>

namespace db_backup {

namespace {

struct KindName {
  ColumnKind kind;
  std::string_view name;
};
constexpr KindName kKinds[] = {
    {ColumnKind::integer, "integer"},   {ColumnKind::floating, "float"},
    {ColumnKind::decimal, "decimal"},   {ColumnKind::string, "string"},
    {ColumnKind::binary, "binary"},     {ColumnKind::bit, "bit"},
    {ColumnKind::date, "date"},         {ColumnKind::time, "time"},
    {ColumnKind::datetime, "datetime"}, {ColumnKind::timestamp, "timestamp"},
    {ColumnKind::json, "json"},
};

// JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view s) {
  size_t i = 0, n = s.size();
  auto digits = [&] {
    size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') ++i;
    return i > start;
  };
  if (i < n && s[i] == '-') ++i;
  if (i < n && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == n;
}

bool is_integer_text(std::string_view s) {
  size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// A JSON column's value goes into the record as JSON. Its text is kept byte for byte when it
// has no line breaks (JSON allows them only as whitespace); otherwise it is re-serialised
// compactly, so that it never splits a record (formatting then is lost, the value is not).
bool has_line_break(std::string_view text) {
  return std::memchr(text.data(), '\n', text.size()) != nullptr ||
         std::memchr(text.data(), '\r', text.size()) != nullptr;
}

// True when `text` is one JSON value, optionally followed by spaces or tabs. Validation only:
// a SAX pass that builds nothing.
bool is_one_json_value(std::string_view text) {
  rapidjson::MemoryStream ms(text.data(), text.size());
  rapidjson::BaseReaderHandler<> ignore;
  // One reader per thread: its stack (where strings are decoded) is then allocated once, not
  // once per value.
  thread_local rapidjson::Reader reader;
  if (reader
          .Parse<rapidjson::kParseFullPrecisionFlag | rapidjson::kParseStopWhenDoneFlag>(ms,
                                                                                         ignore)
          .IsError()) {
    return false;
  }
  for (size_t i = ms.Tell(); i < text.size(); ++i)
    if (text[i] != ' ' && text[i] != '\t') return false;
  return true;
}

// Skips the JSON string literal at `p` (on its opening quote); false when it is not one the
// plain way: a raw control byte, an unknown escape, or a \u escape of a surrogate (RapidJSON
// pairs those), all left to RapidJSON. Bytes from 0x80 pass, as RapidJSON (no encoding check)
// lets them.
bool skip_plain_string(const unsigned char*& p, const unsigned char* end) {
  // 1: a byte that ends the plain run ('"', '\\', controls).
  static constexpr auto kStop = [] {
    std::array<unsigned char, 256> t{};
    for (int c = 0; c < 0x20; ++c) t[c] = 1;
    t['"'] = 1;
    t['\\'] = 1;
    return t;
  }();
  auto hex = [](unsigned char c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
  };
  ++p;
  for (;;) {
    while (p < end && !kStop[*p]) ++p;
    if (p == end || *p < 0x20) return false;
    if (*p++ == '"') return true;
    if (p == end) return false;
    unsigned char e = *p++;
    if (e == 'u') {
      if (end - p < 4 || !hex(p[0]) || !hex(p[1]) || !hex(p[2]) || !hex(p[3])) return false;
      if ((p[0] | 0x20) == 'd' && p[1] >= '8') return false;  // D800-DFFF: a surrogate
      p += 4;
    } else if (!std::memchr("\"\\/bfnrt", e, 8)) {
      return false;
    }
  }
}

// Skips the JSON number at `p`; false for anything but -?(0|[1-9][0-9]*)(.[0-9]+)? of at most
// 300 digits (an exponent could overflow, which RapidJSON rejects: left to it).
bool skip_plain_number(const unsigned char*& p, const unsigned char* end) {
  const unsigned char* start = p;
  auto digit = [&] { return p < end && *p >= '0' && *p <= '9'; };
  if (p < end && *p == '-') ++p;
  if (!digit()) return false;
  if (*p++ != '0')
    while (digit()) ++p;
  if (p < end && *p == '.') {
    ++p;
    if (!digit()) return false;
    while (digit()) ++p;
  }
  if (p < end && (*p == 'e' || *p == 'E')) return false;
  return p - start <= 300;
}

}  // namespace

bool plainly_one_json_value(std::string_view text) {
  // The common JSON column value, checked without RapidJSON's cost (it decodes every string
  // into its stack to hand it to a handler that ignores it): true only when RapidJSON would
  // accept `text` as well (one value, then spaces or tabs); false when it is not valid or not
  // plainly so (exponents, surrogates, nesting over 64), for RapidJSON to decide.
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  constexpr size_t kMaxDepth = 64;
  unsigned char open[kMaxDepth];  // '{' or '[' of each container we are in
  size_t depth = 0;
  auto blank = [&] {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  };
  auto literal = [&](std::string_view word) {
    if (static_cast<size_t>(end - p) < word.size() || std::memcmp(p, word.data(), word.size()))
      return false;
    p += word.size();
    return true;
  };
  blank();
  for (;;) {
    // A value.
    if (p == end) return false;
    bool ok = true;
    switch (*p) {
      case '{':
      case '[': {
        unsigned char c = *p++;
        blank();
        if (p < end && *p == (c == '{' ? '}' : ']')) {
          ++p;
          break;
        }
        if (depth == kMaxDepth) return false;
        open[depth++] = c;
        if (c == '[') continue;
        // A key, its colon, then its value.
        if (p == end || *p != '"' || !skip_plain_string(p, end)) return false;
        blank();
        if (p == end || *p++ != ':') return false;
        blank();
        continue;
      }
      case '"':
        ok = skip_plain_string(p, end);
        break;
      case 't':
        ok = literal("true");
        break;
      case 'f':
        ok = literal("false");
        break;
      case 'n':
        ok = literal("null");
        break;
      default:
        ok = skip_plain_number(p, end);
    }
    if (!ok) return false;
    // After a value: the end, a comma, or the end of its container(s).
    for (;;) {
      if (depth == 0) {
        // RapidJSON stops after the value; is_one_json_value allows only spaces and tabs.
        for (const auto* q = p; q < end; ++q)
          if (*q != ' ' && *q != '\t') return false;
        return true;
      }
      blank();
      if (p == end) return false;
      unsigned char c = *p++;
      if (c == ',') break;
      if (c != (open[depth - 1] == '{' ? '}' : ']')) return false;
      --depth;
    }
    blank();
    if (open[depth - 1] == '{') {
      if (p == end || *p != '"' || !skip_plain_string(p, end)) return false;
      blank();
      if (p == end || *p++ != ':') return false;
      blank();
    }
  }
}

namespace {

// `text` (which has line breaks) re-serialised compactly into `out`; false when not JSON.
bool compact_json(std::string& out, std::string_view text) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
  if (d.HasParseError()) return false;
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  if (!d.Accept(w)) return false;
  out.append(sb.GetString(), sb.GetSize());
  return true;
}

// What each byte becomes inside a JSON string: 0 itself, else the letter after the backslash
// ('u' for \u00XX). RFC 8259: '"', '\\' and the control characters; UTF-8 passes through.
struct EscapeTable {
  char e[256] = {};
  constexpr EscapeTable() {
    for (int c = 0; c < 0x20; ++c) e[c] = 'u';
    e[static_cast<int>('"')] = '"';
    e[static_cast<int>('\\')] = '\\';
    e[static_cast<int>('\n')] = 'n';
    e[static_cast<int>('\r')] = 'r';
    e[static_cast<int>('\t')] = 't';
    e[static_cast<int>('\b')] = 'b';
    e[static_cast<int>('\f')] = 'f';
  }
};
constexpr EscapeTable kEscape;

// Writes the JSON string literal for `s` at `p` (room for 6 * s.size() + 2); returns its end.
char* put_json_string(char* p, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  const auto* i = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = i + s.size();
  *p++ = '"';
  for (;;) {
    const auto* run = i;
    while (i < end && !kEscape.e[*i]) ++i;
    std::memcpy(p, run, static_cast<size_t>(i - run));
    p += i - run;
    if (i == end) break;
    unsigned char c = *i++;
    char e = kEscape.e[c];
    *p++ = '\\';
    *p++ = e;
    if (e == 'u') {
      *p++ = '0';
      *p++ = '0';
      *p++ = hex[c >> 4];
      *p++ = hex[c & 15];
    }
  }
  *p++ = '"';
  return p;
}

char* put(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// Finds the exact text of each top-level member's value in a record, so that JSON column
// values go back into the server as they came out. RapidJSON parses strings and numbers on
// a local copy of the stream, so positions are only good at the start of a key: a value is
// what lies between its key and the next key (or the record's closing brace).
class KeyPositions : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, KeyPositions> {
 public:
  std::vector<std::pair<std::string, size_t>> keys;  // name, offset of its opening quote
  void reset(rapidjson::InsituStringStream& stream) {
    stream_ = &stream;
    depth_ = 0;
  }

  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (depth_ == 1) keys.emplace_back(std::string(s, n), stream_->Tell());
    return true;
  }
  bool StartObject() { return ++depth_, true; }
  bool StartArray() { return ++depth_, true; }
  bool EndObject(rapidjson::SizeType) { return --depth_, true; }
  bool EndArray(rapidjson::SizeType) { return --depth_, true; }

 private:
  rapidjson::InsituStringStream* stream_ = nullptr;
  int depth_ = 0;
};

// A document's SAX events, passed on to it and to KeyPositions: one parse of a record gives
// both its values and the offsets its JSON columns' exact text is found from.
class DocumentAndKeys {
 public:
  DocumentAndKeys(rapidjson::Document& d, KeyPositions& keys) : d_(d), keys_(keys) {}
  bool Null() { return d_.Null(); }
  bool Bool(bool b) { return d_.Bool(b); }
  bool Int(int i) { return d_.Int(i); }
  bool Uint(unsigned u) { return d_.Uint(u); }
  bool Int64(int64_t i) { return d_.Int64(i); }
  bool Uint64(uint64_t u) { return d_.Uint64(u); }
  bool Double(double x) { return d_.Double(x); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) { return d_.RawNumber(s, n, copy); }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return d_.String(s, n, copy); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    keys_.Key(s, n, copy);
    return d_.Key(s, n, copy);
  }
  bool StartObject() { return keys_.StartObject() && d_.StartObject(); }
  bool EndObject(rapidjson::SizeType n) { return keys_.EndObject(n) && d_.EndObject(n); }
  bool StartArray() { return keys_.StartArray() && d_.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return keys_.EndArray(n) && d_.EndArray(n); }

 private:
  rapidjson::Document& d_;
  KeyPositions& keys_;
};

// Fills `out` with each top-level member's name and value text in `text`, from the key
// offsets `h` took while `text` (or a copy of it) was parsed.
void spans_from_keys(std::string_view text, const KeyPositions& h,
                     std::vector<std::pair<std::string, std::string_view>>& out) {
  out.clear();
  size_t close = text.rfind('}');
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  for (size_t i = 0; i < h.keys.size(); ++i) {
    size_t p = h.keys[i].second + 1;  // past the key's opening quote
    while (p < text.size() && text[p] != '"') p += text[p] == '\\' ? 2 : 1;
    ++p;
    while (p < text.size() && (is_space(text[p]) || text[p] == ':')) ++p;
    size_t end = i + 1 < h.keys.size() ? h.keys[i + 1].second : close;
    while (end > p && (is_space(text[end - 1]) || text[end - 1] == ',')) --end;
    out.emplace_back(h.keys[i].first, text.substr(p, end - p));
  }
}

}  // namespace

std::string_view kind_name(ColumnKind k) {
  for (const auto& e : kKinds)
    if (e.kind == k) return e.name;
  return "string";
}

std::optional<ColumnKind> parse_kind(std::string_view name) {
  for (const auto& e : kKinds)
    if (e.name == name) return e.kind;
  return std::nullopt;
}

ColumnKind column_kind(std::string_view t, bool json) {
  if (json) return ColumnKind::json;
  if (t == "tinyint" || t == "smallint" || t == "mediumint" || t == "int" || t == "integer" ||
      t == "bigint" || t == "year")
    return ColumnKind::integer;
  if (t == "float" || t == "double" || t == "real" || t == "double precision")
    return ColumnKind::floating;
  if (t == "decimal" || t == "numeric" || t == "dec" || t == "fixed") return ColumnKind::decimal;
  if (t == "bit") return ColumnKind::bit;
  if (t == "date") return ColumnKind::date;
  if (t == "time") return ColumnKind::time;
  if (t == "datetime") return ColumnKind::datetime;
  if (t == "timestamp") return ColumnKind::timestamp;
  if (t == "binary" || t == "varbinary" || t == "tinyblob" || t == "blob" || t == "mediumblob" ||
      t == "longblob" || t == "geometry" || t == "point" || t == "linestring" || t == "polygon" ||
      t == "multipoint" || t == "multilinestring" || t == "multipolygon" ||
      t == "geometrycollection")
    return ColumnKind::binary;
  return ColumnKind::string;
}

void append_json_string(std::string& out, std::string_view s) {
  size_t at = out.size();
  out.resize(at + 6 * s.size() + 2);
  char* end = put_json_string(out.data() + at, s);
  out.resize(static_cast<size_t>(end - out.data()));
}

RowEncoder::RowEncoder(std::vector<Column> columns) : columns_(std::move(columns)) {
  for (size_t i = 0; i < columns_.size(); ++i) {
    std::string k = i ? "," : "";
    append_json_string(k, columns_[i].name);
    k += ':';
    keys_.push_back(std::move(k));
  }
}

// The record is written straight into `out`: for each value, room for its longest form is
// reserved (escaping makes at most 6 bytes of one), then it is written and the end committed.
void RowEncoder::append_record(const envkit::MysqlResult& row, ByteBuffer& out) {
  char* p = out.reserve(1);
  *p++ = '{';
  out.commit(p);
  for (size_t i = 0; i < columns_.size(); ++i) {
    const std::string& key = keys_[i];
    auto v = row.value(i);
    if (!v) {
      p = put(out.reserve(key.size() + 4), key);
      out.commit(put(p, "null"));
      continue;
    }
    size_t n = v->size();
    ColumnKind kind = columns_[i].kind;
    switch (kind) {
      case ColumnKind::integer:
      case ColumnKind::floating:
        p = put(out.reserve(key.size() + 6 * n + 2), key);
        if (kind == ColumnKind::integer ? is_integer_text(*v) : is_json_number(*v))
          out.commit(put(p, *v));  // the server's own digits: already a JSON number
        else
          out.commit(put_json_string(p, *v));
        break;
      case ColumnKind::binary:
      case ColumnKind::bit:
        p = put(out.reserve(key.size() + (n + 2) / 3 * 4 + 2), key);
        *p++ = '"';
        p = base64_encode_to(p, *v);
        *p++ = '"';
        out.commit(p);
        break;
      case ColumnKind::datetime:
      case ColumnKind::timestamp: {
        // "2026-11-22 14:15:00.123456" -> "2026-11-22T14:15:00.123456", plus 'Z' for UTC.
        bool space = n > 10 && (*v)[10] == ' ';
        bool plain_date = std::none_of(v->data(), v->data() + std::min<size_t>(n, 10), [](char c) {
          return kEscape.e[static_cast<unsigned char>(c)] != 0;
        });
        p = put(out.reserve(key.size() + 6 * n + 3), key);
        if (space && !plain_date) {  // not a server's date-time: the slow way, same result
          scratch_.assign(*v);
          scratch_[10] = 'T';
          if (kind == ColumnKind::timestamp) scratch_ += 'Z';
          out.commit(put_json_string(p, scratch_));
          break;
        }
        char* start = p;
        p = put_json_string(p, *v);
        if (space) start[1 + 10] = 'T';
        if (kind == ColumnKind::timestamp) {
          p[-1] = 'Z';
          *p++ = '"';
        }
        out.commit(p);
        break;
      }
      case ColumnKind::json:
        if (!has_line_break(*v)) {
          if (plainly_one_json_value(*v) || is_one_json_value(*v)) {
            out.commit(put(put(out.reserve(key.size() + n), key), *v));
            break;
          }
        } else {
          scratch_.clear();
          if (compact_json(scratch_, *v)) {
            out.commit(put(put(out.reserve(key.size() + scratch_.size()), key), scratch_));
            break;
          }
        }
        out.commit(put_json_string(put(out.reserve(key.size() + 6 * n + 2), key), *v));
        break;
      default:
        out.commit(put_json_string(put(out.reserve(key.size() + 6 * n + 2), key), *v));
    }
  }
  p = out.reserve(1);
  *p++ = '}';
  out.commit(p);
}

envkit::Result<std::string_view> RowEncoder::encode(const envkit::MysqlResult& row) {
  out_.clear();
  append_record(row, out_);
  return out_.view();
}

void RowEncoder::append_line(const envkit::MysqlResult& row, ByteBuffer& out) {
  append_record(row, out);
  char* p = out.reserve(1);
  *p++ = '\n';
  out.commit(p);
}

// What one record's decoding needs, kept from record to record so that the common record
// costs no allocation: a mutable copy of its text parsed in place (strings are not copied
// out), values from a pool whose first 64 KiB are right here, and the JSON columns' spans.
struct RowDecoder::Buffers {
  static constexpr size_t kPoolBytes = 64 << 10;
  alignas(8) char pool_buffer[kPoolBytes];
  rapidjson::MemoryPoolAllocator<> pool{pool_buffer, kPoolBytes};
  std::string text;        // the record, parsed in situ
  KeyPositions positions;
  std::vector<std::pair<std::string, std::string_view>> spans;
  std::string scratch;
  rapidjson::Reader reader;
};

RowDecoder::RowDecoder(std::vector<Column> columns, const envkit::MysqlConnection& connection)
    : columns_(std::move(columns)),
      connection_(connection),
      buffers_(std::make_unique<Buffers>()),
      has_json_column_(std::any_of(columns_.begin(), columns_.end(),
                                   [](const Column& c) { return c.kind == ColumnKind::json; })) {}

RowDecoder::~RowDecoder() = default;

namespace {

// Bytes as upper-case hex digits: an X'...' literal's inside, or UNHEX()'s argument.
void append_hex(std::string& out, std::string_view bytes) {
  static const char* hex = "0123456789ABCDEF";
  size_t at = out.size();
  out.resize(at + 2 * bytes.size());
  char* p = out.data() + at;
  for (unsigned char c : bytes) {
    *p++ = hex[c >> 4];
    *p++ = hex[c & 15];
  }
}

// The two shapes a record is decoded into: "(v1,v2,...)" for INSERT ... VALUES, and a line of
// LOAD DATA's default format (LoadBytes says how binary and bit values go).
struct SqlValues {
  const envkit::MysqlConnection& connection;
  std::string& out;
  void begin() { out += '('; }
  void separator() { out += ','; }
  void end() { out += ')'; }
  void null() { out += "NULL"; }
  void number(std::string_view digits) { out += digits; }
  void text(std::string_view s) { out += connection.quote_string(s); }
  void bytes(std::string_view b) {
    out += "X'";
    append_hex(out, b);
    out += '\'';
  }
};

struct LoadDataFields {
  std::string& out;
  LoadBytes how;
  void begin() {}
  void separator() { out += '\t'; }
  void end() { out += '\n'; }
  void null() { out += envkit::kLoadDataNull; }
  void number(std::string_view digits) { out += digits; }
  void text(std::string_view s) { envkit::append_load_data_field(out, s); }
  void bytes(std::string_view b) {
    if (how == LoadBytes::raw)
      envkit::append_load_data_field(out, b);
    else
      append_hex(out, b);
  }
};

bool hex_loaded(ColumnKind k) { return k == ColumnKind::binary || k == ColumnKind::bit; }

}  // namespace

std::string load_data_statement(std::string_view table, const std::vector<Column>& columns,
                                LoadBytes bytes) {
  std::string sql = "LOAD DATA LOCAL INFILE 'envkit-restore' INTO TABLE " +
                    envkit::quote_identifier(table) + " CHARACTER SET " +
                    (bytes == LoadBytes::raw ? "binary" : "utf8mb4") + " (";
  std::string set;
  for (size_t c = 0; c < columns.size(); ++c) {
    if (c > 0) sql += ", ";
    std::string name = envkit::quote_identifier(columns[c].name);
    if (bytes == LoadBytes::hex && hex_loaded(columns[c].kind)) {
      std::string var = "@h" + std::to_string(c);
      sql += var;
      set += (set.empty() ? " SET " : ", ") + name + " = UNHEX(" + var + ")";
    } else {
      sql += name;
    }
  }
  return sql + ")" + set;
}

envkit::Status RowDecoder::append_values(std::string_view json, std::string& sql) {
  return append(json, SqlValues{connection_, sql});
}

envkit::Status RowDecoder::append_load_data_line(std::string_view json, LoadBytes bytes,
                                                 std::string& out) {
  return append(json, LoadDataFields{out, bytes});
}

template <class Format>
envkit::Status RowDecoder::append(std::string_view json, Format out) {
  Buffers& b = *buffers_;
  b.pool.Clear();
  rapidjson::Document d(&b.pool);
  rapidjson::ParseResult parsed;
  b.spans.clear();
  if (std::memchr(json.data(), '\0', json.size()) != nullptr) {
    // In situ, the NUL would end the text early (and make a worse error message: no JSON
    // text holds a raw NUL, so this parse fails too).
    parsed = d.Parse<rapidjson::kParseFullPrecisionFlag>(json.data(), json.size());
  } else if (has_json_column_) {
    // The JSON columns' exact text is found from the key offsets of this same parse.
    b.text.assign(json);
    rapidjson::InsituStringStream ss(b.text.data());
    b.positions.keys.clear();
    b.positions.reset(ss);
    DocumentAndKeys both(d, b.positions);
    auto parse = [&](rapidjson::Document&) {
      parsed = b.reader.Parse<rapidjson::kParseFullPrecisionFlag | rapidjson::kParseInsituFlag>(
          ss, both);
      return !parsed.IsError();
    };
    d.Populate(parse);
    if (!parsed.IsError()) spans_from_keys(json, b.positions, b.spans);
  } else {
    b.text.assign(json);
    parsed = d.ParseInsitu<rapidjson::kParseFullPrecisionFlag>(b.text.data());
  }
  if (parsed.IsError()) {
    return Error{Exit::data, std::string("invalid JSON at byte ") +
                                 std::to_string(parsed.Offset()) + ": " +
                                 rapidjson::GetParseError_En(parsed.Code())};
  }
  if (!d.IsObject()) return Error{Exit::data, "a record is not a JSON object"};
  // Records as db-backup writes them have their members in column order: member i is tried
  // first, and is the first of that name as long as every earlier column was found in order
  // (column names are distinct). Otherwise the first member of that name, as find_member.
  bool in_order = true;
  out.begin();
  for (size_t i = 0; i < columns_.size(); ++i) {
    const auto& col = columns_[i];
    if (i) out.separator();
    const rapidjson::Value* v = nullptr;
    if (in_order && i < d.MemberCount()) {
      const auto& m = d.MemberBegin()[static_cast<rapidjson::SizeType>(i)];
      if (std::string_view(m.name.GetString(), m.name.GetStringLength()) == col.name)
        v = &m.value;
    }
    if (!v) {
      in_order = false;
      v = envkit::find_member(d, col.name);
    }
    if (!v) return Error{Exit::data, "a record lacks column '" + col.name + "'"};
    if (v->IsNull()) {
      out.null();
      continue;
    }
    auto bad = [&](const char* want) {
      return Error{Exit::data,
                   "column '" + col.name + "': expected " + want + ", got " + envkit::to_json(*v)};
    };
    auto string_of = [](const rapidjson::Value& s) {
      return std::string_view(s.GetString(), s.GetStringLength());
    };
    switch (col.kind) {
      case ColumnKind::integer:
      case ColumnKind::floating:
        if (v->IsInt64() || v->IsUint64()) {
          // As the JSON writer prints an integer: its decimal digits.
          char buf[24];
          auto r = v->IsInt64() ? std::to_chars(buf, buf + sizeof buf, v->GetInt64())
                                : std::to_chars(buf, buf + sizeof buf, v->GetUint64());
          out.number(std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
        } else if (v->IsNumber()) {
          out.number(envkit::to_json(*v));
        } else if (v->IsString()) {
          out.text(string_of(*v));
        } else {
          return bad("a number");
        }
        break;
      case ColumnKind::binary:
      case ColumnKind::bit: {
        if (!v->IsString()) return bad("a base64 string");
        auto bytes = base64_decode(string_of(*v));
        if (!bytes) return bad("a base64 string");
        out.bytes(*bytes);
        break;
      }
      case ColumnKind::datetime:
      case ColumnKind::timestamp: {
        if (!v->IsString()) return bad("a date-time string");
        std::string& s = b.scratch;
        s.assign(v->GetString(), v->GetStringLength());
        if (s.size() > 10 && s[10] == 'T') s[10] = ' ';
        if (!s.empty() && s.back() == 'Z') s.pop_back();
        out.text(s);
        break;
      }
      case ColumnKind::json: {
        auto it = std::find_if(b.spans.begin(), b.spans.end(),
                               [&](const auto& p) { return p.first == col.name; });
        if (it != b.spans.end())
          out.text(it->second);
        else
          out.text(envkit::to_json(*v));
        break;
      }
      default:
        if (!v->IsString()) return bad("a string");
        out.text(string_of(*v));
    }
  }
  out.end();
  return {};
}

}  // namespace db_backup
