// Per-URL TLS settings (?tls=...&tls-ca=...): the one parser every connector and probe uses.
#include <envkit/connection.hpp>

#include <optional>

namespace envkit {

namespace {

std::optional<bool> parse_bool(const std::string& v) {
  if (v == "true" || v == "1" || v == "yes" || v.empty()) return true;
  if (v == "false" || v == "0" || v == "no") return false;
  return std::nullopt;
}

}  // namespace

Result<TlsOptions> tls_options_from_url(const Url& url, TlsOptions tls) {
  if (url.scheme == "https" || url.scheme == "tls" || url.scheme == "rediss" ||
      url.scheme == "amqps" || url.scheme == "mysqls") {
    tls.enabled = true;
  }
  for (const char* key : {"tls", "tls-insecure"}) {
    auto v = url.param(key);
    if (!v) continue;
    auto b = parse_bool(*v);
    if (!b) {
      return Error{Exit::usage, std::string("bad URL parameter ") + key + "=" + *v + " in " +
                                    url.redacted() + ": expected true or false"};
    }
    if (std::string_view(key) == "tls") {
      tls.enabled = *b;
    } else {
      tls.verify = !*b;
    }
  }
  if (auto v = url.param("tls-ca")) tls.ca_file = *v;
  if (auto v = url.param("tls-cert")) tls.cert_file = *v;
  if (auto v = url.param("tls-key")) tls.key_file = *v;
  if (auto v = url.param("tls-server-name")) tls.server_name = *v;
  // A client certificate or CA only makes sense over TLS: asking for one asks for TLS, unless
  // the URL says tls=false in so many words (a command-wide --tls-ca, one plain endpoint).
  if (!url.param("tls") && (!tls.ca_file.empty() || !tls.cert_file.empty() || !tls.key_file.empty())) {
    tls.enabled = true;
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return Error{Exit::usage, "a client certificate needs both tls-cert and tls-key in " + url.redacted()};
  }
  return tls;
}

}  // namespace envkit
