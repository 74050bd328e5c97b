// probe_mysql: the MySQL/MariaDB client protocol spoken by hand over envkit::Stream, so the
// greeting can be read without logging in, each phase timed, and a hostile server bounded.
#include "proxy-check/mysql_probe.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include <envkit/bytes.hpp>
#include "proxy-check/probe.hpp"
#include "proxy-check/probes.hpp"

namespace proxy_check {
namespace mysql {

using envkit::ByteReader;
using envkit::Error;
using envkit::Exit;
using envkit::Result;

namespace {

Error malformed(const std::string& what) { return Error{Exit::data, what}; }

// Digest of the concatenation of `parts`.
std::string digest(const EVP_MD* md, std::initializer_list<std::string_view> parts) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) return {};
  for (auto part : parts) EVP_DigestUpdate(ctx.get(), part.data(), part.size());
  if (EVP_DigestFinal_ex(ctx.get(), out, &len) != 1) return {};
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string xor_bytes(std::string a, std::string_view b) {
  for (size_t i = 0; i < a.size() && !b.empty(); ++i) a[i] = static_cast<char>(a[i] ^ b[i % b.size()]);
  return a;
}

}  // namespace

PacketHeader parse_packet_header(const char (&bytes)[4]) {
  ByteReader in(std::string_view(bytes, 4));
  PacketHeader h;
  h.length = in.u16le();
  h.length |= static_cast<uint32_t>(in.u8()) << 16;
  h.sequence = in.u8();
  return h;
}

std::string frame_packet(uint8_t sequence, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 4);
  // A 3-byte little-endian length.
  envkit::append_u16le(out, static_cast<uint16_t>(payload.size() & 0xffff));
  out.push_back(static_cast<char>((payload.size() >> 16) & 0xff));
  out.push_back(static_cast<char>(sequence));
  out.append(payload);
  return out;
}

Result<Greeting> parse_greeting(std::string_view p) {
  Greeting g;
  if (p.empty()) return malformed("empty greeting");
  ByteReader in(p);
  g.protocol_version = in.u8();
  if (g.protocol_version != 10) {
    return malformed("not a MySQL greeting (protocol version " +
                     std::to_string(g.protocol_version) + ", expected 10)");
  }
  auto nul = in.rest().find('\0');
  if (nul == std::string_view::npos) return malformed("greeting truncated in the server version");
  std::string version(in.take(nul));
  in.take(1);
  // MariaDB prefixes "5.5.5-" so that old clients do not take 10.x for a pre-5.5 server.
  if (version.rfind("5.5.5-", 0) == 0 && version.find("MariaDB") != std::string::npos) {
    version.erase(0, 6);
  }
  g.mariadb = version.find("MariaDB") != std::string::npos;
  g.server_version = proxy_check::printable(version, 80);
  // connection id (4), scramble part 1 (8), filler (1), capabilities low (2)
  if (in.remaining() < 15) return malformed("greeting truncated after the server version");
  g.connection_id = in.u32le();
  g.scramble.assign(in.take(8));
  in.take(1);
  g.capabilities = in.u16le();
  if (in.empty()) return g;  // pre-4.1 servers end here
  // charset (1), status (2), capabilities high (2), auth data length (1), reserved (10)
  if (in.remaining() < 16) return malformed("greeting truncated in the capability flags");
  g.charset = in.u8();
  g.status = in.u16le();
  g.capabilities |= static_cast<uint32_t>(in.u16le()) << 16;
  size_t auth_length = in.u8();
  in.take(10);
  if (g.capabilities & kClientSecureConnection) {
    // Part 2 is max(13, length - 8) bytes, the last of which is a NUL.
    size_t part2 = auth_length > 8 ? std::max<size_t>(13, auth_length - 8) : 13;
    if (in.remaining() < part2) return malformed("greeting truncated in the scramble");
    std::string_view rest = in.take(part2);
    if (!rest.empty() && rest.back() == '\0') rest.remove_suffix(1);
    g.scramble.append(rest);
  }
  if (g.capabilities & kClientPluginAuth) {
    // Some servers omit the final NUL.
    std::string_view rest = in.rest();
    g.auth_plugin = proxy_check::printable(rest.substr(0, rest.find('\0')));
  }
  return g;
}

std::optional<ServerError> parse_error_packet(std::string_view p) {
  if (p.size() < 3 || static_cast<uint8_t>(p[0]) != 0xff) return std::nullopt;
  ServerError e;
  ByteReader in(p.substr(1));
  e.code = in.u16le();
  std::string_view rest = in.rest();
  if (rest.size() >= 6 && rest[0] == '#') {
    e.sql_state = proxy_check::printable(rest.substr(1, 5));
    rest.remove_prefix(6);
  }
  e.message = proxy_check::printable(rest, 200);
  return e;
}

std::string describe(const ServerError& error) {
  std::string out = "error " + std::to_string(error.code);
  if (!error.sql_state.empty()) out += " (" + error.sql_state + ")";
  return out + ": " + error.message;
}

uint32_t client_capabilities(uint32_t server, bool with_database, bool tls) {
  uint32_t caps = kClientLongPassword | kClientLongFlag | kClientProtocol41 |
                  kClientTransactions | kClientSecureConnection | kClientMultiResults |
                  kClientPluginAuth;
  if (with_database) caps |= kClientConnectWithDb;
  if (tls) caps |= kClientSsl;
  // Ask only for what the server offers; 4.1 framing and secure auth are checked by the caller.
  return caps & (server | kClientProtocol41 | kClientSecureConnection);
}

std::string build_ssl_request(uint32_t capabilities, uint8_t charset) {
  std::string out;
  envkit::append_u32le(out, capabilities | kClientSsl);
  envkit::append_u32le(out, 1u << 24);  // max packet size we accept
  out.push_back(static_cast<char>(charset));
  out.append(23, '\0');
  return out;
}

std::string build_handshake_response(const HandshakeResponse& r) {
  std::string out = build_ssl_request(r.capabilities, r.charset);
  if (!(r.capabilities & kClientSsl)) out[1] = static_cast<char>(out[1] & ~(kClientSsl >> 8));
  out.append(r.user);
  out.push_back('\0');
  out.push_back(static_cast<char>(std::min<size_t>(r.auth_response.size(), 255)));
  out.append(r.auth_response.substr(0, 255));
  if (r.capabilities & kClientConnectWithDb) {
    out.append(r.database);
    out.push_back('\0');
  }
  if (r.capabilities & kClientPluginAuth) {
    out.append(r.auth_plugin);
    out.push_back('\0');
  }
  return out;
}

std::string scramble_native_password(std::string_view password, std::string_view scramble) {
  if (password.empty()) return {};
  std::string stage1 = digest(EVP_sha1(), {password});
  std::string stage2 = digest(EVP_sha1(), {stage1});
  return xor_bytes(stage1, digest(EVP_sha1(), {scramble.substr(0, 20), stage2}));
}

std::string scramble_caching_sha2(std::string_view password, std::string_view scramble) {
  if (password.empty()) return {};
  std::string stage1 = digest(EVP_sha256(), {password});
  std::string stage2 = digest(EVP_sha256(), {stage1});
  return xor_bytes(stage1, digest(EVP_sha256(), {stage2, scramble.substr(0, 20)}));
}

Result<std::string> encrypt_password_rsa(std::string_view password, std::string_view scramble,
                                         std::string_view public_key_pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(public_key_pem.data(), static_cast<int>(public_key_pem.size())), BIO_free);
  if (!bio) return Error{Exit::software, "out of memory"};
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) return malformed("the server's RSA public key is not a PEM public key");
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new(key.get(), nullptr), EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1) {
    return malformed("the server's public key cannot encrypt with RSA-OAEP");
  }
  std::string plain(password);
  plain.push_back('\0');
  plain = xor_bytes(plain, scramble.substr(0, 20));
  size_t out_len = 0;
  auto in = reinterpret_cast<const unsigned char*>(plain.data());
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &out_len, in, plain.size()) != 1) {
    return malformed("RSA encryption of the password failed");
  }
  std::string out(out_len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &out_len, in,
                       plain.size()) != 1) {
    return malformed("RSA encryption of the password failed (password too long for the key?)");
  }
  out.resize(out_len);
  return out;
}

Result<AuthSwitch> parse_auth_switch(std::string_view p) {
  if (p.empty() || static_cast<uint8_t>(p[0]) != 0xfe) return malformed("not an AuthSwitchRequest");
  auto nul = p.find('\0', 1);
  if (nul == std::string_view::npos) return malformed("AuthSwitchRequest without a plugin name");
  AuthSwitch s;
  s.plugin = proxy_check::printable(p.substr(1, nul - 1));
  std::string_view data = p.substr(nul + 1);
  if (!data.empty() && data.back() == '\0') data.remove_suffix(1);
  s.data.assign(data);
  return s;
}

Result<uint64_t> read_lenenc_int(std::string_view& in) {
  if (in.empty()) return malformed("truncated length-encoded integer");
  auto first = static_cast<uint8_t>(in[0]);
  int bytes = first < 0xfb ? 0 : first == 0xfc ? 2 : first == 0xfd ? 3 : first == 0xfe ? 8 : -1;
  if (bytes < 0) return malformed("bad length-encoded integer");
  if (in.size() < static_cast<size_t>(1 + bytes)) return malformed("truncated length-encoded integer");
  uint64_t value = bytes == 0 ? first : 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<uint64_t>(static_cast<uint8_t>(in[1 + i])) << (8 * i);
  in.remove_prefix(1 + bytes);
  return value;
}

Result<std::string> read_lenenc_string(std::string_view& in) {
  auto length = read_lenenc_int(in);
  if (!length) return length.error();
  if (*length > in.size()) return malformed("truncated length-encoded string");
  std::string out(in.substr(0, *length));
  in.remove_prefix(*length);
  return out;
}

bool is_eof_packet(std::string_view p) { return !p.empty() && static_cast<uint8_t>(p[0]) == 0xfe && p.size() < 9; }

Result<std::vector<std::optional<std::string>>> parse_text_row(std::string_view p, size_t columns) {
  std::vector<std::optional<std::string>> row;
  row.reserve(std::min<size_t>(columns, 4096));
  for (size_t i = 0; i < columns; ++i) {
    if (!p.empty() && static_cast<uint8_t>(p[0]) == 0xfb) {
      row.emplace_back(std::nullopt);
      p.remove_prefix(1);
      continue;
    }
    auto value = read_lenenc_string(p);
    if (!value) return value.error().context("row column " + std::to_string(i + 1));
    row.emplace_back(std::move(*value));
  }
  if (!p.empty()) return malformed("row has bytes after its " + std::to_string(columns) + " columns");
  return row;
}

std::string build_query(std::string_view sql) { return std::string(1, '\x03') + std::string(sql); }
std::string build_quit() { return std::string(1, '\x01'); }

std::string format_capabilities(uint32_t capabilities) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "0x%08x", capabilities);
  return buffer;
}

}  // namespace mysql

namespace {

using namespace mysql;
using envkit::Error;
using envkit::Exit;
using envkit::Result;
using envkit::Status;
using Clock = std::chrono::steady_clock;

// The user a credential-less probe introduces itself as. The server answers "Access denied",
// which proves it is alive and speaking, and — unlike a connection dropped before the
// handshake response — does not count toward max_connect_errors (see the man page).
constexpr const char* kProbeUser = "envkit_proxy_check_probe";

// At most this many auth round trips (switch, more data, public key, ...).
constexpr int kMaxAuthRounds = 6;
// A probe's query result is read whole up to this size.
constexpr size_t kMaxResultBytes = 4u << 20;

bool parse_flag(const std::optional<std::string>& v) {
  return v && (*v == "true" || *v == "1" || *v == "yes" || v->empty());
}

class MysqlProbe {
 public:
  MysqlProbe(const envkit::Url& target, const ProbeOptions& options)
      : target_(target), options_(options), clock_(r_) {}

  ProbeResult run() {
    Status st = steps();
    if (!st) {
      fail(r_, phase_, st.error());
      // Whatever the step, a blocked host is what the check must say.
      if (blocked_) r_.summary = "host blocked (max_connect_errors): " + st.error().message;
    }
    clock_.finish();
    return std::move(r_);
  }

 private:
  void end_phase(const std::string& name) { clock_.mark(name); }
  void fact(std::string key, std::string value) { r_.facts.emplace_back(std::move(key), std::move(value)); }

  Result<std::string> read_packet(uint32_t max_length) {
    char header[4];
    if (auto st = stream_->read_exact(header, 4, options_.deadline); !st) return st.error();
    PacketHeader h = parse_packet_header(header);
    if (h.length > max_length) {
      return Error{Exit::data, "packet of " + std::to_string(h.length) +
                                   " bytes announced, more than the " +
                                   std::to_string(max_length) + " accepted"};
    }
    if (h.sequence != sequence_) {
      return Error{Exit::data, "packet out of sequence (" + std::to_string(h.sequence) +
                                   ", expected " + std::to_string(sequence_) + ")"};
    }
    ++sequence_;
    std::string payload(h.length, '\0');
    if (h.length > 0) {
      if (auto st = stream_->read_exact(payload.data(), h.length, options_.deadline); !st) {
        return st.error();
      }
    }
    return payload;
  }

  Status write_packet(std::string_view payload) {
    return stream_->write_all(frame_packet(sequence_++, payload), options_.deadline);
  }

  Status steps() {
    if (target_.hosts.size() != 1 || target_.hosts[0].host.empty()) {
      r_.state = State::unknown;
      r_.summary = "a mysql:// target names exactly one host: " + target_.redacted();
      return {};
    }
    auto query = target_.param("query");
    // ?expect=open|closed without a query is the runner's (--expect), not a query result.
    auto expect = target_.param("expect");
    if (!query && expect && (*expect == "open" || *expect == "closed")) expect.reset();
    login_ = !target_.user.empty();
    if ((query || expect) && !login_) {
      r_.state = State::unknown;
      r_.summary = "?query= and ?expect= need a user to log in as (mysql://USER@HOST)";
      return {};
    }
    ProbeOptions tls_options = options_;
    if (parse_flag(target_.param("tls"))) tls_options.connection.tls.enabled = true;
    const bool tls = tls_options.connection.tls.enabled;

    phase_ = "connect";
    stream_ = connect_phase(target_, options_, r_, clock_);
    if (!stream_) return {};  // result filled, closed set

    phase_ = "greeting";
    auto payload = read_packet(kMaxGreetingLength);
    if (!payload) return payload.error();
    if (auto err = parse_error_packet(*payload)) return server_refused(*err);
    auto greeting = parse_greeting(*payload);
    if (!greeting) return greeting.error();
    greeting_ = std::move(*greeting);
    end_phase("greeting");
    fact("server_version", greeting_.server_version);
    fact("connection_id", std::to_string(greeting_.connection_id));
    fact("capabilities", format_capabilities(greeting_.capabilities));
    fact("auth_plugin", greeting_.auth_plugin.empty() ? "mysql_native_password" : greeting_.auth_plugin);
    fact("tls_offered", greeting_.tls_offered() ? "yes" : "no");
    if (!(greeting_.capabilities & kClientProtocol41) ||
        !(greeting_.capabilities & kClientSecureConnection)) {
      return Error{Exit::data, "server " + greeting_.server_version +
                                   " does not speak the 4.1 protocol with secure authentication"};
    }

    uint32_t caps = client_capabilities(greeting_.capabilities, login_ && !target_.path.empty(), tls);
    State tls_grade = State::ok;
    std::string tls_note;
    if (tls) {
      phase_ = "tls";
      if (!greeting_.tls_offered()) return Error{Exit::unavailable, "TLS requested but the server does not offer it"};
      if (auto st = write_packet(build_ssl_request(caps)); !st) return st;
      if (!tls_phase(*stream_, target_, tls_options, r_, clock_, tls_grade, tls_note)) return {};
      // Never hand credentials to a server whose certificate failed the checks.
      if (tls_grade == State::critical) {
        r_.state = State::critical;
        r_.summary = "tls: " + tls_note;
        return {};
      }
      for (const auto& [key, value] : r_.facts) {
        if (key == "tls_version") tls_version_ = value;
      }
    }

    phase_ = "auth";
    if (auto st = authenticate(caps); !st) return st;
    end_phase("auth");

    if (!login_) {
      if (probe_accepted_) {
        sequence_ = 0;
        (void)write_packet(build_quit());
      }
      r_.state = State::ok;
      r_.identity = "version=" + greeting_.server_version + ",capabilities=" +
                    format_capabilities(greeting_.capabilities) + ",auth_plugin=" + greeting_.auth_plugin;
      r_.summary = greeting_summary() + ", handshake answered (no credentials, not logged in)";
      fold_tls_grade(r_, tls_grade, tls_note);
      return {};
    }

    phase_ = "query";
    std::string sql = query ? *query : "SELECT 1";
    auto row = run_query(sql);
    if (!row) return row.error();
    end_phase("query");
    std::string raw = !*row ? "(no rows)" : !(**row)[0] ? "NULL" : *(**row)[0];
    std::string value = proxy_check::printable(raw, 200);
    fact("query_result", value);
    std::string summary = greeting_summary() + ", logged in as " + target_.user + ", " +
                          proxy_check::printable(sql) + " = " + value;
    if (expect && raw != *expect) {
      r_.state = State::critical;
      r_.summary = summary + " (expected " + proxy_check::printable(*expect) + ")";
    } else {
      r_.state = State::ok;
      r_.summary = summary;
    }

    fold_tls_grade(r_, tls_grade, tls_note);

    phase_ = "identity";
    // Without an identity --via cannot match, which it reports; the check itself stands.
    if (auto st = read_identity(); !st) fact("identity_error", st.error().message);
    sequence_ = 0;
    (void)write_packet(build_quit());
    stream_->shutdown_write();
    return {};
  }

  std::string greeting_summary() const {
    std::string s = greeting_.server_version + " (connection " + std::to_string(greeting_.connection_id) +
                    ", " + (greeting_.auth_plugin.empty() ? "mysql_native_password" : greeting_.auth_plugin) +
                    ", TLS " + (greeting_.tls_offered() ? "offered" : "not offered") + ")";
    if (!tls_version_.empty()) s += ", " + tls_version_;
    return s;
  }

  Status server_refused(const ServerError& err) {
    fact("error_code", std::to_string(err.code));
    if (err.code == kErrorHostBlocked) {
      fact("host_blocked", "yes");
      blocked_ = true;
      return Error{Exit::unavailable, describe(err) + "; FLUSH HOSTS on the server unblocks it"};
    }
    return Error{Exit::unavailable, "server refused: " + describe(err)};
  }

  // HandshakeResponse41 and whatever auth exchange follows, up to OK or ERR.
  Status authenticate(uint32_t caps) {
    std::string password = login_ ? target_.password.value_or("") : "";
    std::string plugin = greeting_.auth_plugin.empty() ? "mysql_native_password" : greeting_.auth_plugin;
    std::string scramble = greeting_.scramble;
    auto answer = [&](const std::string& p) -> std::string {
      if (p == "caching_sha2_password") return scramble_caching_sha2(password, scramble);
      if (p == "mysql_native_password") return scramble_native_password(password, scramble);
      return {};
    };
    HandshakeResponse response;
    response.capabilities = caps;
    response.user = login_ ? target_.user : kProbeUser;
    response.database = target_.path;
    // An unknown plugin in the greeting: answer for mysql_native_password and let the server
    // switch us to what it wants.
    if (plugin != "caching_sha2_password" && plugin != "mysql_native_password") plugin = "mysql_native_password";
    response.auth_plugin = plugin;
    response.auth_response = answer(plugin);
    if (auto st = write_packet(build_handshake_response(response)); !st) return st;

    for (int round = 0; round < kMaxAuthRounds; ++round) {
      auto p = read_packet(kMaxPacketLength);
      if (!p) return p.error();
      if (p->empty()) return Error{Exit::data, "empty packet during authentication"};
      auto kind = static_cast<uint8_t>((*p)[0]);
      if (kind == 0x00) {
        if (!login_) {
          fact("probe_login", "accepted");
          probe_accepted_ = true;
        }
        return {};
      }
      if (auto err = parse_error_packet(*p)) {
        fact("error_code", std::to_string(err->code));
        if (err->code == kErrorHostBlocked) return server_refused(*err);
        if (!login_ && err->code == kErrorAccessDenied) {
          fact("probe_login", "access denied (expected)");
          return {};
        }
        return Error{Exit::unavailable, (err->code == kErrorAccessDenied ? "login failed: " : "") + describe(*err)};
      }
      if (kind == 0xfe) {
        auto sw = parse_auth_switch(*p);
        if (!sw) return sw.error();
        plugin = sw->plugin;
        scramble = sw->data;
        if (plugin == "mysql_clear_password") {
          if (!stream_->is_tls() && login_) {
            return Error{Exit::unavailable, "server asks for the password in clear without TLS; refused"};
          }
          if (auto st = write_packet(password + '\0'); !st) return st;
          continue;
        }
        if (plugin != "caching_sha2_password" && plugin != "mysql_native_password" && login_) {
          return Error{Exit::unavailable, "server asks for auth plugin " + plugin + ", which is not supported"};
        }
        if (auto st = write_packet(answer(plugin)); !st) return st;
        continue;
      }
      if (kind == 0x01 && plugin == "caching_sha2_password" && p->size() >= 2) {
        auto more = static_cast<uint8_t>((*p)[1]);
        if (more == 0x03) {  // fast auth succeeded; the OK follows
          fact("auth_path", "fast");
          continue;
        }
        if (more == 0x04) {  // full auth
          fact("auth_path", "full");
          if (stream_->is_tls()) {
            if (auto st = write_packet(password + '\0'); !st) return st;
            continue;
          }
          if (auto st = write_packet(std::string(1, '\x02')); !st) return st;
          auto key = read_packet(kMaxPacketLength);
          if (!key) return key.error();
          if (key->empty() || (*key)[0] != '\x01') {
            if (auto err = parse_error_packet(*key)) return Error{Exit::unavailable, describe(*err)};
            return Error{Exit::data, "expected the server's RSA public key"};
          }
          auto encrypted = encrypt_password_rsa(password, scramble, std::string_view(*key).substr(1));
          if (!encrypted) return encrypted.error();
          if (auto st = write_packet(*encrypted); !st) return st;
          continue;
        }
      }
      return Error{Exit::data, "unexpected packet during authentication (first byte " +
                                   std::to_string(kind) + ")"};
    }
    return Error{Exit::data, "authentication did not finish after " + std::to_string(kMaxAuthRounds) + " round trips"};
  }

  // COM_QUERY; the first row (nullopt values are SQL NULL), or nullopt when the statement
  // returned no rows or no result set.
  using Row = std::vector<std::optional<std::string>>;
  Result<std::optional<Row>> run_query(const std::string& sql) {
    sequence_ = 0;
    if (auto st = write_packet(build_query(sql)); !st) return st.error();
    auto first = read_packet(kMaxPacketLength);
    if (!first) return first.error();
    if (auto err = parse_error_packet(*first)) {
      return Error{Exit::unavailable, describe(*err)};
    }
    if (!first->empty() && (*first)[0] == '\0') return std::optional<Row>{};  // OK, no result set
    std::string_view cursor(*first);
    auto columns = read_lenenc_int(cursor);
    if (!columns) return columns.error();
    if (*columns == 0 || *columns > 4096) {
      return Error{Exit::data, "bad column count " + std::to_string(*columns)};
    }
    size_t total = first->size();
    bool eof_seen = false;
    std::optional<Row> result;
    // Column definitions, EOF, rows, EOF: every packet is bounded, and so is their sum.
    for (uint64_t packets = 0;; ++packets) {
      auto p = read_packet(kMaxPacketLength);
      if (!p) return p.error();
      total += p->size();
      if (total > kMaxResultBytes) return Error{Exit::data, "result larger than 4 MiB"};
      if (auto err = parse_error_packet(*p)) return Error{Exit::unavailable, describe(*err)};
      if (packets < *columns) continue;
      if (is_eof_packet(*p)) {
        if (eof_seen) break;
        eof_seen = true;
        continue;
      }
      if (!eof_seen) return Error{Exit::data, "malformed result set (no EOF after the columns)"};
      if (!result) {
        auto row = parse_text_row(*p, *columns);
        if (!row) return row.error();
        result = std::move(*row);
      }
    }
    return result;
  }

  // What identifies the backend: MariaDB has @@server_uid, MySQL @@server_uuid; an older
  // server without either still has the rest.
  Status read_identity() {
    std::vector<std::string> vars = {greeting_.mariadb ? "server_uid" : "server_uuid", "hostname",
                                     "port", "server_id", "version"};
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::string sql;
      for (const auto& var : vars) sql += (sql.empty() ? "SELECT @@" : ", @@") + var;
      auto row = run_query(sql);
      if (!row) {
        if (attempt == 0) {
          vars.erase(vars.begin());
          continue;
        }
        return row.error();
      }
      if (!*row || (*row)->size() != vars.size()) return Error{Exit::data, "identity query returned no row"};
      for (size_t i = 0; i < vars.size(); ++i) {
        if (!r_.identity.empty()) r_.identity += ",";
        const auto& v = (**row)[i];
        r_.identity += vars[i] + "=" + (v ? proxy_check::printable(*v) : "");
        if (i == 0 && attempt == 0) fact(vars[0], v ? proxy_check::printable(*v) : "");
      }
      return {};
    }
    return {};
  }

  const envkit::Url& target_;
  const ProbeOptions& options_;
  ProbeResult r_;
  PhaseClock clock_;  // after r_, which it writes to
  std::string phase_ = "connect";
  std::optional<envkit::Stream> stream_;
  uint8_t sequence_ = 0;
  Greeting greeting_;
  std::string tls_version_;
  bool login_ = false;
  bool probe_accepted_ = false;
  bool blocked_ = false;
};

}  // namespace

ProbeResult probe_mysql(const envkit::Url& target, const ProbeOptions& options) {
  return without_exceptions([&] { return MysqlProbe(target, options).run(); });
}

}  // namespace proxy_check
