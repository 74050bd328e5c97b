// The MySQL client/server protocol pieces probe_mysql speaks by hand: packet framing, the
// HandshakeV10 greeting, HandshakeResponse41/SSLRequest, auth scrambles and text resultset
// rows. Pure functions over bytes, so hostile input can be unit-tested and fuzzed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <envkit/result.hpp>

namespace proxy_check::mysql {

// Capability flags (include/mysql_com.h).
inline constexpr uint32_t kClientLongPassword = 0x00000001;
inline constexpr uint32_t kClientLongFlag = 0x00000004;
inline constexpr uint32_t kClientConnectWithDb = 0x00000008;
inline constexpr uint32_t kClientProtocol41 = 0x00000200;
inline constexpr uint32_t kClientSsl = 0x00000800;
inline constexpr uint32_t kClientTransactions = 0x00002000;
inline constexpr uint32_t kClientSecureConnection = 0x00008000;
inline constexpr uint32_t kClientMultiResults = 0x00020000;
inline constexpr uint32_t kClientPluginAuth = 0x00080000;

/// utf8mb4_general_ci: every server since 5.5.3 knows it.
inline constexpr uint8_t kCharsetUtf8mb4 = 45;
/// The largest greeting accepted: real ones are about 100 bytes.
inline constexpr uint32_t kMaxGreetingLength = 4096;
/// The largest packet accepted after the greeting (a full-size packet, 16 MiB - 1, would be
/// a multi-packet payload, which no probe reply needs).
inline constexpr uint32_t kMaxPacketLength = 1u << 20;

/// ER_HOST_IS_BLOCKED: too many connect errors from this host (max_connect_errors).
inline constexpr uint16_t kErrorHostBlocked = 1129;
/// ER_ACCESS_DENIED_ERROR.
inline constexpr uint16_t kErrorAccessDenied = 1045;

/// The 4-byte header in front of every packet.
struct PacketHeader {
  uint32_t length = 0;  ///< payload bytes, at most 0xFFFFFF
  uint8_t sequence = 0;
};

PacketHeader parse_packet_header(const char (&bytes)[4]);
/// `payload` with its header; payloads above 0xFFFFFF bytes are not supported (none is sent).
std::string frame_packet(uint8_t sequence, std::string_view payload);

/// What the server's HandshakeV10 says.
struct Greeting {
  uint8_t protocol_version = 0;
  std::string server_version;  ///< as reported; MariaDB's "5.5.5-" prefix removed
  uint32_t connection_id = 0;
  std::string scramble;        ///< auth-plugin-data, 20 bytes for the usual plugins
  uint32_t capabilities = 0;   ///< lower and upper 16 bits joined
  uint8_t charset = 0;
  uint16_t status = 0;
  std::string auth_plugin;     ///< empty when the server does not do CLIENT_PLUGIN_AUTH
  bool mariadb = false;

  bool tls_offered() const { return (capabilities & kClientSsl) != 0; }
};

/// Parses a greeting payload. Errors (Exit::data) say what is malformed.
envkit::Result<Greeting> parse_greeting(std::string_view payload);

/// An ERR packet.
struct ServerError {
  uint16_t code = 0;
  std::string sql_state;  ///< empty when the packet has none (errors before the handshake)
  std::string message;
};

/// The ERR packet in `payload` (first byte 0xFF), or nullopt if it is not one.
std::optional<ServerError> parse_error_packet(std::string_view payload);

/// "error 1045 (28000): Access denied for user ..."
std::string describe(const ServerError& error);

/// The fields of a HandshakeResponse41.
struct HandshakeResponse {
  uint32_t capabilities = 0;
  uint8_t charset = kCharsetUtf8mb4;
  std::string user;
  std::string auth_response;
  std::string database;     ///< sent when capabilities has kClientConnectWithDb
  std::string auth_plugin;  ///< sent when capabilities has kClientPluginAuth
};

/// The capabilities a probe asks for, given the server's and what it wants to do.
uint32_t client_capabilities(uint32_t server_capabilities, bool with_database, bool tls);
/// The SSLRequest payload (the first 32 bytes of a HandshakeResponse41, with kClientSsl).
std::string build_ssl_request(uint32_t capabilities, uint8_t charset = kCharsetUtf8mb4);
std::string build_handshake_response(const HandshakeResponse& response);

/// mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))); empty for "".
std::string scramble_native_password(std::string_view password, std::string_view scramble);
/// caching_sha2_password: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + scramble); empty for "".
std::string scramble_caching_sha2(std::string_view password, std::string_view scramble);
/// caching_sha2_password full auth without TLS: (password + NUL) XOR scramble, encrypted with
/// RSA-OAEP under the server's PEM public key. Errors: an unreadable key (Exit::data).
envkit::Result<std::string> encrypt_password_rsa(std::string_view password,
                                                 std::string_view scramble,
                                                 std::string_view public_key_pem);

/// An AuthSwitchRequest (first byte 0xFE).
struct AuthSwitch {
  std::string plugin;
  std::string data;  ///< the new scramble, trailing NUL removed
};
envkit::Result<AuthSwitch> parse_auth_switch(std::string_view payload);

/// Length-encoded integers and strings, consuming from the front of `in`.
envkit::Result<uint64_t> read_lenenc_int(std::string_view& in);
envkit::Result<std::string> read_lenenc_string(std::string_view& in);

/// An EOF packet: 0xFE and shorter than 9 bytes.
bool is_eof_packet(std::string_view payload);

/// One text-protocol row of `columns` values; nullopt is SQL NULL.
envkit::Result<std::vector<std::optional<std::string>>> parse_text_row(std::string_view payload,
                                                                       size_t columns);

/// A COM_QUERY payload.
std::string build_query(std::string_view sql);
/// A COM_QUIT payload.
std::string build_quit();

/// "0x000ff7fe"
std::string format_capabilities(uint32_t capabilities);

}  // namespace proxy_check::mysql
