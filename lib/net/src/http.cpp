// HTTP(S) client on libcurl: request set-up, bounded transfers, error mapping, multi interface.
#include <envkit/http.hpp>

#include <algorithm>
#include <cctype>
#include <mutex>

#include <envkit/exit_status.hpp>
#include <envkit/url.hpp>

namespace envkit {
namespace {

Status init_curl() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  // curl_global_init is not thread-safe on every build of libcurl: once, before any handle.
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK) {
    return fail(Failure::internal, std::string("cannot initialise libcurl: ") + curl_easy_strerror(rc));
  }
  return {};
}

struct SlistFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct UrlFree {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlString {
  void operator()(char* s) const { curl_free(s); }
};

// Everything one transfer needs while libcurl runs it. libcurl keeps pointers into it
// (buffers, header list, body), so it stays put until the transfer is finished.
struct Transfer {
  const HttpRequest* request = nullptr;
  std::string endpoint;  // "GET https://user:***@host/path", for messages
  std::string curl_url;  // the URL without credentials: what libcurl sees and reports
  std::string username, password;
  std::string connect_to;
  std::unique_ptr<curl_slist, SlistFree> header_list;
  std::unique_ptr<curl_slist, SlistFree> connect_to_list;
  HttpResponse response;
  size_t max_body = 0;
  long stall_seconds = 0;  // the I/O timeout as libcurl counts it
  bool body_too_large = false;
  char error_buffer[CURL_ERROR_SIZE] = {};
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  if (t->response.body.size() + n > t->max_body) {
    t->body_too_large = true;
    return 0;  // anything short of n makes libcurl abort with CURLE_WRITE_ERROR
  }
  t->response.body.append(data, n);
  return n;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  std::string_view line(data, n);
  // Each response of a redirect chain (or a 100 Continue) starts with a status line: keep
  // only the headers of the last one.
  if (line.starts_with("HTTP/")) {
    t->response.headers.clear();
    return n;
  }
  auto colon = line.find(':');
  if (colon != std::string_view::npos && colon > 0) {
    t->response.headers.emplace_back(std::string(trim_field(line.substr(0, colon))),
                                     std::string(trim_field(line.substr(colon + 1))));
  }
  return n;
}

// Splits the credentials off the URL: they go to libcurl as options, so that neither the
// URL it reports back (effective_url) nor any message can contain the password.
Status prepare_url(Transfer& t, const TlsOptions& tls) {
  auto url = parse_url(t.request->url);
  if (!url) return url.error().context(t.request->method + " request failed");
  t.endpoint = t.request->method + " " + url->redacted();
  if (url->scheme != "http" && url->scheme != "https") {
    return fail(Failure::usage, t.endpoint + " failed: only http:// and https:// URLs are supported");
  }
  t.username = url->user;
  if (url->password) t.password = *url->password;

  std::unique_ptr<CURLU, UrlFree> u(curl_url());
  if (!u) return fail(Failure::internal, t.endpoint + " failed: out of memory");
  if (CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, t.request->url.c_str(), 0)) {
    return fail(Failure::usage, t.endpoint + " failed: bad URL: " + curl_url_strerror(rc));
  }
  curl_url_set(u.get(), CURLUPART_USER, nullptr, 0);
  curl_url_set(u.get(), CURLUPART_PASSWORD, nullptr, 0);

  if (!tls.server_name.empty() && url->scheme == "https") {
    // Ask for the name the certificate should carry (SNI, verification and Host header all
    // follow the URL) while the TCP connection still goes to the host the URL named.
    char* host = nullptr;
    char* port = nullptr;
    curl_url_get(u.get(), CURLUPART_HOST, &host, 0);
    curl_url_get(u.get(), CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    std::unique_ptr<char, CurlString> host_owner(host), port_owner(port);
    if (!host || !port) return fail(Failure::usage, t.endpoint + " failed: the URL names no host");
    t.connect_to = tls.server_name + ":" + port + ":" + host + ":" + port;
    curl_url_set(u.get(), CURLUPART_HOST, tls.server_name.c_str(), 0);
  }

  char* text = nullptr;
  if (curl_url_get(u.get(), CURLUPART_URL, &text, 0) != CURLUE_OK || !text) {
    return fail(Failure::usage, t.endpoint + " failed: bad URL");
  }
  std::unique_ptr<char, CurlString> owner(text);
  t.curl_url = text;
  return {};
}

long whole_seconds(std::chrono::milliseconds ms) {
  long s = static_cast<long>((ms.count() + 999) / 1000);
  return s < 1 ? 1 : s;
}

Status setup(CURL* easy, Transfer& t, const ConnectionOptions& options,
             const HttpClientOptions& client) {
  curl_easy_reset(easy);  // keeps live connections and caches, forgets the last request
  if (auto st = prepare_url(t, options.tls); !st) return st;
  const HttpRequest& r = *t.request;
  t.max_body = client.max_body_bytes;
  t.stall_seconds = whole_seconds(options.io_timeout);

  curl_easy_setopt(easy, CURLOPT_URL, t.curl_url.c_str());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t.error_buffer);
  // Timeouts in libcurl use signals (SIGALRM) for DNS unless told not to; signals and
  // threads do not mix, and our own handlers own SIGINT/SIGTERM.
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_USERAGENT, client.user_agent.c_str());
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, client.follow_redirects ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_MAXREDIRS, client.max_redirects);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");  // whatever libcurl can decode

  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options.connect_timeout.count()));
  // "No byte for io_timeout" is libcurl's low-speed check at 1 byte/s; it counts seconds.
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, t.stall_seconds);
  if (r.timeout) {
    long ms = static_cast<long>(r.timeout->count());
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, ms < 1 ? 1L : ms);
  }

  const TlsOptions& tls = options.tls;
  if (!tls.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, tls.ca_file.c_str());
  if (!tls.cert_file.empty()) curl_easy_setopt(easy, CURLOPT_SSLCERT, tls.cert_file.c_str());
  if (!tls.key_file.empty()) curl_easy_setopt(easy, CURLOPT_SSLKEY, tls.key_file.c_str());
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, tls.verify ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, tls.verify ? 2L : 0L);
  if (!t.connect_to.empty()) {
    t.connect_to_list.reset(curl_slist_append(nullptr, t.connect_to.c_str()));
    curl_easy_setopt(easy, CURLOPT_CONNECT_TO, t.connect_to_list.get());
  }

  if (!t.username.empty() || !t.password.empty()) {
    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(easy, CURLOPT_USERNAME, t.username.c_str());
    curl_easy_setopt(easy, CURLOPT_PASSWORD, t.password.c_str());
  }

  // A request with a body would otherwise wait up to a second for "100 Continue" from
  // servers that never send one.
  curl_slist* list = curl_slist_append(nullptr, "Expect:");
  for (const auto& [name, value] : r.headers) {
    // "Name;" is libcurl's spelling of a header sent with an empty value.
    std::string line = value.empty() ? name + ";" : name + ": " + value;
    if (curl_slist* grown = curl_slist_append(list, line.c_str())) list = grown;
  }
  t.header_list.reset(list);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t.header_list.get());

  bool wants_body =
      !r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH";
  if (r.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (wants_body) {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r.body.data());
    if (r.method != "POST") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  } else if (r.method != "GET") {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }

  // Refuses an announced oversized body before reading it; the write callback catches the
  // rest. Not for HEAD, whose Content-Length describes a body that never comes.
  if (r.method != "HEAD") {
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(client.max_body_bytes));
  }
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &t);
  return {};
}

std::chrono::microseconds info_time(CURL* easy, CURLINFO what) {
  curl_off_t us = 0;
  curl_easy_getinfo(easy, what, &us);
  return std::chrono::microseconds(us);
}

// libcurl's result codes as failure kinds (envkit/exit_status.hpp).
Failure curl_failure(CURLcode rc, bool connected, const std::string& url) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      // Not connected within the connect timeout: the server cannot be reached. Connected
      // but too slow: it is there, so try again soon.
      return connected ? Failure::io_timeout : Failure::unreachable;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: {
      // libcurl says the same for a name that does not exist and a silent resolver.
      auto u = parse_url(url);
      return u && !u->hosts.empty() ? failure_resolving(u->hosts[0].host)
                                    : Failure::name_not_found;
    }
    case CURLE_COULDNT_CONNECT:
      return Failure::connection_refused;
    case CURLE_URL_MALFORMAT:
      return Failure::usage;
    case CURLE_UNSUPPORTED_PROTOCOL:  // schemes are checked before libcurl: an HTTP/0.9 answer
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
      return Failure::tls_failed;
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_CRL_BADFILE:
      return Failure::config;
    case CURLE_LOGIN_DENIED:
      return Failure::auth_refused;
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_BAD_CONTENT_ENCODING:
      return Failure::bad_data;
      return Failure::wrong_protocol;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return Failure::internal;
    default:
      // Reset, dropped mid-body, empty reply, a redirect loop: the service cannot be used
      // from here right now.
      return Failure::connection_lost;
  }
}

Result<HttpResponse> finish(CURL* easy, Transfer& t, CURLcode rc) {
  if (rc != CURLE_OK) {
    if (t.body_too_large || rc == CURLE_FILESIZE_EXCEEDED) {
      return fail(Failure::bad_data, t.endpoint + " failed: the response body is larger than the " +
                                         std::to_string(t.max_body) + "-byte limit");
    }
    bool connected = info_time(easy, CURLINFO_CONNECT_TIME_T).count() > 0;
    std::string why = t.error_buffer[0] ? t.error_buffer : curl_easy_strerror(rc);
    if (rc == CURLE_OPERATION_TIMEDOUT && connected) {
      // libcurl words the stall check as a transfer rate; say which of our bounds it was.
      auto total = info_time(easy, CURLINFO_TOTAL_TIME_T);
      bool whole_request = t.request->timeout && total >= *t.request->timeout;
      if (!whole_request) {
        why = "no data for " + std::to_string(t.stall_seconds) + " s (the I/O timeout)";
      }
    }
    return fail(curl_failure(rc, connected, t.request->url), t.endpoint + " failed: " + why);
  }
  HttpResponse& r = t.response;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r.status);
  char* effective = nullptr;
  curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &effective);
  if (effective) r.effective_url = effective;
  r.timings.connect = info_time(easy, CURLINFO_CONNECT_TIME_T);
  r.timings.tls_handshake = info_time(easy, CURLINFO_APPCONNECT_TIME_T);
  r.timings.first_byte = info_time(easy, CURLINFO_STARTTRANSFER_TIME_T);
  r.timings.total = info_time(easy, CURLINFO_TOTAL_TIME_T);
  return std::move(r);
}

}  // namespace

namespace detail {
void CurlEasyCleanup::operator()(CURL* easy) const { curl_easy_cleanup(easy); }
void CurlMultiCleanup::operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
}  // namespace detail

HttpClient::HttpClient(ConnectionOptions options, HttpClientOptions client_options)
    : options_(std::move(options)), client_options_(std::move(client_options)) {}

Result<HttpClient> HttpClient::create(const ConnectionOptions& options,
                                      HttpClientOptions client_options) {
  if (auto st = init_curl(); !st) return st.error();
  HttpClient client(options, std::move(client_options));
  client.easy_.reset(curl_easy_init());
  client.multi_.reset(curl_multi_init());
  if (!client.easy_ || !client.multi_) {
    return fail(Failure::internal, "cannot create an HTTP client: libcurl is out of memory");
  }
  return client;
}

Result<HttpResponse> HttpClient::perform(const HttpRequest& request) {
  Transfer t;
  t.request = &request;
  if (auto st = setup(easy_.get(), t, options_, client_options_); !st) return st.error();
  CURLcode rc = curl_easy_perform(easy_.get());
  return finish(easy_.get(), t, rc);
}

Result<std::vector<Result<HttpResponse>>> HttpClient::perform_all(
    const std::vector<HttpRequest>& requests, size_t max_concurrency) {
  std::vector<std::optional<Result<HttpResponse>>> done(requests.size());
  size_t slots = std::clamp<size_t>(max_concurrency, 1, std::max<size_t>(requests.size(), 1));

  struct Slot {
    std::unique_ptr<CURL, detail::CurlEasyCleanup> easy;
    std::unique_ptr<Transfer> transfer;
    size_t index = 0;
    bool busy = false;
  };
  std::vector<Slot> pool(slots);
  CURLM* multi = multi_.get();
  size_t next = 0;
  size_t running = 0;

  // Starts the next request that sets up cleanly on `slot`; set-up failures (a bad URL) are
  // that request's result and do not stop the others.
  auto start_next = [&](Slot& slot) -> Status {
    while (next < requests.size()) {
      size_t i = next++;
      if (!slot.easy) slot.easy.reset(curl_easy_init());
      if (!slot.easy) return fail(Failure::internal, "cannot start HTTP requests: out of memory");
      slot.transfer = std::make_unique<Transfer>();
      slot.transfer->request = &requests[i];
      if (auto st = setup(slot.easy.get(), *slot.transfer, options_, client_options_); !st) {
        done[i] = st.error();
        continue;
      }
      if (CURLMcode mc = curl_multi_add_handle(multi, slot.easy.get()); mc != CURLM_OK) {
        return fail(Failure::internal, std::string("cannot start HTTP requests: ") + curl_multi_strerror(mc));
      }
      slot.index = i;
      slot.busy = true;
      ++running;
      return {};
    }
    return {};
  };
  // Handles still in the multi handle when we leave early must come out before they die.
  auto abandon = [&](Error e) -> Error {
    for (auto& slot : pool) {
      if (slot.busy) curl_multi_remove_handle(multi, slot.easy.get());
      slot.busy = false;
    }
    return e;
  };

  for (auto& slot : pool) {
    if (auto st = start_next(slot); !st) return abandon(st.error());
  }
  // Ends because every transfer ends: each is bounded by its connect and I/O timeouts.
  while (running > 0) {
    int still_running = 0;
    if (CURLMcode mc = curl_multi_perform(multi, &still_running); mc != CURLM_OK) {
      return abandon(
          fail(Failure::internal, std::string("HTTP requests failed: ") + curl_multi_strerror(mc)));
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      auto it = std::find_if(pool.begin(), pool.end(), [&](const Slot& s) {
        return s.busy && s.easy.get() == msg->easy_handle;
      });
      if (it == pool.end()) continue;
      CURLcode rc = msg->data.result;  // msg is invalid once the handle is removed
      done[it->index] = finish(it->easy.get(), *it->transfer, rc);
      curl_multi_remove_handle(multi, it->easy.get());
      it->busy = false;
      --running;
      if (auto st = start_next(*it); !st) return abandon(st.error());
    }
    if (running > 0) {
      if (CURLMcode mc = curl_multi_poll(multi, nullptr, 0, 1000, nullptr); mc != CURLM_OK) {
        return abandon(
            fail(Failure::internal, std::string("HTTP requests failed: ") + curl_multi_strerror(mc)));
      }
    }
  }

  std::vector<Result<HttpResponse>> results;
  results.reserve(requests.size());
  for (auto& r : done) results.push_back(std::move(*r));
  return results;
}

}  // namespace envkit
